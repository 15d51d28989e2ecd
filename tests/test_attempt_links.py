"""A symbolic link where an attempt folder goes (``jobs/<id>/attempt-<n>``, ``jobs/<id>``) is never
followed: neither the controller laying the attempt out nor the runner running it writes into the
folder the link points to."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_runner_support import make_attempt, write_fake_orca

from orca_hpc.config.campaign import init_campaign, load_campaign
from orca_hpc.controller.submit import submit
from orca_hpc.errors import OrcaHpcError, UserError
from orca_hpc.runner import run as runner
from orca_hpc.scheduler.fake import FakeScheduler

INPUT = "! HF def2-SVP\n* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n"


@pytest.mark.parametrize("planted", ["jobs/j000001/attempt-1", "jobs/j000001"])
def test_submit_never_lays_an_attempt_out_through_a_link(tmp_path: Path, planted: str) -> None:
    init_campaign(tmp_path / "camp", "local-slurm")
    campaign = load_campaign(tmp_path / "camp")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "spec.json").write_text("a file of someone's own\n")
    link = campaign.root / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere)  # the next job's id is predictable
    (campaign.root / "m.inp").write_text(INPUT)
    fake = FakeScheduler()
    with pytest.raises(UserError, match="symbolic link"):
        submit(campaign, [campaign.root / "m.inp"], scheduler=fake)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["spec.json"]
    assert (elsewhere / "spec.json").read_text() == "a file of someone's own\n"
    assert not fake.requests and not campaign.ledger().snapshot().jobs


def test_runner_never_runs_an_attempt_folder_that_is_a_link(tmp_path: Path) -> None:
    real = make_attempt(tmp_path / "camp", write_fake_orca(tmp_path), tmp_path / "scratch")
    (tmp_path / "scratch").mkdir()
    elsewhere = tmp_path / "elsewhere"
    real.rename(elsewhere)
    real.symlink_to(elsewhere)
    assert runner.main(["--attempt-dir", str(real)]) == runner.EXIT_BAD_SPEC
    assert not (elsewhere / "result.json").exists()


@pytest.mark.parametrize("planted", ["controllers.log", "tokens"])
def test_local_site_never_writes_its_notes_through_a_link(tmp_path: Path, planted: str) -> None:
    """The local site's controller log and the folder of its start notes in the campaign's state
    folder: a link planted there is refused, never followed (opened for appending, the log's link
    created and filled its target; the notes went wherever the folder's link pointed)."""
    from orca_hpc.scheduler import scheduler_for

    init_campaign(tmp_path / "camp", "local")
    config = tmp_path / "camp" / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[overrides.orca]\npath = "/nonexistent/orca"\n')
    campaign = load_campaign(tmp_path / "camp")
    campaign.submitit_dir.mkdir(parents=True, exist_ok=True)
    elsewhere = tmp_path / "elsewhere"
    if planted == "tokens":
        elsewhere.mkdir()
    (campaign.submitit_dir / planted).symlink_to(elsewhere)
    (campaign.root / "m.inp").write_text(INPUT)
    with pytest.raises(OrcaHpcError, match="symbolic link"):
        submit(campaign, [campaign.root / "m.inp"], scheduler=scheduler_for(campaign))
    assert (list(elsewhere.iterdir()) == []) if planted == "tokens" else not elsewhere.exists()
    assert campaign.ledger().snapshot().get("j000001").state.value == "CREATED"  # sent on a later run
