"""Ledger: records, queries, archive, schema migration, damage handling, check/restore."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from orca_hpc.cli import main
from orca_hpc.errors import IllegalTransition, LedgerCorrupt, OrcaHpcError, UserError
from orca_hpc.ledger.states import JobState
from orca_hpc.ledger.store import SCHEMA_VERSION, Attempt, Job, Ledger, LedgerWriteError, UnknownJob

SHA = "ab" * 32


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    return tmp_path / "camp"


@pytest.fixture
def ledger(campaign: Path) -> Ledger:
    return Ledger.create(campaign / ".orca-hpc", {"campaign": "test", "site": "local"}, lock_timeout=2)


def _add(txn, n: int, prefix: str = "job") -> list[Job]:  # type: ignore[no-untyped-def]
    return [txn.add_job(f"{prefix}{i}", f"inputs/{prefix}{i}.inp", f"{i:064x}", "local", 3) for i in range(n)]


def _finish(txn, job: Job, state: JobState = JobState.COMPLETED) -> None:  # type: ignore[no-untyped-def]
    job.new_attempt("tok")  # a job past CREATED has an attempt (the ledger refuses one without)
    txn.set_state(job, JobState.SUBMITTING)
    txn.set_state(job, JobState.PENDING)
    if state is JobState.PERMANENT_FAILED:
        txn.set_state(job, JobState.FAILED)
    txn.set_state(job, state)


# -- records ------------------------------------------------------------------------------------


def test_job_roundtrip_is_compact_and_lossless() -> None:
    job = Job("j000007", "water", "in/w.inp", SHA, "local", JobState.RUNNING, 3, "t0", "t1", "jobs/j000007")
    att = job.new_attempt("tok-1")
    att.slurm_id, att.exit_code, att.energy = "123_4", "0:11", -76.0
    att.corrections.append({"handler": "scf", "change": "SlowConv", "why": "SCF not converged"})
    att.counts_against_limit = False
    job.extra["note"] = {"a": [1, 2]}
    d = job.to_dict()
    assert "rc" not in d and "nf" not in d  # zero counters left out
    assert "beg" not in d["att"][0] and d["att"][0]["free"] is True
    assert d["att"][0]["dir"] == "jobs/j000007/attempt-1"
    again = Job.from_dict("j000007", json.loads(json.dumps(d)))
    assert again == job
    # Editing the decoded copy must not edit the dict it came from (change detection relies on it).
    again.extra["note"]["a"].append(3)
    again.attempts[0].corrections[0]["why"] = "other"
    assert d["x"]["note"]["a"] == [1, 2] and d["att"][0]["fix"][0]["why"] == "SCF not converged"
    assert Attempt.from_dict({"n": 2, "tok": "t"}).counts_against_limit is True


# -- transactions and queries -------------------------------------------------------------------


def test_add_jobs_ids_and_queries(ledger: Ledger) -> None:
    with ledger.transaction() as txn:
        jobs = _add(txn, 3)
        dup = txn.add_job("job0", "inputs/again.inp", jobs[0].input_sha, "local", 3, priority=5)
    assert [j.id for j in jobs] == ["j000001", "j000002", "j000003"] and dup.id == "j000004"
    view = ledger.snapshot()
    assert set(view.jobs) == {"j000001", "j000002", "j000003", "j000004"}
    assert [j.id for j in view.by_name("job0")] == ["j000001", "j000004"]
    assert [j.id for j in view.find_by_hash(jobs[0].input_sha)] == ["j000001", "j000004"]
    assert view.find_by_hash("f" * 64) == []
    assert view.get("j000004").extra == {"priority": 5}
    assert len(view.jobs_by_state(JobState.CREATED)) == 4 and view.jobs_by_state(JobState.RUNNING) == []
    with pytest.raises(UnknownJob, match="no job j000099 in this campaign"):
        view.get("j000099")
    assert isinstance(UnknownJob("x"), UserError)


def test_set_state_records_time_and_rejects_illegal(ledger: Ledger) -> None:
    with ledger.transaction() as txn:
        (job,) = _add(txn, 1)
        job.updated = "old"
        job.new_attempt("tok")
        txn.set_state(job, JobState.SUBMITTING)
        assert job.updated != "old" and job.state is JobState.SUBMITTING
        with pytest.raises(IllegalTransition):
            txn.set_state(job, JobState.PERMANENT_FAILED)
    assert ledger.snapshot().get("j000001").state is JobState.SUBMITTING


def test_exception_in_transaction_writes_nothing(ledger: Ledger) -> None:
    before = ledger.path.read_bytes()
    with pytest.raises(RuntimeError, match="boom"), ledger.transaction() as txn:
        _add(txn, 2)
        txn.meta["x"] = 1
        raise RuntimeError("boom")
    assert ledger.path.read_bytes() == before
    with ledger.transaction() as txn:  # the lock was released
        assert len(txn.jobs) == 0 and "x" not in txn.meta


def test_unchanged_transaction_does_not_write(ledger: Ledger) -> None:
    with ledger.transaction() as txn:
        _add(txn, 2)
    stamp = ledger.path.stat().st_ino, ledger.path.read_bytes()
    with ledger.transaction() as txn:
        txn.get("j000001")
        txn.jobs_by_state(JobState.CREATED)
    assert (ledger.path.stat().st_ino, ledger.path.read_bytes()) == stamp
    with ledger.transaction() as txn:
        txn.get("j000002").attempts.append(Attempt(1, "tok"))  # a direct edit is saved too
    assert ledger.snapshot().get("j000002").attempts[0].token == "tok"


def test_outbox_and_meta_are_stored_as_given(ledger: Ledger) -> None:
    message = {"kind": "digest", "to": ["a@b"], "body": "ünïcode", "n": [1, {"x": None}]}
    with ledger.transaction() as txn:
        txn.outbox.append(message)
        txn.meta["last_digest"] = "2026-01-01T00:00:00Z"
    view = ledger.snapshot()
    assert view.outbox == [message] and view.meta["last_digest"] == "2026-01-01T00:00:00Z"
    with ledger.transaction() as txn:
        txn.outbox = []
    assert ledger.snapshot().outbox == []


def test_backup_is_previous_generation(ledger: Ledger) -> None:
    with ledger.transaction() as txn:
        _add(txn, 1)
    gen1 = ledger.path.read_bytes()
    with ledger.transaction() as txn:
        _add(txn, 1, "other")
    assert ledger.backup_path.read_bytes() == gen1
    assert oct(ledger.path.stat().st_mode & 0o777) == "0o600"
    assert not (ledger.state_dir.stat().st_mode & 0o002)


def test_nested_transaction_refused(ledger: Ledger) -> None:
    with ledger.transaction(), pytest.raises(RuntimeError, match="nested"), ledger.transaction():
        pass


# -- archive ------------------------------------------------------------------------------------


def test_finished_jobs_move_to_archive_and_stay_queryable(ledger: Ledger) -> None:
    with ledger.transaction() as txn:
        jobs = _add(txn, 4)
        _finish(txn, jobs[0])
        _finish(txn, jobs[1], JobState.PERMANENT_FAILED)
        txn.set_state(jobs[2], JobState.CANCELLED)
        assert "j000001" in txn.jobs  # still here until saved
    hot = json.loads(ledger.path.read_text())
    assert list(hot["jobs"]) == ["j000004"]
    lines = (ledger.state_dir / "archive.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["j000001", "j000002", "j000003"]
    view = ledger.snapshot()
    assert view.get("j000002").state is JobState.PERMANENT_FAILED
    assert [j.id for j in view.by_name("job0")] == ["j000001"]
    assert [j.id for j in view.find_by_hash(jobs[2].input_sha)] == ["j000003"]
    assert [j.id for j in view.all_jobs()] == ["j000001", "j000002", "j000003", "j000004"]
    assert list(view.jobs) == ["j000004"]


def test_reactivate_archived_permanent_failure(ledger: Ledger) -> None:
    with ledger.transaction() as txn:
        a, b = _add(txn, 2)
        _finish(txn, a, JobState.PERMANENT_FAILED)
        _finish(txn, b)
    with ledger.transaction() as txn:
        job = txn.reactivate("j000001")
        assert job.state is JobState.CREATED and "j000001" in txn.jobs
        job.retry_count = 0
        with pytest.raises(UserError, match="COMPLETED"):
            txn.reactivate("j000002")
    view = ledger.snapshot()
    assert list(view.jobs) == ["j000001"] and view.get("j000001").state is JobState.CREATED
    states = {j.id: j.state for j in view.all_jobs()}
    assert states == {"j000001": JobState.CREATED, "j000002": JobState.COMPLETED}
    # When it finishes again, the newer archive line wins.
    with ledger.transaction() as txn:
        txn.set_state("j000001", JobState.CANCELLED)
    assert ledger.snapshot().get("j000001").state is JobState.CANCELLED
    assert ledger.snapshot().jobs_by_state(JobState.CREATED) == []


def test_archive_index_catches_up_and_rebuilds(ledger: Ledger) -> None:
    with ledger.transaction() as txn:
        for job in _add(txn, 3):
            txn.set_state(job, JobState.CANCELLED)
    index_path = ledger.state_dir / "archive.index.json"
    with ledger.transaction() as txn:
        assert txn.find_by_hash(f"{1:064x}")[0].id == "j000002"
    index = json.loads(index_path.read_text())
    assert set(index["ids"]) == {"j000001", "j000002", "j000003"}
    # More archived jobs: the index reads only the new tail.
    with ledger.transaction() as txn:
        txn.set_state(_add(txn, 1, "late")[0], JobState.CANCELLED)
    with ledger.transaction() as txn:
        assert txn.by_name("late0")[0].id == "j000004"
    assert "j000004" in json.loads(index_path.read_text())["ids"]
    # A damaged or lying index is rebuilt, never trusted.
    index_path.write_text("{garbage")
    assert ledger.snapshot().get("j000003").name == "job2"
    bad = json.loads(json.dumps(index))
    bad["ids"]["j000001"] = bad["ids"]["j000003"]
    index_path.write_text(json.dumps(bad))
    assert ledger.snapshot().get("j000001").name == "job0"


def test_state_counts_come_from_the_index_and_match_every_job(ledger: Ledger) -> None:
    with ledger.transaction() as txn:
        jobs = _add(txn, 5)
        _finish(txn, jobs[0])
        _finish(txn, jobs[1], JobState.PERMANENT_FAILED)
        _finish(txn, jobs[2])
        txn.set_state(jobs[3], JobState.CANCELLED)
    with ledger.transaction() as txn:
        txn.reactivate("j000002")  # archived, and active again: counted once, as it is now
    view = ledger.snapshot()
    every = {}
    for job in view.all_jobs():
        every[job.state.value] = every.get(job.state.value, 0) + 1
    assert (
        view.state_counts() == dict(sorted(every.items())) == {"CANCELLED": 1, "COMPLETED": 2, "CREATED": 2}
    )
    assert not view.has_workflow_steps()
    # Counted from the index: the archive's lines are not read (damaged here, reading them would fail).
    archive = ledger.state_dir / "archive.jsonl"
    lines = archive.read_bytes()
    archive.write_bytes(b"x" * (len(lines) - 1) + b"\n")
    assert ledger.snapshot().state_counts() == {"CANCELLED": 1, "COMPLETED": 2, "CREATED": 2}
    with pytest.raises(LedgerCorrupt):
        ledger.snapshot().all_jobs()
    archive.write_bytes(lines)
    index = json.loads((ledger.state_dir / "archive.index.json").read_text())
    assert index["st"] == {"j000001": "COMPLETED", "j000002": "PERMANENT_FAILED", "j000003": "COMPLETED",
                           "j000004": "CANCELLED"}  # fmt: skip
    # An index of the version before (no states) is rebuilt, never trusted.
    del index["st"]
    index["v"] = 2
    (ledger.state_dir / "archive.index.json").write_text(json.dumps(index))
    assert ledger.snapshot().state_counts() == {"CANCELLED": 1, "COMPLETED": 2, "CREATED": 2}
    assert ledger.check().warnings == []
    # An index whose states lie (edited by hand) is what `ledger check` names.
    index = json.loads((ledger.state_dir / "archive.index.json").read_text())
    index["st"]["j000001"] = "CANCELLED"
    (ledger.state_dir / "archive.index.json").write_text(json.dumps(index))
    assert any("the states of 1 job(s) differ" in w for w in ledger.check().warnings)


def test_workflow_steps_are_seen_active_or_archived(ledger: Ledger) -> None:
    with ledger.transaction() as txn:
        (job,) = _add(txn, 1)
        job.chain = {"molecule": "m", "conformer": 1, "step": "opt", "after": None}
    assert ledger.snapshot().has_workflow_steps()  # active, not decoded: seen in its bytes
    with ledger.transaction() as txn:
        txn.set_state("j000001", JobState.CANCELLED)
    view = ledger.snapshot()
    assert list(view.jobs) == [] and view.has_workflow_steps()  # archived: the index says so


def test_torn_archive_line_is_ignored_then_cut(ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    with ledger.transaction() as txn:
        txn.set_state(_add(txn, 1)[0], JobState.CANCELLED)
        _add(txn, 1, "keep")
    archive = ledger.state_dir / "archive.jsonl"
    with archive.open("ab") as fh:
        fh.write(b'{"id":"j000002","name":"ke')  # a writer died mid-append
    caplog.set_level(logging.WARNING, "orca_hpc.ledger.store")
    view = ledger.snapshot()
    states = {j.id: j.state for j in view.all_jobs()}
    assert states == {"j000001": JobState.CANCELLED, "j000002": JobState.CREATED}
    assert ledger.check().ok and ledger.check().warnings
    with ledger.transaction() as txn:
        txn.set_state("j000002", JobState.CANCELLED)
    assert "incomplete last line" in caplog.text
    assert [json.loads(x)["id"] for x in archive.read_text().splitlines()] == ["j000001", "j000002"]


# -- schema -------------------------------------------------------------------------------------


def test_migration_from_version_0(campaign: Path) -> None:
    state = campaign / ".orca-hpc"
    state.mkdir(parents=True, mode=0o700)
    v0 = {
        "counter": 4,
        "meta": {"campaign": "old"},
        "outbox": [{"kind": "digest"}],
        "jobs": [
            {
                "id": "j000002",
                "name": "benzene",
                "input": "b.inp",
                "sha256": SHA,
                "site": "local",
                "state": "RUNNING",
                "retries": 1,
                "max_retries": 2,
                "created": "t0",
                "updated": "t1",
                "dir": "jobs/j000002",
                "attempts": [{"n": 1, "token": "tk", "slurm_id": "5_0", "outcome": None}],
            },
            {"id": "j000003", "name": "done", "input": "d.inp", "sha256": SHA, "site": "local"}
            | {
                "state": "COMPLETED",
                "max_retries": 2,
                "created": "t0",
                "updated": "t1",
                "dir": "jobs/j000003",
            },
        ],
    }
    (state / "ledger.json").write_text(json.dumps(v0))
    old_line = {"v": 0, **v0["jobs"][0], "id": "j000001", "name": "water", "state": "COMPLETED"}
    old_line["dir"] = "jobs/j000001"
    (state / "archive.jsonl").write_text(json.dumps(old_line) + "\n")
    led = Ledger(state)
    job = led.snapshot().get("j000002")
    assert (job.name, job.state, job.retry_count) == ("benzene", JobState.RUNNING, 1)
    assert job.attempts[0].slurm_id == "5_0" and job.attempts[0].outcome is None
    assert led.snapshot().get("j000001").state is JobState.COMPLETED
    with led.transaction() as txn:
        assert txn.migrated
        assert txn.add_job("new", "n.inp", SHA, "local", 1).id == "j000004"
        assert txn.outbox == [{"kind": "digest"}]
    doc = json.loads((state / "ledger.json").read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and doc["jobs"]["j000002"]["st"] == "RUNNING"
    assert set(doc["jobs"]) == {"j000002", "j000004"}  # the finished job went to the archive
    assert led.snapshot().get("j000003").state is JobState.COMPLETED


def test_newer_schema_refused(ledger: Ledger) -> None:
    doc = json.loads(ledger.path.read_text())
    doc["schema_version"] = SCHEMA_VERSION + 1
    ledger.path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match="newer orca-hpc"):
        ledger.snapshot()


# -- creation and the state folder --------------------------------------------------------------


def test_create_refuses_existing_ledger(ledger: Ledger) -> None:
    with pytest.raises(UserError, match="refusing to overwrite"):
        Ledger.create(ledger.state_dir, {})
    assert json.loads(ledger.path.read_text())["meta"]["campaign"] == "test"


def test_missing_ledger_messages(tmp_path: Path, ledger: Ledger) -> None:
    with pytest.raises(UserError, match="not a campaign folder"):
        Ledger(tmp_path / "nowhere" / ".orca-hpc").snapshot()
    with ledger.transaction() as txn:
        _add(txn, 1)
    ledger.path.unlink()
    with pytest.raises(LedgerCorrupt, match="missing"):
        ledger.snapshot()
    with pytest.raises(UserError, match="refusing to overwrite"):  # a lone backup counts too
        Ledger.create(ledger.state_dir, {})


def test_world_writable_state_dir_refused(ledger: Ledger) -> None:
    os.chmod(ledger.state_dir, 0o777)
    with pytest.raises(UserError, match="writable by everyone"), ledger.transaction():
        pass


def test_symlinked_lock_is_not_followed(ledger: Ledger, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    ledger.lock.path.unlink()
    os.symlink(target, ledger.lock.path)
    with pytest.raises(UserError, match="symbolic link"), ledger.transaction():
        pass
    assert not target.exists()


# -- damage, check and restore ------------------------------------------------------------------


@pytest.mark.parametrize("damage", [b"", b'{"schema_version":1,"gen', b"\x00\xff garbage", b"[1,2]"])
def test_damaged_ledger_clear_error_check_and_restore(campaign: Path, ledger: Ledger, damage: bytes) -> None:
    with ledger.transaction() as txn:
        _add(txn, 2)
    with ledger.transaction() as txn:
        _add(txn, 1, "last")
    backup = ledger.backup_path.read_bytes()
    ledger.path.write_bytes(damage)
    for action in (ledger.snapshot, lambda: ledger.transaction().__enter__()):
        with pytest.raises(LedgerCorrupt) as err:
            action()
        msg = str(err.value)
        assert str(ledger.path) in msg and str(ledger.backup_path) in msg
        assert "orca-hpc ledger restore" in msg and "\n" not in msg
    assert ledger.path.read_bytes() == damage and ledger.backup_path.read_bytes() == backup

    runner = CliRunner()
    result = runner.invoke(main, ["-C", str(campaign), "ledger", "check"])
    assert result.exit_code == 1 and "damaged" in result.output
    result = runner.invoke(main, ["-C", str(campaign), "ledger", "restore"])
    assert result.exit_code == 0, result.output
    aside = list(ledger.state_dir.glob("ledger.json.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damage
    view = ledger.snapshot()
    assert set(view.jobs) == {"j000001", "j000002"}
    with ledger.transaction() as txn:  # the id of the lost generation's job is not handed out twice
        assert _add(txn, 1, "next")[0].id == "j000003"
    result = runner.invoke(main, ["-C", str(campaign), "ledger", "check"])
    assert result.exit_code == 0 and "3 active jobs" in result.output


def test_restore_refuses_a_good_ledger_and_a_bad_backup(campaign: Path, ledger: Ledger) -> None:
    with ledger.transaction() as txn:
        _add(txn, 1)
    runner = CliRunner()
    result = runner.invoke(main, ["-C", str(campaign), "ledger", "restore"])
    assert result.exit_code == 1 and "not damaged" in result.output
    ledger.backup_path.write_text("nope")
    ledger.path.write_text("nope")
    result = runner.invoke(main, ["-C", str(campaign), "ledger", "restore"])
    assert result.exit_code == 1 and "damaged too" in result.output
    assert ledger.path.read_text() == "nope"


def test_check_reports_damaged_archive_line(campaign: Path, ledger: Ledger) -> None:
    with ledger.transaction() as txn:
        for job in _add(txn, 2):
            txn.set_state(job, JobState.CANCELLED)
    archive = ledger.state_dir / "archive.jsonl"
    lines = archive.read_text().splitlines()
    archive.write_text(lines[0] + "\n#garbage\n" + lines[1] + "\n")
    result = CliRunner().invoke(main, ["-C", str(campaign), "ledger", "check"])
    assert result.exit_code == 1 and "line 2: not valid JSON" in result.output
    # Every load refuses it too, naming the file and where the line starts: nothing is written over it.
    with pytest.raises(LedgerCorrupt, match=r"archive.jsonl: the line at byte \d+ is damaged"):
        ledger.snapshot().all_jobs()


# -- full disk ----------------------------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path):  # type: ignore[no-untyped-def]
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or os.system(f"mount -t tmpfs -o size=64k tmpfs '{mnt}' 2>/dev/null") != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mnt
    os.system(f"umount '{mnt}'")


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"x" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_full_disk_keeps_old_ledger(tiny_fs: Path) -> None:
    led = Ledger.create(tiny_fs / ".orca-hpc", {"campaign": "tiny"})
    with led.transaction() as txn:
        _add(txn, 3)
    before = led.path.read_bytes()
    filler = _fill(tiny_fs)
    with pytest.raises(LedgerWriteError, match="disk is full") as err, led.transaction() as txn:
        txn.add_job("big", "big.inp", SHA, "local", 3, blob="y" * 20000)
    assert isinstance(err.value, OrcaHpcError) and str(led.path) in str(err.value)
    assert led.path.read_bytes() == before
    assert not [p for p in led.state_dir.iterdir() if ".tmp-" in p.name]
    # The archive append fails too; the archive is cut back and the ledger kept.
    filler.unlink()
    with led.transaction() as txn:
        txn.get("j000001").attempts.append(Attempt(1, "t", message="z" * 9000))
    before = led.path.read_bytes()
    _fill(tiny_fs)
    with pytest.raises(LedgerWriteError), led.transaction() as txn:
        txn.set_state("j000001", JobState.CANCELLED)
    assert led.path.read_bytes() == before
    archive = led.state_dir / "archive.jsonl"
    assert not archive.exists() or archive.read_bytes() == b""
    (tiny_fs / "filler").unlink()
    with led.transaction() as txn:
        txn.set_state("j000001", JobState.CANCELLED)
    assert led.snapshot().get("j000001").state is JobState.CANCELLED


# -- on-disk layout -----------------------------------------------------------------------------


def test_reformatted_ledger_still_loads_and_is_rewritten(ledger: Ledger) -> None:
    tricky = 'he said "st":"COMPLETED" \\ ünï'  # quotes, backslash, non-ASCII in a name
    with ledger.transaction() as txn:
        job = txn.add_job(tricky, "a.inp", SHA, "local", 3, note={"st": "COMPLETED"})
        job.new_attempt("tok")
        txn.set_state(job, JobState.SUBMITTING)
        _add(txn, 2)
    view = ledger.snapshot()
    assert view.states() == {
        "j000001": JobState.SUBMITTING,
        "j000002": JobState.CREATED,
        "j000003": JobState.CREATED,
    }
    assert [j.id for j in view.jobs_by_state(JobState.COMPLETED)] == []
    assert view.get("j000001").name == tricky and view.by_name(tricky)[0].id == "j000001"
    # A person pretty-prints the file: it still loads (slower path) and the next save re-compacts it.
    doc = json.loads(ledger.path.read_text())
    ledger.path.write_text(json.dumps(doc, indent=2))
    assert ledger.snapshot().get("j000001").extra == {"note": {"st": "COMPLETED"}}
    with ledger.transaction() as txn:
        assert txn.migrated
    lines = ledger.path.read_bytes().split(b"\n")
    assert len(lines) == 6 and lines[1].startswith(b'"j000001":{"st":"SUBMITTING"')
    with ledger.transaction() as txn:
        assert not txn.migrated


@pytest.fixture
def one_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock stands still: two ledgers built one after the other compare byte for byte, whichever
    second each was stamped in."""
    real_gmtime = time.gmtime
    monkeypatch.setattr(time, "gmtime", lambda *at: real_gmtime(*at) if at else real_gmtime(1_800_000_000))


