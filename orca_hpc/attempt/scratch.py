"""Where an attempt's scratch lives: ``<root>/orca-hpc/<campaign>-<job_id>/attempt-<n>``.

Shared by the runner (creates and removes scratch) and gc (finds what a killed runner left).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

SCRATCH_TOP = "orca-hpc"
FALLBACK_ROOT = Path("/tmp")
_ATTEMPT_RE = re.compile(r"^attempt-(\d+)$")
# Job ids never contain "-", so "<campaign>-<job_id>" splits unambiguously at the last "-"
# even when the campaign name itself contains dashes.
_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_.]+$")


def expand_root(raw: str) -> Path | None:
    """``$VARS`` expanded from the environment; None if a variable is unset or the result is not absolute."""
    expanded = os.path.expandvars(os.path.expanduser(raw.strip()))
    if not expanded or "$" in expanded or not os.path.isabs(expanded):
        return None
    return Path(expanded)


def usable_root(raw: str) -> tuple[Path, str | None]:
    """The scratch root to use, and a note when it had to fall back to /tmp."""
    root = expand_root(raw)
    if root is None:
        return FALLBACK_ROOT, f"scratch_root {raw!r} is unset or not absolute; using {FALLBACK_ROOT}"
    if not root.is_dir():
        return FALLBACK_ROOT, f"scratch_root {root} does not exist; using {FALLBACK_ROOT}"
    if not os.access(root, os.W_OK | os.X_OK):
        return FALLBACK_ROOT, f"scratch_root {root} is not writable; using {FALLBACK_ROOT}"
    return root, None


def job_scratch_dir(root: Path, campaign: str, job_id: str) -> Path:
    return root / SCRATCH_TOP / f"{campaign}-{job_id}"


def attempt_scratch_dir(root: Path, campaign: str, job_id: str, attempt: int) -> Path:
    return job_scratch_dir(root, campaign, job_id) / f"attempt-{attempt}"


def attempt_number(path: Path) -> int | None:
    """n for a directory named ``attempt-<n>``, else None."""
    match = _ATTEMPT_RE.match(path.name)
    return int(match.group(1)) if match else None


def job_id_of(job_dir_name: str, campaign: str) -> str | None:
    """The job id in ``<campaign>-<job_id>``, or None if the name belongs to another campaign."""
    prefix = f"{campaign}-"
    if not job_dir_name.startswith(prefix):
        return None
    job_id = job_dir_name[len(prefix) :]
    return job_id if _JOB_ID_RE.match(job_id) else None


def remove_earlier_attempts(job_dir: Path, attempt: int) -> list[Path]:
    """Remove ``attempt-<k>`` siblings with k < attempt (a killed runner's leftovers); returns them."""
    removed: list[Path] = []
    try:
        entries = list(job_dir.iterdir())
    except OSError:
        return removed
    for entry in entries:
        number = attempt_number(entry)
        if number is not None and number < attempt and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
