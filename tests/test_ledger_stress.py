"""Ledger under stress: concurrent writers lose no update; SIGKILL at any moment loses no commit."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from orca_hpc.ledger.states import JobState
from orca_hpc.ledger.store import Ledger


def _worker(state: Path, kind: str, worker: int, txns: int) -> None:
    led = Ledger(state, lock_kind=kind, lock_timeout=120)
    for i in range(txns):
        with led.transaction() as txn:
            txn.meta["count"] = txn.meta.get("count", 0) + 1
            txn.get("j000001").retry_count += 1  # a job-level read-modify-write as well
            if i % 20 == 0:
                txn.add_job(f"w{worker}-{i}", "x.inp", f"{worker:032x}{i:032x}", "local", 3)


# Soft locks poll (50 ms), so fewer of them keep the test quick.
@pytest.mark.parametrize(("kind", "workers", "txns"), [("flock", 8, 200), ("soft", 4, 25)])
def test_concurrent_writers_lose_no_update(tmp_path: Path, kind: str, workers: int, txns: int) -> None:
    state = tmp_path / ".orca-hpc"
    led = Ledger.create(state, {"campaign": "stress"}, lock_kind=kind)
    with led.transaction() as txn:
        txn.add_job("shared", "s.inp", "0" * 64, "local", 3)
    pids = []
    for w in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _worker(state, kind, w, txns)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    assert codes == [0] * workers
    view = Ledger(state, lock_kind=kind).snapshot()
    assert view.meta["count"] == workers * txns
    assert view.get("j000001").retry_count == workers * txns
    added = workers * len(range(0, txns, 20))
    assert sorted(view.jobs) == [f"j{n:06d}" for n in range(1, 2 + added)]


def _writer(state: Path, report_fd: int) -> None:
    """Commit transactions forever; after each commit report the count on the pipe."""
    led = Ledger(state, lock_timeout=30)
    while True:
        with led.transaction() as txn:
            count = txn.meta.get("count", 0) + 1
            txn.meta["count"] = count
            blob = "b" * (count % 700)  # varying sizes move the kill point around inside the writes
            txn.add_job(f"job{count}", f"in/{count}.inp", f"{count:064x}", "local", 3, blob=blob)
            txn.outbox.append({"n": count})
            del txn.outbox[:-3]
            active = sorted(txn.jobs)
            if len(active) > 5:  # finish the oldest: exercises the archive append
                txn.set_state(active[0], JobState.CANCELLED)
        os.write(report_fd, f"{count}\n".encode())


def _check_consistent(state: Path, committed: int) -> int:
    led = Ledger(state, lock_timeout=30)
    view = led.snapshot()
    count = view.meta.get("count", 0)
    assert committed <= count <= committed + 1, (committed, count)  # old or new state, nothing lost
    jobs = view.all_jobs()
    assert [j.name for j in jobs] == [f"job{n}" for n in range(1, count + 1)]
    assert view.meta["next_id"] == count + 1
    assert view.outbox == [{"n": n} for n in range(max(1, count - 2), count + 1)]
    assert len(view.jobs) == min(count, 5)
    assert all(j.state is JobState.CANCELLED for j in jobs if j.id not in view.jobs)
    with led.transaction() as txn:  # and it can be written again (cuts any torn archive line)
        txn.meta["checked"] = count
    return count


def _kill_trials(tmp_path: Path, trials: int) -> None:
    state = tmp_path / ".orca-hpc"
    Ledger.create(state, {"campaign": "kill"})
    rng = random.Random(trials)
    committed = 0
    for _ in range(trials):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                _writer(state, w)
            finally:
                os._exit(1)
        os.close(w)
        # Readiness, not a timer: kill only after the writer reported its first commit of this trial,
        # so every trial makes progress however slow the machine; then at a random point after it.
        first = b""
        while not first.endswith(b"\n"):
            piece = os.read(r, 1)
            if not piece:
                break
            first += piece
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with os.fdopen(r, "rb") as fh:
            reports = (first + fh.read()).decode().split("\n")
        done = [int(x) for x in reports[:-1]]  # the last piece may be torn
        committed = max([committed, *done])
        committed = _check_consistent(state, committed)
    assert committed >= trials  # the writer made real progress between kills
    assert not [p for p in state.iterdir() if ".tmp-" in p.name]  # killed writers' temps are cleaned up


def test_sigkill_quick(tmp_path: Path) -> None:
    _kill_trials(tmp_path, 20)


@pytest.mark.slow
def test_sigkill_200(tmp_path: Path) -> None:
    _kill_trials(tmp_path, 200)
