"""Where an attempt's scratch lives: ``<root>/orca-hpc-<uid>/<campaign>-<job_id>/attempt-<n>``.

Shared by the runner (creates and removes scratch) and gc (finds what a killed runner left).

Scratch roots such as ``/tmp`` or ``$TMPDIR`` on a shared node are writable by every user and the
folder names are predictable, so another user could create our folder first or plant a symbolic
link named like the next job's folder. Hence: each user gets a private top folder (mode 0700,
owned by us, a real directory, checked through an ``O_NOFOLLOW`` file descriptor); one that fails
the check is never used, the run takes a fresh ``mkdtemp`` folder (``orca-hpc-<uid>-XXXX``) beside
it instead. Below a verified private top nobody else can create anything. Creation and removal
still never follow a symbolic link (``mkdir`` + ``O_NOFOLLOW`` checks; removal unlinks a link
itself and hands real directories to ``shutil.rmtree`` only where it resists symlink races).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
from pathlib import Path

FALLBACK_ROOT = Path("/tmp")
TOP_PREFIX = "orca-hpc-"
_ATTEMPT_RE = re.compile(r"^attempt-(\d+)$")
# Job ids never contain "-", so "<campaign>-<job_id>" splits unambiguously at the last "-"
# even when the campaign name itself contains dashes.
_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_.]+$")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ScratchError(OSError):
    """Scratch could not be made safely; the message says which folder and why."""


def expand_root(raw: str) -> Path | None:
    """``$VARS`` expanded from the environment; None if a variable is unset or the result is not absolute."""
    expanded = os.path.expandvars(os.path.expanduser(raw.strip()))
    if not expanded or "$" in expanded or not os.path.isabs(expanded):
        return None
    return Path(expanded)


def usable_root(raw: str, fallback: str | None = None) -> tuple[Path, str | None]:
    """The scratch root to use, and a note when it had to fall back: to the site's ``[scratch]
    fallback`` when that one is usable here, else to /tmp."""
    root = expand_root(raw)
    problem = _root_problem(raw, root)
    if problem is None and root is not None:
        return root, None
    chosen = expand_root(fallback) if fallback else None
    if chosen is None or _root_problem(fallback or "", chosen) is not None:
        chosen = FALLBACK_ROOT
    return chosen, f"scratch_root {problem}; using {chosen}"


def _root_problem(raw: str, root: Path | None) -> str | None:
    """Why ``root`` (``raw`` expanded) cannot hold scratch, or None."""
    if root is None:
        return f"{raw!r} is unset or not absolute"
    if not root.is_dir():
        return f"{root} does not exist"
    if not os.access(root, os.W_OK | os.X_OK):
        return f"{root} is not writable"
    mode = root.stat().st_mode
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        # Without the sticky bit anyone may rename our private folder away and put a link in its place.
        return f"{root} is world-writable without the sticky bit"
    return None


def top_name(uid: int | None = None) -> str:
    """This user's top folder name under a scratch root."""
    return f"{TOP_PREFIX}{os.getuid() if uid is None else uid}"


def private_dir_problem(path: Path) -> str | None:
    """None if ``path`` is a real directory (not a link), owned by us, with no group/other access."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            return "is not a real directory (a symbolic link or a file)"
        return f"cannot be opened ({err.strerror or err})"
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if st.st_uid != os.getuid():
        return f"belongs to uid {st.st_uid}, not to this user (uid {os.getuid()})"
    if st.st_mode & 0o077:
        return f"has mode {stat.S_IMODE(st.st_mode):04o}, not private (0700)"
    return None


def make_private_dir(path: Path) -> None:
    """Create ``path`` with mode 0700 (or accept it if it already is our private real directory)."""
    try:
        os.mkdir(path, 0o700)  # mkdir never follows a link planted at path: it fails with EEXIST
    except FileExistsError:
        pass
    else:
        # The umask may have taken owner bits away; 0700 exactly, set on the folder we just made.
        fd = os.open(path, _DIR_FLAGS)
        try:
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
    problem = private_dir_problem(path)
    if problem:
        raise ScratchError(f"scratch folder {path} {problem}")


def private_top(root: Path) -> tuple[Path, str | None]:
    """This user's private top folder under ``root``; a fresh ``mkdtemp`` one (and a note) if unsafe."""
    top = root / top_name()
    try:
        make_private_dir(top)
        return top, None
    except OSError as err:
        problem = (
            str(err) if isinstance(err, ScratchError) else f"scratch folder {top}: {err.strerror or err}"
        )
    import tempfile  # here: the fallback is rare, and the runner imports this module once per task

    fresh = Path(tempfile.mkdtemp(prefix=f"{top.name}-", dir=root))  # 0700, unpredictable name
    return fresh, f"refused {problem}; using the fresh private folder {fresh}"


def is_fresh_top(path: Path) -> bool:
    """Whether ``path`` is one of this user's ``mkdtemp`` fallback tops (removed when emptied)."""
    return path.name.startswith(top_name() + "-")


def job_scratch_dir(top: Path, campaign: str, job_id: str) -> Path:
    return top / f"{campaign}-{job_id}"


def attempt_scratch_dir(top: Path, campaign: str, job_id: str, attempt: int) -> Path:
    return job_scratch_dir(top, campaign, job_id) / f"attempt-{attempt}"


def attempt_number(path: Path) -> int | None:
    """n for a directory named ``attempt-<n>``, else None."""
    match = _ATTEMPT_RE.match(path.name)
    return int(match.group(1)) if match else None


def job_id_of(job_dir_name: str, campaign: str) -> str | None:
    """The job id in ``<campaign>-<job_id>``, or None if the name belongs to another campaign."""
    prefix = f"{campaign}-"
    if not job_dir_name.startswith(prefix):
        return None
    job_id = job_dir_name[len(prefix) :]
    return job_id if _JOB_ID_RE.match(job_id) else None


def remove_tree(path: Path) -> None:
    """Remove ``path`` without following links: a link is unlinked itself, a real directory of ours
    goes to ``shutil.rmtree`` (which, with ``dir_fd`` support, never leaves it through a link).

    Raises ScratchError for a directory owned by someone else; a missing path is fine.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    if st.st_uid != os.getuid():
        raise ScratchError(f"refusing to remove {path}: it belongs to uid {st.st_uid}")
    if not shutil.rmtree.avoids_symlink_attacks:
        raise ScratchError(f"refusing to remove {path}: this platform's rmtree can be tricked by links")
    shutil.rmtree(path)


def remove_attempt_scratch(scratch: Path) -> None:
    """Remove an attempt's scratch, then its job folder and a fresh top if that left them empty."""
    remove_tree(scratch)
    try:
        os.rmdir(scratch.parent)  # only if empty: nothing of a job stays behind once it is clean
    except OSError:
        return
    if is_fresh_top(scratch.parent.parent):
        with contextlib.suppress(OSError):
            os.rmdir(scratch.parent.parent)


def remove_earlier_attempts(job_dir: Path, attempt: int) -> list[Path]:
    """Remove ``attempt-<k>`` siblings with k < attempt (a killed runner's leftovers); returns them."""
    removed: list[Path] = []
    try:
        entries = list(job_dir.iterdir())
    except OSError:
        return removed
    for entry in entries:
        number = attempt_number(entry)
        if number is not None and number < attempt:
            with contextlib.suppress(OSError):
                remove_tree(entry)
                removed.append(entry)
    return removed
