"""Scratch garbage collection: what killed runners left under ``<root>/orca-hpc/``.

A runner removes its own scratch when it ends; SIGKILL (node failure, KillWait expired) can
leave it behind. Anything of this campaign whose job is no longer active, or whose attempt is
older than the job's current attempt, is stale. The current attempt of an active job is never
touched: it may be running right now.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from orca_hpc.attempt.scratch import SCRATCH_TOP, attempt_number, job_id_of


def find_stale_scratch(scratch_root: Path, campaign: str, active: Mapping[str, int]) -> list[Path]:
    """Stale scratch dirs of ``campaign`` under ``scratch_root`` (already ``$VAR``-expanded).

    ``active`` maps each active job id to its current attempt number. A job that is not active
    yields its whole ``<campaign>-<job_id>`` dir; an active one yields only its older attempts.
    """
    top = Path(scratch_root) / SCRATCH_TOP
    try:
        job_dirs = sorted(top.iterdir())
    except OSError:
        return []
    stale: list[Path] = []
    for job_dir in job_dirs:
        job_id = job_id_of(job_dir.name, campaign)
        if job_id is None or job_dir.is_symlink() or not job_dir.is_dir():
            continue
        if job_id not in active:
            stale.append(job_dir)
            continue
        try:
            attempts = sorted(job_dir.iterdir())
        except OSError:
            continue
        for attempt_dir in attempts:
            number = attempt_number(attempt_dir)
            if number is not None and number < active[job_id] and not attempt_dir.is_symlink():
                stale.append(attempt_dir)
    return stale


def remove_paths(paths: Iterable[Path], dry_run: bool) -> list[str]:
    """Remove ``paths`` (dirs or files); one human-readable line per path, in order.

    Lines read ``would remove P`` (dry run), ``removed P`` or ``could not remove P: why``.
    Only paths inside an ``orca-hpc`` scratch folder are touched, as a guard against a bad caller.
    """
    lines: list[str] = []
    for path in map(Path, paths):
        if SCRATCH_TOP not in path.parts[:-1]:
            lines.append(f"could not remove {path}: not inside an {SCRATCH_TOP} scratch folder")
        elif dry_run:
            lines.append(f"would remove {path}")
        else:
            lines.append(_remove(path))
    return lines


def _remove(path: Path) -> str:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    except FileNotFoundError:
        return f"removed {path} (already gone)"
    except OSError as err:
        return f"could not remove {path}: {err.strerror or err}"
    if path.exists() or path.is_symlink():
        return f"could not remove {path}: some files remain (permissions?)"
    return f"removed {path}"
