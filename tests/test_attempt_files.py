"""The controller-runner contract: spec.json and result.json, each read and written by its one record."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from orca_hpc.attempt.folder import (
    AttemptPlan,
    AttemptResult,
    AttemptSpec,
    plan_of,
    read_result,
    write_attempt,
)
from orca_hpc.errors import InputFileError


def test_spec_written_by_the_controller_is_what_the_runner_reads(tmp_path: Path) -> None:
    plan = AttemptPlan("w.inp", "! HF\n", nprocs=4, maxcore_mb=500, mem_mb=2500, time_min=30)
    write_attempt(
        tmp_path / "attempt-1", plan, campaign="c-1", job_id="j000001", job_name="water", attempt=1,
        orca="/opt/orca/orca", scratch_root="$TMPDIR", keep=("*.out",), imag_threshold_cm1=15.0,
    )  # fmt: skip
    spec = AttemptSpec.read(tmp_path / "attempt-1")
    assert (spec.input, spec.nprocs, spec.mem_mb, spec.keep, spec.imag_threshold_cm1) == (
        "w.inp",
        4,
        2500,
        ("*.out",),
        15.0,
    )
    assert json.loads((tmp_path / "attempt-1" / "spec.json").read_text())["spec_version"] == 1
    assert plan_of(tmp_path / "attempt-1").maxcore_mb == 500


def test_a_bad_spec_names_the_file_and_every_problem(tmp_path: Path) -> None:
    bad = {"campaign": "../x", "job_id": "j 1", "attempt": "1", "input": "a.inp", "orca": "", "keep": [1]}
    with pytest.raises(InputFileError) as info:
        AttemptSpec.from_json(json.dumps(bad).encode(), tmp_path / "spec.json")
    message = str(info.value)
    assert str(tmp_path / "spec.json") in message and "\n" not in message
    problems = (
        "'attempt' missing or not an integer",
        "'scratch_root' missing",
        "glob patterns",
        "cannot name a scratch folder",
        "'job_id' 'j 1' is not a safe name",
        "'orca' is empty",
    )
    for problem in problems:
        assert problem in message


def test_result_is_read_tolerantly(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({"outcome": "success", "energy": -1.5, "future": 1}))
    result = read_result(tmp_path)
    assert result is not None and (result.outcome, result.energy, result.retryable) == ("success", -1.5, None)
    (tmp_path / "result.json").write_text(json.dumps({"outcome": "success", "classification": [1]}))
    assert read_result(tmp_path) == AttemptResult(outcome="success")  # a damaged field takes its default
    (tmp_path / "result.json").write_text("[1, 2]")
    assert read_result(tmp_path) is None
    round_trip = AttemptResult(job_id="j1", attempt=2, files=["a.out"])
    assert AttemptResult.from_dict(round_trip.to_dict()) == round_trip


def test_a_hand_over_linked_again_leaves_one_name_and_no_temp(tmp_path: Path) -> None:
    """A folder laid out again (a reconcile killed before its save) links the same file over itself:
    renaming one link over another of the same file does nothing, so no temp name may stay behind."""
    from orca_hpc.atomic import atomic_link

    src = tmp_path / "pred.gbw"
    src.write_bytes(b"orbitals")
    src.chmod(0o640)
    folder = tmp_path / "attempt-1"
    folder.mkdir()
    for _ in range(2):
        atomic_link(src, folder / "prev.gbw", 0o640)
    assert sorted(p.name for p in folder.iterdir()) == ["prev.gbw"]
    assert (folder / "prev.gbw").stat().st_ino == src.stat().st_ino


def test_spec_json_is_what_json_dumps_writes() -> None:
    """spec.json's reused encoder writes json.dumps' very text (ASCII escapes, separators, floats), for
    specs with any characters in their strings, and reads back as the same spec."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    names = st.text(max_size=12)

    @settings(max_examples=200, deadline=None)
    @given(
        names,
        names,
        names,
        st.lists(names, max_size=3),
        st.integers(0, 2**31 - 1),
        st.none() | st.floats(allow_nan=False, allow_infinity=False),
    )
    def check(campaign: str, job: str, orca: str, keep: list[str], n: int, threshold: float | None) -> None:
        spec = AttemptSpec(
            campaign=campaign, job_id="j000001", job_name=job, attempt=n, input="a.inp",
            extra_inputs=("b.xyz",), orca=orca, scratch_root="/s", keep=tuple(keep), nprocs=n,
            maxcore_mb=n, mem_mb=n, time_min=n, imag_threshold_cm1=threshold,
        )  # fmt: skip
        body = {"spec_version": 1, **dataclasses.asdict(spec)}
        if threshold is None:
            del body["imag_threshold_cm1"]
        del body["scratch_fallback"]  # None: left out, as the threshold
        assert spec.to_json() == json.dumps(body).encode("utf-8")

    check()


def test_the_sites_scratch_fallback_reaches_the_spec(tmp_path: Path) -> None:
    """[scratch] fallback travels in spec.json, where the runner reads it (it was checked, then lost)."""
    from orca_hpc.config.campaign import init_campaign, load_campaign
    from orca_hpc.controller.submit import submit
    from orca_hpc.scheduler.fake import FakeScheduler

    init_campaign(tmp_path / "camp", "local-slurm")
    config = tmp_path / "camp" / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[overrides.scratch]\nfallback = "$HOME/orca-scratch"\n')
    campaign = load_campaign(tmp_path / "camp")
    (tmp_path / "h2.inp").write_text("! HF def2-SVP\n* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n")
    [(job_id, _name, _sid)] = submit(campaign, [tmp_path / "h2.inp"], scheduler=FakeScheduler()).submitted
    folder = campaign.root / campaign.ledger().snapshot().get(job_id).latest.dir
    assert AttemptSpec.read(folder).scratch_fallback == "$HOME/orca-scratch"
