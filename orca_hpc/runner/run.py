"""Compute-node side of one attempt: scratch, run ORCA, copy back, ``result.json``.

``python -m orca_hpc.runner --manifest FILE --index I`` (line I of FILE is the attempt dir) or
``python -m orca_hpc.runner --attempt-dir DIR``. The SLURM batch shell forwards USR1 (walltime
warning) and TERM (scancel) to this process; either stops ORCA, saves the restart files and
writes a ``truncated`` result before SLURM's SIGKILL.

Exit codes (the controller reads result.json; these are for sacct and for people):
  0    ORCA ran and the attempt succeeded
  1    ORCA ran and the attempt failed (result.json says how)
  2    unusable spec.json or manifest, or an attempt another user could change (no result.json)
  74   the runner itself failed (copy-back or result.json write; scratch kept, stderr says where)
  124  stopped by the walltime warning (USR1), restart files saved
  143  cancelled (SIGTERM/SIGINT), restart files saved
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import FrameType, SimpleNamespace

from orca_hpc.atomic import atomic_copy, atomic_write_bytes, copy_new_file
from orca_hpc.attempt.folder import RESULT_NAME, SPEC_NAME, AttemptResult, AttemptSpec
from orca_hpc.attempt.scratch import (
    attempt_scratch_dir,
    make_private_dir,
    private_top,
    remove_attempt_scratch,
    remove_earlier_attempts,
    remove_tree,
    top_name,
    usable_root,
)
from orca_hpc.clock import now_iso
from orca_hpc.errors import InputFileError, OrcaHpcError, UserError
from orca_hpc.orca.environment import DISK_FULL, ORCA_MISSING
from orca_hpc.orca.outcomes import NOT_RETRYABLE, Outcome
from orca_hpc.orca.read import read_tail
from orca_hpc.perms import tighten_umask, unsafe_to_run, without_secrets

# typing.TYPE_CHECKING without importing typing: the runner imports this once per array task.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RUNNER_TAIL_BYTES = 65536  # the fallback check looks at the end of the output only


EXIT_SUCCESS = 0
EXIT_ORCA_FAILED = 1
EXIT_BAD_SPEC = 2
EXIT_RUNNER_ERROR = 74  # EX_IOERR
EXIT_WALLTIME = 124  # as timeout(1)
EXIT_CANCELLED = 143  # 128 + SIGTERM

TERMINATED_NORMALLY = "****ORCA TERMINATED NORMALLY****"
# Large scratch-only files: never worth the copy, even if a keep pattern would match.
NEVER_COPY = ("*.tmp*", "*.densities*", "*.bas*", "*.bibtex", "*.carthess", "*.trjscf.dat")
# What a stopped run needs to restart (orbitals, geometry, a Hessian an OptTS or Freq computed);
# kept small because SLURM's KillWait is short.
RESTART_PATTERNS = ("*.out", "*.err", "*.gbw", "*.xyz", "*.hess")
# Seconds ORCA gets to exit after SIGTERM before SIGKILL: after scancel SLURM allows only KillWait.
GRACE = {"walltime": 3.0, "cancelled": 1.0, "preempted": 1.0}
POLL = 0.2
# Results are readable by the group but writable by nobody else (another user must not swap them).
FILE_MODE = 0o640


def slurm_job_id() -> str | None:
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None


# ----------------------------------------------------------------------------- files


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """temp + fsync + rename (+ fsync of the folder): readers see the old file or the new one."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"), FILE_MODE)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def files_to_copy(scratch: Path, patterns: Iterable[str], base: str) -> list[Path]:
    """Top-level regular files matching ``patterns`` (and not scratch junk), ``<base>.out`` first."""
    patterns = tuple(patterns)
    found = [
        p
        for p in scratch.iterdir()
        if p.is_file()
        and not p.is_symlink()
        and _matches(p.name, patterns)
        and not _matches(p.name, NEVER_COPY)
    ]
    err = scratch / f"{base}.err"
    if err.is_file() and err.stat().st_size > 0 and err not in found:
        found.append(err)
    return sorted(found, key=lambda p: (p.name != f"{base}.out", p.name))


