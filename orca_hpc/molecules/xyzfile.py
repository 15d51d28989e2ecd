"""`.xyz` files as one molecule: a single frame is one conformer, the frames of a multi-frame file are
conformers of one molecule (as conformer tools write them), near-duplicates removed."""

from __future__ import annotations

from pathlib import Path

from orca_hpc.errors import InputFileError
from orca_hpc.molecules.records import Conformer, ConformerSettings, MoleculeInput
from orca_hpc.molecules.superpose import Point, superposed_rmsd
from orca_hpc.molecules.text import read_text
from orca_hpc.orca.xyz import Molecule, format_xyz, read_xyz_frames, spin_problem


def _comment_lines(text: str, frames: list[Molecule]) -> list[int]:
    """The 1-based line of each frame's comment line (frames may be separated by blank lines)."""
    lines = text.split("\n")
    out: list[int] = []
    index = 0
    for frame in frames:
        while not lines[index].strip():
            index += 1
        out.append(index + 2)
        index += 2 + len(frame.atoms)
    return out


def comparison_points(symbols: list[str], points: list[Point]) -> list[Point]:
    """The points duplicates are judged on: heavy atoms (hydrogens rotate freely), all atoms when
    there are none."""
    heavy = [p for s, p in zip(symbols, points, strict=True) if s != "H"]
    return heavy or points


def distinct(candidates: list[list[Point]], rmsd: float, count: int) -> list[int]:
    """Indices of ``candidates`` kept, in order: each at least ``rmsd`` from every kept one; at most
    ``count``."""
    kept: list[int] = []
    for i, points in enumerate(candidates):
        if len(kept) >= count:
            break
        if all(superposed_rmsd(candidates[k], points) >= rmsd for k in kept):
            kept.append(i)
    return kept


def charge_and_mult(path: Path, frames: list[Molecule], lines: list[int]) -> tuple[int, int]:
    """What the comment lines say (every frame that says it must agree), else neutral and the lowest
    spin; an impossible pair is refused at the line that set it."""
    charge: int | None = None
    mult: int | None = None
    where = lines[0]
    for frame, line in zip(frames, lines, strict=True):
        try:
            c, m = frame.charge_and_mult()
        except ValueError as err:
            raise InputFileError(path, str(err), line) from None
        if c is not None:
            if charge is not None and c != charge:
                raise InputFileError(
                    path, f"charge={c} differs from charge={charge} of an earlier frame", line
                )
            if charge is None:
                charge, where = c, line
        if m is not None:
            if mult is not None and m != mult:
                raise InputFileError(path, f"mult={m} differs from mult={mult} of an earlier frame", line)
            if mult is None:
                mult, where = m, line
    charge = 0 if charge is None else charge
    electrons = frames[0].electrons_neutral - charge
    if mult is None:
        mult = 1 if electrons % 2 == 0 else 2
    problem = spin_problem(frames[0].electrons_neutral, charge, mult)
    if problem:
        raise InputFileError(path, problem, where)
    return charge, mult


def read_xyz_molecule(path: Path, settings: ConformerSettings) -> MoleculeInput:
    text = read_text(path)
    frames = read_xyz_frames(path, text)
    lines = _comment_lines(text, frames)
    symbols = [a.symbol for a in frames[0].atoms]
    for frame, line in zip(frames[1:], lines[1:], strict=True):
        if [a.symbol for a in frame.atoms] != symbols:
            raise InputFileError(
                path,
                f"this frame's atoms ({frame.formula}, in order) differ from the first frame's"
                f" ({frames[0].formula}): the frames of one file are conformers of one molecule",
                line - 1,
            )
    charge, mult = charge_and_mult(path, frames, lines)
    points = [comparison_points(symbols, [(a.x, a.y, a.z) for a in f.atoms]) for f in frames]
    kept = distinct(points, settings.rmsd, settings.count)
    conformers = []
    for index, k in enumerate(kept, 1):
        # The comment says what the whole molecule is, so a conformer's xyz stands on its own.
        # The user's own comment line goes along unchanged (a title, notes, directives for other
        # tools); without one, a label that says what the molecule is. Charge and multiplicity travel
        # on the record either way.
        comment = frames[k].comment.strip() or (
            f"{path.stem} conformer {index} (frame {k + 1}) charge={charge} mult={mult}"
        )
        conformers.append(Conformer(index, format_xyz(Molecule(frames[k].atoms, comment))))
    return MoleculeInput(path.stem, charge, mult, path, tuple(conformers), line=1)
