"""The interface between the controller and a batch system, and the records that cross it.

The controller never asks which scheduler it has: it hands over arrays of attempt folders
(``ArrayRequest``), asks what many jobs are doing at once (``query``), looks up submissions whose
outcome it never recorded by their token (``find_by_tokens``) and cancels. Every implementation
raises ``SchedulerUnavailable`` when it cannot be asked (try again later, change nothing) and
``OrcaHpcError`` when it refuses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orca_hpc.scheduler.nodes import Partition

# States after which a job never runs again (unless a person requeues it).
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
    }
)
# States in which the job's program has started (or is finishing). SUSPENDED and STOPPED too: the job
# has run and holds its node's memory (and its scratch); with gang scheduling or preemption by
# suspension a job is SUSPENDED every other time slice, which must not flip it back to PENDING.
RUNNING_STATES = frozenset(
    {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING", "SUSPENDED", "STOPPED"}
)
# The reason of a CANCELLED record the scheduler made up for an array task it no longer knows while
# it lists the task's siblings: SLURM keeps no record of a task scancelled while pending.
REMOVED_REASON = "cancelled before it started (removed from its array)"


@dataclass(frozen=True, slots=True)
class Usage:
    """What a finished job used and was given, as the batch system's accounting says (None: not
    known). Whole seconds and MB; ``max_rss_mb`` is the largest of its steps (the runner is never
    wrapped in srun, so the batch step holds the whole run)."""

    elapsed_s: int | None
    limit_s: int | None  # the time limit; None when unlimited
    cpu_s: int | None  # TotalCPU: user + system time of all its processes
    max_rss_mb: int | None
    req_mem_mb: int | None
    cpus: int | None


@dataclass(slots=True)
class JobRecord:
    """What the scheduler says about one job or array task (SLURM's words for states)."""

    job_id: str  # "123_4" for an array task, "123" otherwise, "local-<pid>" on the local site
    array_job_id: str | None
    array_task_id: int | None
    name: str  # the job name: "ohpc-<token>" for ours
    state: str  # first word only: "CANCELLED by 0" -> "CANCELLED"
    exit_code: int | None  # None until the job is in a terminal state
    signal: int | None
    start: str | None  # ISO-8601 local time as SLURM prints it; None until the job has started
    end: str | None
    node: str | None
    reason: str | None  # squeue's pending/end reason; None for sacct rows
    source: str  # "sacct", "squeue", "local" or "fake"
    submit: str | None = None  # with the name, tells a reused job id from the job we submitted
    usage: Usage | None = None  # finished jobs only, from sacct
    # Finished by slurmctld's word, but sacct has not recorded the end yet: its usage follows in seconds
    usage_pending: bool = False

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


@dataclass(frozen=True)
class ArrayRequest:
    """Attempts that share resources, to be started as one array; task i runs ``attempt_dirs[i]``."""

    token: str  # the submission's identity: the job name carries it, so a lost answer can be found
    attempt_dirs: tuple[Path | str, ...]  # absolute; strings as submit has them (no Path per job)
    nprocs: int
    mem_mb: int
    time_min: int


TOKEN_PREFIX = "ohpc-"


def job_name(token: str) -> str:
    """The scheduler job name of a submission: how ``find_by_tokens`` recognises it later."""
    return f"{TOKEN_PREFIX}{token}"


def record_of(by_token: Mapping[str, Sequence[JobRecord]], token: str) -> JobRecord | None:
    """The record, among ``find_by_tokens``' answer, of the attempt a submission token
    (``<array token>/<index>``) names: its array's task of that index; None when there is none."""
    array, _, index = token.partition("/")
    for rec in by_token.get(array, ()):
        if str(rec.array_task_id if rec.array_task_id is not None else 0) == (index or "0"):
            return rec
    return None


class Scheduler(ABC):
    """A batch system as the controller sees it. ``calls`` counts the commands it ran."""

    kind: str = "?"
    # ``query`` mostly waits on other programs (SLURM's commands): reconcile does other work meanwhile.
    # A scheduler that answers in this process would only share the interpreter with that work.
    query_waits: bool = False

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    @property
    def call_count(self) -> int:
        return sum(self.calls.values())

    def free_slots(self, active: int) -> int | None:
        """How many more attempts may start now, given ``active`` queued or running; None: no limit."""
        return None

    def max_array_size(self) -> int | None:
        """The largest array one request may hold; None: no limit."""
        return None

    def describe(self, ids: Sequence[str]) -> str:
        """How a person is told where one submitted array went."""
        return f"as {self.kind.upper()} array {ids[0].rsplit('_', 1)[0]}" if ids else ""

    def task_id(self, record: JobRecord) -> str:
        """The job id that an attempt found through ``find_by_tokens`` records for itself."""
        task = record.array_task_id if record.array_task_id is not None else 0
        return f"{record.array_job_id or record.job_id}_{task}"

    def test_only(self, request: ArrayRequest) -> str | None:
        """Why the scheduler would refuse ``request`` (partition, account, time, memory), or None."""
        return None

    def partition(self) -> Partition | None:
        """What the nodes of the site's partition have (for `orca-hpc check`); None: not known here."""
        return None

    @abstractmethod
    def render(self, request: ArrayRequest) -> str:
        """The job script (or command) that ``submit`` would hand over, for ``--dry-run``."""

    @abstractmethod
    def submit(self, request: ArrayRequest) -> list[str]:
        """Start the array; one job id per attempt folder, in order."""

    @abstractmethod
    def query(self, job_ids: Sequence[str]) -> dict[str, JobRecord]:
        """What the scheduler knows about these jobs, keyed by job id; unknown ones are absent."""

    @abstractmethod
    def find_by_tokens(self, tokens: Sequence[str]) -> dict[str, list[JobRecord]]:
        """The jobs each submission token started (every token is a key; [] if none)."""

    @abstractmethod
    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel these jobs; ones that already ended are not an error."""
