"""A molecule file's text, or the one-line reason it has none (missing, unreadable, binary, empty)."""

from __future__ import annotations

from pathlib import Path

from orca_hpc.errors import InputFileError


def read_text(path: Path) -> str:
    """The file as text; refuses folders, unreadable, binary, non-UTF-8 and empty files."""
    if path.is_dir():
        raise InputFileError(path, "is a folder, not a molecule file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror or exc}") from None
    if b"\x00" in data:
        raise InputFileError(path, "binary file, not a molecule file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputFileError(path, f"not UTF-8 text (byte 0x{data[exc.start]:02x})", line) from None
    if not text.strip():
        raise InputFileError(path, "empty file", 1)
    return text
