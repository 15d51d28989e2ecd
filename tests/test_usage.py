"""Usage: sacct's step rows folded into a job's record, what reconcile stores, the report's arithmetic
and right-sizing (fast: captured sacct text and the FakeScheduler; the real cluster is
tests/test_usage_slurm.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from orca_hpc.config.campaign import Campaign, init_campaign, load_campaign
from orca_hpc.config.site import SIGNAL_EARLY_S, job_memory_mb
from orca_hpc.controller import reconcile as reconcile_mod
from orca_hpc.controller.reconcile import reconcile
from orca_hpc.controller.rightsize import resize
from orca_hpc.controller.submit import submit
from orca_hpc.controller.usage_report import (
    Evidence,
    Group,
    Suggestion,
    atom_bucket,
    group_of,
    job_row,
    percentile,
    suggest,
    usage_report,
)
from orca_hpc.errors import UserError
from orca_hpc.ledger.records import Attempt, Job
from orca_hpc.ledger.states import JobState
from orca_hpc.ledger.validate import job_problems, plainly_sound
from orca_hpc.scheduler import slurm
from orca_hpc.scheduler.base import Usage
from orca_hpc.scheduler.fake import FakeScheduler

# Captured from the local SLURM 22.05.8 cluster (sacct -P -n -o slurm.SACCT_FIELDS, no -X): array 9216
# ran the emulator with alloc_mb=300 cpu_s=2 sleep=8 under orca-hpc (1 CPU, 2000 MB, 30 min); 8875 a
# 2-task script that held 200 MB and burnt 3 s of CPU (--mem=600M --time=5).
SACCT_CAPTURE = """\
9216_0|COMPLETED|0:0|2026-11-29T20:36:52|2026-11-29T20:36:52|2026-11-29T20:37:05|vm|13|30|00:03.142||2000M|1|ohpc-a7116a3ecca4d0d2
9216_0.batch|COMPLETED|0:0|2026-11-29T20:36:52|2026-11-29T20:36:52|2026-11-29T20:37:05|vm|13||00:03.142|349516K||1|batch
9216_1|COMPLETED|0:0|2026-11-29T20:36:52|2026-11-29T20:36:52|2026-11-29T20:37:05|vm|13|30|00:03.058||2000M|1|ohpc-a7116a3ecca4d0d2
9216_1.batch|COMPLETED|0:0|2026-11-29T20:36:52|2026-11-29T20:36:52|2026-11-29T20:37:05|vm|13||00:03.058|349624K||1|batch
8875_0|COMPLETED|0:0|2026-11-29T20:33:55|2026-11-29T20:33:56|2026-11-29T20:34:09|vm|13|5|00:03.586||600M|2|h16b-capture
8875_0.batch|COMPLETED|0:0|2026-11-29T20:33:56|2026-11-29T20:33:56|2026-11-29T20:34:09|vm|13||00:03.586|221448K||2|batch
"""

INPUT = "! B3LYP def2-SVP\n* xyz 0 1\nO 0 0 0\nH 0 0.76 -0.47\nH 0 -0.76 -0.47\n*\n"


# ---------------------------------------------------------------- sacct


def test_step_rows_fold_max_rss_into_the_job() -> None:
    recs = {r.job_id: r for r in slurm.parse_sacct(SACCT_CAPTURE)}
    assert sorted(recs) == ["8875_0", "9216_0", "9216_1"]  # step rows make no records of their own
    assert recs["9216_0"].usage == Usage(13, 1800, 3, math.ceil(349516 / 1024), 2000, 1)
    assert recs["8875_0"].usage == Usage(13, 300, 4, math.ceil(221448 / 1024), 600, 2)


@pytest.mark.parametrize(
    ("text", "bare", "cpus", "mb"),
    [("41852K", "K", None, 41), ("41M", "K", None, 41), ("1.50G", "K", None, 1536), ("0", "K", None, 0),
     ("2000M", "M", 4, 2000), ("2000Mc", "M", 4, 8000), ("2000Mn", "M", 4, 2000), ("", "K", None, None)],
)  # fmt: skip
def test_sizes(text: str, bare: str, cpus: int | None, mb: int | None) -> None:
    assert slurm.parse_size_mb(text, bare, cpus) == mb


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:03.586", 4), ("01:02:03", 3723), ("1-00:00:10", 86410), ("", None), ("x", None)],
)
def test_durations(text: str, seconds: int | None) -> None:
    assert slurm.parse_duration_s(text) == seconds


def test_squeue_record_of_a_finished_job_keeps_sacct_usage_or_says_it_is_pending() -> None:
    squeue = "9216_0|COMPLETED|0|None|vm|2026-11-29T20:36:52|2026-11-29T20:36:52|2026-11-29T20:37:05|x\n"
    merged = slurm._merge(slurm.parse_sacct(SACCT_CAPTURE), slurm.parse_squeue(squeue))
    assert merged["9216_0"].source == "squeue" and merged["9216_0"].usage is not None
    assert not merged["9216_0"].usage_pending
    lagging = SACCT_CAPTURE.replace("9216_0|COMPLETED|0:0", "9216_0|RUNNING|0:0", 1)
    merged = slurm._merge(slurm.parse_sacct(lagging), slurm.parse_squeue(squeue))
    assert merged["9216_0"].usage is None and merged["9216_0"].usage_pending


# ---------------------------------------------------------------- reconcile records it


@pytest.fixture
def campaign(tmp_path: Path) -> Campaign:
    init_campaign(tmp_path / "camp", "local-slurm")
    return load_campaign(tmp_path / "camp")


def _submit(campaign: Campaign, fake: FakeScheduler, names: list[str]) -> list[str]:
    paths = []
    for name in names:
        path = campaign.root / f"{name}.inp"
        path.write_text(INPUT + f"# {name}\n")
        paths.append(path)
    return [j for j, _n, _s in submit(campaign, paths, scheduler=fake).submitted]


def _finish(campaign: Campaign, fake: FakeScheduler, job_id: str, usage: Usage | None, **kw: bool) -> None:
    att = campaign.ledger().snapshot().get(job_id).latest
    assert att.slurm_id
    fake.start(att.slurm_id)
    fake.finish(att.slurm_id)
    fake.jobs[att.slurm_id].usage = usage
    fake.jobs[att.slurm_id].usage_pending = kw.get("pending", False)
    body = {"result_version": 1, "job_id": job_id, "attempt": att.n, "outcome": "success", "energy": -76.0}
    (campaign.root / att.dir / "result.json").write_text(json.dumps(body | {"retryable": False}))


def test_reconcile_stores_usage_compactly_and_waits_for_lagging_accounting(
    campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeScheduler()
    first, second = _submit(campaign, fake, ["a", "b"])
    _finish(campaign, fake, first, Usage(600, 1800, 540, 700, 2000, 1))
    _finish(campaign, fake, second, None, pending=True)
    fake.jobs[campaign.ledger().snapshot().get(second).latest.slurm_id].end = "2026-01-01T00:01:00Z"
    monkeypatch.setattr(reconcile_mod, "USAGE_GRACE_S", 1e12)  # the fake's end stamp is long past
    reconcile(campaign, scheduler=fake)
    view = campaign.ledger().snapshot()
    done = view.get(first)
    assert done.state is JobState.COMPLETED
    assert done.latest.usage == {
        "el": 600,
        "tl": 1800,
        "cpu": 540,
        "rss": 700,
        "mem": 2000,
        "np": 1,
        "node": "node1",
    }
    assert done.latest.to_dict()["use"] == done.latest.usage
    assert not view.get(second).state.finished  # sacct has not caught up: not finished yet
    monkeypatch.setattr(reconcile_mod, "USAGE_GRACE_S", 0.0)
    reconcile(campaign, scheduler=fake)
    assert campaign.ledger().snapshot().get(second).state is JobState.COMPLETED


def test_without_accounting_only_the_runner_elapsed_time_is_kept(campaign: Campaign) -> None:
    fake = FakeScheduler()
    [job_id] = _submit(campaign, fake, ["a"])
    _finish(campaign, fake, job_id, None)
    att = campaign.ledger().snapshot().get(job_id).latest
    result = campaign.root / att.dir / "result.json"
    body = json.loads(result.read_text())
    body |= {"started": "2026-01-01T00:00:00Z", "ended": "2026-01-01T00:02:05Z", "node": "ws1"}
    result.write_text(json.dumps(body))
    fake.jobs[att.slurm_id or ""].node = None
    reconcile(campaign, scheduler=fake)
    assert campaign.ledger().snapshot().get(job_id).latest.usage == {"el": 125, "node": "ws1"}


# ---------------------------------------------------------------- ledger


def _job(attempts: list[Attempt], state: JobState = JobState.COMPLETED, job_id: str = "j000001") -> Job:
    job = Job(job_id, "w", "/in/w.inp", "0" * 64, "s", state, 3, "2026-01-01T00:00:00Z",
              "2026-01-01T00:00:00Z", f"jobs/{job_id}")  # fmt: skip
    for i, att in enumerate(attempts, 1):
        att.n, att.dir = i, f"jobs/{job_id}/attempt-{i}"
        job.attempts.append(att)
    return job


def test_ledger_accepts_usage_and_refuses_bad_values() -> None:
    good = _job([Attempt(1, "t", outcome="success", usage={"el": 5, "rss": 100, "node": "vm"})])
    assert job_problems("j000001", good.to_dict()) == []
    assert Job.from_dict("j000001", good.to_dict()) == good
    assert plainly_sound("j000001", good.to_dict())  # the save's quick path takes a sound usage
    for bad, problem in (({"el": -1}, "use.el"), ({"zz": 1}, "use.zz"), ({"el": 1.5}, "use.el"),
                         ({"node": "a\nb"}, "use.node"), ([1], "use is list"), ({"el": 2**53}, "use.el"),
                         ({"node": 5}, "use.node"), ({"el": True}, "use.el")):  # fmt: skip
        d = good.to_dict()
        d["att"][0]["use"] = bad
        assert any(problem in p for p in job_problems("j000001", d)), bad
        assert not plainly_sound("j000001", d), bad  # never says yes where the full rules say no


# ---------------------------------------------------------------- report arithmetic


def test_job_row_splits_core_hours_and_computes_efficiencies() -> None:
    used = {"el": 3600, "tl": 3600, "cpu": 7000, "np": 2, "rss": 500, "mem": 1000}
    failed = Attempt(1, "t", outcome="truncated", reason="walltime", usage=used)
    ok = Attempt(
        2,
        "t",
        outcome="success",
        usage={"el": 1800, "tl": 7200, "cpu": 1800, "np": 4, "rss": 1500, "mem": 2000},
    )
    row = job_row(_job([failed, ok]))
    assert row is not None
    assert row["core_hours"] == pytest.approx(2 + 2)  # 1 h x 2 CPUs + 0.5 h x 4 CPUs
    assert (row["core_hours_successful"], row["core_hours_wasted"]) == (2.0, 2.0)
    assert row["core_hours_unused"] == pytest.approx(2 + (7200 - 1800) / 3600)  # wasted + idle
    assert row["cpu_efficiency"] == pytest.approx((7000 + 1800) / (7200 + 7200), abs=1e-4)
    assert (row["mem_efficiency"], row["time_fraction"], row["max_rss_mb"]) == (0.75, 0.25, 1500)
    assert job_row(_job([Attempt(1, "t")])) is None


def test_report_ranks_the_most_unused_core_hours_first(tmp_path: Path) -> None:
    busy = _job(
        [Attempt(1, "t", outcome="success", usage={"el": 3600, "cpu": 3600, "np": 1})], job_id="j000001"
    )
    idle = _job(
        [Attempt(1, "t", outcome="success", usage={"el": 3600, "cpu": 360, "np": 8})], job_id="j000002"
    )
    report = usage_report([busy, idle], tmp_path, margin=0.2, signal_s=300, min_samples=20)
    assert [r["id"] for r in report["jobs"]] == ["j000002", "j000001"]
    totals = report["campaign"]
    assert totals["core_hours"] == 9.0 and totals["core_hours_wasted"] == 0
    assert totals["cpu_efficiency"] == pytest.approx(3960 / (3600 * 9), abs=1e-4)


def test_suggestion_covers_95_percent_with_margin_and_counts_limits_hit() -> None:
    assert percentile(list(range(1, 101))) == 95 and percentile([7]) == 7
    evidence = Evidence()
    for el in range(1, 21):  # 20 successes: 60 s .. 1200 s, 100 MB .. 2000 MB
        evidence.add(Attempt(1, "t", outcome="success", usage={"el": el * 60, "rss": el * 100}))
    s = suggest(evidence, margin=0.2, signal_s=300, min_samples=20)
    assert (s.elapsed_p95_s, s.rss_p95_mb) == (1140, 1900)
    assert s.walltime_min == math.ceil((1140 * 1.2 + 300 + 60) / 60)  # the warning may come 60 s early
    assert s.mem_mb == math.ceil(1900 * 1.2 / 100) * 100
    assert suggest(evidence, margin=0.2, signal_s=300, min_samples=21).walltime_min is None
    # a job that ran out of time needed at least its limit: the suggestion cannot drop below it
    evidence.add(Attempt(1, "t", outcome="truncated", reason="walltime", usage={"el": 7200, "tl": 7200}))
    evidence.add(Attempt(1, "t", outcome="truncated", reason="walltime", usage={"el": 7200, "tl": 7200}))
    assert suggest(evidence, margin=0.2, signal_s=300).elapsed_p95_s == 7200


def test_suggested_walltime_leaves_room_for_a_warning_sent_early(campaign: Campaign) -> None:
    # SLURM may send the warning up to SIGNAL_EARLY_S before signal_s; the runner stops ORCA when it comes.
    group = Group("b3lyp def2-svp", None, "3-4", 2)
    for signal_s in (0, 30, 59, 60, 300):
        for el95 in (1, 29, 30, 31, 59, 60, 61, 600, 3599):
            s = suggest(Evidence(elapsed_s=[el95] * 20), margin=0.2, signal_s=signal_s, min_samples=20)
            assert s.walltime_min is not None
            assert s.walltime_min * 60 - signal_s - SIGNAL_EARLY_S >= el95 * 1.2, (signal_s, el95)
    # the floor of a right-sized job: even a 1 s group keeps room for the warning and its earliness
    plan = _plan(maxcore=800)
    resize(plan, group, Suggestion(1, None, 1, None, 20, 0, 0.2), campaign.site, own_maxcore=True)
    assert plan.time_min * 60 > campaign.site.signal_before_end_s + SIGNAL_EARLY_S


def test_groups_ignore_pal_and_comments_and_bucket_atoms() -> None:
    assert [atom_bucket(n) for n in (0, 1, 2, 3, 4, 5, 8, 9, 16, 17)] == [
        "?", "1", "2", "3-4", "3-4", "5-8", "5-8", "9-16", "9-16", "17-32"]  # fmt: skip
    a = group_of("! B3LYP def2-SVP PAL4\n# one\n* xyz 0 1\nH 0 0 0\nH 0 0 1\n*\n", lambda _n: None)
    b = group_of("!def2-svp  b3lyp\n%pal nprocs 4 end\n* xyz 0 1\nH 0 0 0\nH 0 0 1\n*\n", lambda _n: None)
    c = group_of("! B3LYP def2-TZVP\n%pal nprocs 4 end\n* xyz 0 1\nH 0 0 0\nH 0 0 1\n*\n", lambda _n: None)
    assert a is not None and b is not None and c is not None
    assert a.key == b.key and a.key != c.key and a.procs == 4


# ---------------------------------------------------------------- right-sizing


def _plan(maxcore: int, nprocs: int = 2):  # type: ignore[no-untyped-def]
    from orca_hpc.attempt.folder import AttemptPlan

    return AttemptPlan("w.inp", INPUT, nprocs, maxcore, job_memory_mb(maxcore, nprocs), 60)


def test_rightsizing_never_goes_below_the_inputs_own_maxcore(campaign: Campaign) -> None:
    group = Group("b3lyp def2-svp", None, "3-4", 2)
    evidence = Evidence(elapsed_s=[100] * 20, rss_mb=[200] * 20)
    s = suggest(evidence, margin=0.2, signal_s=30, min_samples=20)
    own = _plan(maxcore=1000)  # needs 1000 x 2 / 0.8 = 2500 MB
    fix = resize(own, group, s, campaign.site, own_maxcore=True)
    assert fix is not None and fix["handler"] == "rightsize" and "20 took <= 100 s" in fix["why"]
    assert (own.mem_mb, own.maxcore_mb, own.time_min) == (2500, 1000, s.walltime_min)
    default = _plan(maxcore=800)  # the site's default was written in: %maxcore follows the suggestion
    resize(default, group, s, campaign.site, own_maxcore=False)
    assert s.mem_mb == 300 and default.maxcore_mb == 150  # 150 MB x 2 processes = the suggestion
    assert default.mem_mb == job_memory_mb(150, 2) == 375  # the memory rule on top
    huge = suggest(Evidence(elapsed_s=[10**6] * 20), margin=0.2, signal_s=30, min_samples=20)
    capped = _plan(maxcore=800)
    resize(capped, group, huge, campaign.site, own_maxcore=True)
    assert capped.time_min == campaign.site.max_walltime_min  # never beyond the site's limits
    greedy = suggest(Evidence(rss_mb=[10**6] * 20), margin=0.2, signal_s=30, min_samples=20)
    big = _plan(maxcore=800)
    resize(big, group, greedy, campaign.site, own_maxcore=False)
    assert big.mem_mb == campaign.site.max_mem_mb and big.maxcore_mb == big.mem_mb * 4 // (5 * 2)


def test_submit_right_sizes_similar_jobs_with_enough_evidence(campaign: Campaign) -> None:
    fake = FakeScheduler()
    ids = _submit(campaign, fake, ["a", "b", "c"])
    for job_id in ids:
        _finish(campaign, fake, job_id, Usage(120, 1800, 110, 400, 2000, 1))
    reconcile(campaign, scheduler=fake)
    config = campaign.config_path
    config.write_text(config.read_text() + "\n[rightsize]\nenabled = true\nmin_evidence = 4\n")
    [few] = _submit(load_campaign(campaign.root), fake, ["d"])
    assert campaign.ledger().snapshot().get(few).latest.corrections == []  # 3 samples < 4
    config.write_text(config.read_text().replace("min_evidence = 4", "min_evidence = 3"))
    [sized] = _submit(load_campaign(campaign.root), fake, ["e"])
    job = campaign.ledger().snapshot().get(sized)
    [fix] = job.latest.corrections
    assert (
        fix["handler"] == "rightsize" and "3 took <= 120 s" in fix["why"] and "3 used <= 400 MB" in fix["why"]
    )
    spec = json.loads((campaign.root / job.latest.dir / "spec.json").read_text())
    # 400 MB used + 20 % = 500 MB for ORCA (%maxcore, 1 process), / 0.8 for the job
    assert (spec["time_min"], spec["maxcore_mb"], spec["mem_mb"]) == (
        math.ceil((120 * 1.2 + 30 + 60) / 60),
        500,
        625,
    )
    assert "%maxcore 500" in (campaign.root / job.latest.dir / "e.inp").read_text()
    assert fake.requests[-1].mem_mb == 625


@pytest.mark.parametrize(
    ("table", "problem"),
    [("enabled = 1", "enabled"), ("min_evidence = 0", "min_evidence"), ("margin = -1", "margin"),
     ("typo = 1", "unknown key 'typo'")],
)  # fmt: skip
def test_bad_rightsize_settings_are_one_line_errors(campaign: Campaign, table: str, problem: str) -> None:
    config = campaign.config_path
    config.write_text(config.read_text() + f"\n[rightsize]\n{table}\n")
    with pytest.raises(UserError, match=problem) as err:
        load_campaign(campaign.root)
    assert str(config) in str(err.value) and "\n" not in str(err.value)


def test_usage_command_prints_text_csv_and_json(campaign: Campaign) -> None:
    import csv

    from click.testing import CliRunner

    from orca_hpc.cli import main

    fake = FakeScheduler()
    ids = _submit(campaign, fake, ["a", "b"])
    for k, job_id in enumerate(ids):
        _finish(campaign, fake, job_id, Usage(600 * (k + 1), 1800, 300, 400, 2000, 2))
    reconcile(campaign, scheduler=fake)

    def run(*args: str) -> str:
        result = CliRunner().invoke(main, ["-C", str(campaign.root), "usage", "--no-reconcile", *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    rows = list(csv.DictReader(run("--csv").splitlines()))
    assert [r["id"] for r in rows] == [ids[1], ids[0]]  # the idler (longer, same CPU time) first
    # The same header when no job is measured (a spreadsheet's columns do not depend on the data).
    assert list(rows[0]) == run("--csv", "--state", "CANCELLED").splitlines()[0].split(",")
    assert float(rows[0]["cpu_efficiency"]) == pytest.approx(300 / (1200 * 2), abs=1e-4)
    document = json.loads(run("--json"))
    assert (document["schema"], document["kind"]) == (1, "usage")
    [group] = document["groups"]
    assert group["suggested_walltime_min"] == math.ceil((1200 * 1.2 + 30 + 60) / 60)
    text = run()
    assert f"{group['suggested_walltime_min']} min" in text and ids[1] in text
