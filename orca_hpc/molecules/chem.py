"""SMILES and SDF files, through the optional RDKit extra (``pip install 'orca-hpc[rdkit]'``).

RDKit is imported here, inside the reading functions only: importing it takes a second, and the
core (submit, reconcile, the runner) never needs it. Conformers of a molecule given without a 3D
geometry are generated like this, reproducibly (the same file and settings give the same xyz):

1. hydrogens added; ``count`` embeddings by ETKDGv3 with the fixed ``seed``, one thread;
2. each optimised with MMFF94 (UFF where MMFF94 lacks parameters; kept as embedded if neither has);
3. those more than ``energy_window_kcal`` above the lowest dropped; sorted by energy;
4. a conformer within ``rmsd`` (heavy atoms, after the best superposition over the molecule's
   symmetry-equivalent atom orders) of a lower one dropped as its duplicate. Hydroxyl and methyl
   rotamers differ in hydrogens only, so they count as one conformer.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orca_hpc.errors import InputFileError
from orca_hpc.molecules.records import Conformer, ConformerSettings, MoleculeInput, Problems
from orca_hpc.molecules.text import read_text
from orca_hpc.orca.xyz import spin_problem

INSTALL_HINT = "pip install 'orca-hpc[rdkit]'"
_KEY_VALUE = re.compile(r"^(charge|mult|multiplicity)=(.*)$", re.I)
_INTEGER = re.compile(r"^[+-]?\d{1,3}$")


def _rdkit(path: Path) -> Any:
    """RDKit's ``Chem`` module, or the one-line refusal that says how to get it."""
    try:
        from rdkit import Chem
    except ImportError:
        kind = "an SDF file" if path.suffix.lower() == ".sdf" else "a SMILES file"
        raise InputFileError(path, f"reading {kind} needs RDKit: {INSTALL_HINT}") from None
    return Chem


@contextmanager
def _quiet() -> Any:
    """RDKit writes its parse errors to stderr itself; ours name the file and line instead."""
    from rdkit import rdBase

    block = rdBase.BlockLogs()
    try:
        yield
    finally:
        del block


