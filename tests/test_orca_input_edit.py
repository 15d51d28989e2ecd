"""Editing ORCA inputs: every edit keeps the rest of the text and re-parses to what was asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from orca_hpc.errors import UserError
from orca_hpc.orca.inputs import (
    add_keywords,
    parse_input,
    remove_keywords,
    set_block_option,
    set_moread,
    set_resources,
    set_xyzfile,
)

INPUTS = Path(__file__).parent / "fixtures" / "inputs"
WATER = "O 0.0 0.0 0.0\nH 0.0 0.0 0.97\nH 0.0 0.94 -0.24\n"
SIMPLE = (
    "! B3LYP def2-SVP Opt # my method\n%scf\n  MaxIter 100  # default is 125\nend\n* xyz 0 1\n"
    + WATER
    + "*\n"
)
MULTI = (
    "! HF PAL8 Opt\n%pal nprocs 4 end\n%maxcore 1000\n* xyz 0 1\n" + WATER + "*\n"
    "$new_job\n! MP2 pal2\n%scf Shift Shift 0.1 end end\n"
)


def reparse(text: str):
    return parse_input(Path("/nonexistent/job.inp"), text, check_files=False)


def test_set_resources_replaces_pal_maxcore_and_pal_keywords_in_every_job() -> None:
    out = set_resources(MULTI, 16, 3000)
    parsed = reparse(out)
    assert [(job.nprocs, job.maxcore) for job in parsed.jobs] == [(16, 3000), (16, 3000)]
    assert not any(kw.lower().startswith("pal") for job in parsed.jobs for kw in job.keywords)
    assert out.count("%pal") == 2 and out.count("%maxcore") == 2
    assert "! HF Opt" in out and "! MP2\n" in out
    assert reparse(out).jobs[1].option("scf", "shift") == "Shift 0.1 end"


def test_set_resources_on_input_without_any_keeps_layout() -> None:
    out = set_resources(SIMPLE, 4, 2000)
    assert out.startswith("! B3LYP def2-SVP Opt # my method\n%pal nprocs 4 end\n%maxcore 2000\n")
    assert out.endswith(SIMPLE.split("\n", 1)[1])
    assert (reparse(out).nprocs, reparse(out).maxcore) == (4, 2000)


def test_set_resources_is_idempotent() -> None:
    once = set_resources(MULTI, 8, 1500)
    assert set_resources(once, 8, 1500) == once


def test_set_resources_keeps_crlf_and_comments() -> None:
    water = WATER.replace("\n", "\r\n")
    text = "! HF PAL4 # keep me\r\n%pal nprocs 4 end # and me\r\n* xyz 0 1\r\n" + water + "*\r\n"
    out = set_resources(text, 2, 500)
    assert "\n" not in out.replace("\r\n", "")
    assert "# keep me" in out and "# and me" in out
    parsed = reparse(out)
    assert (parsed.nprocs, parsed.maxcore) == (2, 500)


def test_set_resources_when_only_keyword_was_pal() -> None:
    out = set_resources("! PAL8\n! HF\n* xyz 0 1\n" + WATER + "*\n", 2, 100)
    assert out.startswith("! HF\n%pal nprocs 2 end\n")


def test_set_resources_rejects_nonsense() -> None:
    with pytest.raises(UserError):
        set_resources(SIMPLE, 0, 100)


def test_set_resources_on_fixture_file() -> None:
    text = (INPUTS / "messy_multi.inp").read_text()
    out = set_resources(text, 32, 1000)
    parsed = parse_input(INPUTS / "messy_multi.inp", out)
    assert [(job.nprocs, job.maxcore) for job in parsed.jobs] == [(32, 1000), (32, 1000)]
    assert parsed.first.option("geom", "maxiter") == "150"
    assert "SlowConv" in parsed.first.keywords


def test_add_keywords_no_duplicates_any_case() -> None:
    out = add_keywords(SIMPLE, "slowconv", "OPT", "b3lyp", "SlowConv")
    job = reparse(out).first
    assert job.keywords == ["B3LYP", "def2-SVP", "Opt", "slowconv"]
    assert add_keywords(out, "SLOWCONV") == out
    assert "# my method" in out


def test_add_keywords_to_job_without_keyword_line() -> None:
    text = "%pal nprocs 2 end\n* xyz 0 1\n" + WATER + "*\n"
    out = add_keywords(text, "HF")
    assert out.startswith("! HF\n")
    assert reparse(out).first.keywords == ["HF"]


def test_add_keywords_every_job_or_one() -> None:
    everywhere = reparse(add_keywords(MULTI, "VerySlowConv"))
    assert all("veryslowconv" in job.keywords_lower for job in everywhere.jobs)
    first_only = reparse(add_keywords(MULTI, "VerySlowConv", job=0))
    assert ["veryslowconv" in job.keywords_lower for job in first_only.jobs] == [True, False]
    with pytest.raises(UserError, match="no job 5"):
        add_keywords(MULTI, "x", job=5)
    with pytest.raises(UserError, match="one word"):
        add_keywords(MULTI, "Slow Conv")


def test_remove_keywords() -> None:
    out = remove_keywords(SIMPLE, "opt", "DEF2-svp")
    assert reparse(out).first.keywords == ["B3LYP"]
    assert "# my method" in out
    gone = remove_keywords("! Opt\n! HF\n* xyz 0 1\n" + WATER + "*\n", "OPT")
    assert gone.startswith("! HF\n")


@pytest.mark.parametrize(
    ("block", "key", "value"),
    [("scf", "MaxIter", "500"), ("geom", "MaxIter", "200"), ("scf", "Convergence", "Tight")],
)
def test_set_block_option_round_trips(block: str, key: str, value: str) -> None:
    out = set_block_option(SIMPLE, block, key, value)
    job = reparse(out).first
    assert job.option(block, key) == value
    assert "# default is 125" in out and "# my method" in out
    if block == "scf" and key != "MaxIter":
        assert job.option("scf", "maxiter") == "100"


def test_set_block_option_replaces_value_that_counts() -> None:
    text = "! HF\n%scf maxiter 100 end\n%scf MAXITER 200 end\n* xyz 0 1\n" + WATER + "*\n"
    out = set_block_option(text, "scf", "MaxIter", "500")
    assert "maxiter 100" in out and "MAXITER 500" in out
    assert reparse(out).first.option("scf", "maxiter") == "500"


def test_set_block_option_into_one_line_block() -> None:
    text = "! HF\n%scf Shift Shift 0.1 end end\n* xyz 0 1\n" + WATER + "*\n"
    out = set_block_option(text, "scf", "MaxIter", "500")
    job = reparse(out).first
    assert (job.option("scf", "maxiter"), job.option("scf", "shift")) == ("500", "Shift 0.1 end")


def test_set_block_option_sub_block() -> None:
    out = set_block_option(SIMPLE, "scf", "Shift", "Shift 0.1 ErrOff 0.1 end")
    assert reparse(out).first.option("scf", "shift") == "Shift 0.1 ErrOff 0.1 end"
    again = set_block_option(out, "scf", "Shift", "Shift 0.3 ErrOff 0.1 end")
    assert reparse(again).first.option("scf", "shift") == "Shift 0.3 ErrOff 0.1 end"
    assert again.count("Shift") == 2


def test_set_block_option_refuses_injection() -> None:
    with pytest.raises(UserError):
        set_block_option(SIMPLE, "scf", "MaxIter", "500\nend\n! Evil")
    with pytest.raises(UserError):
        set_block_option(SIMPLE, "maxcore", "x", "1")


def test_set_moread() -> None:
    out = set_moread(SIMPLE, "previous.gbw")
    parsed = reparse(out)
    assert "moread" in parsed.first.keywords_lower
    assert [(ref.kind, ref.name) for ref in parsed.files] == [("moinp", "previous.gbw")]
    again = set_moread(out, "older.gbw")
    assert [(ref.kind, ref.name) for ref in reparse(again).files] == [("moinp", "older.gbw")]
    assert again.lower().count("moread") == 1


def test_set_moread_in_scf_block_form() -> None:
    text = '! HF\n%scf Guess MORead MOInp "a.gbw" end\n* xyz 0 1\n' + WATER + "*\n"
    out = set_moread(text, "b.gbw")
    names = [ref.name for ref in reparse(out).files]
    assert "a.gbw" not in names and "b.gbw" in names


def test_set_xyzfile_keeps_charge_and_multiplicity() -> None:
    text = "! UHF Opt\n* xyz 1 2\n" + WATER + "*\n%pal nprocs 2 end\n"
    out = set_xyzfile(text, "last.xyz")
    job = reparse(out).first
    assert (job.coord_kind, job.charge, job.multiplicity) == ("xyzfile", 1, 2)
    assert [ref.name for ref in job.files] == ["last.xyz"]
    assert job.nprocs == 2 and "O 0.0" not in out


def test_set_xyzfile_replaces_coords_block() -> None:
    out = set_xyzfile((INPUTS / "coords_block.inp").read_text(), "w.xyz")
    job = reparse(out).first
    assert (job.coord_kind, job.charge, job.multiplicity) == ("xyzfile", -1, 1)
    with pytest.raises(UserError):
        set_xyzfile(out, "has space.xyz")


def test_set_resources_keeps_other_pal_settings() -> None:
    text = "! HF\n%pal\n  nprocs 4\n  nprocs_group 2\nend\n* xyz 0 1\n" + WATER + "*\n"
    out = set_resources(text, 8, 900)
    assert "nprocs_group 2" in out and "nprocs 8" in out and out.count("%pal") == 1
    parsed = reparse(out)
    assert (parsed.nprocs, parsed.maxcore) == (8, 900)
