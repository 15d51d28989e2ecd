"""Reading a person's TOML file (site config, campaign ``orca-hpc.toml``) without surprises.

``tomllib`` recurses per nesting level, so ``x = [[[[...]]]]`` 3,000 deep raised RecursionError (a
traceback); a "file" that is a device (``--site /dev/zero``) or a FIFO was read forever. Both now
give one line naming the file.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from orca_hpc import shipped
from orca_hpc.errors import InputFileError
from orca_hpc.perms import writable_by_others

MAX_BYTES = 1 << 20  # a config of a megabyte is a mistake, not a config


def read_config_text(path: Path, what: str) -> str:
    """The text of a regular file of at most ``MAX_BYTES``; ``FileNotFoundError`` passes through."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open either
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputFileError(path, f"{what} is not a regular file")
        if st.st_size > MAX_BYTES:
            raise InputFileError(path, f"{what} is larger than {MAX_BYTES // 1024} KiB")
        writable = writable_by_others(st)
        if writable and not _shipped(path):
            # It says what runs as this user (ORCA's path, setup lines, templates): the controller writes
            # it into spec.json and the job script, which the runner then trusts. Whoever may change it
            # could run anything as us, as with a spec.json the runner refuses for the same reason.
            raise InputFileError(path, refusal(what, writable, path))
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        # "utf-8-sig": a byte-order mark (Windows editors write one) is not text; tomllib called it an
        # "Invalid statement" at line 1, while inputs and the ledger read past it.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputFileError(path, f"{what} is not UTF-8 text ({err.reason} at byte {err.start})") from None


def refusal(what: str, writable: str, path: Path | str) -> str:
    """The one line that refuses a file the group or others may write, with the command that fixes it."""
    return f"{what} {writable} and decides what runs as you; run chmod go-w {shlex.quote(str(path))}"


def _shipped(path: Path) -> bool:
    """A site config that came with orca-hpc: whoever may write it may write orca-hpc's code beside it,
    so its mode says nothing the code's does not. (pip and git create files by the umask: 0664 under
    the umask 002 of many clusters, and the shipped `local` site of the README would be refused.)"""
    return path.resolve().parent == shipped.shipped_dir("site_configs").resolve()


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    """``tomllib.loads`` with every failure as one ``InputFileError`` line (the TOML line when known)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        line = getattr(err, "lineno", None)
        raise InputFileError(path, f"invalid TOML: {str(err).splitlines()[0]}", line) from None
    except RecursionError:
        raise InputFileError(path, "invalid TOML: nested too deeply") from None
    except ValueError as err:  # tomllib's int() of a 4,300+ digit number
        raise InputFileError(path, f"invalid TOML: {str(err)[:80]}") from None
