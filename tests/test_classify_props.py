"""Property tests: whatever bytes a file holds, the classifier returns a Classification (or, for a bad
path, a UserError) and never raises anything else; cuts of a successful run are never a success."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orca_hpc.orca.classify import Classification, classify_output
from orca_hpc.orca.outcomes import Outcome

FIXTURES = Path(__file__).parent / "fixtures" / "orca"
REAL = sorted(p for p in FIXTURES.iterdir() if p.suffix in (".out", ".log"))
SUCCESS_FILES = sorted(p for p in REAL if p.name.startswith("cclib__"))
_CACHE: dict[Path, bytes] = {}

COMMON = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bytes(path: Path) -> bytes:
    if path not in _CACHE:
        _CACHE[path] = path.read_bytes()
    return _CACHE[path]


def _classify_bytes(data: bytes, windows: tuple[int, int] | None = None) -> Classification:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.out"
        path.write_bytes(data)
        if windows:
            c = classify_output(path, head_bytes=windows[0], tail_bytes=windows[1])
        else:
            c = classify_output(path)
    assert isinstance(c, Classification)
    assert isinstance(c.outcome, Outcome)
    assert isinstance(c.message, str) and "\n" not in c.message
    json.dumps(c.to_dict(), allow_nan=False)  # always JSON-safe
    return c


@COMMON
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    c = _classify_bytes(data)
    assert c.outcome is not Outcome.SUCCESS


@COMMON
@given(st.text(max_size=2000))
def test_random_text(text: str) -> None:
    _classify_bytes(text.encode("utf-8", errors="surrogatepass"))


@COMMON
@given(st.sampled_from(SUCCESS_FILES), st.floats(min_value=0.0, max_value=1.0))
def test_cuts_of_successful_runs_are_never_success(path: Path, fraction: float) -> None:
    data = _bytes(path)
    end = data.index(b"****ORCA TERMINATED NORMALLY****")
    c = _classify_bytes(data[: int(end * fraction)])
    assert c.outcome is not Outcome.SUCCESS
    assert c.normal_termination is False


@COMMON
@given(
    st.sampled_from(REAL),
    st.sampled_from(REAL),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=1.0),
    st.sampled_from([None, (1024, 1024), (8192, 4096)]),
)
def test_splices_of_real_outputs(
    a: Path, b: Path, fa: float, fb: float, windows: tuple[int, int] | None
) -> None:
    da, db = _bytes(a), _bytes(b)
    _classify_bytes(da[: int(len(da) * fa)] + db[int(len(db) * fb) :], windows)


@COMMON
@given(
    st.sampled_from(REAL),
    st.integers(min_value=0, max_value=10**6),
    st.binary(min_size=1, max_size=512),
)
def test_binary_garbage_inside_real_outputs(path: Path, where: int, junk: bytes) -> None:
    data = _bytes(path)
    at = where % (len(data) + 1)
    _classify_bytes(data[:at] + junk + data[at:])


def test_binary_junk_after_a_success_keeps_it_from_being_a_clean_text_file() -> None:
    # A NUL-filled tail (a crash while the file system was extending the file) is not a success.
    data = _bytes(SUCCESS_FILES[0])
    end = data.index(b"****ORCA TERMINATED NORMALLY****")
    c = _classify_bytes(data[:end] + b"\0" * 100_000)
    assert c.outcome is not Outcome.SUCCESS
