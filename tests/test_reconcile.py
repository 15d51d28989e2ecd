"""Reconcile's decisions, fast, on the in-memory FakeScheduler.

The same behaviours run for real on the local SLURM cluster in test_e2e_slurm.py; here each decision
is pinned down on its own: adopt by token, lost-job grace, a reused id, retry or give up, the
scheduler being down.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from orca_hpc.clock import epoch
from orca_hpc.config.campaign import Campaign, init_campaign, load_campaign
from orca_hpc.controller import reconcile as reconcile_mod
from orca_hpc.controller.reconcile import reconcile
from orca_hpc.controller.submit import submit
from orca_hpc.errors import SchedulerUnavailable
from orca_hpc.ledger.states import JobState
from orca_hpc.scheduler.fake import FakeScheduler, SubmitterKilled

INPUT = "! HF def2-SVP\n* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n"


@pytest.fixture
def campaign(tmp_path: Path) -> Campaign:
    init_campaign(tmp_path / "camp", "local-slurm")
    return load_campaign(tmp_path / "camp")


def _submit(campaign: Campaign, fake: FakeScheduler, n: int = 1, tag: str = "") -> list[str]:
    paths = []
    for i in range(n):
        path = campaign.root / f"m{tag}{i}.inp"
        path.write_text(INPUT + f"# {tag}{i}\n")
        paths.append(path)
    report = submit(campaign, paths, scheduler=fake)
    return [job_id for job_id, _name, _sid in report.submitted]


def _job(campaign: Campaign, job_id: str):  # type: ignore[no-untyped-def]
    return campaign.ledger().snapshot().get(job_id)


def _result(campaign: Campaign, job_id: str, outcome: str, **extra: object) -> None:
    """What the runner leaves in the attempt folder."""
    att = _job(campaign, job_id).latest
    body = {"result_version": 1, "job_id": job_id, "attempt": att.n, "outcome": outcome, **extra}
    (campaign.root / att.dir / "result.json").write_text(json.dumps(body))


def test_success_completes_with_energy(campaign: Campaign) -> None:
    fake = FakeScheduler()
    [job_id] = _submit(campaign, fake)
    sid = _job(campaign, job_id).latest.slurm_id
    fake.start(sid)
    reconcile(campaign, scheduler=fake)
    assert _job(campaign, job_id).state is JobState.RUNNING
    fake.finish(sid)
    _result(campaign, job_id, "success", energy=-1.1, retryable=False)
    report = reconcile(campaign, scheduler=fake)
    job = _job(campaign, job_id)
    assert job.state is JobState.COMPLETED and job.latest.energy == -1.1
    assert (job_id, "RUNNING", "COMPLETED") in report.changes
    assert fake.calls["squeue"] == 2  # one query per reconcile, whatever the number of jobs


def test_many_jobs_cost_one_query(campaign: Campaign) -> None:
    fake = FakeScheduler()
    ids = _submit(campaign, fake, 5)
    assert len(fake.requests) == 1 and len(fake.requests[0].attempt_dirs) == 5  # one array
    before = fake.call_count
    reconcile(campaign, scheduler=fake)
    assert fake.call_count - before == 1
    assert {_job(campaign, j).state for j in ids} == {JobState.PENDING}


def test_failure_is_retried_with_a_recorded_correction_then_gives_up(campaign: Campaign) -> None:
    fake = FakeScheduler()
    [job_id] = _submit(campaign, fake)
    max_retries = _job(campaign, job_id).max_retries
    for n in range(1, max_retries + 2):
        att = _job(campaign, job_id).latest
        assert att.n == n
        fake.finish(att.slurm_id, "FAILED", 1)
        _result(campaign, job_id, "scf_not_converged", retryable=True, message="SCF NOT CONVERGED")
        reconcile(campaign, scheduler=fake)
    job = _job(campaign, job_id)
    assert job.state is JobState.PERMANENT_FAILED
    assert len(job.attempts) == max_retries + 1
    assert all(a.corrections for a in job.attempts[1:])  # every later attempt says why it differs
    digest = campaign.ledger().snapshot().outbox
    assert len(digest) == 1 and job_id in json.dumps(digest)


def test_input_error_gives_up_at_once(campaign: Campaign) -> None:
    fake = FakeScheduler()
    [job_id] = _submit(campaign, fake)
    fake.finish(_job(campaign, job_id).latest.slurm_id, "FAILED", 1)
    _result(campaign, job_id, "input_error", retryable=False, message="INPUT ERROR")
    said: list[str] = []
    report = reconcile(campaign, scheduler=fake, echo=said.append)
    assert _job(campaign, job_id).state is JobState.PERMANENT_FAILED
    assert report.permanent_failed == [job_id] and len(fake.requests) == 1
    assert f"{job_id} m0: PERMANENT_FAILED (input_error: retrying cannot help)" in said  # the outcome once


def test_node_failure_is_a_free_attempt(campaign: Campaign) -> None:
    fake = FakeScheduler()
    [job_id] = _submit(campaign, fake)
    fake.finish(_job(campaign, job_id).latest.slurm_id, "NODE_FAIL", 0)
    reconcile(campaign, scheduler=fake)
    job = _job(campaign, job_id)
    assert job.state is JobState.PENDING and len(job.attempts) == 2
    assert (job.retry_count, job.nodefail_count) == (0, 1)


def test_unconfirmed_submission_is_adopted_by_token_not_resubmitted(campaign: Campaign) -> None:
    fake = FakeScheduler()
    fake.kill_submitter = True  # sbatch accepted the array, the submitter died before saving the id
    with pytest.raises(SubmitterKilled):
        _submit(campaign, fake)
    fake.kill_submitter = False
    job = _job(campaign, "j000001")
    assert job.state is JobState.SUBMITTING and job.latest.slurm_id is None and job.latest.token
    report = reconcile(campaign, scheduler=fake)
    assert report.adopted == ["j000001"] and _job(campaign, "j000001").latest.slurm_id == "1000_0"
    assert len(fake.requests) == 1  # never submitted twice


def test_unconfirmed_submission_unknown_after_grace_is_submitted_again(campaign: Campaign) -> None:
    fake = FakeScheduler()
    fake.refuse = "no"
    with pytest.raises(Exception, match="sbatch refused"):
        _submit(campaign, fake)
    fake.refuse = None
    job_id = "j000001"
    assert _job(campaign, job_id).state is JobState.CREATED  # refused: back to CREATED, no id
    with campaign.ledger().transaction() as txn:  # as if sbatch's answer had been lost
        txn.set_state(txn.get(job_id), JobState.SUBMITTING)
        txn.get(job_id).latest.token = "feedfeed/0"
    reconcile(campaign, scheduler=fake)
    assert _job(campaign, job_id).state is JobState.SUBMITTING  # within the grace period: wait
    assert not fake.requests
    later = epoch(_job(campaign, job_id).updated) + reconcile_mod.UNCONFIRMED_GRACE_S + 1
    reconcile(campaign, scheduler=fake, now=lambda: later)
    assert _job(campaign, job_id).state is JobState.PENDING and len(fake.requests) == 1


def test_job_unknown_to_the_scheduler_is_lost_only_after_grace(campaign: Campaign) -> None:
    fake = FakeScheduler()
    [job_id] = _submit(campaign, fake)
    fake.forget(_job(campaign, job_id).latest.slurm_id)
    reconcile(campaign, scheduler=fake)
    assert _job(campaign, job_id).state is JobState.PENDING  # sacct may lag: "not known" is not "lost"
    submitted = epoch(_job(campaign, job_id).latest.submitted)
    reconcile(campaign, scheduler=fake, now=lambda: submitted + reconcile_mod.LOST_GRACE_S + 1)
    job = _job(campaign, job_id)
    assert job.attempts[0].reason == "lost" and job.nodefail_count == 1 and len(job.attempts) == 2


def test_reused_job_id_is_not_taken_for_ours(campaign: Campaign) -> None:
    fake = FakeScheduler()
    [job_id] = _submit(campaign, fake)
    sid = _job(campaign, job_id).latest.slurm_id
    fake.reuse(sid, "someone-elses-job")
    reconcile(campaign, scheduler=fake)
    assert _job(campaign, job_id).state is JobState.PENDING  # not RUNNING on someone else's behalf


def test_queue_state_moves_are_recorded_and_a_reused_id_is_still_not_ours(campaign: Campaign) -> None:
    """SLURM's state of a job that stays queued or running is recorded without decoding the job (the
    attempt is edited in its bytes): the same result as the full path, and a record that is someone
    else's job is never written into ours."""
    from dataclasses import replace

    fake = FakeScheduler()
    [job_id, other] = _submit(campaign, fake, 2)
    sid, other_sid = _job(campaign, job_id).latest.slurm_id, _job(campaign, other).latest.slurm_id
    fake.start(sid)
    fake.start(other_sid)
    reconcile(campaign, scheduler=fake)
    assert _job(campaign, job_id).latest.slurm_state == "RUNNING"
    fake.jobs[sid] = replace(fake.jobs[sid], state="COMPLETING")  # still running, a new SLURM state
    fake.jobs[other_sid] = replace(fake.jobs[other_sid], state="COMPLETING", name="someone-elses-job")
    reconcile(campaign, scheduler=fake)
    job, theirs = _job(campaign, job_id), _job(campaign, other)
    assert job.state is JobState.RUNNING and job.latest.slurm_state == "COMPLETING"
    assert job.latest.started == "2026-01-01T00:00:00Z"
    assert theirs.state is JobState.RUNNING and theirs.latest.slurm_state == "RUNNING"
    assert campaign.ledger().check().ok