def _parse_smiles(smiles: str) -> tuple[Any, str | None]:
    """The molecule (hydrogens not yet added), or None and why RDKit refused it."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None:
        return None, None  # a syntax error: RDKit does not say more than its log line
    found = Chem.DetectChemistryProblems(mol)
    if found:
        return None, found[0].Message()
    try:
        Chem.SanitizeMol(mol)
    except Exception as exc:  # RDKit raises its own classes, not all importable by name
        return None, str(exc).strip() or type(exc).__name__
    return mol, None


def _integer(value: str) -> int | None:
    value = value.strip()
    return int(value) if _INTEGER.match(value) else None


def _spin(mol: Any, charge: int | None, mult: int | None) -> tuple[int, int, str | None]:
    """Charge (sum of formal charges) and multiplicity (radical electrons + 1) unless given, and why
    ORCA would refuse the pair."""
    from rdkit.Chem import Descriptors

    if charge is None:
        charge = sum(atom.GetFormalCharge() for atom in mol.GetAtoms())
    if mult is None:
        mult = Descriptors.NumRadicalElectrons(mol) + 1
    electrons = sum(atom.GetAtomicNum() for atom in mol.GetAtoms())
    return charge, mult, spin_problem(electrons, charge, mult)


def _xyz(mol: Any, conf_id: int, comment: str) -> str:
    positions = mol.GetConformer(conf_id).GetPositions()
    lines = [str(mol.GetNumAtoms()), comment]
    for atom, (x, y, z) in zip(mol.GetAtoms(), positions, strict=True):
        lines.append(f"{atom.GetSymbol():<3s} {x:15.8f} {y:15.8f} {z:15.8f}")
    return "\n".join(lines) + "\n"


def _heavy(mol: Any) -> Any:
    from rdkit import Chem

    heavy = Chem.RemoveHs(mol)
    return heavy if heavy.GetNumAtoms() > 0 else mol


def _same(ref: Any, ref_id: int, probe: Any, probe_id: int, rmsd: float) -> bool:
    """Heavy-atom RMSD below ``rmsd`` after the best superposition over symmetry-equivalent orders."""
    from rdkit import Chem
    from rdkit.Chem import rdMolAlign

    if ref.GetNumAtoms() < 2:
        return True
    # GetBestRMS moves the probe onto the reference: a copy keeps the caller's coordinates.
    moved = Chem.Mol(probe, confId=probe_id)
    return bool(rdMolAlign.GetBestRMS(moved, ref, -1, ref_id, maxMatches=10000) < rmsd)


def generate(mol: Any, settings: ConformerSettings) -> list[tuple[Any, int, float | None]]:
    """Conformers of ``mol`` (hydrogens added) as (mol, conformer id, energy above the lowest in
    kcal/mol), lowest first; empty when RDKit cannot embed the molecule in 3D."""
    from rdkit import Chem
    from rdkit.Chem import rdDistGeom, rdForceFieldHelpers

    molh = Chem.AddHs(mol)
    params: Any = rdDistGeom.ETKDGv3()  # the stubs type its fields as EmbedParameters
    params.randomSeed = settings.seed
    params.numThreads = 1  # the same conformers on every machine and run
    ids = list(rdDistGeom.EmbedMultipleConfs(molh, numConfs=settings.count, params=params))
    if not ids:
        params.useRandomCoords = True  # ETKDG's own advice for molecules its distance bounds fail
        ids = list(rdDistGeom.EmbedMultipleConfs(molh, numConfs=settings.count, params=params))
    if not ids:
        return []
    energies: dict[int, float | None] = dict.fromkeys(ids)
    if rdForceFieldHelpers.MMFFHasAllMoleculeParams(molh):
        results = rdForceFieldHelpers.MMFFOptimizeMoleculeConfs(molh, numThreads=1, maxIters=2000)
    elif rdForceFieldHelpers.UFFHasAllMoleculeParams(molh):
        results = rdForceFieldHelpers.UFFOptimizeMoleculeConfs(molh, numThreads=1, maxIters=2000)
    else:
        results = []
    if results:  # one (not converged, energy) per conformer, in conformer order
        conf_ids = [c.GetId() for c in molh.GetConformers()]
        for conf_id, (_not_converged, energy) in zip(conf_ids, results, strict=True):
            energies[conf_id] = energy
    known = [e for e in energies.values() if e is not None]
    lowest = min(known) if known else None
    order = sorted(ids, key=lambda i: (energies[i] is None, energies[i] or 0.0, i))
    heavy = _heavy(molh)
    kept: list[tuple[Any, int, float | None]] = []
    for conf_id in order:
        energy = energies[conf_id]
        relative = None if energy is None or lowest is None else energy - lowest
        if relative is not None and relative > settings.energy_window_kcal:
            continue
        if any(_same(heavy, k, heavy, conf_id, settings.rmsd) for _, k, _ in kept):
            continue
        kept.append((molh, conf_id, relative))
    return kept


def _conformers(
    name: str, charge: int, mult: int, found: list[tuple[Any, int, float | None]]
) -> tuple[Conformer, ...]:
    out = []
    for index, (mol, conf_id, energy) in enumerate(found, 1):
        comment = f"{name} conformer {index} charge={charge} mult={mult}"
        if energy is not None:
            comment += f" E_ff={energy:.3f} kcal/mol"
        out.append(
            Conformer(index, _xyz(mol, conf_id, comment), None if energy is None else round(energy, 6))
        )
    return tuple(out)


# ------------------------------------------------------------------------------------------ SMILES


@dataclass(frozen=True)
class SmilesLine:
    line: int
    smiles: str
    name: str
    charge: int | None
    mult: int | None


def parse_smiles_lines(path: Path, text: str, problems: Problems) -> list[SmilesLine]:
    """``SMILES [name] [charge=N] [mult=M]`` per line; ``#`` starts a comment; blank lines skipped.
    Needs no RDKit: the file's layout is checked before the chemistry."""
    entries: list[SmilesLine] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), 1):
        # '#' is also a SMILES bond (C#N): a comment starts only at the line's start or after a space
        content = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip()
        if not content:
            continue
        smiles, *rest = content.split()
        name: str | None = None
        values: dict[str, int] = {}
        bad = False
        for token in rest:
            match = _KEY_VALUE.match(token)
            if match:
                key = "mult" if match.group(1).lower().startswith("mult") else "charge"
                value = _integer(match.group(2))
                if value is None:
                    problems.add(f"{key} must be an integer, got {match.group(2)!r}", number)
                    bad = True
                else:
                    values[key] = value
            elif name is None:
                name = token
            else:
                problems.add(f"unexpected {token!r} (a line is: SMILES [name] [charge=N] [mult=M])", number)
                bad = True
        if name is not None and not name.isprintable():
            problems.add(f"name {name!r} has control characters", number)
            bad = True
        name = name or f"{path.stem}_{number}"
        if name in seen:
            problems.add(f"name {name!r} is already used on line {seen[name]}", number)
            bad = True
        seen.setdefault(name, number)
        if not bad:
            entries.append(SmilesLine(number, smiles, name, values.get("charge"), values.get("mult")))
    if not entries and not problems.lines:
        problems.add("no SMILES in the file (only comments and blank lines)", 1)
    return entries


