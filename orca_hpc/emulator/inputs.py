"""The ORCA emulator's own small input reader.

Deliberately independent of ``orca_hpc.orca.inputs`` (the project's real parser): the emulator plays the
part of the external program, so it must not share the code whose behaviour it is used to test.
It understands just enough ORCA input to behave like ORCA from the outside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DIRECTIVE_RE = re.compile(r"^\s*#\s*emulate\s*:(.*)$", re.IGNORECASE)

# Blocks whose value sits on the `%` line itself, with no closing `end`.
ONE_LINE_BLOCKS = frozenset({"maxcore", "moinp", "base", "pointcharges", "id"})
# Sub-blocks that carry their own `end` inside a block (one level only, which is all ORCA uses).
SUB_BLOCKS: dict[str, frozenset[str]] = {
    "geom": frozenset({"constraints", "scan", "modify_internal", "hess_internal", "fragments"}),
    "scf": frozenset({"shift"}),
    "coords": frozenset({"coords", "pardef"}),
}
OPT_RE = re.compile(r"^(?:(?:very)?tight|loose|normal|sloppy)?opt$|^(?:copt|zopt|gdiis-opt|optts)$")
FREQ_WORDS = frozenset({"freq", "numfreq", "anfreq"})
# Nudged elastic band runs; the -TS variants search the transition state after the band.
NEB_WORDS = frozenset({"neb", "neb-ci", "neb-ts", "fast-neb-ts", "tight-neb-ts", "loose-neb", "zoom-neb",
                       "zoom-neb-ci", "zoom-neb-ts"})  # fmt: skip
DEFAULT_MAXCORE = 1024
DEFAULT_SCF_MAXITER = 125
DEFAULT_GEOM_MAXITER = 100


class EmulatedInputError(Exception):
    """What ORCA would report as an input error (printed in an INPUT ERROR box, then exit non-zero)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(" / ".join(lines))
        self.lines = lines


@dataclass
class Atom:
    symbol: str
    x: float
    y: float
    z: float


@dataclass
class EmuJob:
    """One job of an input file (more than one when `$new_job` is used)."""

    number: int
    keywords: list[str] = field(default_factory=list)  # as written, in order
    nprocs: int | None = None
    maxcore: int | None = None
    scf_maxiter: int | None = None
    geom_maxiter: int | None = None
    moinp: str | None = None
    base: str | None = None
    charge: int = 0
    mult: int = 1
    coord_kind: str | None = None  # xyz, xyzfile, int, gzmt, coords, or None (take the previous job's)
    xyzfile: str | None = None
    atoms: list[Atom] = field(default_factory=list)
    directives: list[str] = field(default_factory=list)  # raw text after `# emulate:`
    runtyp: str | None = None  # `%method RunTyp X end`, lower case

    def has_keyword(self, word: str) -> bool:
        return word.lower() in {k.lower() for k in self.keywords}

    @property
    def is_opt(self) -> bool:
        return self.runtyp == "opt" or any(OPT_RE.match(k.lower()) for k in self.keywords)

    @property
    def neb(self) -> str | None:
        """The NEB keyword of the job (lower case), or None."""
        return next((k.lower() for k in self.keywords if k.lower() in NEB_WORDS), None)

    @property
    def is_freq(self) -> bool:
        return any(k.lower() in FREQ_WORDS for k in self.keywords)

    @property
    def is_ccsd(self) -> bool:
        return any("ccsd" in k.lower() for k in self.keywords)


@dataclass
class _Reader:
    lines: list[str]
    pos: int = 0

    def next(self) -> str | None:
        if self.pos >= len(self.lines):
            return None
        line = self.lines[self.pos]
        self.pos += 1
        return line


def _strip_comment(line: str) -> str:
    return line.split("#", 1)[0].rstrip()


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise EmulatedInputError([f"Invalid assignment: {what} expects an integer, got '{value}'"]) from None


def _unquote(value: str) -> str:
    return value.strip().strip("\"'")


def _atom(line: str) -> Atom:
    parts = line.split()
    if len(parts) < 4:
        raise EmulatedInputError([f"Invalid coordinate line: '{line.strip()}'"])
    symbol = re.sub(r"[^A-Za-z]", "", parts[0].split(":")[0]) or "X"
    try:
        return Atom(symbol.capitalize(), float(parts[1]), float(parts[2]), float(parts[3]))
    except ValueError:
        raise EmulatedInputError([f"Invalid coordinate line: '{line.strip()}'"]) from None


def _internal_atoms(body: list[str]) -> list[Atom]:
    # Internal coordinates are accepted but not converted: a chain along x is enough for an emulator.
    atoms = []
    for i, line in enumerate(body):
        parts = line.split()
        symbol = re.sub(r"[^A-Za-z]", "", parts[0]) or "X"
        atoms.append(Atom(symbol.capitalize(), 1.1 * i, 0.0, 0.0))
    return atoms


def read_xyz_file(path: Path) -> list[Atom]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        raise EmulatedInputError(
            [f"Cannot open xyz file {path.name}", "XYZ FILE COULD NOT BE READ"]
        ) from None
    try:
        count = int(lines[0].split()[0])
    except (IndexError, ValueError):
        raise EmulatedInputError(
            [f"Error in xyz file {path.name}: first line is not an atom count"]
        ) from None
    return [_atom(line) for line in lines[2 : 2 + count]]


