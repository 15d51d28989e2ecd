"""Molecules in (`orca_hpc.molecules`): xyz files pure Python; SMILES and SDF through RDKit when the
extra is installed, and a one-line refusal naming the file and the install command when it is not."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orca_hpc.errors import UserError
from orca_hpc.molecules import ConformerSettings, MoleculeInputError, read_molecules
from orca_hpc.molecules.superpose import superposed_rmsd

FUZZ = settings(
    max_examples=int(os.environ.get("MOLECULES_FUZZ_EXAMPLES", "50")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# A zig-zag C4 skeleton (no hydrogens: every atom is heavy, so the atom order is the whole story).
CHAIN = [(0.0, 0.0, 0.0), (1.5, 0.0, 0.0), (2.0, 1.4, 0.0), (3.5, 1.4, 0.0)]
# The same chain with its last atom turned out of plane: another conformer.
TWISTED = [(0.0, 0.0, 0.0), (1.5, 0.0, 0.0), (2.0, 1.4, 0.0), (1.5, 2.0, 1.3)]


def _rotated(points, angle_a=0.7, angle_b=-1.1, shift=(4.0, -2.0, 9.0)):
    ca, sa, cb, sb = math.cos(angle_a), math.sin(angle_a), math.cos(angle_b), math.sin(angle_b)
    out = []
    for x, y, z in points:
        x, y = ca * x - sa * y, sa * x + ca * y  # about z
        y, z = cb * y - sb * z, sb * y + cb * z  # about x
        out.append((x + shift[0], y + shift[1], z + shift[2]))
    return out


def _frame(points, comment="", symbol="C"):
    return f"{len(points)}\n{comment}\n" + "".join(
        f"{symbol} {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in points
    )


def _coords(xyz: str) -> list[tuple[str, float, float, float]]:
    rows = [line.split() for line in xyz.splitlines()[2:]]
    return [(r[0], float(r[1]), float(r[2]), float(r[3])) for r in rows]


def _plain_rmsd(a, b) -> float:
    return math.sqrt(
        sum((p - q) ** 2 for u, v in zip(a, b, strict=True) for p, q in zip(u, v, strict=True)) / len(a)
    )


# ---------------------------------------------------------------------------------------- superpose


def test_superposition_finds_a_rotated_and_moved_copy() -> None:
    moved = _rotated(CHAIN)
    assert _plain_rmsd(CHAIN, moved) > 5  # far apart as they stand
    assert superposed_rmsd(CHAIN, moved) < 1e-6
    assert superposed_rmsd(CHAIN, TWISTED) > 0.6


def test_a_mirror_image_is_not_superposable() -> None:
    chiral = [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.5, 0.0), (0.0, 0.0, 2.0)]
    mirror = [(x, y, -z) for x, y, z in chiral]
    assert superposed_rmsd(chiral, mirror) > 0.1  # a rotation, never a reflection


points = st.lists(
    st.tuples(*[st.floats(-10, 10, allow_nan=False) for _ in range(3)]), min_size=1, max_size=12
)


@FUZZ
@given(points, st.floats(-math.pi, math.pi), st.floats(-math.pi, math.pi), st.randoms())
def test_superposed_rmsd_is_zero_for_a_moved_copy_and_at_most_the_plain_rmsd(a, t1, t2, rnd) -> None:
    assert superposed_rmsd(a, _rotated(a, t1, t2)) < 1e-5
    b = [(x + rnd.uniform(-1, 1), y + rnd.uniform(-1, 1), z) for x, y, z in a]
    best = superposed_rmsd(a, b)
    assert best <= _plain_rmsd(a, b) + 1e-6  # sqrt of a difference: ~1e-8 of rounding
    assert abs(best - superposed_rmsd(b, a)) < 1e-6


# ---------------------------------------------------------------------------------------------- xyz


def test_a_single_frame_is_one_molecule_with_one_conformer(tmp_path: Path) -> None:
    water = tmp_path / "water.xyz"
    water.write_text("3\nwater\nO 0 0 0\nH 0 0 0.96\nH 0.93 0 -0.24\n")
    hydroxyl = tmp_path / "hydroxyl.xyz"
    hydroxyl.write_text("2\n\nO 0 0 0\nH 0 0 0.97\n")
    first, second = read_molecules([water, hydroxyl])
    assert (first.name, first.charge, first.multiplicity, len(first.conformers)) == ("water", 0, 1, 1)
    assert (second.name, second.charge, second.multiplicity) == ("hydroxyl", 0, 2)  # odd: lowest spin 2
    assert [a[0] for a in _coords(first.conformers[0].xyz)] == ["O", "H", "H"]
    assert first.conformers[0].index == 1 and first.source == water


def test_frames_are_conformers_and_a_superposable_copy_is_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "chain.xyz"
    path.write_text(
        _frame(CHAIN, "one") + _frame(_rotated(CHAIN), "moved copy") + "\n" + _frame(TWISTED, "two")
    )
    (molecule,) = read_molecules([path])
    assert [c.index for c in molecule.conformers] == [1, 2]
    kept = [[xyz[1:] for xyz in _coords(c.xyz)] for c in molecule.conformers]
    assert _plain_rmsd(kept[0], CHAIN) < 1e-5 and _plain_rmsd(kept[1], TWISTED) < 1e-5
    # with a threshold below their distance the twisted one is kept, above it is a duplicate too
    (loose,) = read_molecules([path], ConformerSettings(rmsd=5.0))
    assert len(loose.conformers) == 1
    (capped,) = read_molecules([path], ConformerSettings(count=1, rmsd=0.0))
    assert len(capped.conformers) == 1


def test_charge_and_multiplicity_from_the_comment_lines(tmp_path: Path) -> None:
    path = tmp_path / "anion.xyz"
    path.write_text(_frame(CHAIN, "charge=-1 mult=2") + _frame(TWISTED, "E=-1.0"))
    (molecule,) = read_molecules([path])
    assert (molecule.charge, molecule.multiplicity) == (-1, 2)
    # each conformer keeps its frame's own comment line (a title, notes, another tool's directives)
    assert [c.xyz.splitlines()[1] for c in molecule.conformers] == ["charge=-1 mult=2", "E=-1.0"]


def test_impossible_or_disagreeing_charge_and_multiplicity_are_refused_at_their_line(tmp_path: Path) -> None:
    odd = tmp_path / "odd.xyz"
    odd.write_text(_frame(CHAIN) + "\n\n" + _frame(TWISTED, "mult=2"))  # 24 electrons, doublet
    disagree = tmp_path / "disagree.xyz"
    disagree.write_text(_frame(CHAIN, "charge=1 mult=2") + _frame(TWISTED, "charge=0"))
    with pytest.raises(MoleculeInputError) as info:
        read_molecules([odd, disagree])
    assert info.value.problems == [
        f"{odd}:10: multiplicity (2) is even and number of electrons (24) is even -> impossible",
        f"{disagree}:8: charge=0 differs from charge=1 of an earlier frame",
    ]


def test_frames_with_other_atoms_are_not_conformers(tmp_path: Path) -> None:
    path = tmp_path / "mixed.xyz"
    path.write_text(_frame(CHAIN) + _frame(CHAIN, symbol="N"))
    with pytest.raises(UserError, match=rf"{path.name}:7: this frame's atoms \(N4, in order\) differ"):
        read_molecules([path])


def test_every_problem_of_every_file_in_one_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xyz"
    bad.write_text("2\n\nC 0 0 0\nXx 0 0 1\n")
    empty = tmp_path / "empty.smi"
    empty.write_text("\n  \n")
    binary = tmp_path / "bin.xyz"
    binary.write_bytes(b"3\n\x00\x01")
    other = tmp_path / "notes.txt"
    other.write_text("CCO\n")
    missing = tmp_path / "missing.xyz"
    with pytest.raises(MoleculeInputError) as info:
        read_molecules([bad, empty, binary, other, missing])
    assert info.value.problems == [
        f"{bad}:4: unknown element 'Xx'",
        f"{empty}:1: empty file",
        f"{binary}: binary file, not a molecule file",
        f"{other}: not a molecule file (.txt; known: .xyz, .smi, .smiles, .sdf)",
        f"{missing}: no such file",
    ]
    assert str(info.value) == "5 problems: " + "; ".join(info.value.problems)  # one line


def test_molecule_names_are_unique_across_files(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "water.xyz").write_text("3\n\nO 0 0 0\nH 0 0 0.96\nH 0.93 0 -0.24\n")
    with pytest.raises(UserError, match=r"b/water.xyz:1: molecule name 'water' is used by .*a/water.xyz:1"):
        read_molecules([tmp_path / "a" / "water.xyz", tmp_path / "b" / "water.xyz"])


@FUZZ
@given(
    st.lists(
        st.sampled_from(
            ["2", "3", "\n", " ", "C", "H", "0", "1.5", "-2e1", "charge=1", "mult=3", "é", "\x00"]
        ),
        max_size=40,
    )
)
def test_the_xyz_reader_refuses_any_text_with_a_user_error_only(tmp_path: Path, pieces: list[str]) -> None:
    path = tmp_path / "fuzz.xyz"
    path.write_text("".join(pieces))
    try:
        molecules = read_molecules([path])
    except UserError:
        return
    assert len(molecules) == 1 and molecules[0].conformers


# --------------------------------------------------------------------------------------- no RDKit

NO_RDKIT = """
import sys
sys.modules["rdkit"] = None  # as if the extra were not installed
from orca_hpc.cli import main
from orca_hpc.molecules import read_molecules
from orca_hpc.errors import UserError
try:
    read_molecules(sys.argv[1:])