def test_move_latest_attempt_writes_what_set_state_would(
    campaign: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submit's SUBMITTING and PENDING written into a job's bytes save exactly what decoding, set_state
    and encoding save, even with a name and extras that spell the keys it edits; an illegal change
    raises and changes nothing; a finished state, a decoded job or a migrated file declines."""
    clock = ["2026-01-02T03:04:05Z"]
    monkeypatch.setattr("orca_hpc.ledger.store.now_iso", lambda: clock[0])
    tricky = 'x","ut":"1999","st":"COMPLETED'
    ledgers = []
    for name in ("moved", "decoded"):
        ledger = Ledger.create(campaign / name, {"campaign": "t", "site": "local"}, lock_timeout=2)
        with ledger.transaction() as txn:
            job = txn.add_job(tricky, "a.inp", SHA, "local", 3, note={"st": "X", "ut": "Y"})
            job.new_attempt("")
        ledgers.append(ledger)
    moved, decoded = ledgers

    set_token = {"tok": "abc/0"}
    set_id = {"sid": "7_0", "sub": "2026-01-02T03:04:06Z"}

    def edit(att: Attempt, changes: dict[str, str]) -> None:
        names = {"tok": "token", "sid": "slurm_id", "sub": "submitted"}
        for key, value in changes.items():
            setattr(att, names[key], value)

    for second, state, changes in ((6, JobState.SUBMITTING, set_token), (7, JobState.PENDING, set_id)):
        clock[0] = f"2026-01-02T03:04:0{second}Z"  # "ut" must move with the state
        with moved.transaction() as txn:
            assert txn.move_latest_attempt("j000001", state, changes)
            assert txn.states() == {"j000001": state}  # the same transaction sees it
        with decoded.transaction() as txn:
            job = txn.get("j000001")
            edit(job.latest, changes)
            txn.set_state(job, state)
            assert not txn.move_latest_attempt("j000001", state, changes)  # decoded: the caller changes it
        assert moved.path.read_bytes().split(b"\n")[1:] == decoded.path.read_bytes().split(b"\n")[1:]
    assert moved.check().ok and moved.snapshot().get("j000001").name == tricky
    generation = moved.snapshot().generation
    with moved.transaction() as txn:
        with pytest.raises(IllegalTransition):
            txn.move_latest_attempt("j000001", JobState.CREATED, set_token)  # PENDING -> CREATED
        assert not txn.move_latest_attempt("j000001", JobState.COMPLETED, set_token)  # archives: decode
        assert not txn.move_latest_attempt("j000001", JobState.RUNNING, {"sid": "7\x1b_0"})  # refused
        assert not txn.move_latest_attempt("j000001", JobState.RUNNING, {"fix": "[]"})  # not a plain string
        for folder in ("../../etc", "", "jobs/j000001/attempt-9"):  # a folder has its one form: decode
            assert not txn.move_latest_attempt("j000001", JobState.RUNNING, {"dir": folder})
    assert moved.snapshot().generation == generation  # nothing to save
    doc = json.loads(moved.path.read_text())
    moved.path.write_text(json.dumps(doc, indent=1))  # not the writer's bytes any more
    with moved.transaction() as txn:
        assert txn.migrated and not txn.move_latest_attempt("j000001", JobState.RUNNING, set_token)


def test_note_slurm_state_writes_what_a_decode_would(campaign: Path, one_second: None) -> None:
    """SLURM's state (and start) put in place in the job's bytes: the bytes of a decode, change and
    encode, for an attempt with and without each value; declined for another job's token, a decoded
    job, a value the rules refuse, and a file not in the writer's form."""
    from orca_hpc.ledger.records import ATTEMPT_KEY_ORDER

    full = Attempt(1, "t/0", "1_0", "s", "b", "e", "PENDING", "0:0", "success", "why", 1.5, "m", [{"a": 1}])
    full.dir, full.counts_against_limit, full.usage = "jobs/j000001/attempt-1", False, {"el": 1}
    assert tuple(full.to_dict()) == ATTEMPT_KEY_ORDER  # the order the in-place edit relies on
    cases = [(None, None), ("PENDING", None), ("RUNNING", "2026-01-01T00:00:00Z")]
    for k, (state, started) in enumerate(cases):
        ledgers = []
        for name in ("noted", "decoded"):
            ledger = Ledger.create(
                campaign / f"{name}{k}", {"campaign": "t", "site": "local"}, lock_timeout=2
            )
            with ledger.transaction() as txn:
                job = txn.add_job('a "quoted" name', "a.inp", SHA, "local", 3, note={"att": [{"n": 1}]})
                job.new_attempt("tok1/0")
                txn.set_state(job, JobState.SUBMITTING)
                att = job.new_attempt("tok2/3")
                att.slurm_id, att.submitted, att.slurm_state, att.started = (
                    "7_3",
                    "2026-01-01T00:00:00Z",
                    state,
                    started,
                )
                txn.set_state(job, JobState.PENDING)
            ledgers.append(ledger)
        noted, decoded = ledgers
        with noted.transaction() as txn:
            assert not txn.note_slurm_state("j000001", "RUNNING", None, lambda tok: False)  # not ours
            assert txn.note_slurm_state(
                "j000001", "RUNNING", "2026-02-02T00:00:00Z", lambda tok: tok == "tok2/3"
            )
            assert txn.get("j000001").latest.slurm_state == "RUNNING"  # the same transaction sees it
        with decoded.transaction() as txn:
            latest = txn.get("j000001").latest
            latest.slurm_state, latest.started = "RUNNING", latest.started or "2026-02-02T00:00:00Z"
            assert not txn.note_slurm_state("j000001", "RUNNING", None, lambda tok: True)  # decoded
        lines = [
            [line for line in ledger.path.read_bytes().split(b"\n") if line.startswith(b'"j000001"')]
            for ledger in (noted, decoded)
        ]
        assert lines[0] == lines[1] and len(lines[0]) == 1
        assert noted.check().ok
    with noted.transaction() as txn:
        assert not txn.note_slurm_state(
            "j000001", "RUN\x1bNING", None, lambda tok: True
        )  # refused by the rules
        assert not txn.note_slurm_state("j000001", "RUNNING", "\x00", lambda tok: False)
    doc = json.loads(noted.path.read_text())
    noted.path.write_text(json.dumps(doc, indent=1))  # not the writer's bytes any more
    with noted.transaction() as txn:
        assert txn.migrated and not txn.note_slurm_state("j000001", "PENDING", None, lambda tok: True)
