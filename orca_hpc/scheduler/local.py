"""The ``local`` site: no SLURM; each attempt runs on this machine under submitit's local job controller.

Job ids are ``local-<pid>``, the pid of the controller process (it outlives orca-hpc, enforces the
walltime and forwards SIGTERM to the runner). Concurrency is capped by the site's
``array_parallelism``: the controller leaves the rest CREATED and a later reconcile starts them.
Each start is noted under its submission token (``tokens/<token>``) the moment its process exists, so
a crash before the ledger recorded the id is adopted by ``find_by_tokens``, as on SLURM.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from orca_hpc.config.site import SiteConfig
from orca_hpc.errors import OrcaHpcError
from orca_hpc.perms import FILE_MODE, SECRET_ENV_VAR, make_dir, without_secrets
from orca_hpc.scheduler.base import ArrayRequest, JobRecord, Scheduler, job_name

PREFIX = "local-"
_CONTROLLER = "submitit.local._local"


def is_local(job_id: str | None) -> bool:
    return bool(job_id) and str(job_id).startswith(PREFIX)


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
    return state not in ("Z", "X") and _CONTROLLER.encode() in cmdline


def _append_no_link(path: Path) -> int:
    """``path`` opened for appending (created if missing), never through a symbolic link planted there."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, FILE_MODE)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise OrcaHpcError(f"{path} is a symbolic link; refusing to write through it") from None
        raise


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM held back until the block ends, then raised as they came.

    A Ctrl-C during a submit lands mostly inside a start (Popen is most of the loop's time), where
    the controller process may exist already: raised there, its pid would never be noted under the
    token, and reconcile, finding nothing, would start the same attempt again. (Only the main thread
    can set handlers; elsewhere signals do not reach this code anyway.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    wanted = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, _frame: caught.append(signum)) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
        for signum in caught:
            signal.raise_signal(signum)


class LocalScheduler(Scheduler):
    kind = "local"

    def __init__(self, site: SiteConfig, folder: Path, python: str, unset_env: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.site = site
        self.unset_env = unset_env  # the controller's secrets: the runner and ORCA never see them
        self.folder = folder  # submitit's folder: the controllers' own logs
        self.python = python

    def free_slots(self, active: int) -> int | None:
        cap = self.site.array_parallelism or os.cpu_count() or 1
        return max(0, cap - active)

    def describe(self, ids: Sequence[str]) -> str:
        return "on this machine"

    def task_id(self, record: JobRecord) -> str:
        return record.job_id  # one process per attempt: the id is the attempt's own

    def _command(self, attempt_dir: Path | str) -> list[str]:
        return [self.python, "-m", "orca_hpc.runner", "--attempt-dir", str(attempt_dir)]

    def render(self, request: ArrayRequest) -> str:
        return "\n".join(shlex.join(self._command(d)) for d in request.attempt_dirs) + "\n"

    def _start(self, command: list[str], time_min: int) -> int:
        """submitit's local controller (as ``submitit.local.local.start_controller`` starts it), but in its
        own session with no terminal: it must not hold the caller's stdout open (``submit | cat``) nor
        write to it later."""
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {
            **without_secrets(os.environ, self.unset_env),
            **({SECRET_ENV_VAR: ",".join(self.unset_env)} if self.unset_env else {}),
            "SUBMITIT_LOCAL_NTASKS": "1",
            "SUBMITIT_LOCAL_COMMAND": shlex.join(command),
            "SUBMITIT_LOCAL_TIMEOUT_S": str(int(60 * time_min)),
            "SUBMITIT_LOCAL_SIGNAL_DELAY_S": "30",
            "SUBMITIT_LOCAL_NODEID": "0",
            "SUBMITIT_LOCAL_JOB_NUM_NODES": "1",
            "SUBMITIT_STDERR_TO_STDOUT": "",
            "SUBMITIT_EXECUTOR": "local",
            "SUBMITIT_LOCAL_WITH_SHELL": "",
        }
        log_fd = _append_no_link(self.folder / "controllers.log")
        with open(log_fd, "ab") as log, self._controller_folder() as (folder, fds):
            proc = subprocess.Popen(
                [sys.executable, "-m", _CONTROLLER, folder],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                pass_fds=fds,
            )
        return proc.pid

    @contextlib.contextmanager
    def _controller_folder(self) -> Iterator[tuple[str, tuple[int, ...]]]:
        """The folder as submitit's controller is told it, and the descriptors it must inherit.

        submitit expands ``%j``, ``%t``, ``%A``, ... in the folder's path, so a campaign under
        ``run-50%j`` would have its controller write its logs into a folder that does not exist (and
        die). Such a folder is handed over as ``/proc/self/fd/N``, an open descriptor of the folder
        (Linux: the local site runs on this machine), a path without ``%`` that names the same folder.
        """
        if "%" not in str(self.folder):
            yield str(self.folder), ()
            return
        fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            yield f"/proc/self/fd/{fd}", (fd,)
        finally:
            os.close(fd)

    def submit(self, request: ArrayRequest) -> list[str]:
        tokens = self.folder / "tokens"
        make_dir(tokens, parents=True)
        if os.path.islink(tokens):  # the notes would go wherever it points
            raise OrcaHpcError(f"{tokens} is a symbolic link; refusing to write through it")
        ids = []
        with open(_append_no_link(tokens / request.token), "a", encoding="ascii") as note:
            for i, attempt_dir in enumerate(request.attempt_dirs):
                with _signals_deferred():  # a process that exists is noted before Ctrl-C may act
                    pid = self._start(self._command(attempt_dir), request.time_min)
                    note.write(f"{i} {pid}\n")
                    note.flush()
                ids.append(f"{PREFIX}{pid}")
        self.calls["start"] += len(ids)
        return ids

    def query(self, job_ids: Sequence[str]) -> dict[str, JobRecord]:
        """RUNNING while the controller lives, then COMPLETED (the result file says how it ended)."""
        node = os.uname().nodename
        out = {}
        for job_id in job_ids:
            if not is_local(job_id):
                continue
            state = "RUNNING" if _alive(int(job_id[len(PREFIX) :])) else "COMPLETED"
            out[job_id] = JobRecord(
                job_id, None, None, "", state, None, None, None, None, node, None, "local"
            )
        return out

    def find_by_tokens(self, tokens: Sequence[str]) -> dict[str, list[JobRecord]]:
        found: dict[str, list[JobRecord]] = {t: [] for t in tokens}
        for token in tokens:
            try:
                lines = (self.folder / "tokens" / token).read_text(encoding="ascii").splitlines()
            except (OSError, ValueError):
                continue
            for line in lines:
                index, _, pid = line.partition(" ")
                if not (index.isdigit() and pid.isdigit()):
                    continue  # a torn last line: its start was never noted
                job_id = f"{PREFIX}{pid}"
                rec = self.query([job_id])[job_id]
                rec.array_task_id, rec.name = int(index), job_name(token)
                found[token].append(rec)
        return found

    def cancel(self, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            if is_local(job_id):
                pid = int(job_id[len(PREFIX) :])
                if _alive(pid):
                    os.kill(pid, signal.SIGTERM)  # the controller forwards it to the runner, which saves
