"""Ledger locking: timeouts name the holder, stale soft locks are broken, live ones are not."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from orca_hpc.errors import EXIT_TEMPFAIL, LedgerLocked, UserError
from orca_hpc.ledger.lock import pid_alive, process_start_ticks
from orca_hpc.ledger.store import Ledger


@pytest.fixture(params=["flock", "soft"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _ledger(tmp_path: Path, kind: str, **kw: float) -> Ledger:
    state = tmp_path / "camp" / ".orca-hpc"
    if not (state / "ledger.json").exists():
        Ledger.create(state, {"campaign": "lock"})
    return Ledger(state, lock_kind=kind, **kw)  # type: ignore[arg-type]


def _hold_in_child(led: Ledger, then_die: bool) -> int:
    """Fork a child that takes the ledger lock; returns its pid once it holds it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r)
            with led.transaction() as txn:
                txn.meta["holder"] = os.getpid()
                os.write(w, b"1")
                if then_die:
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(30)
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)
    return pid


def _reap(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_lock_timeout_names_holder(tmp_path: Path, kind: str) -> None:
    led = _ledger(tmp_path, kind, lock_timeout=0.3)
    pid = _hold_in_child(led, then_die=False)
    try:
        # The holder never lets go: reaching the assertions at all shows the wait gave up.
        with pytest.raises(LedgerLocked) as err, led.transaction():
            pass
        msg = str(err.value)
        assert f"pid {pid} on host {socket.gethostname()}" in msg and "since 20" in msg
        assert err.value.exit_code == EXIT_TEMPFAIL == 75
    finally:
        _reap(pid)
    with led.transaction() as txn:  # the holder is gone: free again
        assert txn.meta.get("holder") != pid  # its change was never saved


def test_soft_lock_of_dead_process_is_broken(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    led = _ledger(tmp_path, "soft", lock_timeout=1)
    pid = _hold_in_child(led, then_die=True)
    os.waitpid(pid, 0)
    assert led.lock.path.exists()  # a SIGKILLed soft-lock holder leaves its lock file behind
    assert "gone" in (led.lock.stale_reason() or "")
    caplog.set_level(logging.WARNING, "orca_hpc.ledger.store")
    with led.transaction() as txn:
        txn.meta["after"] = True
    assert "breaking stale ledger lock" in caplog.text and f"pid {pid}" in caplog.text
    assert led.snapshot().meta["after"] is True


def _fake_holder(led: Ledger, host: str, age: float, pid: int = 4242) -> None:
    led.lock.path.write_text("")
    t = time.time() - age
    os.utime(led.lock.path, (t, t))
    info = {"pid": pid, "host": host, "since": "2026-01-01T00:00:00Z", "t": t, "pst": None}
    led.lock.info_path.write_text(json.dumps(info))


def test_soft_lock_on_other_host_waits_then_breaks_by_age(tmp_path: Path) -> None:
    led = _ledger(tmp_path, "soft", lock_timeout=0.3, stale_after=3600)
    _fake_holder(led, "compute-node-7", age=10)
    with pytest.raises(LedgerLocked, match="pid 4242 on host compute-node-7"), led.transaction():
        pass
    _fake_holder(led, "compute-node-7", age=7200)
    with led.transaction() as txn:
        txn.meta["x"] = 1
    assert led.snapshot().meta["x"] == 1


def test_flock_never_broken_by_age(tmp_path: Path) -> None:
    led = _ledger(tmp_path, "flock", lock_timeout=0.3, stale_after=0.0)
    pid = _hold_in_child(led, then_die=False)
    try:
        with pytest.raises(LedgerLocked), led.transaction():
            pass
    finally:
        _reap(pid)


def test_pid_probe() -> None:
    me = os.getpid()
    assert pid_alive(me, process_start_ticks(me))
    assert not pid_alive(me, (process_start_ticks(me) or 0) + 1)  # same pid, other start: reused
    assert not pid_alive(0)


def test_a_read_only_campaign_is_not_called_a_flock_problem(tmp_path: Path) -> None:
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if os.geteuid() != 0 or os.system(f"mount -t tmpfs -o size=1m tmpfs '{mnt}' 2>/dev/null") != 0:
        pytest.fail("this test mounts a small tmpfs: it needs root (as CI has)")
    try:
        Ledger.create(mnt / ".orca-hpc", {"campaign": "ro"})
        assert os.system(f"mount -o remount,ro '{mnt}'") == 0
        with pytest.raises(UserError) as err, Ledger(mnt / ".orca-hpc").transaction():
            pass
        message = str(err.value)
        assert "read-only" in message and "soft" not in message and "\n" not in message
    finally:
        os.system(f"umount '{mnt}'")


def test_soft_lock_of_a_live_holder_on_this_host_is_never_broken_by_age(tmp_path: Path) -> None:
    """On this host the holder can be asked: while its process lives (a long gc or submit), the lock
    is its own, however old; breaking it by age let a second command write the ledger beside it."""
    led = _ledger(tmp_path, "soft", lock_timeout=0.3, stale_after=3600)
    pid = _hold_in_child(led, then_die=False)
    try:
        info = json.loads(led.lock.info_path.read_text())
        info["t"] -= 7200  # held for two hours now
        led.lock.info_path.write_text(json.dumps(info))
        os.utime(led.lock.path, (info["t"], info["t"]))
        assert led.lock.stale_reason() is None
        with pytest.raises(LedgerLocked), led.transaction():
            pass
    finally:
        _reap(pid)