def read_smiles_file(path: Path, settings: ConformerSettings, problems: Problems) -> list[MoleculeInput]:
    text = read_text(path)
    entries = parse_smiles_lines(path, text, problems)
    _rdkit(path)
    molecules: list[MoleculeInput] = []
    with _quiet():
        for entry in entries:
            mol, why = _parse_smiles(entry.smiles)
            if mol is None:
                problems.add(
                    f"cannot parse SMILES {entry.smiles!r}" + (f": {why}" if why else ""), entry.line
                )
                continue
            molecule = _from_mol(
                path, entry.line, entry.name, mol, entry.charge, entry.mult, settings, problems
            )
            if molecule is not None:
                molecules.append(molecule)
    return molecules


def _from_mol(
    path: Path,
    line: int,
    name: str,
    mol: Any,
    charge: int | None,
    mult: int | None,
    settings: ConformerSettings,
    problems: Problems,
) -> MoleculeInput | None:
    from rdkit import Chem

    charge, mult, problem = _spin(Chem.AddHs(mol), charge, mult)
    if problem:
        problems.add(problem, line)
        return None
    found = generate(mol, settings)
    if not found:
        problems.add(f"RDKit cannot embed {name!r} in 3D: give its geometry as an .xyz file", line)
        return None
    return MoleculeInput(name, charge, mult, path, _conformers(name, charge, mult, found), line=line)


# --------------------------------------------------------------------------------------------- SDF


@dataclass
class SdfRecord:
    line: int  # 1-based line of the record's title
    number: int  # 1-based record number
    block: str  # the molfile part, up to and including "M  END"
    properties: dict[str, tuple[str, int]]  # lower-case name -> (value, line)


def split_sdf(text: str) -> list[SdfRecord]:
    """The records of an SDF file ($$$$-separated), with their data items; needs no RDKit."""
    lines = text.split("\n")
    records: list[SdfRecord] = []
    start = 0
    for end in [i for i, raw in enumerate(lines) if raw.strip() == "$$$$"] + [len(lines)]:
        chunk = lines[start:end]
        if any(raw.strip() for raw in chunk):
            cut = next((i for i, raw in enumerate(chunk) if raw.strip() == "M  END"), len(chunk) - 1)
            properties: dict[str, tuple[str, int]] = {}
            i = cut + 1
            while i < len(chunk):
                match = re.match(r"^>.*<([^>]+)>", chunk[i])
                if match:
                    value = chunk[i + 1] if i + 1 < len(chunk) else ""
                    properties[match.group(1).strip().lower()] = (value.strip(), start + i + 2)
                i += 1
            block = "\n".join(chunk[: cut + 1]) + "\n"
            records.append(SdfRecord(start + 1, len(records) + 1, block, properties))
        start = end + 1
    return records


def _sdf_overrides(record: SdfRecord, problems: Problems) -> tuple[int | None, int | None, bool]:
    """``charge`` and ``mult`` (or ``multiplicity``) data items, when the record has them."""
    found: dict[str, int | None] = {"charge": None, "mult": None}
    ok = True
    for key, names in (("charge", ("charge",)), ("mult", ("mult", "multiplicity"))):
        for item in names:
            if item in record.properties:
                value, line = record.properties[item]
                number = _integer(value)
                if number is None:
                    problems.add(f"<{item}> must be an integer, got {value!r}", line)
                    ok = False
                found[key] = number
    return found["charge"], found["mult"], ok


