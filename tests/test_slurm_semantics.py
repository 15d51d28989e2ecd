"""What SLURM's answers mean: starts that are not starts, and the variables that change an answer.

The text rows are captured from the local SLURM 22.05.8 cluster (squeue -h -r -t all -O with
slurm.SQUEUE_FIELDS; sacct -P -n -o slurm.SACCT_FIELDS).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_slurm import poll

from orca_hpc.config.campaign import init_campaign, load_campaign
from orca_hpc.config.site import load_site
from orca_hpc.controller.reconcile import reconcile
from orca_hpc.controller.submit import submit
from orca_hpc.ledger.states import JobState
from orca_hpc.scheduler import slurm
from orca_hpc.scheduler.base import ArrayRequest
from orca_hpc.scheduler.fake import FakeScheduler
from orca_hpc.scheduler.script import ScriptLayout

# --begin=now+1hour: squeue's StartTime is the time it may start (an hour on), not a start.
SQUEUE_PENDING_BEGIN = (
    "49224|PENDING|0|BeginTime||2026-11-30T04:04:40|2026-11-30T05:04:40|2026-11-30T05:06:40|ohpc-semtest\n"
)
# Held, then cancelled: squeue and sacct both give the cancel time as its start; it never ran (no node).
SQUEUE_CANCELLED_HELD = (
    "49216|CANCELLED|0|JobHeldUser||2026-11-30T04:04:14|2026-11-30T04:04:14|2026-11-30T04:04:14|ohpc-x\n"
)
SACCT_CANCELLED_HELD = (
    "49216|CANCELLED by 0|0:0|2026-11-30T04:04:14|2026-11-30T04:04:14|2026-11-30T04:04:14|None assigned"
    "|0|2|00:00:00||50M|1|ohpc-x\n"
)
# Ones that did run keep their start.
SQUEUE_RAN = (
    "48890_0|CANCELLED|36608|None|vm|2026-11-30T04:03:09|2026-11-30T04:03:09|2026-11-30T04:03:11|ohpc-y\n"
    "2_7|RUNNING|0|None|vm|2026-11-28T21:08:16|2026-11-28T21:08:22|NONE|wrap\n"
)


def test_a_pending_jobs_expected_start_is_no_start() -> None:
    (rec,) = slurm.parse_squeue(SQUEUE_PENDING_BEGIN)
    assert (rec.state, rec.reason) == ("PENDING", "BeginTime")
    assert rec.start is None


def test_a_job_cancelled_before_it_ran_has_no_start() -> None:
    (live,) = slurm.parse_squeue(SQUEUE_CANCELLED_HELD)
    (acct,) = slurm.parse_sacct(SACCT_CANCELLED_HELD)
    assert (live.state, acct.state) == ("CANCELLED", "CANCELLED")
    assert (live.start, acct.start) == (None, None)
    assert (live.end, acct.end) == ("2026-11-30T04:04:14", "2026-11-30T04:04:14")  # it did end


def test_a_job_that_ran_keeps_its_start() -> None:
    recs = {r.job_id: r for r in slurm.parse_squeue(SQUEUE_RAN)}
    assert recs["48890_0"].start == "2026-11-30T04:03:09"
    assert recs["2_7"].start == "2026-11-28T21:08:22"


# scontrol suspend: squeue and sacct both say SUSPENDED, with the start it had.
SQUEUE_SUSPENDED = (
    "50218|SUSPENDED|0|None|vm|2026-11-30T04:17:12|2026-11-30T04:17:13|2026-11-30T04:19:13|ohpc-semnr\n"
)


def test_a_suspended_job_has_started_and_is_not_pending() -> None:
    (rec,) = slurm.parse_squeue(SQUEUE_SUSPENDED)
    assert (rec.state, rec.running, rec.finished, rec.start) == (
        "SUSPENDED",
        True,
        False,
        "2026-11-30T04:17:13",
    )


def test_reconcile_keeps_a_suspended_job_running(tmp_path: Path) -> None:
    init_campaign(tmp_path / "camp", "local-slurm")
    camp = load_campaign(tmp_path / "camp")
    (camp.root / "m.inp").write_text("! HF def2-SVP\n* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n")
    fake = FakeScheduler()
    [(job_id, _name, sid)] = submit(camp, [camp.root / "m.inp"], scheduler=fake).submitted
    fake.start(sid)
    reconcile(camp, scheduler=fake)
    fake.jobs[sid] = dataclasses.replace(fake.jobs[sid], state="SUSPENDED")
    report = reconcile(camp, scheduler=fake)
    job = camp.ledger().snapshot().get(job_id)
    assert (job.state, job.latest.slurm_state, report.changes) == (JobState.RUNNING, "SUSPENDED", [])


def test_each_command_runs_without_its_own_variables() -> None:
    environ = {
        "PATH": "/usr/bin",
        "SQUEUE_USERS": "nobody",
        "SQUEUE_FORMAT2": "JobID",
        "SACCT_FORMAT": "JobID",
        "SCANCEL_STATE": "RUNNING",
        "SBATCH_JOB_NAME": "hijacked",
        "SBATCH_ACCOUNT": "chem",
        "SLURM_TIME_FORMAT": "relative",
    }
    squeue = slurm.command_env("squeue", environ)
    assert not any(k.startswith("SQUEUE_") for k in squeue)
    assert squeue["PATH"] == "/usr/bin" and squeue["SLURM_TIME_FORMAT"] == "standard"
    assert "SACCT_FORMAT" not in slurm.command_env("sacct", environ)
    assert "SCANCEL_STATE" not in slurm.command_env("scancel", environ)
    sbatch = slurm.command_env("sbatch", environ, keep=slurm.SBATCH_KEPT)
    assert "SBATCH_JOB_NAME" not in sbatch and sbatch["SBATCH_ACCOUNT"] == "chem"


def test_sbatch_keeps_only_what_the_site_leaves_unsaid() -> None:
    site = load_site("local-slurm")
    bare = dataclasses.replace(site, partition=None, account=None, qos=None, extra_sbatch=())
    assert slurm.sbatch_kept(bare) == slurm.SBATCH_KEPT
    stated = dataclasses.replace(bare, account="chem", extra_sbatch=("--reservation=maint",))
    assert slurm.sbatch_kept(stated) == ("SBATCH_PARTITION", "SBATCH_QOS")


def test_submit_hides_a_variable_the_site_config_states(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The site names partition "debug": a user's SBATCH_PARTITION must not send the job elsewhere."""
    site = dataclasses.replace(load_site("local-slurm"), partition="debug", account=None, submit_throttle_s=0)
    layout = ScriptLayout(tmp_path, tmp_path / "arrays", tmp_path / "logs", "/usr/bin/python3")
    seen: list[dict[str, str]] = []

    def fake_run(argv: list[str], **kwargs: Any) -> str:
        seen.append(slurm.command_env(argv[0], os.environ, kwargs.get("secrets", ()), kwargs.get("keep", ())))
        return "77\n"

    monkeypatch.setattr(slurm, "_run", fake_run)
    monkeypatch.setenv("SBATCH_PARTITION", "gpu")
    monkeypatch.setenv("SBATCH_ACCOUNT", "chem")
    ids = slurm.SlurmScheduler(site, layout).submit(ArrayRequest("t", (tmp_path / "a",), 1, 100, 5))
    assert ids == ["77_0"]
    assert "SBATCH_PARTITION" not in seen[0] and seen[0]["SBATCH_ACCOUNT"] == "chem"


