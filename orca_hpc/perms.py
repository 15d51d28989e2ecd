"""File modes of a campaign: never group- or world-writable, whatever the umask.

Another user who can write an attempt's ``spec.json`` or input can make the runner start their
program as the campaign's owner. So folders are made ``rwxr-x---`` and files ``rw-r-----``
explicitly (the umask may only take more away), every orca-hpc process runs with at least
``UMASK_FLOOR`` (for what submitit, filelock or SLURM create on our behalf), and the runner refuses
files it did not get from its own user (``unsafe_to_run``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:  # pathlib only where a folder's parents are made: `orca-hpc --version` needs none
    from pathlib import Path

DIR_MODE = 0o750
FILE_MODE = 0o640
UMASK_FLOOR = 0o027  # no group write, nothing for others


def tighten_umask() -> int:
    """Add ``UMASK_FLOOR`` to the process umask (a stricter umask stays); returns the new one."""
    umask = os.umask(0) | UMASK_FLOOR
    os.umask(umask)
    return umask


def make_dir(path: Path | str, *, parents: bool = False) -> None:
    """``mkdir -p``-like, with ``DIR_MODE`` on each folder it creates; an existing folder of ours loses
    group/other write (a umask of 000 or 002 made it so before this fix)."""
    if parents:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.exists(parent):
            make_dir(parent, parents=True)
    try:
        os.mkdir(path, DIR_MODE)  # the umask can only take bits away from DIR_MODE
    except FileExistsError:
        _drop_group_write(path)


def _drop_group_write(path: Path | str) -> None:
    """An existing folder of ours loses group and other write. Opened without following a link (its
    target's mode is not ours to change), and changed through that descriptor: ``os.chmod(...,
    follow_symlinks=False)`` raises NotImplementedError under glibc < 2.32 (RHEL 8), and a check
    then a chmod by name could be raced by a link swapped in between."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return  # a link or a file: left as it is (whoever needs a folder there finds out)
    try:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and st.st_mode & 0o022:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~0o022)
    finally:
        os.close(fd)


def unsafe_to_run(st: os.stat_result) -> str | None:
    """Why a file or folder with ``st`` must not drive a run as this user, or None if it may."""
    if st.st_uid != os.geteuid():
        return f"belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()})"
    return writable_by_others(st)


def writable_by_others(st: os.stat_result) -> str | None:
    """``is writable by the group (mode 0664)``-like, or None when only its owner may write it."""
    if st.st_mode & 0o022:
        who = "others" if st.st_mode & 0o002 else "the group"
        return f"is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


# -- secrets in the environment ----------------------------------------------------------------

# The job script and the local site name here the variables that hold a secret of the controller
# (the mail password's ``password_env``), comma-separated; the runner keeps them from ORCA too, in
# case a site's ``setup`` lines set them again after the job script unset them.
SECRET_ENV_VAR = "ORCA_HPC_SECRET_ENV"


def without_secrets(environ: Mapping[str, str], names: Iterable[str] = ()) -> dict[str, str]:
    """``environ`` without ``names``, without the variables ``SECRET_ENV_VAR`` names, and without it."""
    drop = {*names, *environ.get(SECRET_ENV_VAR, "").split(","), SECRET_ENV_VAR}
    return {key: value for key, value in environ.items() if key not in drop}
