"""The `local` site: no SLURM, each attempt runs under submitit's local executor on this machine.

Job ids are ``local-<pid>`` (the pid of submitit's controller process, which outlives orca-hpc).
Concurrency is capped by the site's array_parallelism: the Dispatcher leaves the rest CREATED
and the next reconcile starts them as slots free up.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

import submitit

from orca_hpc.scheduler.slurm import SlurmRecord

PREFIX = "local-"


def is_local(job_id: str | None) -> bool:
    return bool(job_id) and job_id.startswith(PREFIX)  # type: ignore[union-attr]


def submit_local(folder: Path, command: Sequence[str], timeout_min: int) -> str:
    executor = submitit.LocalExecutor(folder=folder)
    executor.update_parameters(timeout_min=timeout_min)
    job = executor._submit_command(shlex.join(command))
    return f"{PREFIX}{job.job_id}"


def _alive(pid: int) -> bool:
    try:
        # Our own child that ended is a zombie until reaped: reap it, then it is gone.
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except (OSError, IndexError):
        return False
    # A reused pid runs something else: only submitit's controller counts.
    return state not in ("Z", "X") and b"submitit.local._local" in cmdline


def query_local(job_ids: Sequence[str]) -> dict[str, SlurmRecord]:
    """RUNNING while the controller lives, then COMPLETED (the result file says how it ended)."""
    out = {}
    for job_id in job_ids:
        pid = int(job_id[len(PREFIX) :])
        state = "RUNNING" if _alive(pid) else "COMPLETED"
        out[job_id] = SlurmRecord(
            job_id=job_id,
            array_job_id=None,
            array_task_id=None,
            name="",
            state=state,
            exit_code=None,
            signal=None,
            start=None,
            end=None,
            node=os.uname().nodename,
            reason=None,
            source="local",
            submit=None,
        )
    return out


def cancel_local(job_ids: Sequence[str]) -> None:
    import signal

    for job_id in job_ids:
        pid = int(job_id[len(PREFIX) :])
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)  # the controller forwards it to the runner, which saves its files
