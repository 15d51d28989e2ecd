"""The chemist's loop through the real CLI strings: finding the campaign, selecting jobs, honest output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from e2e import cli, new_campaign, orca_input, status, write_inputs

from orca_hpc.cli import main
from orca_hpc.config.campaign import Campaign, init_campaign
from orca_hpc.controller.actions import cancel_selected, retry_selected
from orca_hpc.controller.select import Selector, select_jobs
from orca_hpc.controller.submit import submit
from orca_hpc.errors import UserError
from orca_hpc.ledger.states import JobState
from orca_hpc.scheduler.fake import FakeScheduler


def _run(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == expect, f"exit {result.exit_code}: {result.output}"
    return result.output


def test_commands_find_the_campaign_from_a_sub_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = new_campaign(tmp_path)
    deep = camp / "inputs" / "batch1"
    deep.mkdir(parents=True)
    (deep / "h2.inp").write_text(orca_input())
    monkeypatch.chdir(deep)
    # No -C: the campaign is the nearest folder up with orca-hpc.toml; relative inputs stay relative
    # to where the command was typed.
    assert json.loads(_run("status", "--no-reconcile", "--json"))["jobs"] == []
    assert _run("render", "h2.inp").startswith("#!/bin/bash")
    # -C into a sub-folder works the same way.
    monkeypatch.chdir(tmp_path)
    assert json.loads(_run("-C", str(deep), "status", "--no-reconcile", "--json"))["jobs"] == []
    # Outside any campaign: one clear line, exit 1.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    message = _run("-C", str(outside), "status", "--no-reconcile", expect=1)
    assert "not an orca-hpc campaign" in message and "any parent folder" in message
    # init still makes a new campaign where it is told, even inside another one.
    _run("-C", str(deep), "init", "nested", "--site", "local-slurm")
    assert (deep / "nested" / "orca-hpc.toml").is_file()
    assert cli(camp, "status", "--no-reconcile").output.strip().endswith("no jobs")


# ---------------------------------------------------------------- one selector everywhere

INPUT = "! HF def2-SVP\n* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n"


def _fake_campaign(tmp_path: Path, names: list[str]) -> tuple[Campaign, FakeScheduler, list[str]]:
    """A campaign with one submitted job per name (on the fake scheduler, so nothing runs)."""
    campaign = init_campaign(tmp_path / "camp", "local-slurm")
    fake = FakeScheduler()
    paths = []
    for i, name in enumerate(names):
        folder = tmp_path / "in" / str(i)
        folder.mkdir(parents=True)
        (folder / f"{name}.inp").write_text(INPUT + f"# {i}\n")
        paths.append(folder / f"{name}.inp")
    report = submit(campaign, paths, scheduler=fake)
    return campaign, fake, [job_id for job_id, _n, _s in report.submitted]


def test_cancelling_50_pending_jobs_by_state_is_one_scheduler_call(tmp_path: Path) -> None:
    campaign, fake, ids = _fake_campaign(tmp_path, [f"conf{i}" for i in range(50)])
    # One job already finished: a filter skips it, it is not an error.
    done = ids[0]
    fake.start(fake_id(campaign, done))
    with campaign.ledger().transaction() as txn:
        job = txn.get(done)
        for state in (JobState.RUNNING, JobState.COMPLETED):
            txn.set_state(job, state)
    cancels_before = fake.calls["scancel"]
    report = cancel_selected(campaign, Selector(states=("PENDING",)), scheduler=fake)
    assert sorted(report.done) == sorted(ids[1:])
    assert fake.calls["scancel"] - cancels_before == 1  # one call for all 49
    assert len(fake.cancelled) == 49
    view = campaign.ledger().snapshot()
    assert all(view.get(i).state is JobState.CANCELLED for i in ids[1:])
    # --all: the finished job is skipped with its state; nothing left to cancel, no scheduler call.
    again = cancel_selected(campaign, Selector(everything=True), scheduler=fake)
    assert again.done == [] and (done, "COMPLETED") in again.skipped
    assert fake.calls["scancel"] - cancels_before == 1
    # Retry by glob: one transaction, one sbatch for all of them, the COMPLETED one skipped.
    sbatch_before = fake.calls["sbatch"]
    retried = retry_selected(campaign, Selector(name_glob="conf*"), scheduler=fake)
    assert len(retried.submitted) == 49 and retried.skipped == [(done, "COMPLETED")]
    assert fake.calls["sbatch"] - sbatch_before == 1


def fake_id(campaign: Campaign, job_id: str) -> str:
    sid = campaign.ledger().snapshot().get(job_id).latest.slurm_id
    assert sid is not None
    return sid


def test_selector_names_ids_ambiguity_and_did_you_mean(tmp_path: Path) -> None:
    campaign, fake, ids = _fake_campaign(tmp_path, ["water", "water", "benzene"])
    view = campaign.ledger().snapshot()
    # A name shared by two jobs: both for commands that show, an error listing them for actions.
    assert select_jobs(view, Selector(refs=("water",))).ids == ids[:2]
    with pytest.raises(UserError, match=rf"2 jobs are named 'water': {ids[0]} \(PENDING\), {ids[1]}"):
        select_jobs(view, Selector(refs=("water",)), many_per_name=False)
    assert select_jobs(view, Selector(refs=(ids[2], "benzene"))).ids == [ids[2]]  # each job once
    with pytest.raises(UserError, match=r"no job 'benzen' .*did you mean 'benzene'"):
        select_jobs(view, Selector(refs=("benzen",)))
    with pytest.raises(UserError, match="no job 'j000099'"):
        select_jobs(view, Selector(refs=("j000099",)))
    # Filters narrow references; --all with a glob.
    assert select_jobs(view, Selector(refs=("water",), states=("COMPLETED",))).ids == []
    assert select_jobs(view, Selector(everything=True, name_glob="b*")).ids == [ids[2]]
    assert select_jobs(view, Selector()).ids == []
    # A job named one by one in the wrong state is refused, each such job listed; nothing changes.
    cancel_selected(campaign, Selector(refs=(ids[2],)), scheduler=fake)
    before = (campaign.state_dir / "ledger.json").read_bytes()
    with pytest.raises(UserError, match=f"{ids[2]} is CANCELLED already"):
        cancel_selected(campaign, Selector(refs=(ids[0], ids[2])), scheduler=fake)
    assert (campaign.state_dir / "ledger.json").read_bytes() == before
    with pytest.raises(UserError, match=f"{ids[0]} is PENDING: only PERMANENT_FAILED or CANCELLED"):
        retry_selected(campaign, Selector(refs=(ids[0],)), scheduler=fake)


def test_selector_through_the_cli_on_the_local_site(tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[overrides.orca]\npath = "orca-emulator"\n')
    slow = orca_input(directive="sleep=300")
    paths = write_inputs(tmp_path / "a", {"slow.inp": slow})
    paths += write_inputs(tmp_path / "b", {"slow.inp": slow + "# b\n", "other.inp": slow + "# o\n"})
    cli(camp, "submit", *paths)  # array_parallelism 2: two start, one waits
    ids = [j["id"] for j in status(camp)["jobs"]]
    try:
        ambiguous = cli(camp, "cancel", "slow", expect=1).output
        assert f"2 jobs are named 'slow': {ids[0]}" in ambiguous and ids[1] in ambiguous
        assert "did you mean 'other'" in cli(camp, "cancel", "othr", expect=1).output
        assert "name the jobs" in cli(camp, "cancel", expect=2).output
        shown = json.loads(cli(camp, "show", "--no-reconcile", "--json", "slow").output)["jobs"]
        assert [j["id"] for j in shown] == ids[:2]
        assert cli(camp, "cancel", "--name", "sl*").output.strip().endswith("cancelled 2 job(s)")
        out = cli(camp, "cancel", "--all").output
        assert out.strip().endswith("cancelled 1 job(s), skipped 2 (2 CANCELLED)")
        after = status(camp, reconcile=True)
        assert after["counts"] == {"CANCELLED": 3}
        retried = cli(camp, "retry", "other").output
        assert "retrying 1 job(s): submitted 1 in 1 scheduler call(s)" in retried
        assert [j["id"] for j in status(camp)["jobs"] if j["state"] != "CANCELLED"] == [ids[2]]
        assert json.loads(cli(camp, "results", "--json", "--no-reconcile", "--state", "CANCELLED").output)
    finally:
        cli(camp, "cancel", "--state", "PENDING", "--state", "RUNNING", "--state", "CREATED")
    assert status(camp)["counts"] == {"CANCELLED": 3}
