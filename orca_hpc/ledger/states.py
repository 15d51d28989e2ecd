"""Job states and the one table of allowed state changes."""

from __future__ import annotations

from enum import Enum

from orca_hpc.errors import IllegalTransition


class JobState(str, Enum):
    CREATED = "CREATED"  # recorded, never handed to SLURM (or handed back after a failed sbatch)
    SUBMITTING = "SUBMITTING"  # intent recorded with a token; sbatch may or may not have run
    PENDING = "PENDING"  # SLURM has it, not started
    RUNNING = "RUNNING"
    FAILED = "FAILED"  # last attempt failed; a retry is due
    COMPLETED = "COMPLETED"
    PERMANENT_FAILED = "PERMANENT_FAILED"
    CANCELLED = "CANCELLED"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        return self in FINISHED


# A state from its stored word by a dict lookup, not JobState(...): loads make 100,000s of them.
BY_VALUE: dict[str, JobState] = {s.value: s for s in JobState}

FINISHED = frozenset({JobState.COMPLETED, JobState.PERMANENT_FAILED, JobState.CANCELLED})
# Jobs that reconcile must look at: SLURM may know something the ledger does not yet.
ACTIVE = frozenset(set(JobState) - FINISHED)

_S = JobState
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    _S.CREATED: frozenset({_S.SUBMITTING, _S.CANCELLED}),
    _S.SUBMITTING: frozenset({_S.PENDING, _S.RUNNING, _S.CREATED, _S.FAILED, _S.COMPLETED, _S.CANCELLED}),
    _S.PENDING: frozenset({_S.RUNNING, _S.COMPLETED, _S.FAILED, _S.CANCELLED, _S.PENDING}),
    _S.RUNNING: frozenset({_S.COMPLETED, _S.FAILED, _S.CANCELLED, _S.PENDING}),
    _S.FAILED: frozenset({_S.SUBMITTING, _S.PERMANENT_FAILED, _S.CANCELLED}),
    _S.COMPLETED: frozenset(),
    _S.PERMANENT_FAILED: frozenset({_S.CREATED}),  # a person's `orca-hpc retry`
    _S.CANCELLED: frozenset({_S.CREATED}),
}


def check_transition(old: JobState, new: JobState) -> None:
    if old == new and old in (_S.PENDING, _S.RUNNING):
        return
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"illegal job state change {old} -> {new}")