# scancel 49268_2 while it waited (JobArrayTaskLimit): squeue lists its siblings, not it; sacct has nothing.
SQUEUE_TASK_REMOVED = """\
49268_1|PENDING|0|JobArrayTaskLimit||2026-11-30T04:11:40|N/A|N/A|ohpc-semarr
49268_3|PENDING|0|JobArrayTaskLimit||2026-11-30T04:11:40|N/A|N/A|ohpc-semarr
49268_0|RUNNING|0|None|vm|2026-11-30T04:11:40|2026-11-30T04:11:41|2026-11-30T04:13:41|ohpc-semarr
"""


def _answers(monkeypatch: pytest.MonkeyPatch, squeue: str, sacct: str) -> list[list[str]]:
    asked: list[list[str]] = []

    def fake_run(argv: list[str], **_kwargs: Any) -> str:
        asked.append(argv)
        return squeue if argv[0] == "squeue" else sacct

    monkeypatch.setattr(slurm, "_run", fake_run)
    return asked


def test_a_pending_task_scancelled_is_cancelled_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _answers(monkeypatch, SQUEUE_TASK_REMOVED, "")
    ids = [f"49268_{t}" for t in range(4)]
    recs = slurm.query_jobs(ids)
    assert sorted(recs) == ids
    gone = recs["49268_2"]
    assert (gone.state, gone.finished, gone.reason) == ("CANCELLED", True, slurm.REMOVED_REASON)
    assert (gone.name, gone.array_job_id, gone.array_task_id, gone.start) == ("ohpc-semarr", "49268", 2, None)
    assert recs["49268_0"].state == "RUNNING" and recs["49268_1"].state == "PENDING"
    assert [a[0] for a in asked] == ["squeue", "sacct"]  # sacct was asked, and had nothing either


