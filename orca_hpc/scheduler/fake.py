"""An in-memory scheduler for fast tests of the controller's decisions (never the only test: the
same behaviour is tested on the real local SLURM cluster).

A test submits through it like through SLURM, then moves jobs along (``start``, ``finish``), loses
them (``forget``), makes the scheduler unreachable (``down``) or makes sbatch refuse (``refuse``), and
reads what was asked of it (``requests``, ``cancelled``, ``calls``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

from orca_hpc.errors import OrcaHpcError, SchedulerUnavailable, SubmissionUnconfirmed
from orca_hpc.scheduler.base import ArrayRequest, JobRecord, Scheduler, job_name


class SubmitterKilled(BaseException):
    """Raised by ``submit`` after the scheduler accepted the array: as if the submitter got SIGKILL."""


class FakeScheduler(Scheduler):
    kind = "fake"

    def __init__(self, *, slots: int | None = None, max_array: int | None = None) -> None:
        super().__init__()
        self.jobs: dict[str, JobRecord] = {}
        self.requests: list[ArrayRequest] = []
        self.cancelled: list[str] = []
        self.down = False  # every call raises SchedulerUnavailable
        self.refuse: str | None = None  # submit raises OrcaHpcError with this message
        self.kill_submitter = False  # submit accepts the array, then raises SubmitterKilled
        # submit accepts the array, then raises SchedulerUnavailable: sbatch's "Socket timed out on
        # send/recv operation" after slurmctld queued the job (the answer, not the job, was lost)
        self.lose_answer = False
        self._slots = slots
        self._max_array = max_array
        self._ids = itertools.count(1000)

    def _call(self, command: str) -> None:
        self.calls[command] += 1
        if self.down:
            raise SchedulerUnavailable(f"SLURM did not answer: fake {command} is down")

    def free_slots(self, active: int) -> int | None:
        return None if self._slots is None else max(0, self._slots - active)

    def max_array_size(self) -> int | None:
        return self._max_array

    def render(self, request: ArrayRequest) -> str:
        return f"# fake array {job_name(request.token)} of {len(request.attempt_dirs)}\n"

    def submit(self, request: ArrayRequest) -> list[str]:
        self._call("sbatch")
        if self.refuse is not None:
            raise OrcaHpcError(f"sbatch refused the job: {self.refuse}")
        self.requests.append(request)
        array = str(next(self._ids))
        ids = []
        for i in range(len(request.attempt_dirs)):
            jid = f"{array}_{i}"
            self.jobs[jid] = JobRecord(
                jid, array, i, job_name(request.token), "PENDING", None, None, None, None, None, None, "fake"
            )
            ids.append(jid)
        if self.kill_submitter:
            raise SubmitterKilled(array)
        if self.lose_answer:
            raise SubmissionUnconfirmed("SLURM did not answer: Socket timed out on send/recv operation")
        return ids

    # ---------------------------------------------------------------- what a test does to the jobs

    def start(self, job_id: str, node: str = "node1") -> None:
        self.jobs[job_id] = replace(
            self.jobs[job_id], state="RUNNING", start="2026-01-01T00:00:00", node=node
        )

    def finish(self, job_id: str, state: str = "COMPLETED", exit_code: int = 0, signal: int = 0) -> None:
        rec = self.jobs[job_id]
        self.jobs[job_id] = replace(
            rec,
            state=state,
            exit_code=exit_code,
            signal=signal,
            start=rec.start or "2026-01-01T00:00:00",
            end="2026-01-01T00:01:00",
        )

    def forget(self, job_id: str) -> None:
        """The scheduler no longer knows the job (purged, or slurmctld lost its state)."""
        del self.jobs[job_id]

    def reuse(self, job_id: str, name: str) -> None:
        """The job's id now belongs to someone else's job (seen after slurmctld lost its state)."""
        self.jobs[job_id] = replace(self.jobs[job_id], name=name, state="RUNNING")

    # ---------------------------------------------------------------- the interface

    def query(self, job_ids: Sequence[str]) -> dict[str, JobRecord]:
        if not job_ids:
            return {}
        self._call("squeue")
        return {j: self.jobs[j] for j in job_ids if j in self.jobs}

    def find_by_tokens(self, tokens: Sequence[str]) -> dict[str, list[JobRecord]]:
        if not tokens:
            return {}
        self._call("sacct")
        return {t: [r for r in self.jobs.values() if r.name == job_name(t)] for t in tokens}

    def cancel(self, job_ids: Sequence[str]) -> None:
        self._call("scancel")
        for job_id in job_ids:
            self.cancelled.append(job_id)
            if job_id in self.jobs and not self.jobs[job_id].finished:
                self.finish(job_id, "CANCELLED", 0, 15)