def _read_block(name: str, first_rest: str, reader: _Reader) -> list[str]:
    """Return the block's lines (without the final `end`); the block may close on its first line."""
    openers = SUB_BLOCKS.get(name, frozenset())
    body: list[str] = []
    depth = 0
    line: str | None = first_rest
    while line is not None:
        kept: list[str] = []
        closed = False
        for token in line.split():
            low = token.lower()
            if low == "end":
                if depth == 0:
                    closed = True
                    break
                depth = 0
            elif depth == 0 and low in openers:
                depth = 1
            kept.append(token)
        if kept:
            body.append(" ".join(kept))
        if closed:
            return body
        raw = reader.next()
        line = None if raw is None else _strip_comment(raw)
    raise EmulatedInputError([f"Block %{name} is not terminated by 'end'"])


def _apply_block(job: EmuJob, name: str, body: list[str]) -> None:
    words = " ".join(body).split()
    low = [w.lower() for w in words]

    def value_after(key: str) -> str | None:
        return words[low.index(key) + 1] if key in low and low.index(key) + 1 < len(words) else None

    if name == "pal":
        if (v := value_after("nprocs")) is not None:
            job.nprocs = _int(v, "%pal nprocs")
    elif name == "scf":
        if (v := value_after("maxiter")) is not None:
            job.scf_maxiter = _int(v, "%scf maxiter")
    elif name == "geom":
        if (v := value_after("maxiter")) is not None:
            job.geom_maxiter = _int(v, "%geom maxiter")
    elif name == "method":
        if (v := value_after("runtyp")) is not None:
            job.runtyp = v.lower()  # `RunTyp Opt` asks for an optimisation without `! Opt`
    elif name == "coords":
        _apply_coords_block(job, body)


def _apply_coords_block(job: EmuJob, body: list[str]) -> None:
    in_coords = False
    job.coord_kind = "coords"
    for line in body:
        parts = line.split()
        key = parts[0].lower()
        if in_coords:
            if key == "end":
                in_coords = False
            else:
                job.atoms.append(_atom(line))
        elif key == "coords":
            in_coords = True
            if len(parts) > 1:
                job.atoms.append(_atom(" ".join(parts[1:])))
        elif key == "charge" and len(parts) > 1:
            job.charge = _int(parts[1], "%coords charge")
        elif key == "mult" and len(parts) > 1:
            job.mult = _int(parts[1], "%coords mult")


def _read_coordinates(job: EmuJob, line: str, reader: _Reader) -> None:
    parts = line.lstrip("*").split()
    if len(parts) < 3:
        raise EmulatedInputError([f"Invalid coordinate specification: '{line.strip()}'"])
    kind = parts[0].lower()
    job.charge = _int(parts[1], "charge")
    job.mult = _int(parts[2], "multiplicity")
    job.coord_kind = kind
    if kind in ("xyzfile", "gzmtfile", "pdbfile"):
        if len(parts) < 4:
            raise EmulatedInputError([f"* {kind} needs a file name"])
        # Read when the job starts: in a compound input the file may be written by an earlier job.
        job.xyzfile = _unquote(parts[3])
        return
    if kind not in ("xyz", "int", "internal", "gzmt"):
        raise EmulatedInputError([f"Unknown coordinate type '{parts[0]}'"])
    body: list[str] = []
    while True:
        raw = reader.next()
        if raw is None:
            raise EmulatedInputError(["Coordinate block is not terminated by '*'"])
        text = _strip_comment(raw).strip()
        if text == "*":
            break
        if text:
            body.append(text)
    job.atoms = [_atom(b) for b in body] if kind == "xyz" else _internal_atoms(body)


def parse_input(text: str) -> list[EmuJob]:
    """Split the input at `$new_job` and read each job; raises EmulatedInputError like ORCA would."""
    jobs = [EmuJob(number=1)]
    reader = _Reader(text.splitlines())
    while (raw := reader.next()) is not None:
        job = jobs[-1]
        if m := DIRECTIVE_RE.match(raw):
            job.directives.append(m.group(1).strip())
            continue
        line = _strip_comment(raw).strip()
        if not line:
            continue
        low = line.lower()
        if low.startswith("$new_job"):
            jobs.append(EmuJob(number=len(jobs) + 1))
        elif line.startswith("!"):
            for word in line[1:].split():
                job.keywords.append(word)
                if m := re.fullmatch(r"pal(\d+)", word.lower()):
                    job.nprocs = int(m.group(1))
        elif line.startswith("%"):
            name, _, rest = line[1:].partition(" ")
            name = name.lower()
            if name in ONE_LINE_BLOCKS:
                value = _unquote(rest)
                if name == "maxcore":
                    job.maxcore = _int(value, "%maxcore")
                elif name == "moinp":
                    job.moinp = value
                elif name == "base":
                    job.base = value
            else:
                _apply_block(job, name, _read_block(name, rest, reader))
        elif line.startswith("*"):
            _read_coordinates(job, line, reader)
        else:
            raise EmulatedInputError(["ERROR: expect a '$', '!', '%', '*' or '[' in the input"])
    for job in jobs:
        if not job.keywords and job.number == 1:
            raise EmulatedInputError(["No simple input line ('!') found in the input"])
    return jobs
