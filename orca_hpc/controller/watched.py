"""What a reconcile looks at, and whether it has anything to do: light enough for every command.

``WATCHED`` jobs are asked about (one scheduler query for all of them), ``TO_SEND`` jobs are submitted,
and an environment pause may end (``controller/environment.py``). A ledger with none of these gives a
reconcile nothing to change: ``status`` and the other commands that reconcile first then show the
ledger as they read it, without the lock, the scheduler or the reconcile's own modules.
"""

from __future__ import annotations

import os

from orca_hpc.controller.environment import paused
from orca_hpc.ledger.states import JobState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orca_hpc.ledger.store import LedgerView

WATCHED = (JobState.SUBMITTING, JobState.PENDING, JobState.RUNNING)
TO_SEND = (JobState.CREATED, JobState.FAILED)


def needs_reconcile(view: LedgerView) -> bool:
    """Whether a reconcile could change anything in ``view``: a job to ask about or to send, or a pause.

    ``view`` may be a lockless snapshot: every save is an atomic rename, and a change saved just after
    it is seen by the next command, as if this one had run a moment earlier."""
    wanted = (*WATCHED, *TO_SEND)
    return paused(view.meta) is not None or any(state in wanted for state in view.states().values())


#: How many result files `watch` looks for between reconciles: one stat each per second, a load a
#: shared file system does not notice; the running jobs that started first are the likeliest to end.
WATCHED_RESULTS = 200


def running_results(view: LedgerView, root: str, limit: int = WATCHED_RESULTS) -> tuple[list[str], int]:
    """The result files that the queued and running attempts of ``view`` will leave, and how many of
    them are there already while the job is still active (ended; SLURM or sacct not yet saying so).

    When one appears, an attempt has ended and a reconcile now records it (and makes a workflow's next
    step) instead of at the end of `watch`'s interval. Running attempts first, then queued ones: a
    short step may start and end within one interval."""
    from orca_hpc.attempt.folder import RESULT_NAME  # not for `status`, which imports this module too

    states = view.states()
    # Ids grow with submission: the oldest running, then the oldest queued, decoded no more than needed.
    ids = sorted(i for i, state in states.items() if state is JobState.RUNNING)
    ids += sorted(i for i, state in states.items() if state in WATCHED and state is not JobState.RUNNING)
    out = []
    ended = 0
    for job_id in ids[:limit]:
        job = view.get(job_id)
        if job.attempts:
            path = f"{root}/{job.latest.dir}/{RESULT_NAME}"
            if os.path.lexists(path):
                ended += 1
            else:
                out.append(path)
    return out, ended


def any_appeared(paths: list[str]) -> bool:
    """Whether one of ``paths`` exists now (a link counts: the reconcile judges it)."""
    return any(os.path.lexists(path) for path in paths)
