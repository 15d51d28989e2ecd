"""Scratch garbage collection: what killed runners left under ``<root>/orca-hpc-<uid>/``.

A runner removes its own scratch when it ends; SIGKILL (node failure, KillWait expired) can
leave it behind. Anything of this campaign whose job is no longer active, or whose attempt is
older than the job's current attempt, is stale. The current attempt of an active job is never
touched: it may be running right now.

Only this user's private tops are searched (``orca-hpc-<uid>`` and the ``mkdtemp`` fallbacks
``orca-hpc-<uid>-XXXX``), and only those that pass the same ownership check as the runner's.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from orca_hpc.attempt.scratch import (
    attempt_number,
    is_fresh_top,
    job_id_of,
    private_dir_problem,
    remove_tree,
    top_name,
)

# An empty fallback top younger than this may belong to a runner that is about to fill it.
EMPTY_TOP_AGE = 3600.0


def private_tops(scratch_root: Path) -> list[Path]:
    """This user's scratch tops under ``scratch_root`` that are safe to look into."""
    try:
        names = os.listdir(scratch_root)
    except OSError:
        return []
    mine = top_name()
    tops = [Path(scratch_root) / n for n in sorted(names) if n == mine or n.startswith(mine + "-")]
    return [top for top in tops if private_dir_problem(top) is None]


def find_stale_scratch(scratch_root: Path, campaign: str, active: Mapping[str, int]) -> list[Path]:
    """Stale scratch dirs of ``campaign`` under ``scratch_root`` (already ``$VAR``-expanded).

    ``active`` maps each active job id to its current attempt number. A job that is not active
    yields its whole ``<campaign>-<job_id>`` dir; an active one yields only its older attempts.
    Empty ``mkdtemp`` fallback tops older than an hour are stale too.
    """
    stale: list[Path] = []
    for top in private_tops(scratch_root):
        try:
            job_dirs = sorted(top.iterdir())
        except OSError:
            continue
        if not job_dirs and is_fresh_top(top) and time.time() - top.stat().st_mtime > EMPTY_TOP_AGE:
            stale.append(top)
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


def _inside_private_top(path: Path) -> bool:
    mine = top_name()
    return any(part == mine or part.startswith(mine + "-") for part in path.parts[:-1]) or (
        is_fresh_top(path)
    )


def remove_paths(paths: Iterable[Path], dry_run: bool) -> list[str]:
    """Remove ``paths`` (dirs or files); one human-readable line per path, in order.

    Lines read ``would remove P`` (dry run), ``removed P`` or ``could not remove P: why``.
    Only paths inside this user's scratch tops are touched, as a guard against a bad caller.
    """
    lines: list[str] = []
    for path in map(Path, paths):
        if not _inside_private_top(path):
            lines.append(f"could not remove {path}: not inside a {top_name()} scratch folder")
        elif dry_run:
            lines.append(f"would remove {path}")
        else:
            lines.append(_remove(path))
    return lines


def _remove(path: Path) -> str:
    try:
        remove_tree(path)
    except OSError as err:
        return f"could not remove {path}: {err.strerror or err}"
    if os.path.lexists(path):
        return f"could not remove {path}: some files remain (permissions?)"
    # A job folder emptied by removing its last stale attempt goes too: nothing is left per job.
    if attempt_number(path) is not None:
        with contextlib.suppress(OSError):
            os.rmdir(path.parent)
    return f"removed {path}"
