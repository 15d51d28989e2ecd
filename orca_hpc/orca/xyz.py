"""Elements and xyz files: the atoms ORCA knows and the plain xyz format it reads with ``* xyzfile``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from orca_hpc.errors import InputFileError

_SYMBOL_TEXT = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm "
    "Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No "
    "Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
)
_SYMBOLS = _SYMBOL_TEXT.split()

#: Element symbol -> atomic number (1..118).
ATOMIC_NUMBERS: dict[str, int] = {sym: z for z, sym in enumerate(_SYMBOLS, start=1)}
_BY_LOWER: dict[str, str] = {sym.lower(): sym for sym in _SYMBOLS}

# Fortran-style exponents (1.0D-03) appear in files written by older programs; ORCA reads them.
NUMBER_PATTERN = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][+-]?\d+)?"
_FLOAT_RE = re.compile(rf"^{NUMBER_PATTERN}$")


def parse_float(token: str) -> float | None:
    """A coordinate as ORCA reads it, or None when the token is not a number."""
    if not _FLOAT_RE.match(token):
        return None
    return float(token.replace("d", "e").replace("D", "e"))


def is_number(token: str) -> bool:
    """Whether ORCA reads ``token`` as a number (``parse_float`` without making the float)."""
    return _FLOAT_RE.match(token) is not None


def element_symbol(token: str) -> str | None:
    """Canonical symbol for an element token (any case, or an atomic number), None if unknown."""
    if token.isdigit():
        if not (token.isascii() and len(token) <= 3):  # "²" is a digit to str.isdigit, not to int()
            return None
        z = int(token)
        return _SYMBOLS[z - 1] if 1 <= z <= len(_SYMBOLS) else None
    return _BY_LOWER.get(token.lower())


_CHARGE_MULT = re.compile(r"(?<![\w.])(charge|mult|multiplicity)\s*=\s*([+-]?\d{1,3})(?![\w.])", re.I)
# Any ``charge=``/``mult=`` the comment has, whatever its value: one that is no whole number (``-1.5``,
# ``triplet``) is refused, not read as absent (an anion run as a neutral radical).
_SAID = re.compile(r"(?<![\w.])(charge|mult|multiplicity)\s*=\s*([^\s,;]*)", re.I)
_WHOLE_FLOAT = re.compile(r"[+-]?\d{1,3}\.0*")


@dataclass(frozen=True)
class Atom:
    symbol: str
    x: float
    y: float
    z: float

    @property
    def atomic_number(self) -> int:
        return ATOMIC_NUMBERS[self.symbol]


@dataclass
class Molecule:
    atoms: list[Atom] = field(default_factory=list)
    comment: str = ""

    def charge_and_mult(self) -> tuple[int | None, int | None]:
        """``charge=N`` and ``mult=M`` (or ``multiplicity=M``) from the comment line, as extended-xyz
        files and conformer tools write them; None for what the comment does not say."""
        found: dict[str, int] = {}
        for match in _CHARGE_MULT.finditer(self.comment):
            key = "mult" if match.group(1).lower().startswith("mult") else "charge"
            found[key] = int(match.group(2))
        for match in _SAID.finditer(self.comment):
            key = "mult" if match.group(1).lower().startswith("mult") else "charge"
            if key in found:
                continue
            value = match.group(2)
            if not _WHOLE_FLOAT.fullmatch(value):  # ``-1.0``, as some writers put it, is -1
                raise ValueError(f"comment line: {match.group(1)}={value!r} is not a whole number")
            found[key] = int(float(value))
        return found.get("charge"), found.get("mult")

    @property
    def electrons_neutral(self) -> int:
        return sum(atom.atomic_number for atom in self.atoms)

    @property
    def formula(self) -> str:
        counts: dict[str, int] = {}
        for atom in self.atoms:
            counts[atom.symbol] = counts.get(atom.symbol, 0) + 1
        return "".join(f"{sym}{n if n > 1 else ''}" for sym, n in counts.items())


def spin_problem(electrons_neutral: int, charge: int, mult: int) -> str | None:
    """Why ORCA would refuse this charge/multiplicity, or None when it is possible."""
    electrons = electrons_neutral - charge
    if mult < 1:
        return f"multiplicity ({mult}) must be a positive integer"
    if electrons < 0:
        return f"charge {charge} leaves a negative number of electrons ({electrons})"
    if electrons % 2 == mult % 2:
        parity = "even" if mult % 2 == 0 else "odd"
        eparity = "even" if electrons % 2 == 0 else "odd"
        return (
            f"multiplicity ({mult}) is {parity} and number of electrons ({electrons}) is {eparity}"
            " -> impossible"
        )
    if mult - 1 > electrons:
        return f"multiplicity ({mult}) needs more unpaired electrons than there are electrons ({electrons})"
    return None


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(path, f"cannot read xyz file: {exc.strerror or exc}") from None
    if b"\x00" in data:
        raise InputFileError(path, "binary file, not an xyz file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputFileError(path, f"not UTF-8 text (byte 0x{data[exc.start]:02x})", line) from None


def _parse_frame(path: Path, lines: list[str], start: int) -> tuple[Molecule, int]:
    """One frame beginning at index ``start``; returns it and the index after it."""
    count_tokens = lines[start].split()
    lineno = start + 1
    # ASCII and at most 9 digits: int() refuses "²" and numbers of 4,300+ digits.
    if len(count_tokens) != 1 or not (count_tokens[0].isascii() and count_tokens[0].isdigit()):
        raise InputFileError(
            path, f"first line of an xyz frame must be the atom count, got {lines[start]!r}", lineno
        )
    if len(count_tokens[0]) > 9:
        raise InputFileError(path, f"atom count {count_tokens[0][:20]}... is too large", lineno)
    count = int(count_tokens[0])
    if count == 0:
        raise InputFileError(path, "xyz frame has 0 atoms", lineno)
    if start + 1 >= len(lines):
        raise InputFileError(path, "xyz file ends before the comment line", lineno)
    comment = lines[start + 1].strip()
    atoms: list[Atom] = []
    index = start + 2
    while len(atoms) < count:
        if index >= len(lines) or not lines[index].strip():
            raise InputFileError(
                path,
                f"atom count says {count} but only {len(atoms)} atom lines follow",
                index + 1 if index < len(lines) else lineno,
            )
        tokens = lines[index].split()
        if len(tokens) < 4:
            raise InputFileError(
                path, f"atom line needs an element and 3 coordinates: {lines[index].strip()!r}", index + 1
            )
        symbol = element_symbol(tokens[0])
        if symbol is None:
            raise InputFileError(path, f"unknown element {tokens[0]!r}", index + 1)
        coords = [parse_float(t) for t in tokens[1:4]]
        if any(c is None for c in coords):
            raise InputFileError(path, f"bad coordinate in {lines[index].strip()!r}", index + 1)
        x, y, z = (float(c) for c in coords if c is not None)
        atoms.append(Atom(symbol, x, y, z))
        index += 1
    return Molecule(atoms, comment), index


def read_xyz_frames(path: Path, text: str | None = None) -> list[Molecule]:
    """All frames of an xyz file (a ``_trj.xyz`` has one per optimisation step); ``text``: the file's
    text where the caller has read it (a BOM is dropped, a NUL refused, as when read here)."""
    path = Path(path)
    if text is not None and "\x00" in text:  # as _read_text refuses the file's bytes
        raise InputFileError(path, "binary file, not an xyz file")
    raw = _read_text(path) if text is None else text.removeprefix("\ufeff")
    lines = [line.rstrip("\r") for line in raw.split("\n")]
    frames: list[Molecule] = []
    index = 0
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        # A count mismatch shows up as leftover atom lines where the next count should be.
        head = lines[index].split()
        if frames and (len(head) != 1 or not head[0].isdigit()):
            raise InputFileError(
                path, f"more atom lines than the atom count ({len(frames[-1].atoms)}) says", index + 1
            )
        frame, index = _parse_frame(path, lines, index)
        frames.append(frame)
    if not frames:
        raise InputFileError(path, "empty xyz file", 1)
    return frames


def read_xyz(path: Path, text: str | None = None) -> Molecule:
    """The first frame of an xyz file (ORCA's ``* xyzfile`` also reads the first)."""
    return read_xyz_frames(path, text)[0]


def read_last_frame(path: Path) -> Molecule:
    """The last frame, e.g. the latest geometry of an unfinished optimisation's ``_trj.xyz``."""
    return read_xyz_frames(path)[-1]


def format_xyz(molecule: Molecule) -> str:
    """A molecule as xyz text (trailing newline)."""
    lines = [str(len(molecule.atoms)), molecule.comment.replace("\n", " ")]
    lines += [f"{a.symbol:<3s} {a.x:15.8f} {a.y:15.8f} {a.z:15.8f}" for a in molecule.atoms]
    return "\n".join(lines) + "\n"
