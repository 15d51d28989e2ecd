"""Property tests: on any text or bytes the parser either succeeds or raises InputFileError."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orca_hpc.errors import InputFileError, UserError
from orca_hpc.orca.inputs import add_keywords, parse_input, set_block_option, set_resources
from orca_hpc.orca.xyz import read_xyz

# ORCA_INPUT_FUZZ_EXAMPLES=5000 for a longer hunt; the default keeps the suite fast.
FAST = settings(
    max_examples=int(os.environ.get("ORCA_INPUT_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# Pieces of real inputs, so random combinations reach deep into the parser.
PIECES = [
    "! HF def2-SVP",
    "!opt PAL4",
    "! PAL0",
    "%pal nprocs 4 end",
    "%pal nprocs",
    "end",
    "END",
    "%maxcore 100",
    "%maxcore",
    "%scf Shift Shift 0.1 end end",
    "%scf",
    "maxiter 100",
    "%geom Constraints {B 0 1 C} end end",
    "* xyz 0 1",
    "*xyz 1 2",
    "* int 0 1",
    "* gzmt 0 1",
    "* xyzfile 0 1 a.xyz",
    "*",
    "O 0 0 0",
    "H 0 0 1",
    "H: 1 1 1",
    "Q 1 0 0 0",
    "O 0 0",
    "Xx 0 0 0",
    "$new_job",
    "$foo",
    "# comment",
    "#a# b",
    '%moinp "x.gbw"',
    "%coords",
    "coords",
    "Charge 1",
    "Mult 2",
    "%base",
    '"',
    "=",
    "[",
    "%",
    "!",
    "%compound",
    "New_Step",
    "Step_End",
    "print[ p_mos ] 1",
    "%basis NewGTO H",
    "\t",
    "",
    " ",
    "\r",
]


@FAST
@given(st.lists(st.sampled_from(PIECES), max_size=25))
def test_parse_pieces_never_crashes(parts: list[str]) -> None:
    text = "\n".join(parts)
    try:
        parsed = parse_input(Path("/nonexistent/job.inp"), text, check_files=False)
    except InputFileError as exc:
        assert str(exc).startswith("/nonexistent/job.inp")
        return
    assert parsed.jobs and parsed.first.coord_kind is not None
    assert parsed.nprocs >= 1
    # Whatever parsed must stay parseable after the edits the controller makes.
    for edited in (
        set_resources(text, 3, 700),
        add_keywords(text, "SlowConv"),
        set_block_option(text, "scf", "MaxIter", "500"),
    ):
        again = parse_input(Path("/nonexistent/job.inp"), edited, check_files=False)
        assert len(again.jobs) == len(parsed.jobs)
    resized = parse_input(Path("/nonexistent/job.inp"), set_resources(text, 3, 700), check_files=False)
    assert resized.nprocs == 3 and resized.maxcore == 700


@FAST
@given(st.text(max_size=300))
def test_parse_random_text_never_crashes(text: str) -> None:
    try:
        parsed = parse_input(Path("/nonexistent/job.inp"), text, check_files=False)
    except InputFileError as exc:
        assert exc.problem and "\n" not in exc.problem
        return
    assert parsed.first.coord_kind is not None


@FAST
@given(st.binary(max_size=300))
def test_parse_random_bytes_never_crashes(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "job.inp"
    path.write_bytes(data)
    try:
        parse_input(path)
    except InputFileError as exc:
        assert exc.path == str(path)


@FAST
@given(st.text(alphabet="0123456789 .-HOC\nXx\t", max_size=120))
def test_read_xyz_random_text_never_crashes(text: str) -> None:
    try:
        mol = read_xyz(Path("/nonexistent/m.xyz"), text)
    except InputFileError:
        return
    assert mol.atoms


def test_edit_errors_are_user_errors() -> None:
    try:
        set_resources("not an input at all", 2, 100)
    except UserError as exc:
        assert "unexpected text" in str(exc)
    else:
        raise AssertionError("set_resources accepted a non-input")
