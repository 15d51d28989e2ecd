"""Retry after a fix: an edited input (or a replacement) is validated, run, and recorded as the
attempt's correction, so `show` tells why attempt 2 differs from attempt 1. On the `local` site."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from e2e import cli, ledger_bytes, orca_input, show, status

from orca_hpc.attempt.folder import AttemptSpec
from orca_hpc.config.campaign import init_campaign
from orca_hpc.controller.actions import cancel_selected, retry_selected
from orca_hpc.controller.select import Selector
from orca_hpc.controller.submit import submit
from orca_hpc.errors import UserError
from orca_hpc.scheduler.fake import FakeScheduler


def _failed_once(tmp_path: Path, name: str = "fixme") -> tuple[Path, Path, str]:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[overrides.orca]\npath = "orca-emulator"\n')
    source = tmp_path / f"{name}.inp"
    source.write_text(orca_input(directive="input_error"))
    cli(camp, "submit", str(source))
    job = _wait(camp, "PERMANENT_FAILED")
    return camp, source, job


def _wait(camp: Path, state: str) -> str:
    deadline = time.monotonic() + 120
    while True:
        jobs = status(camp, reconcile=True)["jobs"]
        if jobs and all(j["state"] == state for j in jobs):
            return str(jobs[0]["id"])
        assert time.monotonic() < deadline, jobs
        time.sleep(0.3)


def test_an_edited_input_is_run_and_recorded(tmp_path: Path) -> None:
    camp, source, job = _failed_once(tmp_path)
    source.write_text(orca_input())  # the person fixed the input
    said = cli(camp, "retry", job).output
    assert f"{job}: runs the corrected input" in said
    _wait(camp, "COMPLETED")
    record = show(camp, job)
    second = record["attempts"][1]
    [fix] = second["corrections"]
    assert fix["handler"] == "manual" and f"input {source} edited" in fix["change"]
    spec = AttemptSpec.read(Path(second["folder"]))
    assert "emulate" not in (Path(second["folder"]) / spec.input).read_text()  # the edit, not the old text


def test_an_unchanged_input_reruns_as_it_was(tmp_path: Path) -> None:
    camp, _source, job = _failed_once(tmp_path)
    said = cli(camp, "retry", job).output
    assert "corrected input" not in said
    record = show(camp, job)
    assert record["attempts"][1]["corrections"][0]["change"] == "none"
    _wait(camp, "PERMANENT_FAILED")


def test_a_broken_edit_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    camp, source, job = _failed_once(tmp_path)
    source.write_text("! B3LYP def2-SVP\n* xyz 0 1\nO 0 0\n*\n")  # a coordinate missing
    before = ledger_bytes(camp)
    result = cli(camp, "retry", job, expect=1)
    assert str(source) in result.output and "\n" not in result.output.strip()
    assert ledger_bytes(camp) == before


def test_a_replacement_input_for_one_job(tmp_path: Path) -> None:
    camp, _source, job = _failed_once(tmp_path)
    fixed = tmp_path / "fixed.inp"
    fixed.write_text(orca_input("PBE def2-SVP"))
    cli(camp, "retry", job, "--input", str(fixed))
    _wait(camp, "COMPLETED")
    [fix] = show(camp, job)["attempts"][1]["corrections"]
    assert f"input replaced by {fixed}" in fix["change"]


def test_every_broken_edit_of_a_bulk_retry_is_named_and_nothing_changes(tmp_path: Path) -> None:
    # On the fake scheduler: two cancelled jobs whose inputs were both edited badly.
    campaign = init_campaign(tmp_path / "camp", "local-slurm")
    fake = FakeScheduler()
    sources = []
    for name in ("one", "two"):
        source = tmp_path / f"{name}.inp"
        source.write_text(orca_input(extra=f"# {name}\n"))
        sources.append(source)
    assert len(submit(campaign, sources, scheduler=fake).submitted) == 2
    cancel_selected(campaign, Selector(everything=True), scheduler=fake)
    for source in sources:
        source.write_text("! B3LYP def2-SVP\n* xyz 0 1\nO 0 0\n*\n")  # a coordinate missing
    before = (campaign.state_dir / "ledger.json").read_bytes()
    with pytest.raises(UserError) as refused:
        retry_selected(campaign, Selector(states=("CANCELLED",)), scheduler=fake)
    message = str(refused.value)
    assert all(str(source) in message for source in sources), message
    assert "\n" not in message
    assert (campaign.state_dir / "ledger.json").read_bytes() == before
    assert not any(campaign.root.glob("jobs/*/attempt-2"))


def test_a_replacement_must_be_an_orca_input(tmp_path: Path) -> None:
    campaign = init_campaign(tmp_path / "camp", "local-slurm")
    fake = FakeScheduler()
    (tmp_path / "one.inp").write_text(orca_input())
    submit(campaign, [tmp_path / "one.inp"], scheduler=fake)
    cancel_selected(campaign, Selector(everything=True), scheduler=fake)
    geometry = tmp_path / "fixed.xyz"
    geometry.write_text("2\nhydrogen\nH 0 0 0\nH 0 0 0.74\n")
    # Not "needs --method": retry has no such option.
    with pytest.raises(UserError, match=r"fixed\.xyz: --input takes a corrected ORCA input \(\.inp\)$"):
        retry_selected(campaign, Selector(refs=("one",)), scheduler=fake, replacement=geometry)


def test_a_changed_xyz_is_said_not_silently_ignored(tmp_path: Path) -> None:
    campaign = init_campaign(tmp_path / "camp", "local-slurm")
    fake = FakeScheduler()
    geometry = tmp_path / "h2.xyz"
    geometry.write_text("2\nhydrogen\nH 0 0 0\nH 0 0 0.74\n")
    # Written well before the submit, whatever the clocks of the file system and of the process say
    # (CI once saw this file's write time a second past the job's stamp in whole seconds).
    past = time.time() - 3600
    os.utime(geometry, (past, past))
    submit(campaign, [geometry], method="B3LYP def2-SVP", scheduler=fake)
    cancel_selected(campaign, Selector(everything=True), scheduler=fake)
    unchanged = retry_selected(campaign, Selector(refs=("h2",)), scheduler=fake)
    assert unchanged.xyz_changed == []
    cancel_selected(campaign, Selector(everything=True), scheduler=fake)
    geometry.write_text("2\nhydrogen\nH 0 0 0\nH 0 0 0.80\n")  # the person's fix of the geometry
    future = time.time() + 60  # later than the job's creation whatever the clock's resolution
    os.utime(geometry, (future, future))
    retried = retry_selected(campaign, Selector(refs=("h2",)), scheduler=fake)
    assert retried.done == retried.xyz_changed == [retried.done[0]]
