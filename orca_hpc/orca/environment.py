"""Failures of the machine, not of the chemistry: MPI start-up, a missing ORCA, a full disk.

ORCA's MPI launcher (Open MPI's ``mpirun``) prints its errors to **stderr**, while ORCA's output only
shows ``ORCA finished by error termination in <module>`` with a ``Calling Command: mpirun ...`` line
(../shared/docs/orca-facts.md, "The same failure, different words"). A full scratch disk shows
``No space left on device`` (``Errno 28``) wherever the write failed. None of these is fixed by more
memory, fewer processes or other SCF settings, so they get their own outcome,
``environment_error``, with one of the reasons below, and are read from stderr, the ORCA output and
the SLURM job log together.

The Open MPI phrases are the first lines of its real help texts (``help-orterun.txt``,
``help-orte-rmaps-base.txt``, ``help-plm-rsh.txt``), as users report them on the Open MPI list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["REASONS", "EnvironmentCause", "environment_cause"]

DISK_FULL = "disk_full"
ORCA_MISSING = "orca_missing"
MPI = "mpi"
REASONS = (MPI, ORCA_MISSING, DISK_FULL)

# (reason, pattern). The first reason with a match decides: a full disk breaks MPI start-up too
# (Open MPI cannot create its session folder), and then the disk is what must be fixed.
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (DISK_FULL, re.compile(r"No space left on device|\[Errno 28\]|Disk quota exceeded", re.IGNORECASE)),
    (
        ORCA_MISSING,
        re.compile(
            r"ORCA executable .* not found or not executable"  # the runner's own message
            r"|\borca: (?:command )?not found"
            r"|\borca\S*: Permission denied",
        ),
    ),
    (
        MPI,
        re.compile(
            r"mpirun was unable to launch the specified application"
            r"|There are not enough slots available in the system"
            r"|ORTE was unable to reliably start one or more daemons"
            r"|orted: (?:command )?not found"
            r"|error while loading shared libraries"
            r"|mpirun: (?:command )?not found"
            r"|It looks like orte_init failed"
            r"|It looks like opal_init failed"
            r"|ompi_mpi_init: ompi_rte_init failed"
            r"|PMIX ERROR: .*(?:VERSION|version)",
            re.IGNORECASE,
        ),
    ),
]


@dataclass(frozen=True)
class EnvironmentCause:
    reason: str  # one of REASONS
    line: str  # the line that says so, for people

    @property
    def message(self) -> str:
        return f"environment ({self.reason}): {self.line}"


def _line_at(text: str, start: int, end: int) -> str:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    return " ".join(line.split())[:200]


def environment_cause(*texts: str) -> EnvironmentCause | None:
    """The environment failure shown in any of ``texts`` (stderr, ORCA output, job log), or None."""
    joined = "\n".join(t for t in texts if t)
    if not joined:
        return None
    for reason, pattern in _PATTERNS:
        found = None
        for found in pattern.finditer(joined):  # noqa: B007 - the last one is the freshest
            pass
        if found is not None:
            return EnvironmentCause(reason, _line_at(joined, found.start(), found.end()))
    return None
