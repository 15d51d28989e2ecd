"""Exactly-once corners found in review: an sbatch whose answer is lost, a cancel of a submission whose
SLURM id was never recorded. Fast, on the in-memory FakeScheduler (``fake.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orca_hpc.clock import epoch
from orca_hpc.config.campaign import Campaign, init_campaign, load_campaign
from orca_hpc.controller import reconcile as reconcile_mod
from orca_hpc.controller.reconcile import reconcile
from orca_hpc.controller.submit import submit
from orca_hpc.errors import SchedulerUnavailable
from orca_hpc.ledger.states import JobState
from orca_hpc.scheduler.fake import FakeScheduler

INPUT = "! HF def2-SVP\n* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n"


@pytest.fixture
def campaign(tmp_path: Path) -> Campaign:
    init_campaign(tmp_path / "camp", "local-slurm")
    return load_campaign(tmp_path / "camp")


def _inputs(campaign: Campaign, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = campaign.root / f"m{i}.inp"
        path.write_text(INPUT + f"# {i}\n")
        paths.append(path)
    return paths


def _job(campaign: Campaign, job_id: str):  # type: ignore[no-untyped-def]
    return campaign.ledger().snapshot().get(job_id)


def test_sbatch_whose_answer_was_lost_is_adopted_not_submitted_again(campaign: Campaign) -> None:
    """sbatch "Socket timed out": slurmctld may have queued the array. The jobs keep their token
    (SUBMITTING), so reconcile finds the array by it instead of submitting it a second time."""
    fake = FakeScheduler()
    fake.lose_answer = True
    with pytest.raises(SchedulerUnavailable):
        submit(campaign, _inputs(campaign, 2), scheduler=fake)
    fake.lose_answer = False
    assert len(fake.requests) == 1  # the array exists in the scheduler
    for job_id in ("j000001", "j000002"):
        job = _job(campaign, job_id)
        assert job.state is JobState.SUBMITTING and job.latest.token, job_id
    later = max(epoch(_job(campaign, j).updated) or 0.0 for j in ("j000001", "j000002"))
    later += reconcile_mod.UNCONFIRMED_GRACE_S + 1  # even a reconcile long after
    report = reconcile(campaign, scheduler=fake, now=lambda: later)
    assert sorted(report.adopted) == ["j000001", "j000002"]
    assert len(fake.requests) == 1  # never submitted twice
    assert {_job(campaign, j).latest.slurm_id for j in ("j000001", "j000002")} == {"1000_0", "1000_1"}


def test_sbatch_that_never_reached_the_scheduler_waits_as_created(campaign: Campaign) -> None:
    """The other side: slurmctld could not be reached at all, nothing was queued. The job waits as
    CREATED, and the next reconcile submits it (once)."""
    fake = FakeScheduler()
    fake.down = True
    with pytest.raises(SchedulerUnavailable):
        submit(campaign, _inputs(campaign, 1), scheduler=fake)
    fake.down = False
    assert not fake.requests
    assert _job(campaign, "j000001").state is JobState.CREATED
    reconcile(campaign, scheduler=fake)
    assert _job(campaign, "j000001").state is JobState.PENDING and len(fake.requests) == 1


def test_cancel_of_an_unconfirmed_submission_cancels_what_its_token_started(campaign: Campaign) -> None:
    """A submitter killed after sbatch accepted the array leaves the job SUBMITTING without a SLURM
    id. Cancelling it must cancel that array task too: otherwise it runs, unwatched, and a later
    `retry` runs the same calculation a second time beside it."""
    from orca_hpc.controller.actions import cancel_jobs
    from orca_hpc.scheduler.fake import SubmitterKilled

    fake = FakeScheduler()
    fake.kill_submitter = True
    with pytest.raises(SubmitterKilled):
        submit(campaign, _inputs(campaign, 2), scheduler=fake)
    fake.kill_submitter = False
    assert _job(campaign, "j000002").latest.slurm_id is None
    assert cancel_jobs(campaign, ["j000002"], scheduler=fake) == 1
    assert fake.cancelled == ["1000_1"]  # its own task, not its sibling's
    assert fake.jobs["1000_1"].state == "CANCELLED" and fake.jobs["1000_0"].state == "PENDING"
    assert _job(campaign, "j000002").state is JobState.CANCELLED


def test_local_start_interrupted_by_ctrl_c_is_noted_and_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during a local submit lands almost always in a start (Popen is most of its time): the
    controller process exists, and its start must be noted under the token before the interrupt is
    raised, or reconcile would start the same attempt a second time."""
    import os
    import signal
    import time

    from orca_hpc.scheduler import scheduler_for
    from orca_hpc.scheduler.local import LocalScheduler

    runs = tmp_path / "runs.txt"
    orca = tmp_path / "orca"  # counts its runs, then is the emulator
    orca.write_text(f'#!/bin/bash\necho "$1" >> {runs}\nexec orca-emulator "$@"\n')
    orca.chmod(0o755)
    init_campaign(tmp_path / "camp", "local")
    config = tmp_path / "camp" / "orca-hpc.toml"
    config.write_text(config.read_text() + f'\n[overrides.orca]\npath = "{orca}"\n')
    campaign = load_campaign(tmp_path / "camp")
    start = LocalScheduler._start

    def start_then_ctrl_c(self, command, time_min):  # type: ignore[no-untyped-def]
        pid = start(self, command, time_min)
        os.kill(os.getpid(), signal.SIGINT)  # the person's Ctrl-C, the moment the process exists
        return pid

    monkeypatch.setattr(LocalScheduler, "_start", start_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        submit(campaign, _inputs(campaign, 1), scheduler=scheduler_for(campaign))
    monkeypatch.setattr(LocalScheduler, "_start", start)
    assert _job(campaign, "j000001").state is JobState.SUBMITTING
    report = reconcile(campaign, now=lambda: time.time() + 3600)  # long after the grace
    assert report.adopted == ["j000001"] and not report.submitted
    deadline = time.monotonic() + 120
    while _job(campaign, "j000001").state is not JobState.COMPLETED:
        assert time.monotonic() < deadline, _job(campaign, "j000001").state
        time.sleep(0.5)
        reconcile(campaign)
    assert len(runs.read_text().splitlines()) == 1


def test_cancel_of_a_lost_answer_waits_for_the_grace_before_calling_it_never_queued(
    campaign: Campaign,
) -> None:
    """sbatch got no answer, and SLURM shows nothing under the token yet (a busy slurmctld still
    working on it). Reconcile waits out a grace before it calls such a submission never queued;
    cancel must too, or the array it marks CANCELLED appears a moment later and runs, unwatched."""
    from orca_hpc.controller.actions import cancel_jobs
    from orca_hpc.errors import TemporaryFailure

    fake = FakeScheduler()
    fake.lose_answer = True
    with pytest.raises(SchedulerUnavailable):
        submit(campaign, _inputs(campaign, 1), scheduler=fake)
    fake.lose_answer = False
    queued, fake.jobs = fake.jobs, {}  # not visible yet
    with pytest.raises(TemporaryFailure, match=r"j000001: submitted without an answer"):
        cancel_jobs(campaign, ["j000001"], scheduler=fake)
    assert _job(campaign, "j000001").state is JobState.SUBMITTING and not fake.cancelled  # nothing done
    fake.jobs = queued  # the array has appeared: the next cancel finds it and cancels it
    assert cancel_jobs(campaign, ["j000001"], scheduler=fake) == 1
    assert fake.cancelled == ["1000_0"] and _job(campaign, "j000001").state is JobState.CANCELLED
