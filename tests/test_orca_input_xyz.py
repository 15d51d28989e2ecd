"""xyz files and presets: reading molecules with file:line errors, rendering inputs ORCA accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from orca_hpc.errors import InputFileError, UserError
from orca_hpc.orca.inputs import parse_input
from orca_hpc.orca.presets import render_preset
from orca_hpc.orca.xyz import (
    element_symbol,
    format_xyz,
    read_last_frame,
    read_xyz,
    read_xyz_frames,
    spin_problem,
)

INPUTS = Path(__file__).parent / "fixtures" / "inputs"


def test_read_fixture_xyz() -> None:
    mol = read_xyz(INPUTS / "water.xyz")
    assert [a.symbol for a in mol.atoms] == ["O", "H", "H"]
    assert mol.comment == "water, optimised elsewhere"
    assert mol.atoms[1].x == pytest.approx(-0.792)
    assert mol.electrons_neutral == 10 and mol.formula == "OH2"


def test_frames_and_last_frame(tmp_path: Path) -> None:
    path = tmp_path / "opt_trj.xyz"
    path.write_text("2\nstep 1\nH 0 0 0\nH 0 0 0.80\n2\nstep 2\nH 0 0 0\nH 0 0 0.74\n\n")
    frames = read_xyz_frames(path)
    assert [f.comment for f in frames] == ["step 1", "step 2"]
    assert read_last_frame(path).atoms[1].z == pytest.approx(0.74)
    assert read_xyz(path).comment == "step 1"


def test_format_round_trip(tmp_path: Path) -> None:
    mol = read_xyz(INPUTS / "water.xyz")
    path = tmp_path / "w.xyz"
    path.write_text(format_xyz(mol))
    assert read_xyz(path) == mol


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "empty xyz file"),
        ("three\nc\nH 0 0 0\n", 1, "atom count"),
        ("3\nc\nH 0 0 0\nH 0 0 1\n", 5, "only 2 atom lines"),
        ("2\nc\nH 0 0 0\nH 0 0 1\nH 0 0 2\n", 5, "more atom lines than the atom count (2)"),
        ("2\nc\nH 0 0 0\nH 0 zero 1\n", 4, "bad coordinate"),
        ("2\nc\nH 0 0 0\nXy 0 0 1\n", 4, "unknown element 'Xy'"),
        ("2\nc\nH 0 0 0\nH 0 0\n", 4, "3 coordinates"),
        ("0\nempty\n", 1, "0 atoms"),
        ("1\n", 1, "only 0 atom lines"),
    ],
)
def test_malformed_xyz(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(InputFileError) as info:
        read_xyz(path)
    assert info.value.line == line, str(info.value)
    assert message in info.value.problem
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_xyz_binary_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "b.xyz"
    path.write_bytes(b"\x00\xff")
    with pytest.raises(InputFileError, match="binary"):
        read_xyz(path)
    with pytest.raises(InputFileError, match="cannot read"):
        read_xyz(tmp_path / "none.xyz")


def test_elements() -> None:
    assert element_symbol("cl") == "Cl" and element_symbol("CL") == "Cl"
    assert element_symbol("26") == "Fe" and element_symbol("0") is None and element_symbol("119") is None
    assert element_symbol("Qq") is None


@pytest.mark.parametrize(
    ("electrons", "charge", "mult", "ok"),
    [
        (10, 0, 1, True),
        (10, 0, 2, False),
        (10, 1, 2, True),
        (10, 0, 3, True),
        (10, 1, 1, False),
        (1, 2, 1, False),
        (2, 0, 5, False),
        (152, 0, 2, False),
    ],
)
def test_spin_problem(electrons: int, charge: int, mult: int, ok: bool) -> None:
    assert (spin_problem(electrons, charge, mult) is None) is ok


def test_spin_problem_message_matches_orca() -> None:
    expected = "multiplicity (2) is even and number of electrons (152) is even -> impossible"
    assert spin_problem(152, 0, 2) == expected


def test_render_preset_default_template_parses_back() -> None:
    mol = read_xyz(INPUTS / "water.xyz")
    text, _parsed = render_preset("r2SCAN-3c Opt", mol, 0, 1, 8, 3000)
    parsed = parse_input(Path("/x/water.inp"), text)
    job = parsed.first
    assert job.keywords == ["r2SCAN-3c", "Opt"]
    assert (parsed.nprocs, parsed.maxcore, job.natoms, job.coord_kind) == (8, 3000, 3, "xyz")
    assert "opt" in job.flags
    assert text.startswith("# water, optimised elsewhere\n")


def test_render_preset_custom_template() -> None:
    mol = read_xyz(INPUTS / "water.xyz")
    template = (
        "! {{ method }} PAL{{ nprocs }}\n%maxcore {{ maxcore }}\n*xyz {{ charge }} {{ mult }}\n"
        "{% for a in molecule.atoms %}{{ a.symbol }} {{ a.x }} {{ a.y }} {{ a.z }}\n{% endfor %}*\n"
    )
    text, _parsed = render_preset("!HF def2-SVP", mol, 1, 2, 4, 1000, template)
    parsed = parse_input(Path("/x/w.inp"), text)
    assert (parsed.nprocs, parsed.first.charge, parsed.first.multiplicity) == (4, 1, 2)


@pytest.mark.parametrize(
    ("method", "charge", "mult", "template", "message"),
    [
        ("HF\n%pal nprocs 99 end", 0, 1, None, "one line"),
        ("", 0, 1, None, "one line"),
        ("HF", 0, 2, None, "is even and number of electrons (10) is even"),
        ("HF", 0, 1, "{{ nonsense }}", "preset template"),
        ("HF", 0, 1, "! {{ method }}\n", "ORCA would refuse"),
    ],
)
def test_render_preset_refuses(
    method: str, charge: int, mult: int, template: str | None, message: str
) -> None:
    mol = read_xyz(INPUTS / "water.xyz")
    with pytest.raises(UserError) as info:
        render_preset(method, mol, charge, mult, 2, 100, template)
    assert message in str(info.value)


def test_text_read_by_the_caller_is_held_to_the_same_rules(tmp_path: Path) -> None:
    """A BOM is dropped and a NUL refused whether the file is read here or the caller read it (a
    workflow step's final geometry is read from its attempt folder without following links)."""
    path = tmp_path / "final.xyz"
    body = "1\nlast frame\nXe 0 0 0\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert read_xyz_frames(path)[-1].atoms[0].symbol == "Xe"
    assert read_xyz_frames(path, "\ufeff" + body)[-1].atoms[0].symbol == "Xe"
    path.write_bytes(body.encode() + b"\x00")
    for text in (None, body + "\x00"):
        with pytest.raises(InputFileError, match="binary file, not an xyz file"):
            read_xyz_frames(path, text)
