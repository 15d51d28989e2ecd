"""Parsing and validating ORCA inputs: real fixtures, messy valid forms, and what ORCA would refuse."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from orca_hpc.errors import InputFileError
from orca_hpc.orca.inputs import parse_input, referenced_files

HERE = Path(__file__).parent
INPUTS = HERE / "fixtures" / "inputs"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "orca"  # ../shared beside the repo

WATER = "O 0.0 0.0 0.0\nH 0.0 0.0 0.97\nH 0.0 0.94 -0.24\n"


def parse(text: str, tmp_path: Path | None = None, name: str = "job.inp"):
    folder = tmp_path or Path("/nonexistent-folder")
    return parse_input(folder / name, text, check_files=tmp_path is not None)


# ---- real inputs ------------------------------------------------------------------------------------

# file -> (nprocs, maxcore, keywords, coordinate kind, charge, mult, atoms, flags)
DVB = "b3lyp sto-3g usesym"
REAL = {
    "cclib__basicORCA4.1__dvb_sp_un.inp": (4, None, f"uks {DVB}", "xyz", 1, 2, 20, {"sp"}),
    "cclib__basicORCA4.2__dvb_gopt.inp": (4, None, f"rks {DVB} opt", "xyz", 0, 1, 20, {"opt"}),
    "cclib__basicORCA5.0__dvb_gopt.inp": (2, None, f"rks {DVB} opt", "xyz", 0, 1, 20, {"opt"}),
    "cclib__basicORCA5.0__dvb_ir.inp": (2, None, f"rks {DVB} freq", "xyz", 0, 1, 20, {"freq"}),
    "cclib__basicORCA6.0__dvb_ir.inp": (4, 700, f"{DVB} freq", "xyz", 0, 1, 20, {"freq"}),
    "cclib__basicORCA6.0__dvb_sp_hf.inp": (4, 700, "hf sto-3g usesym", "xyz", 0, 1, 20, {"sp"}),
    "cclib__basicORCA6.0__dvb_gopt.inp": (1, None, f"rks {DVB} opt", "xyz", 0, 1, 20, {"opt"}),
    "cclib__basicORCA6.0__water_ccsd.inp": (4, 700, "ccsd sto-3g", "xyz", 0, 1, 3, {"sp"}),
    "property_json/opi__freq.inp": (4, None, "tpss def2-tzvp freq pal4", "xyz", 0, 1, 3, {"freq"}),
    "property_json/opi__opt.inp": (4, None, "wb97x-3c opt pal4", "xyz", 0, 1, 3, {"opt"}),
    "property_json/opi__scf.inp": (1, None, "hf def2-svp d3 sp", "xyz", 0, 1, 3, {"sp"}),
}


@pytest.mark.usefixtures("shared_orca")  # fails, never skips, when ../shared is missing
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_inputs(name: str) -> None:
    nprocs, maxcore, keywords, kind, charge, mult, atoms, flags = REAL[name]
    parsed = parse_input(SHARED / name)
    job = parsed.first
    assert (parsed.nprocs, parsed.maxcore) == (nprocs, maxcore)
    assert [k.lower() for k in job.keywords] == keywords.split()
    assert (job.coord_kind, job.charge, job.multiplicity, job.natoms) == (kind, charge, mult, atoms)
    assert set(job.flags) == flags


@pytest.mark.usefixtures("shared_orca")  # fails, never skips, when ../shared is missing
def test_every_shared_input_parses() -> None:
    files = sorted(SHARED.glob("*.inp")) + sorted(SHARED.glob("property_json/*.inp"))
    assert len(files) >= 10
    for path in files:
        parsed = parse_input(path)
        assert parsed.first.natoms > 0, path
        assert parsed.first.block("output") is None or parsed.first.block("output").get("printlevel") in (
            None,
            "normal",
        ), path


def test_output_block_options_from_real_layout() -> None:
    text = (
        "! rks b3lyp\n\n%output\n printlevel normal\n print[ p_mos ] 1\n end \n\n* xyz 0 1\n" + WATER + "*\n"
    )
    block = parse(text).first.block("output")
    assert block is not None
    assert block.values == {"printlevel": "normal", "print[p_mos]": "1"}


# ---- hand-made fixtures --------------------------------------------------------------------------------


def test_messy_multi_job_fixture() -> None:
    parsed = parse_input(INPUTS / "messy_multi.inp")
    first, second = parsed.jobs
    # "#the processes#" is a closed comment, so SlowConv after it is a keyword.
    assert first.keywords == ["r2scan-3c", "OPT", "TightSCF", "PAL8", "SlowConv"]
    assert first.nprocs == 6  # %pal beats PAL8
    assert first.maxcore == 2500 and first.base == "step1"
    assert first.coord_kind == "xyzfile" and (first.charge, first.multiplicity) == (0, 1)
    assert first.option("scf", "maxiter") == "300"
    assert first.option("scf", "shift") == "Shift 0.1 ErrOff 0.1 end"
    assert first.option("geom", "maxiter") == "150"
    assert "opt" in first.flags
    assert second.inherits_geometry and second.coord_kind is None and second.multiplicity == 1
    assert second.nprocs == 6 and second.maxcore == 4000 and second.base == "step2"
    assert "moread" in second.flags
    assert parsed.nprocs == 6 and parsed.maxcore == 4000
    kinds = [(ref.kind, ref.name, ref.line) for ref in parsed.files]
    assert kinds == [("xyzfile", "water.xyz", 9), ("moinp", "step1.gbw", 23)]
    # step1.gbw is written by job 1, so only the xyz file must be shipped with the input.
    assert referenced_files(parsed) == [INPUTS / "water.xyz"]


def test_comment_closed_by_second_hash_keeps_the_rest_of_the_line() -> None:
    text = "! TightSCF #c# SlowConv\n* xyz 0 1\n" + WATER + "*\n"
    assert parse(text).first.keywords == ["TightSCF", "SlowConv"]


def test_coords_block_fixture() -> None:
    job = parse_input(INPUTS / "coords_block.inp").first
    assert (job.coord_kind, job.charge, job.multiplicity, job.natoms) == ("coords", -1, 1, 2)
    assert job.elements == ["O", "H"]


@pytest.mark.parametrize(
    ("name", "kind", "mult", "atoms", "nprocs"),
    [
        ("internal.inp", "int", 2, 2, 1),
        ("gzmt.inp", "gzmt", 1, 3, 2),
        ("ghosts_and_charges.inp", "xyz", 1, 5, 1),
    ],
)
def test_other_coordinate_fixtures(name: str, kind: str, mult: int, atoms: int, nprocs: int) -> None:
    parsed = parse_input(INPUTS / name)
    assert (parsed.first.coord_kind, parsed.first.multiplicity, parsed.first.natoms) == (kind, mult, atoms)
    assert parsed.nprocs == nprocs


# ---- messy but valid -------------------------------------------------------------------------------------

VALID = {
    "lowercase keywords": ("! b3lyp def2-svp opt\n* xyz 0 1\n" + WATER + "*\n", {"nprocs": 1, "kw": "opt"}),
    "shouting": (
        "! B3LYP DEF2-SVP OPT\n%PAL NPROCS 2 END\n%MAXCORE 100\n* XYZ 0 1\n" + WATER + "*\n",
        {"nprocs": 2, "maxcore": 100, "kw": "opt"},
    ),
    "no space after star": ("!HF\n*xyz 0 1\n" + WATER + "*\n", {"kind": "xyz"}),
    "blocks after coordinates": (
        "! HF\n* xyz 0 1\n" + WATER + "*\n%pal nprocs 3 end\n%maxcore 900\n",
        {"nprocs": 3, "maxcore": 900},
    ),
    "tabs": (
        "!\tHF\tdef2-SVP\n%pal\tnprocs\t5\tend\n*\txyz\t0\t1\nO\t0\t0\t0\nH\t0\t0\t1\nH\t0\t1\t0\n*\n",
        {"nprocs": 5},
    ),
    "crlf": (
        "! HF PAL4\r\n%maxcore 512\r\n* xyz 0 1\r\n" + WATER.replace("\n", "\r\n") + "*\r\n",
        {"nprocs": 4, "maxcore": 512},
    ),
    "PAL8 and %pal together": ("! HF PAL8\n%pal nprocs 12 end\n* xyz 0 1\n" + WATER + "*\n", {"nprocs": 12}),
    "%pal before PAL keyword": ("%pal nprocs 12 end\n! HF PAL8\n* xyz 0 1\n" + WATER + "*\n", {"nprocs": 12}),
    "PAL64": ("! HF PAL64\n* xyz 0 1\n" + WATER + "*\n", {"nprocs": 64}),
    "PAL128": ("! HF pal128\n* xyz 0 1\n" + WATER + "*\n", {"nprocs": 128}),
    "two PAL keywords, last wins": ("! HF PAL2\n! PAL6\n* xyz 0 1\n" + WATER + "*\n", {"nprocs": 6}),
    "pal split over lines": ("! HF\n%pal\n nprocs\n 7\nend\n* xyz 0 1\n" + WATER + "*\n", {"nprocs": 7}),
    "pal with equals": ("! HF\n%pal nprocs=3 end\n* xyz 0 1\n" + WATER + "*\n", {"nprocs": 3}),
    "comment lines and trailing comments": (
        "# header\n! HF # method\n%scf # block\n maxiter 200 # more\nend # done\n* xyz 0 1 # coords\n"
        + WATER
        + "* # end\n",
        {"scf_maxiter": "200"},
    ),
    "one-line scf with shift": (
        "! HF\n%scf Shift Shift 0.1 ErrOff 0.1 end end\n* xyz 0 1\n" + WATER + "*\n",
        {"scf_shift": "Shift 0.1 ErrOff 0.1 end"},
    ),
    "geom constraints": (
        "! HF Opt\n%geom Constraints\n {B 0 1 C}\n end\n MaxIter 80\nend\n* xyz 0 1\n" + WATER + "*\n",
        {"geom_maxiter": "80", "kw": "opt"},
    ),
    "geom scan": (
        "! HF Opt\n%geom Scan\n B 0 1 = 1.0, 1.5, 6\n end\nend\n* xyz 0 1\n" + WATER + "*\n",
        {"flag": "scan"},
    ),
    "unknown sub-block closed by a second end": (
        "! HF\n%mystery\n  Foo\n    x 1\n  end\n  y 2\nend\n* xyz 0 1\n" + WATER + "*\n",
        {"nprocs": 1},
    ),
    "basis newgto": (
        '! HF\n%basis NewGTO H "def2-SVP" end\n end\n* xyz 0 1\n' + WATER + "*\n",
        {"nprocs": 1},
    ),
    "xyzfile": ("! HF\n* xyzfile 0 1 water.xyz\n", {"kind": "xyzfile"}),
    "quoted xyzfile": ('! HF\n*xyzfile 0 1 "water.xyz"\n', {"kind": "xyzfile"}),
    "gzmtfile": ("! HF\n* gzmtfile 0 1 water.xyz\n", {"kind": "gzmtfile"}),
    "moinp": ('! HF MORead\n%moinp "old.gbw"\n* xyz 0 1\n' + WATER + "*\n", {"flag": "moread"}),
    "atomic numbers and lowercase symbols": ("! HF\n* xyz 0 1\n8 0 0 0\nh 0 0 1\n1 0 1 0\n*\n", {"atoms": 3}),
    "fortran exponents": ("! HF\n* xyz 0 1\nO 0.0D+00 0 0\nH 0 0 1.0E0\nH 0 1 0\n*\n", {"atoms": 3}),
    "charge with plus sign": ("! HF\n* xyz +1 2\n" + WATER + "*\n", {"charge": 1}),
    "cation doublet": ("! UHF\n* xyz 1 2\n" + WATER + "*\n", {"charge": 1}),
    "star on last atom line": ("! HF\n* xyz 0 1\nO 0 0 0\nH 0 0 1\nH 0 1 0 *\n", {"atoms": 3}),
    "newgto after atom": (
        '! HF\n* xyz 0 1\nO 0 0 0 newgto "def2-TZVP" end\nH 0 0 1\nH 0 1 0\n*\n',
        {"atoms": 3},
    ),
    "bom": ("\ufeff! HF\n* xyz 0 1\n" + WATER + "*\n", {"atoms": 3}),
    "maxcore on its own line pair": ("! HF\n%maxcore\n 3000\n* xyz 0 1\n" + WATER + "*\n", {"maxcore": 3000}),
    "new_job uppercase": ("! HF\n* xyz 0 1\n" + WATER + "*\n$NEW_JOB\n! MP2\n", {"jobs": 2}),
    "compound step holds a whole input": (
        "%compound\n New_Step\n  ! HF\n  *xyz 0 1\n  H 0 0 0\n  H 0 0 1\n  *\n Step_End\nend\n"
        "* xyz 0 1\n" + WATER + "*\n",
        {"atoms": 3},
    ),
    "maxcore with equals": ("! HF\n%MaxCore=3000\n* xyz 0 1\n" + WATER + "*\n", {"maxcore": 3000}),
    "multi-line shift sub-block": (
        "! HF\n%scf\n  Shift\n    Shift 0.1\n    ErrOff 0.1\n  end\n"
        "  MaxIter 99\nend\n* xyz 0 1\n" + WATER + "*\n",
        {"scf_maxiter": "99"},
    ),
    "paras references in coordinates": (
        "! HF\n%paras R = 0.74 end\n* xyz 0 1\nH 0 0 0\nH 0 0 {R}\n*\n",
        {"atoms": 2},
    ),
    "mrci newblock with refs": (
        "! HF\n%mrci NewBlock 1 * nroots 3 refs cas(2,2) end end end\n* xyz 0 1\n" + WATER + "*\n",
        {"atoms": 3},
    ),
    "comment inside coordinates": (
        "! HF\n* xyz 0 1\n# the oxygen\nO 0 0 0 # here\nH 0 0 1\n\nH 0 1 0\n*\n",
        {"atoms": 3},
    ),
    "pointcharges": ('! HF\n%pointcharges "pc.txt"\n* xyz 0 1\n' + WATER + "*\n", {"atoms": 3}),
}


@pytest.mark.parametrize("case", sorted(VALID))
def test_messy_valid_forms(case: str, tmp_path: Path) -> None:
    text, expect = VALID[case]
    (tmp_path / "water.xyz").write_text((INPUTS / "water.xyz").read_text())
    parsed = parse(text, tmp_path)
    job = parsed.first
    if "nprocs" in expect:
        assert parsed.nprocs == expect["nprocs"]
    if "maxcore" in expect:
        assert parsed.maxcore == expect["maxcore"]
    if "kw" in expect:
        assert expect["kw"] in job.keywords_lower
    if "kind" in expect:
        assert job.coord_kind == expect["kind"]
    if "atoms" in expect:
        assert job.natoms == expect["atoms"]
    if "charge" in expect:
        assert job.charge == expect["charge"]
    if "jobs" in expect:
        assert len(parsed.jobs) == expect["jobs"]
    if "flag" in expect:
        assert expect["flag"] in job.flags
    for key in ("scf_maxiter", "scf_shift", "geom_maxiter"):
        if key in expect:
            block, option = key.split("_")
            assert job.option(block, option) == expect[key]


def test_crlf_is_recorded_and_values_are_clean() -> None:
    water = WATER.replace("\n", "\r\n")
    parsed = parse("! HF\r\n%scf\r\n maxiter 200\r\nend\r\n* xyz 0 1\r\n" + water + "*\r\n")
    assert parsed.crlf
    assert parsed.first.option("scf", "maxiter") == "200"


def test_keywords_keep_case_and_lowercase_set() -> None:
    job = parse("! r2SCAN-3c TightOPT\n* xyz 0 1\n" + WATER + "*\n").first
    assert job.keywords == ["r2SCAN-3c", "TightOPT"]
    assert job.keywords_lower == {"r2scan-3c", "tightopt"}
    assert "opt" in job.flags


def test_later_job_with_own_coordinates_and_nprocs() -> None:
    text = (
        "! HF PAL2\n* xyz 0 1\n"
        + WATER
        + "*\n$new_job\n! MP2\n%pal nprocs 8 end\n* xyz -1 2\n"
        + WATER
        + "*\n"
    )
    parsed = parse(text)
    assert [job.nprocs for job in parsed.jobs] == [2, 8]
    assert parsed.nprocs == 8
    assert parsed.jobs[1].charge == -1 and not parsed.jobs[1].inherits_geometry


def test_later_job_files_need_not_exist(tmp_path: Path) -> None:
    text = "! HF Opt\n* xyz 0 1\n" + WATER + "*\n$new_job\n! MP2\n* xyzfile 0 1 job.xyz\n"
    parsed = parse(text, tmp_path)
    assert parsed.jobs[1].coord_kind == "xyzfile"
    assert referenced_files(parsed) == []


# ---- what ORCA would reject -------------------------------------------------------------------------------

INVALID = {
    "empty": ("", None, "not an ORCA input"),
    "only comments": ("# nothing\n\n   # here\n", None, "not an ORCA input"),
    "prose": ("Dear ORCA,\nplease optimise water.\n", 1, "unexpected text 'Dear'"),
    "no coordinates": ("! HF def2-SVP\n%pal nprocs 2 end\n", 1, "no coordinates"),
    "no coordinates, coords only in job 2": (
        "! HF\n$new_job\n! MP2\n* xyz 0 1\n" + WATER + "*\n",
        1,
        "no coordinates",
    ),
    "unterminated xyz": ("! HF\n* xyz 0 1\n" + WATER, 2, "not closed by '*'"),
    "unterminated xyz before block": (
        "! HF\n\n* xyz 0 1\n" + WATER + "%pal nprocs 2 end\n",
        3,
        "not closed by '*' before line 7",
    ),
    "block without end": ("! HF\n%scf\n maxiter 100\n* xyz 0 1\n" + WATER + "*\n", 2, "no matching 'end'"),
    "block without end at eof": ("! HF\n* xyz 0 1\n" + WATER + "*\n%pal nprocs 4\n", 7, "no matching 'end'"),
    "sub-block missing its end": (
        "! HF\n%scf Shift Shift 0.1 end\n* xyz 0 1\n" + WATER + "*\n",
        2,
        "no matching 'end'",
    ),
    "bad charge": ("! HF\n* xyz zero 1\n" + WATER + "*\n", 2, "bad charge 'zero'"),
    "fractional charge": ("! HF\n* xyz 0.5 1\n" + WATER + "*\n", 2, "bad charge '0.5'"),
    "bad multiplicity": ("! HF\n* xyz 0 one\n" + WATER + "*\n", 2, "bad multiplicity 'one'"),
    "zero multiplicity": ("! HF\n* xyz 0 0\n" + WATER + "*\n", 2, "bad multiplicity '0'"),
    "missing multiplicity": ("! HF\n* xyz 0\n" + WATER + "*\n", 2, "needs a charge and a multiplicity"),
    "unknown coordinate type": ("! HF\n* xyx 0 1\n" + WATER + "*\n", 2, "unknown coordinate type 'xyx'"),
    "parity": (
        "! HF\n* xyz 0 2\n" + WATER + "*\n",
        2,
        "multiplicity (2) is even and number of electrons (10) is even -> impossible",
    ),
    "parity odd": (
        "! HF\n* xyz 1 1\n" + WATER + "*\n",
        2,
        "multiplicity (1) is odd and number of electrons (9) is odd -> impossible",
    ),
    "too many unpaired": (
        "! HF\n* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n$new_job\n! HF\n* xyz 0 5\nH 0 0 0\nH 0 0 0.74\n*\n",
        8,
        "more unpaired electrons",
    ),
    "unknown element": ("! HF\n* xyz 0 1\nO 0 0 0\nHh 0 0 1\nH 0 1 0\n*\n", 4, "unknown element 'Hh'"),
    "bad coordinate": ("! HF\n* xyz 0 1\nO 0 0 0\nH 0 0 1.0.0\nH 0 1 0\n*\n", 4, "bad coordinate '1.0.0'"),
    "too few coordinates": ("! HF\n* xyz 0 1\nO 0 0\nH 0 0 1\nH 0 1 0\n*\n", 3, "3 coordinates"),
    "missing xyzfile": ("! HF\n\n* xyzfile 0 1 nothere.xyz\n", 3, "xyzfile 'nothere.xyz' not found"),
    "xyzfile without name": ("! HF\n* xyzfile 0 1\n", 2, "needs a file name"),
    "empty coordinates": ("! HF\n* xyz 0 1\n*\n", 2, "has no atoms"),
    "unknown dollar": ("! HF\n* xyz 0 1\n" + WATER + "*\n$newjob\n", 7, "unknown directive '$newjob'"),
    "bad nprocs": ("! HF\n%pal nprocs four end\n* xyz 0 1\n" + WATER + "*\n", 2, "%pal nprocs 'four'"),
    "bad maxcore": ("! HF\n%maxcore lots\n* xyz 0 1\n" + WATER + "*\n", 2, "%maxcore 'lots'"),
    "maxcore without value": ("! HF\n* xyz 0 1\n" + WATER + "*\n%maxcore\n", 7, "%maxcore needs a value"),
    "two coordinate sections": (
        "! HF\n* xyz 0 1\n" + WATER + "*\n* xyz 0 1\n" + WATER + "*\n",
        7,
        "second coordinate section",
    ),
    "stray text after coordinates": ("! HF\n* xyz 0 1\n" + WATER + "*\nMaxIter 100\n", 7, "unexpected text"),
    # A file cut short in its last atom line (issue 18): ORCA would stop on the node; we refuse it here.
    "truncated last atom": ("! HF\n* xyz 0 1\nO 0 0 0\nH 0 0 1\nH 0 1\n*\n", 5, "3 coordinates"),
    "truncated last atom at the end of the file": ("! HF\n* xyz 0 1\nH 0 0 0\nH 0.0 0.0", 4, "3 coordinates"),
    "truncated %coords atom": (
        "! HF\n%coords\n Charge 0\n Mult 1\n coords\n  H 0 0 0\n  H 0.0 0.0\n end\nend\n",
        7,
        "3 coordinates",
    ),
    "bad %coords coordinate": (
        "! HF\n%coords\n coords\n  H 0 0 0\n  H 0 0 0.7x\n end\nend\n",
        5,
        "bad coordinate '0.7x'",
    ),
    "truncated internal coordinates": (
        "! HF\n* int 0 1\nH 0 0 0 0.0 0.0 0.0\nH 1 0 0 0.74\n*\n",
        4,
        "3 atom numbers and 3 values",
    ),
    "truncated %coords internal": (
        "! HF\n%coords\n CTyp internal\n coords\n  H 0 0 0 0 0 0\n  H 1 0 0 0.74 0\n end\nend\n",
        6,
        "3 atom numbers and 3 values",
    ),
    "truncated gzmt": ("! HF\n* gzmt 0 1\nO\nH 1 0.96\nH 1 0.96 2\n*\n", 5, "2 atom number/value pair"),
    "gzmt without bond length": ("! HF\n* gzmt 0 1\nH\nH 1\n*\n", 4, "1 atom number/value pair"),
    "gzmt atom number not a number": ("! HF\n* gzmt 0 1\nH\nH x 0.74\n*\n", 4, "bad atom number 'x'"),
    "coords block parity": (
        "! HF\n%coords\n Charge 0\n Mult 2\n coords\n  O 0 0 0\n end\nend\n",
        2,
        "multiplicity (2) is even",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_inputs_are_rejected_with_line_and_reason(case: str, tmp_path: Path) -> None:
    text, line, message = INVALID[case]
    with pytest.raises(InputFileError) as info:
        parse(text, tmp_path)
    err = info.value
    assert err.line == line, str(err)
    assert message in err.problem, str(err)
    where = f"{tmp_path / 'job.inp'}:{line}" if line is not None else str(tmp_path / "job.inp")
    assert str(err).startswith(where + ": ")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty xyz file"),
        (b"\n  \n", "empty xyz file"),
        (b"\x00\x01GBW\x00" * 8, "binary file"),
        (b"water\nO 0 0 0\n", "the first line must be the number of atoms"),
        (b"3\nwater\nO 0 0 0\nH 0 0 1\n", "the atom count says 3 but 2 atom line(s) follow"),
        (b"3\nwater\nO 0 0 0\nH 0 0 1\nH 0 1\n", "the atom count says 3 but 2 atom line(s) follow"),
    ],
)
def test_a_damaged_xyzfile_is_refused_at_submit(content: bytes, message: str, tmp_path: Path) -> None:
    # Only its existence was checked: ORCA then stopped on the node in every attempt.
    (tmp_path / "w.xyz").write_bytes(content)
    with pytest.raises(InputFileError) as info:
        parse("! HF\n* xyzfile 0 1 w.xyz\n", tmp_path)
    assert info.value.line == 2 and "xyzfile 'w.xyz'" in info.value.problem and message in info.value.problem


@pytest.mark.parametrize(
    "content",
    [
        b"\xef\xbb\xbf3\r\nw\r\nO 0 0 0\r\nH 0 0 1\r\nH 0 1 0\r\n",
        b"\n3\nGr\xfc\xdfe\nO 0 0 0\nH 0 0 1\nH 0 1 0 0.5\n",
    ],
)
def test_an_odd_but_readable_xyzfile_is_accepted(content: bytes, tmp_path: Path) -> None:
    (tmp_path / "w.xyz").write_bytes(content)
    assert parse("! HF\n* xyzfile 0 1 w.xyz\n", tmp_path).first.coord_kind == "xyzfile"


def test_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "job.gbw"
    path.write_bytes(b"\x00\x01\x02ORCA\x00" * 10)
    with pytest.raises(InputFileError, match="binary file"):
        parse_input(path)


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "job.inp"
    path.write_bytes(b"! HF\n# Gr\xfc\xdfe\n* xyz 0 1\n" + WATER.encode() + b"*\n")
    with pytest.raises(InputFileError, match=r"not UTF-8 text \(byte 0xfc\)") as info:
        parse_input(path)
    assert info.value.line == 2


def test_missing_input_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="cannot read input"):
        parse_input(tmp_path / "absent.inp")


def test_hessian_and_other_file_references(tmp_path: Path) -> None:
    text = (
        '! HF OptTS MORead\n%moinp "guess.gbw"\n%geom InHess Read InHessName "ts.hess" end\n'
        '%pointcharges "pc.txt"\n* xyzfile 0 1 water.xyz\n'
    )
    (tmp_path / "water.xyz").write_text((INPUTS / "water.xyz").read_text())
    parsed = parse(text, tmp_path)
    refs = sorted((ref.kind, ref.name, ref.line) for ref in parsed.files)
    assert refs == [
        ("inhessname", "ts.hess", 3),
        ("moinp", "guess.gbw", 2),
        ("pointcharges", "pc.txt", 4),
        ("xyzfile", "water.xyz", 5),
    ]
    assert sorted(p.name for p in referenced_files(parsed)) == ["guess.gbw", "pc.txt", "ts.hess", "water.xyz"]
    assert {"opt", "ts", "moread"} <= parsed.flags


@pytest.mark.parametrize(
    "atoms_section",
    [
        lambda atoms: "* xyz 0 1\n" + atoms + "*\n",
        lambda atoms: "%coords\n coords\n" + atoms.replace("H", "  H") + " end\nend\n",
        lambda atoms: "! a b c d e f g h i j\n" * 3000 + "* xyz 0 1\n" + atoms + "*\n",
    ],
    ids=["inline xyz", "%coords", "keyword lines"],
)
def test_memory_of_a_large_input_stays_a_small_multiple_of_its_size(
    atoms_section: Callable[[str], str], tmp_path: Path
) -> None:
    # Issue 18: every token of the file was an object at once, ~200 bytes of memory per input byte
    # (an 8 MB input: 1.5 GB). The parse now holds the text, its lines and what it found: ~10 bytes
    # (a keyword line keeps its text and finds its keywords again when asked).
    text = "! HF def2-SVP\n" + atoms_section("H 0.0 0.0 0.74\nH 0.0 0.0 0.0\n" * 1000)
    path = tmp_path / "big.inp"
    path.write_text(text)
    tracemalloc.start()
    try:
        parsed = parse_input(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert parsed.jobs[0].natoms == 2000
    assert peak < 20 * len(text), f"peak {peak / len(text):.1f} bytes per input byte"