def read_sdf_file(path: Path, settings: ConformerSettings, problems: Problems) -> list[MoleculeInput]:
    text = read_text(path)
    records = split_sdf(text)
    Chem = _rdkit(path)
    groups: dict[str, list[tuple[SdfRecord, Any, int, int]]] = {}
    with _quiet():
        for record in records:
            mol = Chem.MolFromMolBlock(record.block, sanitize=False, removeHs=False)
            if mol is None:
                problems.add(
                    f"cannot read SDF record {record.number} (RDKit refused its molfile)", record.line
                )
                continue
            found = Chem.DetectChemistryProblems(mol)
            if found:
                problems.add(f"SDF record {record.number}: {found[0].Message()}", record.line)
                continue
            try:
                Chem.SanitizeMol(mol)
            except Exception as exc:  # RDKit raises its own classes, not all importable by name
                problems.add(f"SDF record {record.number}: {str(exc).strip()}", record.line)
                continue
            title = record.block.split("\n", 1)[0].strip()
            if title and not title.isprintable():
                problems.add(
                    f"SDF record {record.number}: title {title!r} has control characters", record.line
                )
                continue
            name = title or (path.stem if len(records) == 1 else f"{path.stem}_{record.number}")
            charge, mult, ok = _sdf_overrides(record, problems)
            if not ok:
                continue
            three_d = mol.GetNumConformers() > 0 and mol.GetConformer().Is3D()
            molh = Chem.AddHs(mol, addCoords=three_d)
            charge, mult, problem = _spin(molh, charge, mult)
            if problem:
                problems.add(f"SDF record {record.number}: {problem}", record.line)
                continue
            groups.setdefault(name, []).append((record, molh if three_d else mol, charge, mult))
        return [
            m for name, group in groups.items() if (m := _sdf_molecule(path, name, group, settings, problems))
        ]


def _sdf_molecule(
    path: Path,
    name: str,
    group: list[tuple[Any, Any, int, int]],
    settings: ConformerSettings,
    problems: Problems,
) -> MoleculeInput | None:
    """One molecule from the records that share its name: their 3D geometries are its conformers
    (kept in file order, duplicates dropped); a lone 2D record gets generated conformers."""
    first, mol, charge, mult = group[0]
    three_d = all(m.GetConformer().Is3D() for _, m, _, _ in group if m.GetNumConformers())
    if len(group) == 1 and not three_d:
        found = generate(mol, settings)
        if not found:
            problems.add(f"RDKit cannot embed {name!r} in 3D: give its geometry as an .xyz file", first.line)
            return None
        return MoleculeInput(
            name, charge, mult, path, _conformers(name, charge, mult, found), line=first.line
        )
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    for record, other, c, m in group[1:]:
        if not other.GetNumConformers() or not other.GetConformer().Is3D():
            problems.add(
                f"SDF record {record.number}: a conformer of {name!r} without 3D coordinates", record.line
            )
            return None
        if [a.GetSymbol() for a in other.GetAtoms()] != symbols:
            problems.add(
                f"SDF record {record.number}: {name!r} again but with other atoms than record {first.number}"
                " (records sharing a name are conformers of one molecule)",
                record.line,
            )
            return None
        if (c, m) != (charge, mult):
            problems.add(
                f"SDF record {record.number}: {name!r} again with charge {c} mult {m},"
                f" record {first.number} has charge {charge} mult {mult}",
                record.line,
            )
            return None
    heavies = [_heavy(m) for _, m, _, _ in group]
    kept: list[int] = []
    for i in range(len(group)):
        if len(kept) >= settings.count:
            break
        if not any(_same(heavies[k], -1, heavies[i], -1, settings.rmsd) for k in kept):
            kept.append(i)
    found = [(group[i][1], -1, None) for i in kept]
    return MoleculeInput(name, charge, mult, path, _conformers(name, charge, mult, found), line=first.line)