# ----------------------------------------------------------------------------- spec


def _open_trusted(path: Path, *, directory: bool = False) -> int:
    """An fd for ``path`` if it is ours and nobody else may write it (never through a link).

    Whoever can write the attempt folder, its spec or its input decides what the runner starts as
    this user: such files are refused (InputFileError, exit 2) rather than run.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if directory else 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputFileError(path, "missing") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise InputFileError(path, "is a symbolic link; refusing to run from it") from None
        raise InputFileError(path, f"unreadable: {err.strerror or err}") from None
    problem = unsafe_to_run(os.fstat(fd))
    if problem:
        os.close(fd)
        raise InputFileError(
            path, f"{problem}; refusing to run from it (another user could change what runs)"
        )
    return fd


def check_inputs_trusted(attempt_dir: Path, spec: AttemptSpec) -> None:
    """The input and extra inputs must be ours and not writable by others (a missing one is
    reported later as the attempt's input error)."""
    for name in [spec.input, *spec.extra_inputs]:
        path = Path(name) if os.path.isabs(name) else attempt_dir / name
        with contextlib.suppress(FileNotFoundError):
            os.lstat(path)
            os.close(_open_trusted(path))


def load_spec(attempt_dir: Path) -> AttemptSpec:
    """The attempt's spec (validated by its owner, ``AttemptSpec``), read only from files that no
    other user could have changed."""
    path = attempt_dir / SPEC_NAME
    os.close(_open_trusted(attempt_dir, directory=True))
    fd = _open_trusted(path)
    try:
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
    except OSError as err:
        raise InputFileError(path, f"unreadable: {err}") from None
    spec = AttemptSpec.from_json(data, path)
    check_inputs_trusted(attempt_dir, spec)
    return spec


def attempt_dir_from_manifest(manifest: Path, index: int) -> Path:
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise InputFileError(manifest, f"unreadable: {err.strerror or err}") from None
    if not 0 <= index < len(lines) or not lines[index].strip():
        problem = f"no attempt dir for index {index} ({len(lines)} lines)"
        raise InputFileError(manifest, problem, line=index + 1)
    path = Path(lines[index].strip())
    if not path.is_absolute():
        raise InputFileError(manifest, f"{path} is not an absolute path", line=index + 1)
    return path


def resolve_orca(orca: str) -> Path | None:
    """ORCA must be started by its absolute, symlink-free path or its parallel runs fail."""
    found = orca if os.path.isabs(orca) else shutil.which(orca)
    if not found or not os.access(found, os.X_OK):
        return None
    return Path(os.path.realpath(found))


# ----------------------------------------------------------------------------- classification


def fallback_classify(out_path: Path, why: str = "") -> dict[str, Any]:
    """Used when classify.py is missing or fails (``why``): only the termination line is trusted, and
    a normal end is not called a success: nothing checked its final energy, optimisation or
    frequencies, which a COMPLETED job promises. Not retried either: ORCA would print the same output."""
    normal = _terminated_normally(out_path)
    if normal:
        outcome = Outcome.UNKNOWN_ERROR
        message = f"ORCA terminated normally, but its output could not be checked ({why or 'no classifier'})"
    elif out_path.is_file() and "error termination" in read_tail(out_path, RUNNER_TAIL_BYTES):
        outcome, message = Outcome.UNKNOWN_ERROR, "ORCA finished by error termination"
    elif out_path.is_file() and out_path.stat().st_size > 0:
        outcome, message = Outcome.TRUNCATED, "output ends without a termination line"
    else:
        outcome, message = Outcome.UNKNOWN_ERROR, "no ORCA output"
    return {
        "outcome": outcome.value,
        "retryable": not normal,
        "energy": None,
        "message": message,
        "classifier": "runner-fallback",
        # As the classifier says it: the controller then never calls the run a machine's failure
        # (controller/ending.py), which would retry it unchanged and uncounted, printing the same.
        "normal_termination": normal,
    }


def _terminated_normally(out_path: Path) -> bool:
    return TERMINATED_NORMALLY in read_tail(out_path, RUNNER_TAIL_BYTES)


def classify(
    out_path: Path, input_path: Path | None = None, imag_threshold: float | None = None, stderr: str = ""
) -> tuple[dict[str, Any], str | None]:
    """The classifier's verdict as a dict, and a note when the fallback had to be used.

    ``input_path``: the input ORCA ran, which says what the job asked for (a minimum, a transition
    state, ...); ``imag_threshold``: the site's noise threshold for imaginary modes (cm**-1);
    ``stderr``: ORCA's (and mpirun's) stderr, where launcher failures and a full disk are told."""
    try:
        from orca_hpc.orca.classify import classify_output
        from orca_hpc.orca.inputs import input_intents

        intents = input_intents(input_path) if input_path is not None and input_path.is_file() else None
        options: dict[str, Any] = {"intents": intents, "stderr": stderr}
        if imag_threshold is not None:
            options["imag_threshold"] = float(imag_threshold)
        verdict = classify_output(out_path, **options)
        outcome = Outcome(verdict.outcome)
        details = dict(verdict.to_dict())
        details.update(
            outcome=outcome.value,
            retryable=bool(verdict.retryable),
            energy=verdict.energy,
            message=str(verdict.message or ""),
        )
        return details, None
    except Exception as err:  # a classifier bug must not cost the attempt its result
        why = f"classify.py unusable: {type(err).__name__}: {err}"
        return fallback_classify(out_path, why), f"{why}; used the fallback check"


# ----------------------------------------------------------------------------- signals


class _Stopper:
    """Turns USR1/TERM into a stop reason and passes SIGTERM on to ORCA's process group at once."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.deadline: float | None = None
        self.pgid: int | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        deadline = time.monotonic() + GRACE.get(reason, 1.0)
        self.deadline = deadline if self.deadline is None else min(self.deadline, deadline)
        self.signal_orca(signal.SIGTERM)

    def signal_orca(self, sig: int) -> None:
        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, sig)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.request("walltime" if signum == signal.SIGUSR1 else "cancelled")

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers only work in the main thread; callers in threads stop ORCA themselves
            return
        wanted = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, self._handler) for sig in wanted}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


# ----------------------------------------------------------------------------- the attempt


class _Attempt:
    def __init__(self, attempt_dir: Path, spec: AttemptSpec, copy_interval: float) -> None:
        self.dir = attempt_dir
        self.spec = spec
        self.copy_interval = copy_interval
        self.base = Path(spec.input).stem
        self.stopper = _Stopper()
        self.notes: list[str] = []
        self.copied_in: dict[str, tuple[int, int]] = {}
        self.root, note = usable_root(spec.scratch_root, spec.scratch_fallback)
        if note:
            self.notes.append(note)
        # Where scratch will be unless the private top is refused (prepare_scratch then says where).
        self.scratch = attempt_scratch_dir(self.root / top_name(), spec.campaign, spec.job_id, spec.attempt)
        self.result = AttemptResult(
            job_id=spec.job_id,
            attempt=spec.attempt,
            retryable=True,
            started=now_iso(),
            node=os.uname().nodename,  # gethostname(); the socket module costs ms per task
            slurm_job_id=slurm_job_id(),
            scratch=str(self.scratch),
            notes=self.notes,
        )

    # -- steps

    def prepare_scratch(self) -> None:
        top, note = private_top(self.root)
        if note:
            self.notes.append(note)
        self.scratch = attempt_scratch_dir(top, self.spec.campaign, self.spec.job_id, self.spec.attempt)
        self.result.scratch = str(self.scratch)
        make_private_dir(self.scratch.parent)
        for old in remove_earlier_attempts(self.scratch.parent, self.spec.attempt):
            self.notes.append(f"removed stale scratch {old}")
        remove_tree(self.scratch)  # a requeued run of this same attempt: start clean
        make_private_dir(self.scratch)

    def copy_in(self) -> str | None:
        """Copies the input and extra inputs; returns a problem or None."""
        for name in [self.spec.input, *self.spec.extra_inputs]:
            src = Path(name) if os.path.isabs(name) else self.dir / name
            if not src.is_file():
                return f"input file {src} is missing"
            dst = self.scratch / src.name
            try:
                copy_new_file(src, dst, 0o600, fsync=False)
            except OSError as err:
                return f"input file {src} cannot be copied: {err.strerror or err}"
            st = dst.stat()
            self.copied_in[dst.name] = (st.st_size, st.st_mtime_ns)
        return None

    def run_orca(self, orca: Path) -> int:
        out = self.scratch / f"{self.base}.out"
        err = self.scratch / f"{self.base}.err"
        with open(out, "wb") as fout, open(err, "wb") as ferr:
            proc = subprocess.Popen(
                [str(orca), self.spec.input],
                cwd=self.scratch,
                stdin=subprocess.DEVNULL,
                stdout=fout,
                stderr=ferr,
                start_new_session=True,
                env=without_secrets(os.environ),  # the controller's mail password is not ORCA's
            )
        self.stopper.pgid = proc.pid
        if self.stopper.reason:  # the signal came while ORCA was starting
            self.stopper.request(self.stopper.reason)
        mirrored: tuple[int, int] | None = None
        next_copy = time.monotonic() + self.copy_interval
        while True:
            try:
                returncode = proc.wait(timeout=POLL)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if self.stopper.deadline is not None and now >= self.stopper.deadline:
                self.stopper.signal_orca(signal.SIGKILL)
                returncode = proc.wait()
                break
            if now >= next_copy and self.stopper.reason is None:
                mirrored = self._mirror_out(out, mirrored)
                # A huge .out on a slow shared file system must not turn into constant copying.
                next_copy = now + max(self.copy_interval, 10 * (time.monotonic() - now))
        # ORCA's MPI children must not keep writing into scratch while it is copied and removed.
        self.stopper.signal_orca(signal.SIGKILL)
        self.stopper.pgid = None
        if returncode < 0 and self.stopper.reason is None:
            # scancel signals ORCA and the runner together; let our own TERM arrive before deciding.
            time.sleep(0.2)
        return returncode

    def _mirror_out(self, out: Path, last: tuple[int, int] | None) -> tuple[int, int] | None:
        try:
            st = out.stat()
            key = (st.st_size, st.st_mtime_ns)
            if key != last:
                # Only for people following the run: the final copy-back is the durable one.
                atomic_copy(out, self.dir / out.name, FILE_MODE)
            return key
        except OSError as err:
            note = f"could not mirror {out.name} to {self.dir}: {err}"
            if note not in self.notes:
                self.notes.append(note)
            return last

    def copy_back(self, patterns: Iterable[str]) -> list[str]:
        """Copies what is worth keeping; returns the failures (empty when everything arrived)."""
        failures: list[str] = []
        for src in files_to_copy(self.scratch, patterns, self.base):
            try:
                st = src.stat()
                if self.copied_in.get(src.name) == (st.st_size, st.st_mtime_ns):
                    continue  # an input ORCA did not touch: the attempt dir already has it
                atomic_copy(src, self.dir / src.name, FILE_MODE, durable=True)
                self.result.files.append(src.name)
            except OSError as err:
                failures.append(f"{src.name}: {err.strerror or err}")
        return failures

    def finish_stopped(self, reason: str) -> None:
        r = self.result
        r.outcome, r.reason, r.retryable = Outcome.TRUNCATED.value, reason, True
        r.message = f"stopped by the runner ({reason}); restart files copied back"
        r.classification = {"outcome": Outcome.TRUNCATED.value, "reason": reason, "classifier": "runner"}

    def finish_classified(self) -> None:
        # mpirun and a full disk speak on stderr; ORCA's output then only names the module that died.
        stderr = read_tail(self.scratch / f"{self.base}.err", RUNNER_TAIL_BYTES)
        details, note = classify(
            self.scratch / f"{self.base}.out",
            self.scratch / self.spec.input,
            self.spec.imag_threshold_cm1,
            stderr,
        )
        if note:
            self.notes.append(note)
        outcome = Outcome(details["outcome"])
        retryable = bool(details.get("retryable", outcome is not Outcome.SUCCESS))
        if outcome in NOT_RETRYABLE or outcome is Outcome.SUCCESS:
            retryable = False
        r = self.result
        r.outcome, r.retryable, r.classification = outcome.value, retryable, details
        r.reason = details.get("reason") if outcome is Outcome.ENVIRONMENT_ERROR else None
        r.energy, r.message = details.get("energy"), details.get("message", "")

    def fail(self, outcome: Outcome, error: str, retryable: bool, reason: str | None = None) -> None:
        r = self.result
        r.outcome, r.reason, r.retryable, r.message, r.error = outcome.value, reason, retryable, error, error

    def fail_environment(self, reason: str, problem: str) -> None:
        """The machine failed, not the input: retryable as it is, once the cause is fixed."""
        message = f"environment ({reason}): {problem}"
        self.fail(Outcome.ENVIRONMENT_ERROR, message, retryable=True, reason=reason)
        self.result.classification = {
            "outcome": Outcome.ENVIRONMENT_ERROR.value,
            "reason": reason,
            "message": message,
            "classifier": "runner",
        }

    # -- the whole attempt

    def run(self) -> dict[str, Any]:
        """Run the attempt; returns the result as written to result.json."""
        # Handlers stay installed until result.json is written: a late TERM must not kill us half-way.
        with self.stopper.installed():
            copied_back = False
            try:
                copied_back = self._run()
            except Exception as err:  # keep scratch and say so rather than lose the attempt silently
                self.result.error = (
                    f"runner failed: {type(err).__name__}: {err}; files (if any) "
                    f"are kept in scratch {self.scratch} on {self.result.node}"
                )
            finally:
                self.stopper.signal_orca(signal.SIGKILL)
                self.result.ended = now_iso()
                written = self._write_result()
                if copied_back and written:
                    with contextlib.suppress(OSError):
                        remove_attempt_scratch(self.scratch)
                    self.result.scratch_removed = not os.path.lexists(self.scratch)
                    if self.result.scratch_removed:
                        # Only to say scratch is gone: the result.json written above stands if this
                        # fails, and "files are kept in scratch" would now be false.
                        with contextlib.suppress(OSError):
                            write_json_atomic(self.dir / RESULT_NAME, self.result.to_dict())
        return self.result.to_dict()

    def _run(self) -> bool:
        """Returns whether everything needed is safely in the attempt dir (so scratch may go)."""
        try:
            self.prepare_scratch()
            problem = self.copy_in()
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self.fail_environment(DISK_FULL, f"scratch {self.scratch}: [Errno {err.errno}] {err.strerror}")
            return True
        if problem:
            self.fail(Outcome.INPUT_ERROR, problem, retryable=False)
            return True
        orca = resolve_orca(self.spec.orca)
        if orca is None:
            problem = f"ORCA executable {self.spec.orca!r} not found or not executable"
            self.fail_environment(ORCA_MISSING, problem)
            return True
        if self.stopper.reason is None:
            self.result.exit_code = self.run_orca(orca)
        reason = self.stopper.reason
        out = self.scratch / f"{self.base}.out"
        if reason and not _terminated_normally(out):
            self.finish_stopped(reason)
            failures = self.copy_back(RESTART_PATTERNS)
        else:
            self.finish_classified()
            failures = self.copy_back([*self.spec.keep, *RESTART_PATTERNS[:2]])
        if failures:
            self.result.error = (
                f"copy-back to {self.dir} failed ({'; '.join(failures)}); "
                f"all files are kept in scratch {self.scratch} on {self.result.node}"
            )
            return False
        return True

    def _write_result(self) -> bool:
        try:
            write_json_atomic(self.dir / RESULT_NAME, self.result.to_dict())
            return True
        except OSError as err:
            problem = f"cannot write {self.dir / RESULT_NAME}: {err.strerror or err}"
            self.result.error = (
                f"{self.result.error}; {problem}"
                if self.result.error
                else (f"{problem}; all files are kept in scratch {self.scratch} on {self.result.node}")
            )
            return False


def run_attempt(attempt_dir: Path, *, copy_interval: float = 5.0) -> dict[str, Any]:
    """Run the attempt described by ``attempt_dir/spec.json``; returns the result (also in result.json).

    Raises InputFileError if spec.json is unusable. USR1/TERM/INT stop the attempt when called
    from the main thread.
    """
    # The folder itself must not be a link (a path above it may be: a campaign reached through one):
    # resolved first, a link's target would be run, written into and get its result.json.
    os.close(_open_trusted(Path(attempt_dir), directory=True))
    attempt_dir = Path(attempt_dir).resolve()
    return _Attempt(attempt_dir, load_spec(attempt_dir), copy_interval).run()


def exit_code_for(result: dict[str, Any]) -> int:
    if result.get("error") and not result.get("scratch_removed"):
        return EXIT_RUNNER_ERROR
    if result.get("reason") == "walltime":
        return EXIT_WALLTIME
    if result.get("reason") in ("cancelled", "preempted"):
        return EXIT_CANCELLED
    return EXIT_SUCCESS if result.get("outcome") == Outcome.SUCCESS.value else EXIT_ORCA_FAILED


def _parse_args(argv: list[str] | None) -> Any:
    import argparse  # only for --help and mistakes: it (and gettext) cost milliseconds per task

    parser = argparse.ArgumentParser(prog="python -m orca_hpc.runner", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--manifest", type=Path, help="array manifest: one attempt dir per line")
    where.add_argument("--attempt-dir", type=Path, help="run this attempt dir directly")
    parser.add_argument("--index", type=int, default=0, help="line of the manifest (SLURM_ARRAY_TASK_ID)")
    parser.add_argument("--copy-interval", type=float, default=5.0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


_QUICK_OPTIONS = frozenset({"--manifest", "--attempt-dir", "--index", "--copy-interval"})


def _quick_args(argv: list[str]) -> SimpleNamespace | None:
    """The forms the job script and people use (``--manifest F --index I``, ``--attempt-dir D``, each
    option once with its value as the next word), read without argparse; None for anything else, which
    ``_parse_args`` then reads (or explains) exactly as before."""
    if len(argv) % 2:
        return None
    given = dict(zip(argv[::2], argv[1::2], strict=True))
    if len(given) * 2 != len(argv) or not given.keys() <= {
        "--manifest",
        "--attempt-dir",
        "--index",
        "--copy-interval",
    }:
        return None
    if ("--manifest" in given) == ("--attempt-dir" in given):
        return None
    try:
        index = int(given.get("--index", "0"))
        copy_interval = float(given.get("--copy-interval", "5.0"))
    except ValueError:
        return None
    manifest, attempt_dir = given.get("--manifest"), given.get("--attempt-dir")
    return SimpleNamespace(
        manifest=Path(manifest) if manifest is not None else None,
        attempt_dir=Path(attempt_dir) if attempt_dir is not None else None,
        index=index,
        copy_interval=copy_interval,
    )


def main(argv: list[str] | None = None) -> int:
    # A job inherits sbatch's umask: what the runner and ORCA create is not group/world-writable.
    tighten_umask()
    args = _quick_args(sys.argv[1:] if argv is None else argv) or _parse_args(argv)
    try:
        attempt_dir = args.attempt_dir or attempt_dir_from_manifest(args.manifest, args.index)
        result = run_attempt(attempt_dir, copy_interval=args.copy_interval)
    except UserError as err:
        print(f"orca-hpc runner: error: {err}", file=sys.stderr)
        return EXIT_BAD_SPEC
    except OrcaHpcError as err:
        print(f"orca-hpc runner: error: {err}", file=sys.stderr)
        return err.exit_code
    for note in result["notes"]:
        print(f"orca-hpc runner: note: {note}", file=sys.stderr)
    if result["error"]:
        print(f"orca-hpc runner: error: {result['error']}", file=sys.stderr)
    print(
        f"orca-hpc runner: {result['job_id']} attempt {result['attempt']}: {result['outcome']}"
        + (f" ({result['reason']})" if result["reason"] else ""),
        file=sys.stderr,
    )
    return exit_code_for(result)


if __name__ == "__main__":
    sys.exit(main())
