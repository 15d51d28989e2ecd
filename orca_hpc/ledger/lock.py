"""The campaign's ledger lock: filelock plus a note saying who holds it.

``kind="flock"`` uses ``filelock.FileLock`` (kernel ``flock``: released by the kernel when the
holder dies, so it can never go stale). ``kind="soft"`` uses ``filelock.SoftFileLock`` (the lock
is the existence of the file) for file systems without working ``flock``; a holder killed
with SIGKILL leaves the file behind, so soft locks are checked for staleness.

The flock lock file is ``ledger.lock``; the soft one is ``ledger.softlock`` (a flock file stays
on disk after release, so sharing one name would make every soft locker wait forever). All
processes on one campaign must use the same kind: the two kinds do not exclude each other.

Whoever holds the lock writes ``<lock file>.info`` next to it: JSON
``{"pid", "host", "since", "t", "pst"}`` (``pst`` = the process start time from ``/proc``, to
tell a reused pid from the original holder). A waiter that times out reads it to say who is
in the way; a soft lock is broken (with a warning) when its holder ran on this host and that
process is gone, or, for a holder on another host (which cannot be probed), when it is older than
``stale_after`` seconds. Breaking a soft lock has a small race if two waiters break the same stale
lock at the same moment; we re-read the note just before deleting to keep that window tiny.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from orca_hpc.atomic import atomic_write_bytes
from orca_hpc.errors import LedgerLocked, UserError

log = logging.getLogger("orca_hpc.ledger.store")

LOCK_KINDS = ("flock", "soft")

# filelock and socket (~20 ms of imports) load when a lock is taken: a status with nothing to
# reconcile reads the ledger without the lock (its writes are atomic renames) and needs neither.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import filelock


def _lock_hint(err: BaseException, kind: str) -> str:
    """The fix that matches the failure: a read-only or not-ours folder is not a flock problem."""
    code = getattr(err, "errno", None)
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            " (the campaign's .orca-hpc folder must be writable by you: is it read-only, or another user's?)"
        )
    if kind == "flock":
        return ' (if this file system has no flock, set the site\'s lock kind to "soft")'
    return ""


DEFAULT_STALE_AFTER = 3600.0


def process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), or None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # Field 22; the command name (field 2) may contain spaces and parentheses, so split after it.
    try:
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Is process ``pid`` (started at ``start_ticks``, if known) still running on this host?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to someone else
    if start_ticks is not None:
        now_ticks = process_start_ticks(pid)
        if now_ticks is not None and now_ticks != start_ticks:
            return False  # the pid was reused by a newer process
    return True


class LedgerLock:
    """Exclusive lock on a campaign's ledger; use ``with lock:`` or ``acquire()``/``release()``."""

    def __init__(
        self,
        state_dir: Path,
        kind: str = "flock",
        timeout: float = 10.0,
        stale_after: float | None = DEFAULT_STALE_AFTER,
    ) -> None:
        if kind not in LOCK_KINDS:
            raise UserError(f"lock kind must be one of {', '.join(LOCK_KINDS)}, not {kind!r}")
        # Separate files: a flock file lingers after release, and would block every soft locker.
        self.path = Path(state_dir) / ("ledger.lock" if kind == "flock" else "ledger.softlock")
        self.info_path = self.path.with_name(self.path.name + ".info")
        self.kind = kind
        self.timeout = timeout
        self.stale_after = stale_after
        self._lock: filelock.BaseFileLock | None = None
        self._held = False

    # -- holder note ----------------------------------------------------------------------

    def read_info(self) -> dict[str, Any] | None:
        """The holder note, or None if missing/unreadable."""
        try:
            fd = os.open(self.info_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        try:
            info = json.loads(data)
        except ValueError:
            return None
        return info if isinstance(info, dict) else None

    def _write_info(self) -> None:
        import socket

        pid = os.getpid()
        info = {
            "pid": pid,
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "t": time.time(),
            "pst": process_start_ticks(pid),
            "kind": self.kind,
        }
        try:
            atomic_write_bytes(self.info_path, json.dumps(info).encode(), 0o644, durable=False)
        except OSError as err:
            # The note is a courtesy for waiters; a full disk must not stop the transaction here.
            log.warning("could not write %s: %s", self.info_path, err.strerror or err)

    def describe_holder(self) -> str:
        info = self.read_info()
        if not info:
            return "ledger is locked by another orca-hpc (holder unknown)"
        return (
            f"ledger is locked by another orca-hpc, pid {info.get('pid')} on host {info.get('host')}, "
            f"since {info.get('since')}"
        )

    # -- staleness (soft locks only) ------------------------------------------------------

    def stale_reason(self) -> str | None:
        """Why the current soft lock is stale, or None if it is (or may be) live."""
        try:
            lock_st = os.lstat(self.path)
        except FileNotFoundError:
            return None
        now = time.time()
        info = self.read_info()
        # A note older than the lock file belongs to an earlier holder: judge by the file's age.
        if info and isinstance(info.get("t"), (int, float)) and lock_st.st_mtime <= info["t"] + 1.0:
            import socket

            pid, host = info.get("pid"), info.get("host")
            if host == socket.gethostname() and isinstance(pid, int):
                if not pid_alive(pid, info.get("pst")):
                    since = info.get("since")
                    return f"held by pid {pid} on host {host} since {since}, and that process is gone"
                return None  # a holder that can be asked and lives holds it however long (gc, a big submit)
            age = now - info["t"]
            if self.stale_after is not None and age > self.stale_after:
                return f"held by pid {pid} on host {host} since {info.get('since')} ({age:.0f} s ago)"
            return None
        age = now - lock_st.st_mtime
        if self.stale_after is not None and age > self.stale_after:
            return f"lock file is {age:.0f} s old and names no holder"
        return None

    def break_if_stale(self) -> bool:
        """Remove a stale soft lock (warning in the log). Returns True if one was removed."""
        if self.kind != "soft":
            return False
        reason = self.stale_reason()
        if reason is None:
            return False
        before = self.read_info()
        time.sleep(0.01)
        if self.read_info() != before or self.stale_reason() is None:
            return False  # someone else broke it and took the lock meanwhile
        log.warning("breaking stale ledger lock %s: %s", self.path, reason)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.info_path)
        return True

    # -- acquire / release ----------------------------------------------------------------

    def acquire(self) -> None:
        import filelock

        if self.path.is_symlink():
            raise UserError(f"{self.path} is a symbolic link; refusing to use it as the ledger lock")
        self.break_if_stale()
        # A fresh filelock object each time: filelock refuses objects inherited across fork().
        cls = filelock.FileLock if self.kind == "flock" else filelock.SoftFileLock
        self._lock = cls(str(self.path), timeout=self.timeout, mode=0o600)
        try:
            try:
                self._lock.acquire(timeout=self.timeout)
            except filelock.Timeout:
                if not self.break_if_stale():
                    raise
                self._lock.acquire(timeout=self.timeout)
        except filelock.Timeout:
            raise LedgerLocked(f"{self.describe_holder()} ({self.path}); try again later") from None
        except (OSError, NotImplementedError) as err:
            why = getattr(err, "strerror", None) or err
            raise UserError(f"cannot lock {self.path}: {why}{_lock_hint(err, self.kind)}") from err
        self._held = True
        self._write_info()

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        info = self.read_info()
        if info and info.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                os.unlink(self.info_path)
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @property
    def held(self) -> bool:
        return self._held

    def __enter__(self) -> LedgerLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
