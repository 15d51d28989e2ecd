"""Read molecule files into `MoleculeInput` records (one molecule, one or more conformers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orca_hpc.errors import InputFileError, UserError
from orca_hpc.orca.xyz import format_xyz, read_xyz_frames, spin_problem


@dataclass(frozen=True)
class Conformer:
    index: int  # 1-based, in the order the conformers were found
    xyz: str  # complete xyz text: count line, comment line, atom lines


@dataclass(frozen=True)
class MoleculeInput:
    name: str
    charge: int
    multiplicity: int
    source: Path
    conformers: tuple[Conformer, ...]


@dataclass(frozen=True)
class ConformerSettings:
    """How many conformers to generate (SMILES) or keep (multi-frame xyz, SDF)."""

    count: int = 10
    rmsd: float = 0.5  # angstrom: closer conformers are duplicates
    energy_window_kcal: float = 10.0  # force-field energy window above the lowest
    seed: int = 61453


def read_molecules(paths: Sequence[Path], settings: ConformerSettings | None = None) -> list[MoleculeInput]:
    """Every molecule in ``paths``; all problems of all files in one `UserError`."""
    settings = settings or ConformerSettings()
    molecules: list[MoleculeInput] = []
    problems: list[str] = []
    for path in paths:
        try:
            molecules.extend(_read_one(Path(path), settings))
        except InputFileError as exc:
            problems.append(str(exc))
    if problems:
        raise UserError("; ".join(problems))
    return molecules


def _read_one(path: Path, settings: ConformerSettings) -> list[MoleculeInput]:
    if path.suffix.lower() != ".xyz":
        raise InputFileError(path, f"not a molecule file this version reads ({path.suffix or 'no suffix'})")
    frames = read_xyz_frames(path)
    charge, mult = frames[0].charge_and_mult()
    charge = 0 if charge is None else charge
    if mult is None:
        mult = 1 if (frames[0].electrons_neutral - charge) % 2 == 0 else 2
    problem = spin_problem(frames[0].electrons_neutral, charge, mult)
    if problem:
        raise InputFileError(path, problem, 2)
    conformers = tuple(Conformer(i, format_xyz(frame)) for i, frame in enumerate(frames[: settings.count], 1))
    return [MoleculeInput(path.stem, charge, mult, path, conformers)]
