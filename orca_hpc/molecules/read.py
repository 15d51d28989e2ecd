"""Read molecule files into `MoleculeInput` records (one molecule, one or more conformers).

Which reader a file gets is decided by its suffix: ``.xyz`` here (pure Python), ``.smi``/``.smiles``
and ``.sdf`` in `chem` (RDKit, the optional extra). Every file is read before anything is refused, so
one error lists every problem of every file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from orca_hpc.errors import InputFileError
from orca_hpc.molecules.chem import read_sdf_file, read_smiles_file
from orca_hpc.molecules.records import (
    Conformer,
    ConformerSettings,
    MoleculeInput,
    MoleculeInputError,
    Problems,
)
from orca_hpc.molecules.xyzfile import read_xyz_molecule

__all__ = ["Conformer", "ConformerSettings", "MoleculeInput", "MoleculeInputError", "read_molecules"]

SUFFIXES = {".xyz": "xyz", ".smi": "smiles", ".smiles": "smiles", ".sdf": "sdf"}
MAX_PROBLEMS_PER_FILE = 20  # a wrong file (a log renamed .smi) would otherwise fill the screen


def _settings_problem(settings: ConformerSettings) -> str | None:
    if not (isinstance(settings.count, int) and 1 <= settings.count <= 10000):
        return f"conformer count must be an integer from 1 to 10000, got {settings.count!r}"
    if not settings.rmsd >= 0:
        return f"conformer rmsd must be 0 or more (angstrom), got {settings.rmsd!r}"
    if not settings.energy_window_kcal >= 0:
        return f"conformer energy window must be 0 or more (kcal/mol), got {settings.energy_window_kcal!r}"
    return None


def read_molecules(paths: Sequence[Path], settings: ConformerSettings | None = None) -> list[MoleculeInput]:
    """Every molecule in ``paths``, in order; all problems of all files in one `MoleculeInputError`
    (a `UserError`, one ``file:line: problem`` line each). Molecule names must be unique: they name
    the molecule's jobs and results."""
    settings = settings or ConformerSettings()
    problem = _settings_problem(settings)
    if problem:
        raise MoleculeInputError([problem])
    molecules: list[MoleculeInput] = []
    problems: list[str] = []
    for path in map(Path, paths):
        found = Problems(path)
        try:
            molecules.extend(_read_one(path, settings, found))
        except InputFileError as exc:
            found.found.append((exc.line or 0, str(exc)))
        lines = found.lines
        if len(lines) > MAX_PROBLEMS_PER_FILE:
            more = len(lines) - MAX_PROBLEMS_PER_FILE
            lines[MAX_PROBLEMS_PER_FILE:] = [f"{path}: ... and {more} more problems"]
        problems.extend(lines)
    problems.extend(_duplicate_names(molecules))
    if problems:
        raise MoleculeInputError(problems)
    return molecules


def _read_one(path: Path, settings: ConformerSettings, problems: Problems) -> list[MoleculeInput]:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(SUFFIXES)
        raise InputFileError(path, f"not a molecule file ({path.suffix or 'no suffix'}; known: {known})")
    if not path.exists() and not path.is_symlink():
        raise InputFileError(path, "no such file")
    if kind == "xyz":
        return [read_xyz_molecule(path, settings)]
    if kind == "smiles":
        return read_smiles_file(path, settings, problems)
    return read_sdf_file(path, settings, problems)


def _duplicate_names(molecules: list[MoleculeInput]) -> list[str]:
    first: dict[str, MoleculeInput] = {}
    out = []
    for molecule in molecules:
        seen = first.setdefault(molecule.name, molecule)
        if seen is not molecule:
            where = f"{seen.source}:{seen.line}" if seen.line else str(seen.source)
            out.append(
                str(
                    InputFileError(
                        molecule.source,
                        f"molecule name {molecule.name!r} is used by {where} too",
                        molecule.line,
                    )
                )
            )
    return out