def test_scheduler_down_changes_nothing(campaign: Campaign) -> None:
    fake = FakeScheduler()
    [job_id] = _submit(campaign, fake)
    fake.finish(_job(campaign, job_id).latest.slurm_id)
    _result(campaign, job_id, "success", energy=-1.0)
    before = (campaign.state_dir / "ledger.json").read_bytes()
    fake.down = True
    with pytest.raises(SchedulerUnavailable):
        reconcile(campaign, scheduler=fake)
    assert (campaign.state_dir / "ledger.json").read_bytes() == before


def test_result_files_read_while_slurm_answers_are_only_a_hint(
    campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reconcile reads the result files that exist while it waits for the scheduler; a file the runner
    writes again after that read (it rewrites result.json once scratch is gone), or one damaged or
    removed since, is read again: what is recorded is what is there when the job is finished."""
    fake = FakeScheduler()
    fake.query_waits = True  # as SLURM's does: reconcile reads result files while it answers
    ids = _submit(campaign, fake, 3)
    for job_id in ids:
        fake.finish(_job(campaign, job_id).latest.slurm_id)
        _result(campaign, job_id, "success", energy=-1.0)
    early, query = reconcile_mod.Reconciler._read_early, fake.query
    seen: list[int] = []
    read = threading.Event()

    def slow_query(job_ids):  # type: ignore[no-untyped-def]
        read.wait(30)  # SLURM answers once the files were read (reading stops when it has answered)
        return query(job_ids)

    def read_then_change(self, peeked, answered):  # type: ignore[no-untyped-def]
        early(self, peeked, answered)
        read.set()
        seen.append(len(self._early))
        # written again as the runner writes: a new file renamed into place (here of the same size)
        folder = campaign.root / _job(campaign, ids[0]).latest.dir
        old = (folder / "result.json").read_text()
        (folder / "new.json").write_text(old.replace('"energy": -1.0', '"energy": -2.0'))
        os.replace(folder / "new.json", folder / "result.json")
        (campaign.root / _job(campaign, ids[1]).latest.dir / "result.json").write_text("{ not json")
        (campaign.root / _job(campaign, ids[2]).latest.dir / "result.json").unlink()

    monkeypatch.setattr(reconcile_mod.Reconciler, "_read_early", read_then_change)
    monkeypatch.setattr(fake, "query", slow_query)
    reconcile(campaign, scheduler=fake, now=lambda: 10**10)
    assert seen == [3]  # all three were read early
    rewritten, damaged, gone = (_job(campaign, job_id) for job_id in ids)
    assert (rewritten.state, rewritten.latest.energy) == (JobState.COMPLETED, -2.0)
    first_damaged, first_gone = damaged.attempts[0], gone.attempts[0]  # each retried since
    assert first_damaged.outcome != "success" and "not a result file" in (first_damaged.message or "")
    assert first_gone.outcome != "success" and "no result file" in (first_gone.message or "")


def test_the_peek_at_the_latest_attempt_agrees_with_the_decoded_job(campaign: Campaign) -> None:
    fake = FakeScheduler()
    ids = _submit(campaign, fake, 3)
    fake.start(_job(campaign, ids[0]).latest.slurm_id)
    fake.finish(_job(campaign, ids[1]).latest.slurm_id)  # fails without a result: a second attempt
    reconcile(campaign, scheduler=fake, now=lambda: 10**10)
    ledger = campaign.ledger()
    with ledger.lock, ledger.transaction() as txn:
        peeks = {job_id: txn.latest_attempt_peek(job_id) for job_id in ids}
        for job_id in ids:
            att = txn.get(job_id).latest
            assert peeks[job_id] == {
                "sid": att.slurm_id,
                "sst": att.slurm_state,
                "beg": att.started,
                "n": str(att.n),
            }
            assert att.dir == f"jobs/{job_id}/attempt-{att.n}"  # the folder the number names
    assert _job(campaign, ids[1]).latest.n == 2 and peeks[ids[0]]["sst"] == "RUNNING"
    # Extras may hold anything, even what looks like an attempt: the peek reads the attempts alone.
    with ledger.lock, ledger.transaction() as txn:
        txn.get(ids[2]).extra["note"] = [{"n": 9, "tok": "t", "sid": "999_9", "sst": "FAILED"}]
    with ledger.lock, ledger.transaction() as txn:
        assert txn.latest_attempt_peek(ids[2]) == peeks[ids[2]]


def test_slurm_asked_before_the_lock_serves_only_for_the_ledger_it_was_asked_from(
    campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeScheduler()
    fake.query_waits = True  # as SLURM's does: it is asked before the lock
    monkeypatch.setattr(reconcile_mod, "EARLY_ANSWER_S", 3600.0)  # age is the last case's question
    [first] = _submit(campaign, fake)
    fake.finish(_job(campaign, first).latest.slurm_id)
    _result(campaign, first, "success", energy=-1.0)
    asked = fake.calls["squeue"]
    reconcile(campaign, scheduler=fake, view=campaign.ledger().snapshot())
    assert _job(campaign, first).state is JobState.COMPLETED
    assert fake.calls["squeue"] == asked + 1  # the answer to the early question served

    # Another command saves between the lockless reading and the lock (here: a submit): asked again.
    [second] = _submit(campaign, fake, tag="b")
    view = campaign.ledger().snapshot()
    [third] = _submit(campaign, fake, tag="c")
    for job_id in (second, third):
        fake.finish(_job(campaign, job_id).latest.slurm_id)
        _result(campaign, job_id, "success", energy=-2.0)
    asked = fake.calls["squeue"]
    reconcile(campaign, scheduler=fake, view=view)
    assert {_job(campaign, j).state for j in (second, third)} == {JobState.COMPLETED}
    assert fake.calls["squeue"] == asked + 2

    # ... or another reconcile records a newer state than the early answer: it is not overwritten.
    [fourth] = _submit(campaign, fake, tag="d")
    sid = _job(campaign, fourth).latest.slurm_id
    run = reconcile_mod.Reconciler._run

    def newer_state_first(self, early):  # type: ignore[no-untyped-def]
        if early is None:  # the other command's reconcile
            return run(self, early)
        early.answer.wait()  # SLURM said PENDING ...
        fake.start(sid)  # ... then the job started and another command recorded it
        reconcile(campaign, scheduler=fake)
        assert _job(campaign, fourth).state is JobState.RUNNING
        run(self, early)

    monkeypatch.setattr(reconcile_mod.Reconciler, "_run", newer_state_first)
    report = reconcile(campaign, scheduler=fake, view=campaign.ledger().snapshot())
    monkeypatch.setattr(reconcile_mod.Reconciler, "_run", run)
    assert _job(campaign, fourth).state is JobState.RUNNING and report.changes == []

    # An answer that waited too long for the lock is stale: asked again.
    monkeypatch.setattr(reconcile_mod, "EARLY_ANSWER_S", 0.0)
    asked = fake.calls["squeue"]
    reconcile(campaign, scheduler=fake, view=campaign.ledger().snapshot())
    assert fake.calls["squeue"] == asked + 2


@pytest.mark.parametrize("early", [False, True])
def test_scheduler_down_changes_nothing_when_asked_in_a_thread(campaign: Campaign, early: bool) -> None:
    fake = FakeScheduler()
    fake.query_waits = True
    [job_id] = _submit(campaign, fake)
    fake.finish(_job(campaign, job_id).latest.slurm_id)
    _result(campaign, job_id, "success", energy=-1.0)
    before = (campaign.state_dir / "ledger.json").read_bytes()
    threads = threading.active_count()
    fake.down = True
    view = campaign.ledger().snapshot() if early else None
    with pytest.raises(SchedulerUnavailable):
        reconcile(campaign, scheduler=fake, view=view)
    assert (campaign.state_dir / "ledger.json").read_bytes() == before
    assert threading.active_count() == threads  # no thread outlives the reconcile


def test_result_files_read_early_are_not_read_again(
    campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeScheduler()
    fake.query_waits = True
    ids = _submit(campaign, fake, 3)
    for job_id in ids:
        fake.finish(_job(campaign, job_id).latest.slurm_id)
        _result(campaign, job_id, "success", energy=-1.0)
    query, read = fake.query, threading.Event()
    early = reconcile_mod.Reconciler._read_early

    def read_first(self, peeked, answered):  # type: ignore[no-untyped-def]
        early(self, peeked, answered)
        read.set()

    monkeypatch.setattr(reconcile_mod.Reconciler, "_read_early", read_first)
    monkeypatch.setattr(fake, "query", lambda job_ids: read.wait(30) and query(job_ids))
    reads: list[str] = []
    monkeypatch.setattr(reconcile_mod.AttemptResult, "read", lambda folder: reads.append(folder))
    reconcile(campaign, scheduler=fake)
    assert {_job(campaign, j).state for j in ids} == {JobState.COMPLETED} and reads == []


def test_free_slots_cap_what_starts(campaign: Campaign) -> None:
    fake = FakeScheduler(slots=2)
    ids = _submit(campaign, fake, 3)
    assert len(ids) == 2 and _job(campaign, "j000003").state is JobState.CREATED
    fake.finish(_job(campaign, ids[0]).latest.slurm_id)
    _result(campaign, ids[0], "success", energy=-1.0)
    reconcile(campaign, scheduler=fake)
    assert _job(campaign, "j000003").state is JobState.PENDING  # a slot freed up


def test_arrays_split_at_the_scheduler_limit(campaign: Campaign) -> None:
    fake = FakeScheduler(max_array=2)
    _submit(campaign, fake, 5)
    assert [len(r.attempt_dirs) for r in fake.requests] == [2, 2, 1]
    assert len({r.token for r in fake.requests}) == 3


def test_a_task_slurm_forgot_after_it_ran_is_not_taken_for_a_cancel(campaign: Campaign) -> None:
    """The scheduler's CANCELLED "removed from its array" (no record of the task at all, while its
    siblings are listed) means cancelled before it started, unless the task left traces of a run: its
    job log or its result. Then it is judged as any job SLURM no longer knows."""
    from orca_hpc.scheduler.base import REMOVED_REASON, JobRecord

    fake = FakeScheduler()
    never, ran = _submit(campaign, fake, 2)
    for job_id in (never, ran):
        sid = _job(campaign, job_id).latest.slurm_id
        base, _, task = sid.partition("_")
        fake.jobs[sid] = JobRecord(
            sid, base, int(task or 0), fake.jobs[sid].name, "CANCELLED", None, None, None, None, None,
            REMOVED_REASON, "fake",
        )  # fmt: skip
    logs = campaign.state_dir / "slurm-logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{_job(campaign, ran).latest.slurm_id}.out").write_text("started\n")  # no result: killed
    reconcile(campaign, scheduler=fake, now=lambda: 10**10)
    assert _job(campaign, never).state is JobState.CANCELLED
    lost = _job(campaign, ran)  # a run that left no result: retried, as any job SLURM lost
    assert lost.state is not JobState.CANCELLED and len(lost.attempts) == 2


def test_walltime_retries_stay_within_the_partitions_max_time(campaign: Campaign) -> None:
    # A site without max_walltime: the retry's time was capped at 4 x the attempt's own, beyond a
    # partition's MaxTime, where sbatch refuses the job. The partition says 60 min.
    import dataclasses

    from orca_hpc.scheduler.nodes import Partition

    class Limited(FakeScheduler):
        def partition(self) -> Partition:
            return Partition(name="debug", max_time_min=60, nodes=())

    campaign = dataclasses.replace(campaign, site=dataclasses.replace(campaign.site, max_walltime_min=None))
    fake = Limited()
    [job_id] = _submit(campaign, fake)
    said: list[str] = []
    for _ in range(2):
        fake.finish(_job(campaign, job_id).latest.slurm_id, "TIMEOUT", 0)
        _result(campaign, job_id, "truncated", reason="walltime", retryable=True, message="stopped")
        reconcile(campaign, scheduler=fake, echo=said.append)
    job = _job(campaign, job_id)
    assert [r.time_min for r in fake.requests] == [30, 60] and len(job.attempts) == 2
    assert job.state is JobState.PERMANENT_FAILED and any("time limit (60 min)" in line for line in said)


def test_a_retry_starts_from_the_files_named_by_the_inputs_base(campaign: Campaign) -> None:
    """ORCA names its files after `%base`: the SCF retry's MORead must find `mol.gbw`, not look for
    `<input>.gbw` (there is none) and start from scratch again."""
    fake = FakeScheduler()
    path = campaign.root / "based.inp"
    path.write_text('%base "mol"\n' + INPUT)
    [(job_id, _name, _sid)] = submit(campaign, [path], scheduler=fake).submitted
    att = _job(campaign, job_id).latest
    (campaign.root / att.dir / "mol.gbw").write_bytes(b"orbitals of the failed SCF")
    fake.finish(att.slurm_id, "FAILED", 1)
    _result(campaign, job_id, "scf_not_converged", retryable=True, message="SCF NOT CONVERGED")
    reconcile(campaign, scheduler=fake)
    second = _job(campaign, job_id).latest
    assert second.n == 2 and any("MORead" in c["change"] for c in second.corrections), second.corrections
    handed = campaign.root / second.dir / "previous.gbw"
    assert handed.read_bytes() == b"orbitals of the failed SCF"
