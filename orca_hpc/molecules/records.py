"""The records workflows read molecules as, and the error that carries every problem of a read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orca_hpc.errors import InputFileError, UserError, one_line


@dataclass(frozen=True)
class Conformer:
    index: int  # 1-based; generated conformers are sorted by force-field energy (1 = lowest)
    xyz: str  # complete xyz text: count line, comment line (the file's own, else a label), atom lines
    # Force-field energy above the molecule's lowest conformer (kcal/mol); None for given geometries
    energy_kcal: float | None = None


@dataclass(frozen=True)
class MoleculeInput:
    name: str
    charge: int
    multiplicity: int
    source: Path
    conformers: tuple[Conformer, ...]
    line: int | None = None  # where the molecule starts in ``source`` (SMILES line, SDF record)


@dataclass(frozen=True)
class ConformerSettings:
    """How many conformers to generate (SMILES, 2D SDF) or keep (multi-frame xyz, 3D SDF)."""

    count: int = 10
    rmsd: float = (
        0.125  # angstrom, heavy atoms after superposition: closer ones are duplicates (CREST's default)
    )
    energy_window_kcal: float = 10.0  # force-field energy window above the lowest (generated only)
    seed: int = 61453  # the embedding's random seed: the same input gives the same conformers


class MoleculeInputError(UserError):
    """Every problem of every file of one `read_molecules` call (each ``file:line: ...``), on one line
    joined by ``; `` like every other refusal of several problems."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(one_line(self.problems))


@dataclass
class Problems:
    """One file's problems, each ``file:line: problem``."""

    path: Path
    found: list[tuple[int, str]] = field(default_factory=list)

    def add(self, problem: str, line: int | None = None) -> None:
        self.found.append((line or 0, str(InputFileError(self.path, problem, line))))

    @property
    def lines(self) -> list[str]:
        """In the order of the file's lines (the layout is checked before the chemistry)."""
        return [text for _, text in sorted(self.found, key=lambda item: item[0])]