except UserError as exc:
    print(exc)
"""


def test_without_rdkit_smiles_and_sdf_say_how_to_get_it(tmp_path: Path) -> None:
    smi = tmp_path / "set.smi"
    smi.write_text("CCO ethanol\n")
    sdf = tmp_path / "set.sdf"
    sdf.write_text("x\n")
    out = subprocess.run(
        [sys.executable, "-c", NO_RDKIT, str(smi), str(sdf)], capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines() == [
        f"2 problems: {smi}: reading a SMILES file needs RDKit: pip install 'orca-hpc[rdkit]'; "
        f"{sdf}: reading an SDF file needs RDKit: pip install 'orca-hpc[rdkit]'"
    ]
    assert out.stderr == ""


def test_importing_orca_hpc_never_imports_rdkit(tmp_path: Path) -> None:
    xyz = tmp_path / "w.xyz"
    xyz.write_text("3\n\nO 0 0 0\nH 0 0 0.96\nH 0.93 0 -0.24\n")
    code = (
        "import sys, orca_hpc, orca_hpc.api, orca_hpc.molecules, orca_hpc.cli;"
        "from orca_hpc.molecules import read_molecules; read_molecules([sys.argv[1]]);"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rdkit', 'numpy')))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(xyz)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------ SMILES, SDF


def _dihedral(p0, p1, p2, p3) -> float:
    def sub(u, v):
        return (u[0] - v[0], u[1] - v[1], u[2] - v[2])

    def cross(u, v):
        return (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])

    def dot(u, v):
        return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]

    b0, b1, b2 = sub(p1, p0), sub(p2, p1), sub(p3, p2)
    n1, n2 = cross(b0, b1), cross(b1, b2)
    m = cross(n1, b1)
    norm = math.sqrt(dot(b1, b1))
    return abs(math.degrees(math.atan2(dot(m, n2) / norm, dot(n1, n2))))


def test_smiles_conformers_lie_in_the_window_sorted_and_reproducible(tmp_path: Path) -> None:
    pytest.importorskip("rdkit")
    path = tmp_path / "set.smi"
    path.write_text("# alkanes and an alcohol\nCCO ethanol\n\nCCCC butane   # anti and gauche\n")
    chosen = ConformerSettings(count=8, rmsd=0.3, energy_window_kcal=3.0, seed=7)
    ethanol, butane = read_molecules([path], chosen)
    for molecule in (ethanol, butane):
        energies = [c.energy_kcal for c in molecule.conformers]
        assert 1 <= len(energies) <= chosen.count
        assert energies[0] == 0 and energies == sorted(energies)
        assert all(e is not None and e <= chosen.energy_window_kcal for e in energies)
        assert [c.index for c in molecule.conformers] == list(range(1, len(energies) + 1))
    assert [a[0] for a in _coords(ethanol.conformers[0].xyz)].count("H") == 6  # hydrogens added
    carbons = [[a[1:] for a in _coords(c.xyz) if a[0] == "C"] for c in butane.conformers]
    torsions = [_dihedral(*chain) for chain in carbons]
    assert len(torsions) >= 2 and torsions[0] > 170  # anti lowest, then gauche
    assert all(40 < t < 90 for t in torsions[1:])
    again = read_molecules([path], chosen)
    assert [c.xyz for m in again for c in m.conformers] == [
        c.xyz for m in (ethanol, butane) for c in m.conformers
    ]
    (narrow,) = read_molecules([path], ConformerSettings(count=8, rmsd=0.3, energy_window_kcal=0.1, seed=7))[
        1:
    ]
    assert len(narrow.conformers) == 1  # gauche is ~0.8 kcal/mol above anti in MMFF94


def test_smiles_charge_and_multiplicity(tmp_path: Path) -> None:
    pytest.importorskip("rdkit")
    path = tmp_path / "ions.smi"
    path.write_text("[CH3] methyl\nC[NH3+] methylammonium\nO=O oxygen mult=3\nCC(=O)[O-]\nF[Xe]F xef2\n")
    methyl, ammonium, oxygen, acetate, xef2 = read_molecules([path], ConformerSettings(count=2))
    assert xef2.conformers and all(c.energy_kcal is None for c in xef2.conformers)  # no force field
    assert (methyl.charge, methyl.multiplicity) == (0, 2)
    assert (ammonium.charge, ammonium.multiplicity) == (1, 1)
    assert (oxygen.charge, oxygen.multiplicity) == (0, 3)
    assert (acetate.name, acetate.charge, acetate.multiplicity, acetate.line) == ("ions_4", -1, 1, 4)
    assert "charge=1 mult=1" in ammonium.conformers[0].xyz.splitlines()[1]


def test_bad_smiles_lines_are_reported_by_line_without_rdkit_noise(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("rdkit")
    path = tmp_path / "bad.smi"
    path.write_text("CCO ethanol\nC1CC ring\nCN(C)(C)(C)C five\nCC ethanol\nCO methanol mult=2\nC x y\n")
    with pytest.raises(MoleculeInputError) as info:
        read_molecules([path])
    assert info.value.problems == [
        f"{path}:2: cannot parse SMILES 'C1CC'",
        f"{path}:3: cannot parse SMILES 'CN(C)(C)(C)C': Explicit valence for atom # 1 N, 5, is greater"
        " than permitted",
        f"{path}:4: name 'ethanol' is already used on line 1",
        f"{path}:5: multiplicity (2) is even and number of electrons (18) is even -> impossible",
        f"{path}:6: unexpected 'y' (a line is: SMILES [name] [charge=N] [mult=M])",
    ]
    assert capfd.readouterr().err == ""


def test_sdf_records_sharing_a_name_are_one_molecules_conformers(tmp_path: Path) -> None:
    Chem = pytest.importorskip("rdkit.Chem")
    from rdkit.Chem import rdDistGeom

    butane = Chem.AddHs(Chem.MolFromSmiles("CCCC"))
    ids = list(rdDistGeom.EmbedMultipleConfs(butane, 2, randomSeed=3))
    path = tmp_path / "set.sdf"
    writer = Chem.SDWriter(str(path))
    butane.SetProp("_Name", "butane")
    for conf_id in ids:
        writer.write(butane, confId=conf_id)
    writer.write(butane, confId=ids[0])  # the same geometry again: a duplicate
    cation = Chem.MolFromSmiles("C[NH3+]")
    cation.SetProp("_Name", "cation")
    cation.SetProp("mult", "3")  # overrides the singlet RDKit would assume
    writer.write(cation)
    writer.close()
    first, second = read_molecules([path], ConformerSettings(rmsd=0.0001))
    assert (first.name, first.charge, first.multiplicity, first.line) == ("butane", 0, 1, 1)
    assert len(first.conformers) == 2 and all(c.energy_kcal is None for c in first.conformers)
    given_xyz = [[a[1:] for a in _coords(c.xyz)] for c in first.conformers]
    for conf_id, xyz in zip(ids, given_xyz, strict=True):  # the file's geometries, unchanged
        assert _plain_rmsd(xyz, [tuple(p) for p in butane.GetConformer(conf_id).GetPositions()]) < 1e-3
    assert (second.name, second.charge, second.multiplicity) == ("cation", 1, 3)
    assert second.conformers[0].energy_kcal == 0  # a 2D record: conformers generated


@FUZZ
@given(
    st.lists(
        st.sampled_from(
            [
                "C",
                "c",
                "O",
                "N",
                "(",
                ")",
                "1",
                "=",
                "#",
                "[",
                "]",
                "+",
                " ",
                "\n",
                "x",
                "mult=2",
                "charge=+1",
                "é",
            ]
        ),
        max_size=24,
    )
)
def test_the_smiles_reader_refuses_any_text_with_a_user_error_only(tmp_path: Path, pieces: list[str]) -> None:
    pytest.importorskip("rdkit")
    path = tmp_path / "fuzz.smi"
    path.write_text("".join(pieces))
    try:
        molecules = read_molecules([path], ConformerSettings(count=1))
    except UserError:
        return
    assert all(m.conformers for m in molecules)


def test_a_charge_the_comment_gives_in_another_form_is_read_or_refused_never_ignored(tmp_path: Path) -> None:
    """Before, `charge=-1.0` (as some writers put it) did not match and was taken as absent: the
    hydroxide anion ran as a neutral doublet radical. A whole number written as a float is read; a
    value that is no whole number is refused at its line."""
    oh = tmp_path / "oh.xyz"
    oh.write_text("2\nhydroxide charge=-1.0\nO 0 0 0\nH 0 0 0.97\n")
    [mol] = read_molecules([oh])
    assert (mol.charge, mol.multiplicity) == (-1, 1)
    oh.write_text("2\nhydroxide mult=triplet charge=-1\nO 0 0 0\nH 0 0 0.97\n")
    with pytest.raises(UserError) as info:
        read_molecules([oh])
    assert str(info.value).splitlines() == [f"{oh}:2: comment line: mult='triplet' is not a whole number"]
