"""What a reconcile looks at, and whether it has anything to do: light enough for every command.

``WATCHED`` jobs are asked about (one scheduler query for all of them), ``TO_SEND`` jobs are submitted,
and an environment pause may end (``controller/environment.py``). A ledger with none of these gives a
reconcile nothing to change: ``status`` and the other commands that reconcile first then show the
ledger as they read it, without the lock, the scheduler or the reconcile's own modules.
"""

from __future__ import annotations

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
