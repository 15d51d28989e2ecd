"""Crash-safe file writes: a reader sees the old file or the new one, never a mix.

``atomic_write_bytes`` writes a temp file in the same folder (created with
``O_CREAT|O_EXCL|O_NOFOLLOW`` so a planted symlink or an old temp file is never followed or
reused), flushes and fsyncs it, renames it over the target and fsyncs the folder so the rename
itself survives a power cut. ``append_durable`` appends whole lines and fsyncs; if the append
fails half-way it cuts the file back to its old length so no torn line is left behind.

Used by the ledger and meant for anything else that must never leave a half-written file
(the runner's ``result.json``, array manifests).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

TEMP_MARK = ".tmp-"


def temp_name(path: Path) -> Path:
    """A fresh hidden temp name next to ``path`` (same folder, so the rename is atomic)."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{os.urandom(4).hex()}")


def fsync_dir(folder: Path) -> None:
    """Make renames/creations in ``folder`` durable. File systems that cannot fsync a folder are fine."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # EINVAL on some network file systems
            os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(folder: Path) -> None:
    """Make everything written so far on ``folder``'s file system durable, in one call.

    ``syncfs(2)`` on Linux (flushes that file system's dirty data and metadata), ``sync(2)`` where it
    is missing. For a batch of many small files that must all be durable before one commit: a
    folder's fsync would not do (it makes the names durable, not the files' data, which ext4
    allocates later), and an fsync per file and per new folder costs a journal commit each.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        os.sync()
        return
    try:
        if _syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _syncfs(fd: int) -> int:
    """syncfs(2) through libc; -1 when this system has none (the caller falls back to sync)."""
    import ctypes  # here, not at the top: the runner imports this module and never syncs a file system

    try:
        return int(ctypes.CDLL(None, use_errno=True).syncfs(fd))
    except (AttributeError, OSError):
        return -1


def write_new_file(path: Path | str, data: bytes, mode: int = 0o600, *, fsync: bool = True) -> None:
    """Create ``path`` (must not exist, never follows a symlink), write ``data`` and fsync it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o600, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically and (unless ``durable=False``) durably.

    ``durable=False`` skips both fsyncs: still atomic for readers, but after a power cut the
    file may hold the old content. Fine for caches and courtesy notes.

    On any error (disk full, permission) the temp file is removed, ``path`` is untouched and
    the ``OSError`` propagates for the caller to turn into a message.
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        write_new_file(tmp, data, mode, fsync=durable)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_copy(
    src: Path, dst: Path, mode: int = 0o600, *, durable: bool = False, follow_src: bool = False
) -> None:
    """Replace ``dst`` with a copy of ``src`` atomically, with ``mode``: a reader never sees half a file.

    Neither ``src`` (unless ``follow_src``) nor the temp is opened through a symbolic link; the
    rename replaces a link at ``dst`` rather than writing through it.
    """
    dst = Path(dst)
    tmp = temp_name(dst)
    try:
        copy_new_file(src, tmp, mode, fsync=durable, follow_src=follow_src)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_link(src: Path, dst: Path, mode: int = 0o600) -> None:
    """Make ``dst`` name the same file as ``src`` (a hard link); a copy where the file system cannot
    link (another device, no hard links) or where ``src`` is not plainly a regular file of ``mode``
    (a symbolic link is never followed, nor shared). Only for files nobody rewrites in place: a later
    change to one would show in both. An existing ``dst`` is replaced atomically."""
    dst = Path(dst)
    made = None
    try:
        try:
            os.link(src, dst, follow_symlinks=False)  # the common case: a new attempt folder
            made = dst
        except FileExistsError:
            made = temp_name(dst)
            os.link(src, made, follow_symlinks=False)
        st = os.lstat(made)  # what was linked: ``src`` as it was at that moment
        if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == mode:
            if made != dst:
                os.replace(made, dst)
                # Renaming a link over another link to the same file does nothing (POSIX): a folder
                # laid out again would keep the temp name beside it.
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(made)
            return
        os.unlink(made)
    except OSError as err:
        if made is not None:
            with contextlib.suppress(OSError):
                os.unlink(made)
        if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    atomic_copy(src, dst, mode)


def remove_stale_temps(path: Path) -> int:
    """Delete temp files left next to ``path`` by writers that were killed. Returns how many."""
    prefix = f".{path.name}{TEMP_MARK}"
    removed = 0
    try:
        entries = os.listdir(path.parent)
    except OSError:
        return 0
    for name in entries:
        if name.startswith(prefix):
            with contextlib.suppress(OSError):
                os.unlink(path.parent / name)
                removed += 1
    return removed


def append_durable(path: Path, data: bytes, mode: int = 0o600) -> int:
    """Append ``data`` (whole lines) to ``path`` and fsync; returns the offset where it starts.

    If the write fails part-way (disk full), the file is truncated back to its old length so a
    failed append leaves nothing behind, then the ``OSError`` propagates.
    """
    flags = (
        os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    )
    fd = os.open(path, flags, mode)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
                os.fsync(fd)
            raise
    finally:
        os.close(fd)
    return start


def copy_new_file(
    src: Path, dst: Path, mode: int = 0o600, *, fsync: bool = True, follow_src: bool = False
) -> None:
    """Copy the regular file ``src`` to the new file ``dst``; neither end may be a symbolic link
    (``follow_src``: ``src`` may, for a user's own files on the login node).

    ``dst`` must not exist (``O_EXCL``), so a link planted there is never written through.
    """
    nofollow = 0 if follow_src else getattr(os, "O_NOFOLLOW", 0)
    fd_in = os.open(src, os.O_RDONLY | nofollow | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd_in).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", str(src))
        flags = (
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        )
        fd_out = os.open(dst, flags, mode)
        try:
            while True:
                chunk = os.read(fd_in, 1 << 20)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd_out, view) :]
            if fsync:
                os.fsync(fd_out)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