def test_a_task_of_an_array_slurm_no_longer_lists_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of the array in slurmctld: no sign that the task was removed; "not known" stays."""
    _answers(monkeypatch, "", "")
    assert slurm.query_jobs(["49268_2"]) == {}


def test_arrays_stay_within_the_clusters_max_array_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[list[str]] = []
    config = (
        "MaxJobCount             = 10000\nMaxArraySize            = 501\nMaxStepCount            = 40000\n"
    )

    def fake_run(argv: list[str], **_kwargs: Any) -> str:
        asked.append(argv)
        return config

    monkeypatch.setattr(slurm, "_run", fake_run)
    layout = ScriptLayout(tmp_path, tmp_path / "arrays", tmp_path / "logs", "/usr/bin/python3")
    site = dataclasses.replace(load_site("local-slurm"), max_array_size=1000)
    scheduler = slurm.SlurmScheduler(site, layout)
    assert scheduler.max_array_size() == 501  # task ids 0..500: every index below MaxArraySize
    assert scheduler.max_array_size() == 501 and len(asked) == 1  # read once
    small = slurm.SlurmScheduler(dataclasses.replace(site, max_array_size=100), layout)
    assert small.max_array_size() == 100  # the site may ask for less


def test_an_unreachable_cluster_leaves_the_sites_array_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(argv: list[str], **_kwargs: Any) -> str:
        raise slurm.SchedulerUnavailable("SLURM did not answer: Unable to contact slurm controller")

    monkeypatch.setattr(slurm, "_run", down)
    layout = ScriptLayout(tmp_path, tmp_path / "arrays", tmp_path / "logs", "/usr/bin/python3")
    site = dataclasses.replace(load_site("local-slurm"), max_array_size=777)
    assert slurm.SlurmScheduler(site, layout).max_array_size() == 777


# ---------------------------------------------------------------- the real cluster


def _scontrol_job(job_id: str) -> str:
    return subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.slurm
def test_a_users_slurm_variables_change_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A login profile's SBATCH_*/SQUEUE_*/SCANCEL_* variables: the job keeps its name (the token),
    --no-requeue and time limit; squeue still shows it; scancel still cancels it."""
    for key, value in {
        "SBATCH_JOB_NAME": "hijacked",
        "SBATCH_REQUEUE": "1",
        "SBATCH_TIMELIMIT": "7",
        "SQUEUE_USERS": "nobody",
        "SCANCEL_STATE": "RUNNING",
    }.items():
        monkeypatch.setenv(key, value)
    name = f"ohpc-semantics-{uuid.uuid4().hex}"
    script = tmp_path / "job.sh"
    # --begin: pending with an expected start an hour on, and never in the way of other tests' jobs.
    script.write_text(
        "#!/bin/bash\n"
        f"#SBATCH --job-name={name}\n#SBATCH --no-requeue\n#SBATCH --time=2\n#SBATCH --mem=50M\n"
        f"#SBATCH --output={tmp_path}/%j.out\n#SBATCH --begin=now+1hour\ntrue\n"
    )
    job_id = slurm.sbatch(script)
    try:
        job = _scontrol_job(job_id)
        assert f"JobName={name} " in job and " Requeue=0 " in job and " TimeLimit=00:02:00 " in job
        rec = slurm.query_jobs([job_id])[job_id]  # squeue knows a job at once: no waiting
        assert (rec.source, rec.name, rec.state, rec.reason) == ("squeue", name, "PENDING", "BeginTime")
        assert rec.start is None  # squeue says an hour on: no start
        slurm.scancel([job_id])
        done = poll(
            lambda: slurm.query_jobs([job_id]),
            lambda r: job_id in r and r[job_id].finished,
            what="the pending job cancelled",
        )
        assert (done[job_id].state, done[job_id].start) == ("CANCELLED", None)
    finally:
        subprocess.run(["scancel", job_id], env={"PATH": "/usr/bin:/bin"}, capture_output=True, check=False)


@pytest.mark.slurm
def test_scancel_of_one_pending_task_reads_as_cancelled(tmp_path: Path) -> None:
    name = f"ohpc-semantics-{uuid.uuid4().hex}"
    script = tmp_path / "array.sh"
    script.write_text(
        f"#!/bin/bash\n#SBATCH --job-name={name}\n#SBATCH --time=2\n#SBATCH --mem=50M\n"
        f"#SBATCH --output={tmp_path}/%A_%a.out\n#SBATCH --array=0-2\n#SBATCH --hold\ntrue\n"
    )
    base = slurm.sbatch(script)
    ids = [f"{base}_{t}" for t in range(3)]
    try:
        slurm.scancel([ids[1]])
        recs = slurm.query_jobs(ids)
        assert sorted(recs) == ids
        assert (recs[ids[1]].state, recs[ids[1]].reason, recs[ids[1]].name) == (
            "CANCELLED",
            slurm.REMOVED_REASON,
            name,
        )
        assert {recs[ids[0]].state, recs[ids[2]].state} == {"PENDING"}
    finally:
        subprocess.run(["scancel", base], env={"PATH": "/usr/bin:/bin"}, capture_output=True, check=False)


@pytest.mark.slurm
def test_max_array_size_is_what_sbatch_takes(tmp_path: Path) -> None:
    """A site that promises more than the cluster: the size we use passes sbatch --test-only, one
    more task is refused (nothing is queued either way)."""
    layout = ScriptLayout(tmp_path, tmp_path / "arrays", tmp_path / "logs", "/usr/bin/python3")
    site = dataclasses.replace(load_site("local-slurm"), max_array_size=10**6)
    scheduler = slurm.SlurmScheduler(site, layout)
    size = scheduler.max_array_size()
    assert size is not None and size < 10**6

    def request(n: int) -> ArrayRequest:
        return ArrayRequest("maxarray", tuple(f"{tmp_path}/a{i}" for i in range(n)), 1, 50, 2)

    assert scheduler.test_only(request(size)) is None
    refusal = scheduler.test_only(request(size + 1))
    assert refusal is not None and "Invalid job array specification" in refusal
