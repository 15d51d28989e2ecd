"""How an attempt ended: SLURM's verdict + the runner's result file + the job log, in one decision.

SLURM alone is not enough (a COMPLETED job can hold an unconverged SCF) and neither is the result
file (the runner cannot write one when the node dies or the memory limit kills it). ORCA's stderr
(``<base>.err`` in the attempt folder) and the job log are read too: MPI start-up failures and a full
disk are only visible there, and they are environment failures, not chemistry ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orca_hpc.attempt.folder import AttemptResult
from orca_hpc.orca.environment import DISK_FULL, environment_cause
from orca_hpc.orca.outcomes import Outcome

# Ended from outside, through no fault of the input: retried without counting against max_retries.
NOT_COUNTED_REASONS = frozenset({"node_fail", "preempted", "lost"})
MEMORY_KILL_MARKERS = ("exceeded memory limit", "oom-kill", "out of memory")


@dataclass
class AttemptEnd:
    outcome: Outcome
    reason: str | None = None  # walltime, cancelled, preempted, node_fail, memory_limit, lost, deadline
    retryable: bool = True
    message: str = ""
    energy: float | None = None
    classification: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.outcome == Outcome.SUCCESS

    @property
    def cancelled(self) -> bool:
        return self.reason == "cancelled"

    @property
    def environment(self) -> bool:
        return self.outcome == Outcome.ENVIRONMENT_ERROR

    @property
    def counts_against_limit(self) -> bool:
        # The machine's failures are not the input's: they never use up the job's max_retries.
        return self.reason not in NOT_COUNTED_REASONS and not self.environment


def _from_result(result: AttemptResult) -> AttemptEnd:
    try:
        outcome = Outcome(result.outcome)
    except ValueError:
        outcome = Outcome.UNKNOWN_ERROR
    classification = result.classification
    message = result.message or classification.get("message") or ""
    if result.error and result.error not in message:
        message = f"{message} (runner: {result.error})" if message else f"runner: {result.error}"
    retryable = outcome != Outcome.INPUT_ERROR if result.retryable is None else bool(result.retryable)
    return AttemptEnd(
        outcome=outcome,
        reason=result.reason,
        retryable=retryable,
        message=message,
        energy=result.energy,
        classification=classification,
    )


def _not_copied_back(end: AttemptEnd, error: str) -> AttemptEnd:
    """ORCA succeeded, but the runner could not copy its files back (they are in the node's scratch,
    exit 74): the campaign lacks the output, orbitals and geometry that COMPLETED promises (and that a
    workflow's next step reads), so the attempt is a failure of the machine, run again once it is fixed."""
    classification = {**end.classification, "orca_outcome": str(end.outcome)}
    cause = environment_cause(error)
    # Only a full disk: a file name in the error ("orca_x.gbw: Permission denied") is no missing ORCA.
    if cause is not None and cause.reason == DISK_FULL:  # environment_error: retried unchanged, not counted
        classification["reason"] = cause.reason
        message = f"{cause.message} (ORCA succeeded; runner: {error})"
        return AttemptEnd(Outcome.ENVIRONMENT_ERROR, cause.reason, True, message, None, classification)
    message = f"ORCA succeeded but its files are not in the attempt folder (runner: {error})"
    return AttemptEnd(Outcome.UNKNOWN_ERROR, None, True, message, None, classification)


# Ends SLURM explains by itself: stderr does not change why they ended.
_FROM_OUTSIDE = frozenset({"walltime", "cancelled", "preempted", "node_fail", "memory_limit"})


def _as_environment(end: AttemptEnd, stderr_tail: str, job_log_tail: str) -> AttemptEnd:
    """A failure whose stderr or job log shows a machine problem is an environment failure; what
    the ORCA output alone said is kept in the classification (``orca_outcome``)."""
    if end.success or end.environment or end.reason in _FROM_OUTSIDE:
        return end
    if end.classification.get("normal_termination") is True:
        # ORCA ran to its normal end, so MPI started and the disk took its files: what went wrong is
        # the chemistry (an optimisation's cycles, an imaginary mode), which an unchanged retry of an
        # "environment" failure, never counted, would repeat without end.
        return end
    cause = environment_cause(stderr_tail, job_log_tail)
    if cause is None:
        return end
    classification = {**end.classification, "orca_outcome": str(end.outcome), "reason": cause.reason}
    message = cause.message + (f" (ORCA output: {end.message})" if end.message else "")
    return AttemptEnd(Outcome.ENVIRONMENT_ERROR, cause.reason, True, message, None, classification)


def decide_end(
    slurm_state: str | None,
    exit_code: int | None,
    signal: int | None,
    result: AttemptResult | None,
    job_log_tail: str = "",
    stderr_tail: str = "",
    *,
    result_problem: str | None = None,
) -> AttemptEnd:
    """The attempt's final outcome. ``slurm_state`` is the first word of sacct's State (or None if
    SLURM no longer knows the job); ``stderr_tail`` is the end of ORCA's stderr file;
    ``result_problem`` says why a result file that is there could not be used (``result`` is None)."""
    end = _decide(slurm_state, exit_code, signal, result, job_log_tail)
    if result is None and result_problem:
        if end.reason in (None, "lost"):  # nothing but the damaged file to go by: say so
            state = slurm_state or "no record of the job"
            end = AttemptEnd(
                Outcome.UNKNOWN_ERROR,
                None,
                True,
                f"the result file is damaged ({result_problem}); SLURM: {state}",
            )
        else:
            end.message = f"{end.message}; the result file is damaged ({result_problem})"
    return _as_environment(end, stderr_tail, job_log_tail)


def _decide(
    slurm_state: str | None,
    exit_code: int | None,
    signal: int | None,
    result: AttemptResult | None,
    job_log_tail: str,
) -> AttemptEnd:
    log = job_log_tail.lower()
    if any(marker in log for marker in MEMORY_KILL_MARKERS) or slurm_state == "OUT_OF_MEMORY":
        # The memory limit kills the runner too, so whatever result exists predates the kill.
        return AttemptEnd(
            Outcome.OUT_OF_MEMORY, "memory_limit", True, "SLURM killed the job: memory limit exceeded"
        )
    if slurm_state in ("NODE_FAIL", "BOOT_FAIL"):
        return AttemptEnd(Outcome.TRUNCATED, "node_fail", True, f"SLURM: {slurm_state}")
    if slurm_state == "PREEMPTED":
        return AttemptEnd(Outcome.TRUNCATED, "preempted", True, "SLURM: PREEMPTED")
    if result is not None:
        end = _from_result(result)
        if end.success and result.error and not result.scratch_removed:
            return _not_copied_back(end, result.error)
        if end.reason == "cancelled" and slurm_state not in (None, "CANCELLED"):
            # The runner saw SIGTERM, but SLURM says why: a time limit is a walltime end.
            end.reason = "walltime" if slurm_state in ("TIMEOUT", "DEADLINE") else end.reason
        return end
    if slurm_state == "CANCELLED":
        return AttemptEnd(Outcome.TRUNCATED, "cancelled", False, "cancelled in SLURM (scancel)")
    if slurm_state in ("TIMEOUT", "DEADLINE"):
        return AttemptEnd(Outcome.TRUNCATED, "walltime", True, f"SLURM: {slurm_state}, no result file")
    if slurm_state is None:
        return AttemptEnd(
            Outcome.TRUNCATED, "lost", True, "SLURM has no record of the job and it left no result"
        )
    code = f"signal {signal}" if signal else f"exit code {exit_code}"
    return AttemptEnd(
        Outcome.UNKNOWN_ERROR, None, True, f"SLURM: {slurm_state} ({code}); the runner left no result file"
    )
