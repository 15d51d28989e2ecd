"""Bounded reading of ORCA outputs and their property files for the classifier.

ORCA outputs can be many GB (long optimisations, big MD runs), so nothing here reads a
file whole unless it is small: the classifier sees the head (version, input echo, first SCF
iteration) and the tail (termination, errors, final energy), and can scan backwards in
fixed-size chunks for a marker that lies outside both.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from orca_hpc.errors import UserError

HEAD_BYTES = 256 * 1024
TAIL_BYTES = 256 * 1024
# Backward scans read this much at a time; the overlap keeps a marker split across two
# chunks findable. Memory stays at about one chunk whatever the file size.
SCAN_CHUNK_BYTES = 4 * 1024 * 1024
SCAN_OVERLAP_BYTES = 4096
# Property files are small in practice; larger ones are read from the tail only.
PROPERTY_MAX_BYTES = 8 * 1024 * 1024


@dataclass
class OutputText:
    """What the classifier may look at: decoded head and tail (the same text if the file is small)."""

    path: Path
    size: int
    head: str
    tail: str
    whole: bool  # head and tail are the whole file
    nul_fraction: float  # share of NUL bytes in what was read: high means binary, not text
    # Byte offset where the echoed input ends (0: not known). Backward scans for ORCA's own
    # markers stop there: the echo is the user's text, comments included.
    echo_end: int = 0


def read_tail(path: str | os.PathLike[str], nbytes: int) -> str:
    """The last ``nbytes`` of a file as text ("" if it cannot be read): never the whole file.
    Plain descriptor calls, no file object (reconcile reads a job log per finished job)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return ""
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        start = max(0, end - nbytes)
        chunks = []
        while True:  # to the end as it is now, as a file object's read() would
            chunk = os.pread(fd, max(nbytes, 65536), start)
            if not chunk:
                break
            chunks.append(chunk)
            start += len(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def _decode(data: bytes) -> str:
    # ORCA writes ASCII; anything else (a crash mid-write, a binary file) must not raise.
    return data.decode("utf-8", errors="replace")


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """The output path, or a one-line UserError if it is missing, a directory or unreadable."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{p}: is a directory, not an ORCA output file")
    if not p.exists():
        raise UserError(f"{p}: no such file")
    if not p.is_file():
        raise UserError(f"{p}: not a regular file")
    return p


def read_output(
    path: str | os.PathLike[str], head_bytes: int = HEAD_BYTES, tail_bytes: int = TAIL_BYTES
) -> OutputText:
    p = check_output_path(path)
    try:
        with p.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size <= head_bytes + tail_bytes:
                data = fh.read(head_bytes + tail_bytes)
                text = _decode(data)
                return OutputText(p, len(data), text, text, True, _nul_fraction(data))
            head = fh.read(head_bytes)
            fh.seek(size - tail_bytes)
            tail = fh.read(tail_bytes)
    except OSError as err:
        raise UserError(f"{p}: cannot read: {err.strerror or err}") from err
    tail_text = _decode(tail)
    # The tail starts mid-line; a partial first line could fake or hide a marker.
    cut = tail_text.find("\n")
    if cut >= 0:
        tail_text = tail_text[cut + 1 :]
    head_text = _decode(head)
    head_cut = head_text.rfind("\n")
    if head_cut >= 0:
        head_text = head_text[: head_cut + 1]
    return OutputText(p, size, head_text, tail_text, False, _nul_fraction(head + tail))


def _nul_fraction(data: bytes) -> float:
    return data.count(0) / len(data) if data else 0.0


def _chunks_backwards(path: Path, end: int, limit: int | None) -> Iterator[tuple[int, bytes]]:
    """(offset, chunk): overlapping chunks of ``path`` from byte ``end`` backwards, at most
    ``limit`` bytes back."""
    stop = 0 if limit is None else max(0, end - limit)
    try:
        with path.open("rb") as fh:
            pos = end
            while pos > stop:
                start = max(stop, pos - SCAN_CHUNK_BYTES)
                fh.seek(start)
                yield start, fh.read(min(pos + SCAN_OVERLAP_BYTES, end) - start)
                pos = start
    except OSError:
        return


def scan_backwards(
    path: Path, pattern: re.Pattern[str], end: int, limit: int | None = None
) -> tuple[str, ...] | None:
    """The last match of ``pattern`` before byte offset ``end``, read chunk by chunk from the end.

    Returns the matched text followed by its groups, or None. ``limit`` bounds how far back (in
    bytes) to look; None means to the start of the file. Runs on raw bytes: ORCA writes ASCII.
    """
    raw = re.compile(pattern.pattern.encode("ascii"), pattern.flags & ~re.UNICODE)
    for _start, chunk in _chunks_backwards(path, end, limit):
        last = None
        for last in raw.finditer(chunk):  # noqa: B007 - we want the last one
            pass
        if last is not None:
            return tuple(_decode(g or b"") for g in (last.group(0), *last.groups()))
    return None


def find_last_literal(
    path: Path, literals: tuple[str, ...], end: int, limit: int | None = None
) -> str | None:
    """Which of ``literals`` occurs last before byte ``end``; plain ``rfind`` runs at memory speed."""
    encoded = [(lit.encode("ascii"), lit) for lit in literals]
    for _start, chunk in _chunks_backwards(path, end, limit):
        best = max(((chunk.rfind(raw), lit) for raw, lit in encoded), default=(-1, None))
        if best[0] >= 0:
            return best[1]
    return None


def find_last_offset(path: Path, literal: str, end: int, limit: int | None = None) -> int | None:
    """Byte offset of the last ``literal`` before byte ``end``, scanning backwards chunk by chunk."""
    raw = literal.encode("ascii")
    for start, chunk in _chunks_backwards(path, end, limit):
        at = chunk.rfind(raw)
        if at >= 0:
            return start + at
    return None


def read_window(path: Path, offset: int, nbytes: int) -> str:
    """At most ``nbytes`` of text from byte ``offset`` ("" if it cannot be read)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return _decode(fh.read(nbytes))
    except OSError:
        return ""


@dataclass
class PropertyEnergy:
    energy: float
    converged: bool | None
    source: str  # file name the energy came from
    version: str | None = None


_TXT_FINAL = re.compile(r"&FinalEnergy\s*\[[^\]]*\]\s*([-+]?\d+\.?\d*(?:[eE][-+]?\d+)?)", re.IGNORECASE)
_TXT_CONVERGED = re.compile(r"&Converged\s*\[[^\]]*\]\s*(true|false)", re.IGNORECASE)
_TXT_VERSION = re.compile(r"&version\s*\[[^\]]*\]\s*\"([^\"]+)\"", re.IGNORECASE)
# ORCA 4 `_property.txt` has no final-energy record, only the SCF energy (no dispersion or
# correlation), so it is a fallback, never preferred over the output's final energy.
_TXT4_SCF = re.compile(r"SCF Energy:\s*([-+]?\d+\.\d+)")


def _read_small(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > PROPERTY_MAX_BYTES:
                fh.seek(size - PROPERTY_MAX_BYTES)
            return _decode(fh.read(PROPERTY_MAX_BYTES))
    except OSError:
        return None


def _property_json(path: Path) -> PropertyEnergy | None:
    if not path.is_file() or path.stat().st_size > PROPERTY_MAX_BYTES:
        return None
    text = _read_small(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
        geometries = data["Geometries"]
        spd = geometries[-1]["Single_Point_Data"]
        energy = float(spd["FinalEnergy"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if not math.isfinite(energy):
        return None
    converged = spd.get("Converged")
    status = data.get("Calculation_Status") if isinstance(data, dict) else None
    version = status.get("version") if isinstance(status, dict) else None
    return PropertyEnergy(
        energy,
        converged if isinstance(converged, bool) else None,
        path.name,
        version if isinstance(version, str) else None,
    )


def _property_txt(path: Path) -> PropertyEnergy | None:
    if not path.is_file():
        return None
    text = _read_small(path)
    if text is None:
        return None
    energies = _TXT_FINAL.findall(text)
    if not energies:
        return None
    try:
        energy = float(energies[-1])
    except ValueError:
        return None
    conv = _TXT_CONVERGED.findall(text)
    version = _TXT_VERSION.findall(text)
    return PropertyEnergy(
        energy, conv[-1].lower() == "true" if conv else None, path.name, version[-1] if version else None
    )


def _property_txt4(path: Path) -> PropertyEnergy | None:
    if not path.is_file():
        return None
    text = _read_small(path)
    found = _TXT4_SCF.findall(text or "")
    return PropertyEnergy(float(found[-1]), None, path.name) if found else None


def output_base(path: Path) -> Path:
    """ORCA's base name: the output name without its .out/.log suffix."""
    return path.with_suffix("") if path.suffix.lower() in (".out", ".log", ".txt") else path


def property_energy(output: Path) -> PropertyEnergy | None:
    """The final energy from ``<base>.property.json`` or ``<base>.property.txt`` (ORCA 5/6)."""
    base = output_base(output)
    return _property_json(Path(f"{base}.property.json")) or _property_txt(Path(f"{base}.property.txt"))


def property_energy_orca4(output: Path) -> PropertyEnergy | None:
    return _property_txt4(Path(f"{output_base(output)}_property.txt"))
