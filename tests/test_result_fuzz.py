"""Property tests of the files the runner and the controller exchange, damaged or hostile (issue 18).

``result.json`` (written by the runner) and ``spec.json`` (read back for the next attempt) may be
hand-edited, cut short by a full disk, or replaced by a link, a directory or a FIFO. Whatever they
hold, reconcile ends that one attempt with a reason that names the file (or waits, when there is no
file yet), never raises, and goes on with the other jobs; the ledger stays sound and the display
commands print without a traceback or a raw control character.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from e2e import fresh_copy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orca_hpc.attempt.folder import RESULT_NAME, SPEC_NAME, AttemptResult, read_result
from orca_hpc.cli import main
from orca_hpc.config.campaign import init_campaign, load_campaign
from orca_hpc.controller.reconcile import reconcile
from orca_hpc.controller.submit import submit
from orca_hpc.errors import InputFileError
from orca_hpc.ledger.states import JobState
from orca_hpc.scheduler.fake import FakeScheduler

FAST = settings(
    max_examples=int(os.environ.get("ORCA_RESULT_FUZZ_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
INPUT = "! HF def2-SVP\n* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n"

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["success", "\x1b[2J", "2026-01-01T00:00:00Z", "x\ny", "node_fail"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
RESULT_KEYS = [
    "job_id", "attempt", "outcome", "reason", "retryable", "exit_code", "energy", "message",
    "classification", "started", "ended", "node", "slurm_job_id", "files", "scratch",
    "scratch_removed", "error", "notes",
]  # fmt: skip
CLASSIFICATION_KEYS = [
    "outcome", "message", "error_lines", "opt_cycles", "memory_required_mb", "memory_request",
    "imag_threshold", "imaginary_freqs", "imag_noise", "n_imaginary", "intent", "zpe", "final_xyz",
    "calc_kind", "orca_version", "freq_offset",
]  # fmt: skip
OUTCOMES = st.sampled_from(
    ["success", "scf_not_converged", "opt_not_converged", "out_of_memory", "imaginary_modes", "input_error"]
)


def _valid(job_id: str, outcome: str = "success") -> dict[str, Any]:
    return {"result_version": 1, "job_id": job_id, "attempt": 1, "outcome": outcome, "energy": -1.1}


def _write(text: bytes) -> Callable[[Path, Path], None]:
    return lambda path, other: path.write_bytes(text)


@st.composite
def hostile_results(draw: st.DrawFn) -> Callable[[Path, Path], None]:
    """How to plant a damaged or hostile result file at ``path`` (``other`` is a sound one)."""
    kind = draw(st.sampled_from(["fields", "classification", "truncated", "bytes", "raw", "node"]))
    body = _valid("j000001", draw(OUTCOMES))
    if kind == "fields":
        body.update(draw(st.dictionaries(st.sampled_from(RESULT_KEYS), JSON_VALUES, min_size=1, max_size=4)))
        return _write(json.dumps(body).encode())
    if kind == "classification":
        body["classification"] = draw(
            st.dictionaries(st.sampled_from(CLASSIFICATION_KEYS), JSON_VALUES, min_size=1, max_size=4)
        )
        return _write(json.dumps(body).encode())
    if kind == "truncated":
        data = json.dumps({**body, "message": "SCF NOT CONVERGED", "files": ["a.out"]}).encode()
        return _write(data[: draw(st.integers(0, len(data) - 1))])
    if kind == "bytes":
        return _write(draw(st.binary(max_size=40)))
    if kind == "raw":
        raw = draw(
            st.sampled_from(
                [
                    b'{"outcome": "success", "energy": ' + b"9" * 5000 + b"}",
                    b'{"outcome": "success", "energy": 1e999}',
                    b'{"outcome": "success", "attempt": ' + b"9" * 30 + b"}",
                    b'{"classification": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                    b'{"outcome": "success", "reason": "\\u001b[2J"}',
                    b'{"outcome": "success", "ended": "\\u001b]0;x\\u0007"}',
                    b'{"outcome": "success", "ended": "0001-01-01T00:00:00+14:00"}',
                    b"\xef\xbb\xbf{}",
                    b"[]",
                    b"null",
                ]
            )
        )
        return _write(raw)
    node = draw(st.sampled_from(["link to /dev/zero", "link to a sound result", "directory", "fifo"]))

    def plant(path: Path, other: Path) -> None:
        if node == "link to /dev/zero":
            path.symlink_to("/dev/zero")
        elif node == "link to a sound result":
            path.symlink_to(other)
        elif node == "directory":
            path.mkdir()
            (path / "x").write_text("{}")
        else:
            os.mkfifo(path)

    return plant


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resultfuzz") / "camp"
    init_campaign(root, "local-slurm")
    for i in range(2):
        (root / f"m{i}.inp").write_text(INPUT + f"# {i}\n")
    return root


def _campaign_with_two_finished_jobs(template: Path, where: Path) -> tuple[Any, FakeScheduler]:
    campaign = load_campaign(fresh_copy(template, where))
    fake = FakeScheduler()
    submit(campaign, [where / "m0.inp", where / "m1.inp"], scheduler=fake)
    for job in campaign.ledger().snapshot().jobs.values():
        fake.finish(job.latest.slurm_id)
    return campaign, fake


def _show_and_results(root: Path) -> None:
    for args in (["show", "j000001", "--no-reconcile"], ["results", "--all", "--json", "--no-reconcile"]):
        out = CliRunner().invoke(main, ["-C", str(root), *args])
        assert out.exception is None or isinstance(out.exception, SystemExit), repr(out.exception)
        assert out.exit_code == 0, out.output
        assert "\x1b" not in out.output


@FAST
@given(plant=hostile_results())
def test_a_damaged_result_fails_only_its_attempt(template: Path, tmp_path: Path, plant: Any) -> None:
    campaign, fake = _campaign_with_two_finished_jobs(template, tmp_path / "c")
    jobs = campaign.ledger().snapshot().jobs
    damaged, sound = (campaign.root / jobs[j].latest.dir for j in ("j000001", "j000002"))
    (sound / RESULT_NAME).write_text(json.dumps(_valid("j000002")))
    plant(damaged / RESULT_NAME, sound / RESULT_NAME)
    try:
        strict: AttemptResult | None = AttemptResult.read(damaged)
        problem = None
    except InputFileError as err:
        strict, problem = None, str(err)

    reconcile(campaign, scheduler=fake)

    after = campaign.ledger().snapshot()
    assert after.get("j000002").state is JobState.COMPLETED and after.get("j000002").latest.energy == -1.1
    first = after.get("j000001").attempts[0]
    assert first.outcome is not None  # the attempt ended, one way or another
    if problem is not None:
        assert problem.split(":")[0] == str(damaged / RESULT_NAME) and "\n" not in problem
        assert first.outcome == "unknown_error" and "result file is damaged" in (first.message or "")
    else:
        assert strict is not None  # a file that reads as sound is decided on what it says
    assert campaign.ledger().check().ok
    read_result(damaged)  # the display reader never raises either
    _show_and_results(campaign.root)


@FAST
@given(
    spec=st.one_of(
        st.binary(max_size=40),
        st.dictionaries(
            st.sampled_from(["campaign", "job_id", "attempt", "input", "orca", "scratch_root", "keep",
                             "extra_inputs", "nprocs", "maxcore_mb", "mem_mb", "time_min"]),
            JSON_VALUES,
            max_size=4,
        ).map(lambda d: json.dumps(d).encode()),
        st.sampled_from([b'{"nprocs": ' + b"9" * 5000 + b"}", b"[" * 5000, b'{"mem_mb": 99999999999999}']),
    )
)  # fmt: skip
def test_a_damaged_spec_fails_only_its_retry(template: Path, tmp_path: Path, spec: bytes) -> None:
    campaign, fake = _campaign_with_two_finished_jobs(template, tmp_path / "c")
    jobs = campaign.ledger().snapshot().jobs
    damaged, sound = (campaign.root / jobs[j].latest.dir for j in ("j000001", "j000002"))
    original = json.loads((damaged / SPEC_NAME).read_text())
    try:
        body = json.loads(spec)
    except (ValueError, RecursionError, UnicodeDecodeError):
        body = None
    data = json.dumps({**original, **body}).encode() if isinstance(body, dict) else spec
    (damaged / SPEC_NAME).write_bytes(data)
    (damaged / RESULT_NAME).write_text(json.dumps(_valid("j000001", "scf_not_converged")))
    (sound / RESULT_NAME).write_text(json.dumps(_valid("j000002")))

    reconcile(campaign, scheduler=fake)

    after = campaign.ledger().snapshot()
    assert after.get("j000002").state is JobState.COMPLETED
    job = after.get("j000001")
    # Retried from the spec when it is sound, else given up on with the reason.
    assert job.state in (JobState.PENDING, JobState.PERMANENT_FAILED)
    assert campaign.ledger().check().ok


@pytest.mark.parametrize("node", ["link to /dev/zero", "fifo"])
def test_a_spec_that_is_no_file_never_hangs(tmp_path: Path, node: str) -> None:
    from orca_hpc.attempt.folder import AttemptSpec

    if node == "fifo":
        os.mkfifo(tmp_path / SPEC_NAME)
    else:
        (tmp_path / SPEC_NAME).symlink_to("/dev/zero")
    with pytest.raises(InputFileError, match=r"symbolic link|not a regular file"):
        AttemptSpec.read(tmp_path)


def test_a_waiting_job_with_a_damaged_spec_keeps_only_itself_back(template: Path, tmp_path: Path) -> None:
    campaign = load_campaign(fresh_copy(template, tmp_path / "c"))
    fake = FakeScheduler(slots=0)  # no free slot: both jobs are recorded and wait as CREATED
    submit(campaign, [campaign.root / "m0.inp", campaign.root / "m1.inp"], scheduler=fake)
    first = campaign.ledger().snapshot().get("j000001").latest
    (campaign.root / first.dir / SPEC_NAME).write_bytes(b"\x00damaged")
    fake._slots = 2
    said: list[str] = []
    reconcile(campaign, scheduler=fake, echo=said.append)
    after = campaign.ledger().snapshot()
    assert after.get("j000002").state is JobState.PENDING
    assert after.get("j000001").state is JobState.CREATED
    assert any(line.startswith("j000001: not submitted: ") and SPEC_NAME in line for line in said)


# Values near every edge the strict reader draws: times in and out of the one format, control
# characters (C0, DEL, C1), non-ASCII text, 200/201-character lines, numbers at and past 2**63.
EDGY_VALUES = st.one_of(
    JSON_VALUES,
    st.sampled_from(
        [
            "2026-02-28T23:59:59Z", "2024-02-29T12:00:00Z", "2026-01-01T00:00:60Z", "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00", "0000-01-01T00:00:00Z", "2026-01-01T00:00:5\u0663Z", "x\x85y", "x\x7fy",
            "\u2028", "nœud", "a" * 200, "a" * 201, 2**63, 2**63 + 1, -(2**63), float(2**63), 1e308, -0.0,
            True, False, [], ["a.out", "b\x00"], ["ok"], {}, {"outcome": "success"},
        ]
    ),
    st.lists(st.one_of(st.text(max_size=4), st.floats(), st.integers()), max_size=3),
)  # fmt: skip


@settings(max_examples=int(os.environ.get("ORCA_RESULT_FUZZ_EXAMPLES", "300")), deadline=None)
@given(
    body=st.dictionaries(st.sampled_from([*RESULT_KEYS, "result_version", "other"]), EDGY_VALUES, max_size=8),
    classification=st.none()
    | st.dictionaries(
        st.sampled_from([*CLASSIFICATION_KEYS, "energy", "zpe", "other"]), EDGY_VALUES, max_size=5
    ),
)
def test_the_quick_result_check_never_accepts_what_the_full_rules_refuse(
    body: dict[str, Any], classification: dict[str, Any] | None
) -> None:
    """``AttemptResult.parse`` tries a quick check first (reconcile reads thousands of result files);
    whatever it accepts, the full rules accept too and read the same result."""
    if classification is not None:
        body["classification"] = classification
    for _ in range(2):  # the second time through the layout the quick check remembered
        quick = AttemptResult._plainly_sound(body)
        full, problems = AttemptResult._parse_fully(body)
        if quick is not None:
            assert problems == [] and quick == full
        expected = (quick, []) if quick is not None else (full, problems)
        assert AttemptResult.parse(body) == expected


def test_the_quick_result_check_takes_a_sound_result() -> None:
    """The usual file is told quickly (else the quick path would be dead weight)."""
    body = {
        **_valid("j000001"),
        "started": "2026-01-01T00:00:00Z",
        "ended": "2026-01-01T00:01:00Z",
        "slurm_job_id": "100_1",
        "files": ["a.out"],
        "classification": {"outcome": "success", "energy": -1.1, "error_lines": [], "imag_noise": None},
    }
    assert AttemptResult._plainly_sound(body) == AttemptResult._parse_fully(body)[0]
    assert AttemptResult._plainly_sound({**body, "node": "n\x1b"}) is None
