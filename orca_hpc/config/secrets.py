"""Which environment variables hold the controller's secrets, so that no job inherits them.

The mail password may come from the variable named by ``[mail] password_env`` (site config or the
campaign's ``orca-hpc.toml``). The controller needs it; a job never does, and ORCA, a site's setup
lines and anything a job starts would otherwise see it (sbatch exports the submitting environment).
Read from the raw tables: a ``[mail]`` table too broken to send mail still names the variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def secret_env_names(*mail_tables: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The ``password_env`` names of the given ``[mail]`` tables (valid variable names only), sorted."""
    names = set()
    for table in mail_tables:
        if isinstance(table, Mapping):
            name = table.get("password_env")
            if isinstance(name, str) and _ENV_NAME.fullmatch(name):
                names.add(name)
    return tuple(sorted(names))
