"""Property tests: on any text or bytes the parser either succeeds or raises InputFileError."""

from __future__ import annotations

import os
import re
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


# Atom lines near the quick path's edge: elements and not-elements, point charges, ghosts, numbers in
# every form ORCA reads and some it does not, tabs, CR, comments and a closing "*" on the line. Plain
# lines are drawn most often, so that whole inputs are accepted (and their electrons counted) often.
_LABELS = ["H", "H", "C", "C", "O", "he", "Cl", "CL", "Q", "q", "DA", "Da", "X", "Xx", "H:", "Zr>", "6", "O1"]
_NUMBERS = ["0", "-0.5", "+1.", ".5", "1e3", "1D-2", "1.0e+1", "2.25", "1e", "e1", "--1", "1.2.3", "{R}"]
_PLAIN_NUMBERS = _NUMBERS[:8]
_SEPARATORS = [" ", " ", "\t", "  ", " \t "]
_ENDS = ["", "", "", " ", "\t", "\r", " # note", " *", "*"]


@st.composite
def _atom_line(draw: st.DrawFn) -> str:
    count = draw(st.sampled_from([3, 3, 3, 3, 3, 0, 1, 2, 4, 5]))
    numbers = draw(st.sampled_from([_PLAIN_NUMBERS, _PLAIN_NUMBERS, _NUMBERS]))
    words = [draw(st.sampled_from(_LABELS))] + [draw(st.sampled_from(numbers)) for _ in range(count)]
    text = "".join(w + draw(st.sampled_from(_SEPARATORS)) for w in words).rstrip(" \t")
    return draw(st.sampled_from(["", "", " ", "\t"])) + text + draw(st.sampled_from(_ENDS))


def _quick_and_long(text: str) -> tuple[str, str]:
    """What the parser makes of ``text`` with the quick atom-line path, and with every line the long way."""
    import orca_hpc.orca.inputs as inputs

    def outcome() -> str:
        try:
            parsed = parse_input(Path("/nonexistent/job.inp"), text, check_files=False)
        except InputFileError as exc:
            return f"refused: {exc}"
        return repr(parsed.jobs)

    quick = outcome()
    original = inputs._PLAIN_XYZ_ATOM
    inputs._PLAIN_XYZ_ATOM = re.compile(r"(?!)")  # matches nothing
    try:
        return quick, outcome()
    finally:
        inputs._PLAIN_XYZ_ATOM = original


@FAST
@given(st.lists(_atom_line(), min_size=1, max_size=4), st.sampled_from(["0 1", "0 2", "1 1", "-1 2"]))
def test_quick_atom_lines_decide_as_the_long_way(lines: list[str], charge_mult: str) -> None:
    """The quick path for plain "* xyz" atom lines never changes what the parser accepts or refuses,
    nor what it records (atom count, elements, electrons through the spin check)."""
    quick, long = _quick_and_long("! HF def2-SVP\n* xyz " + charge_mult + "\n" + "\n".join(lines) + "\n*\n")
    assert quick == long


def test_quick_atom_lines_examples() -> None:
    accepted = ["O 0 0 0\nH 0 0 1\nh\t0 1 0", "C 0 0 0\nCl 1 0 0\nH 0 1 0\nH 0 0 1\nH 1 1 1"]
    refused = ["H 0 0 0", "Q 1 0 0", "Xx 0 0 0", "O 0 0 0\nH 0 0 1\nH 0 1"]  # spin, charge, element, short
    for atoms in accepted + refused:
        quick, long = _quick_and_long(f"! HF\n* xyz 0 1\n{atoms}\n*\n")
        assert quick == long and quick.startswith("refused") == (atoms in refused), (atoms, quick)


def _decode_the_long_way(path: Path, data: bytes) -> str:
    """The "utf-8-sig" codec itself; its error position counts from after the BOM it dropped."""
    if b"\x00" in data:
        raise InputFileError(path, "binary file, not an ORCA input (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        at = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data[:at].count(b"\n") + 1
        raise InputFileError(path, f"not UTF-8 text (byte 0x{data[at]:02x})", line) from None


def test_a_bad_byte_after_a_bom_is_named_with_its_line() -> None:
    from orca_hpc.orca.inputs import _decode

    for data, byte, line in (
        (b"\xef\xbb\xbf! HF\n\xe9t\xe9\n", "0xe9", 2),
        (b"\xef\xbb\xbf\n\n\xff", "0xff", 3),
    ):
        try:
            _decode(Path("x.inp"), data)
        except InputFileError as err:
            assert f"(byte {byte})" in str(err) and f"x.inp:{line}:" in str(err), err
        else:
            raise AssertionError(data)


_BYTES = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(lambda t: t.encode("utf-8")),
    st.builds(lambda a, b: a + b, st.sampled_from([b"", b"\xef\xbb\xbf", b"\xef\xbb", b"\xef\xbb\xbf" * 2]),
              st.one_of(st.binary(max_size=20), st.text(max_size=20).map(str.encode))),
)  # fmt: skip


@FAST
@given(_BYTES)
def test_decode_quick_path_is_the_codec(data: bytes) -> None:
    """The input reader's quick decode gives the "utf-8-sig" codec's text, or its very error."""
    from orca_hpc.orca.inputs import _decode

    path = Path("x.inp")
    try:
        expected = _decode_the_long_way(path, data)
    except InputFileError as err:
        expected = f"error: {err}"
    try:
        got = _decode(path, data)
    except InputFileError as err:
        got = f"error: {err}"
    assert got == expected and type(got) is str


def test_read_input_reads_what_read_bytes_reads(tmp_path: Path) -> None:
    """Files of every size around the reader's buffers read back whole; missing files and folders give
    the one-line error of before."""
    from orca_hpc.orca.inputs import read_input

    for size in (0, 1, (1 << 16) - 1, 1 << 16, (1 << 16) + 1, 3 << 20):
        path = tmp_path / f"{size}.inp"
        path.write_bytes(b"\xef\xbb\xbf" + b"a\n" * (size // 2) + b"b" * (size % 2))
        assert read_input(path) == path.read_bytes().decode("utf-8-sig")
    for bad, why in ((tmp_path / "missing.inp", "No such file"), (tmp_path, "Is a directory")):
        try:
            read_input(bad)
        except InputFileError as err:
            assert str(err).startswith(f"{bad}: cannot read input: {why}")
        else:
            raise AssertionError(f"{bad} read")
