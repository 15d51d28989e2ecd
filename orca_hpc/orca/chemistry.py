"""The chemistry of a finished ORCA run: frequencies, thermochemistry, <S**2>, normal modes, geometry.

Read with the same bounds as the classifier: the frequency and thermochemistry blocks stand near the
end of the output, so the tail usually holds them; when a big molecule's NORMAL MODES block pushes
the frequency list out of the tail, its last header is found by a backward scan and a bounded
window is read from there. Formats follow real ORCA 4-6 outputs (see tests/fixtures/orca).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from orca_hpc.orca.read import find_last_offset, read_window

# The frequency list holds 3N lines of ~40 characters; 2 MB covers about 15,000 atoms.
FREQ_WINDOW_BYTES = 2 * 1024 * 1024
# NORMAL MODES is a 3N x 3N table (~11 characters a value): 64 MB covers about 1,200 atoms.
MODES_WINDOW_BYTES = 64 * 1024 * 1024
FREQ_SCAN_LIMIT_BYTES = 256 * 1024 * 1024

_FREQ_HEADER = "VIBRATIONAL FREQUENCIES"
_FREQ_LINE = re.compile(r"^\s*(\d+):\s+(-?\d+\.\d+)\s+cm\*\*-1", re.MULTILINE)
_TEMPERATURE = re.compile(r"^Temperature\s+\.\.\.\s+(-?\d+\.\d+)\s+K", re.MULTILINE)
# The electronic energy ORCA's G was computed from (the thermochemistry block's first line of U).
_THERMO_ENERGY = re.compile(r"^Electronic energy\s+\.\.\.\s+(-?\d+\.\d+)\s+Eh", re.MULTILINE)
_ZPE = re.compile(r"^Zero point energy\s+\.\.\.\s+(-?\d+\.\d+)\s+Eh", re.MULTILINE)
_ENTHALPY = re.compile(r"^Total Enthalpy\s+\.\.\.\s+(-?\d+\.\d+)\s+Eh", re.MULTILINE)
# ORCA 4 names G "Final Gibbs free enthalpy"; ORCA 5 and 6 "Final Gibbs free energy" (same number).
_GIBBS = re.compile(r"^Final Gibbs free (?:energy|enthalpy)\s+\.\.\.\s+(-?\d+\.\d+)\s+Eh", re.MULTILINE)
_S2 = re.compile(r"Expectation value of <S\*\*2>\s*:\s*(-?\d+\.\d+)")
_GEOMETRY = re.compile(
    r"CARTESIAN COORDINATES \(ANGSTROEM\)\n-+\n((?:\s*[A-Za-z]{1,3}\s+\S+\s+\S+\s+\S+\n)+)"
)


@dataclass
class Frequencies:
    values: list[float]  # every mode in ORCA's order (translations/rotations print 0.00)
    offset: int  # byte offset of the block's header in the output

    def imaginary(self, threshold: float) -> list[tuple[int, float]]:
        """(mode index, value) of the negative modes at or beyond ``threshold`` (cm**-1) in magnitude."""
        return [(i, v) for i, v in enumerate(self.values) if v < 0 and -v >= threshold]

    def noise(self, threshold: float) -> list[float]:
        """Negative modes smaller than the threshold: reported, not counted."""
        return [v for v in self.values if v < 0 and -v < threshold]

    @property
    def lowest(self) -> float | None:
        vibrations = [v for v in self.values if v != 0.0]
        return min(vibrations) if vibrations else None


@dataclass
class Thermo:
    temperature: float | None = None
    electronic: float | None = None  # E(el) of the block: G - electronic is the thermal correction
    zpe: float | None = None
    enthalpy: float | None = None
    gibbs: float | None = None


@dataclass
class Chemistry:
    freqs: Frequencies | None = None
    thermo: Thermo = field(default_factory=Thermo)
    s2: float | None = None


def _last(pattern: re.Pattern[str], text: str) -> float | None:
    found = pattern.findall(text)
    return float(found[-1]) if found else None


def _parse_freq_list(text: str) -> list[float]:
    """The ``N: value cm**-1`` lines right after the header, in order, stopping at the first gap."""
    values: list[float] = []
    for m in _FREQ_LINE.finditer(text):
        if int(m.group(1)) != len(values):
            break  # the IR spectrum table further down starts its own numbering
        values.append(float(m.group(2)))
    return values


def read_frequencies(path: Path, tail: str, size: int, whole: bool) -> Frequencies | None:
    """The last VIBRATIONAL FREQUENCIES block, from the tail or a bounded window found by a backward scan."""
    at = tail.rfind(_FREQ_HEADER)
    if at >= 0:
        values = _parse_freq_list(tail[at:])
        if values:
            # Byte offset of the header: the tail is the file's end (ORCA writes ASCII).
            return Frequencies(values, size - len(tail.encode("utf-8", "replace")) + at)
    if whole:
        return None
    offset = find_last_offset(path, _FREQ_HEADER, size, FREQ_SCAN_LIMIT_BYTES)
    if offset is None:
        return None
    values = _parse_freq_list(read_window(path, offset, FREQ_WINDOW_BYTES))
    return Frequencies(values, offset) if values else None


def read_chemistry(path: Path, head: str, tail: str, size: int, whole: bool) -> Chemistry:
    chem = Chemistry(freqs=read_frequencies(path, tail, size, whole))
    chem.thermo = Thermo(
        temperature=_last(_TEMPERATURE, tail),
        electronic=_last(_THERMO_ENERGY, tail),
        zpe=_last(_ZPE, tail),
        enthalpy=_last(_ENTHALPY, tail),
        gibbs=_last(_GIBBS, tail),
    )
    chem.s2 = _last(_S2, tail) if _S2.search(tail) else _last(_S2, head)
    return chem


def read_normal_mode(path: Path, freqs_offset: int, mode: int) -> list[float]:
    """Column ``mode`` of the NORMAL MODES table after the frequency block at ``freqs_offset``:
    3N Cartesian displacements (x, y, z per atom). Empty if the table is missing or cut off."""
    text = read_window(path, freqs_offset, MODES_WINDOW_BYTES)
    start = text.find("NORMAL MODES")
    if start < 0:
        return []
    column: dict[int, float] = {}
    position: int | None = None  # where ``mode`` stands in the current group of columns
    for line in text[start:].splitlines()[1:]:
        words = line.split()
        if not words:
            continue
        if all(w.isdigit() for w in words):  # a header row of mode numbers
            numbers = [int(w) for w in words]
            position = numbers.index(mode) if mode in numbers else None
        elif len(words) > 1 and words[0].isdigit() and all(_is_float(w) for w in words[1:]):
            if position is not None and position + 1 < len(words):
                column[int(words[0])] = float(words[position + 1])
        elif column:
            break  # the next section (IR SPECTRUM): the table is over
    complete = sorted(column) == list(range(len(column)))
    return [column[i] for i in sorted(column)] if column and complete else []


def _is_float(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def last_geometry(text: str) -> list[tuple[str, float, float, float]]:
    """The last CARTESIAN COORDINATES (ANGSTROEM) block in ``text`` as (element, x, y, z)."""
    found = _GEOMETRY.findall(text)
    if not found:
        return []
    atoms = []
    for line in found[-1].strip().splitlines():
        sym, x, y, z = line.split()[:4]
        atoms.append((sym, float(x), float(y), float(z)))
    return atoms
