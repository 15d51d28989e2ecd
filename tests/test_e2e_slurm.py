"""End to end on the real local SLURM cluster with the ORCA emulator, through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from e2e import (
    REPO,
    cli,
    cli_proc,
    ledger_bytes,
    new_campaign,
    orca_input,
    reconcile_until_done,
    show,
    status,
    write_inputs,
)

from orca_hpc.ledger.store import Ledger
from orca_hpc.scheduler import slurm

pytestmark = pytest.mark.slurm
BASE = Path(os.environ.get("ORCA_HPC_SLURM_BASE", "/var/tmp/orca-hpc-slurm"))


def test_array_completes_and_status_json_matches_ledger(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(
        tmp_path / "in",
        {f"mol{i}.inp": orca_input(extra=f"# conformer {i}\n") for i in range(3)}
        | {"opt.inp": orca_input("r2SCAN-3c Opt")},
    )
    out = cli(camp, "submit", "--json", *paths).output
    submitted = json.loads(out)
    # Same resources -> one array for all four.
    assert submitted["sbatch_calls"] == 1
    arrays = {s["slurm_job_id"].split("_")[0] for s in submitted["submitted"]}
    assert len(arrays) == 1
    final = reconcile_until_done(camp)
    assert final["counts"] == {"COMPLETED": 4}
    ledger = Ledger(camp / ".orca-hpc").snapshot()
    by_id = {j.id: j for j in ledger.all_jobs()}
    for row in final["jobs"]:
        job = by_id[row["id"]]
        assert row["state"] == job.state.value
        assert row["attempts"] == len(job.attempts) == 1
        assert row["slurm_job_id"] == job.attempt.slurm_id
        assert row["energy"] == job.attempt.energy and row["energy"] < -70
        folder = camp / job.attempt.dir
        assert (folder / "result.json").is_file()
        assert not list(folder.glob("*.tmp"))
    records = slurm.query_jobs([r["slurm_job_id"] for r in final["jobs"]])
    assert {r.state for r in records.values()} == {"COMPLETED"}


def test_crash_is_failed_with_slurm_state_and_exit_code(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(tmp_path / "in", {"boom.inp": orca_input(directive="crash")})
    cli(camp, "submit", "--max-retries", "0", *paths)
    final = reconcile_until_done(camp)
    job = final["jobs"][0]
    assert job["state"] == "PERMANENT_FAILED"
    assert job["slurm_state"] == "FAILED"
    att = show(camp, job["id"])["attempts"][0]
    # The runner passes ORCA's death on: SLURM records a non-zero exit, the ledger keeps it.
    assert att["exit_code"] != "0:0"
    assert att["outcome"] == "truncated"


def test_scf_failure_recovers_with_slowconv(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(tmp_path / "in", {"hard.inp": orca_input(directive="scf_fail_unless=SlowConv")})
    cli(camp, "submit", *paths)
    final = reconcile_until_done(camp)
    job = final["jobs"][0]
    assert job["state"] == "COMPLETED"
    record = show(camp, job["id"])
    # attempt 1 fails; 2 = MORead + MaxIter 500 (still fails); 3 adds SlowConv and converges.
    assert [a["outcome"] for a in record["attempts"]] == ["scf_not_converged", "scf_not_converged", "success"]
    changes = [[c["change"] for c in a["corrections"]] for a in record["attempts"]]
    assert changes[0] == []
    assert "%scf MaxIter 500" in changes[1] and any("MORead" in c for c in changes[1])
    assert "! SlowConv" in changes[2]
    third = (camp / record["attempts"][2]["folder"] / "hard.inp").read_text()
    assert "SlowConv" in third and "MORead" in third
    assert (camp / record["attempts"][2]["folder"] / "previous.gbw").is_file()
    assert record["retries"] == 2


def test_optimisation_restarts_from_last_geometry(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(
        tmp_path / "in", {"opt.inp": orca_input("r2SCAN-3c Opt", directive="opt_maxcycles_unless_restart")}
    )
    cli(camp, "submit", *paths)
    final = reconcile_until_done(camp)
    record = show(camp, final["jobs"][0]["id"])
    assert final["jobs"][0]["state"] == "COMPLETED"
    assert [a["outcome"] for a in record["attempts"]] == ["opt_not_converged", "success"]
    second = camp / record["attempts"][1]["folder"]
    assert "xyzfile 0 1 restart.xyz" in (second / "opt.inp").read_text()
    # The restart geometry is the last frame the failed attempt reached.
    last_frame = (camp / record["attempts"][0]["folder"] / "opt.xyz").read_text().split("\n", 2)[2].split()
    assert (second / "restart.xyz").read_text().split("\n", 2)[2].split() == last_frame


def test_out_of_memory_is_resubmitted_with_more_memory(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(
        tmp_path / "in", {"big.inp": orca_input(directive="oom need_mb=900", extra="%maxcore 500\n")}
    )
    cli(camp, "submit", *paths)
    final = reconcile_until_done(camp)
    record = show(camp, final["jobs"][0]["id"])
    assert final["jobs"][0]["state"] == "COMPLETED"
    assert [a["outcome"] for a in record["attempts"]] == ["out_of_memory", "success"]
    spec1 = json.loads((camp / record["attempts"][0]["folder"] / "spec.json").read_text())
    spec2 = json.loads((camp / record["attempts"][1]["folder"] / "spec.json").read_text())
    assert spec1["maxcore_mb"] == 500 and spec2["maxcore_mb"] >= 900 * 1.3 - 1
    assert spec2["mem_mb"] > spec1["mem_mb"]
    assert spec2["maxcore_mb"] * spec2["nprocs"] <= 0.8 * spec2["mem_mb"]
    assert "%maxcore 1170" in (camp / record["attempts"][1]["folder"] / "big.inp").read_text()


def test_input_error_fails_permanently_at_once(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(tmp_path / "in", {"typo.inp": orca_input(directive="input_error")})
    cli(camp, "submit", *paths)
    final = reconcile_until_done(camp)
    job = final["jobs"][0]
    assert (job["state"], job["attempts"], job["outcome"]) == ("PERMANENT_FAILED", 1, "input_error")


def test_always_failing_job_stops_after_max_retries_with_one_digest(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(
        tmp_path / "in",
        {
            "never.inp": orca_input(directive="scf_fail"),
            "never2.inp": orca_input("PBE def2-SVP", directive="scf_fail"),
        },
    )
    cli(camp, "submit", "--max-retries", "2", *paths)
    final = reconcile_until_done(camp, timeout=240)
    assert final["counts"] == {"PERMANENT_FAILED": 2}
    assert {j["attempts"] for j in final["jobs"]} == {3}
    outbox = Ledger(camp / ".orca-hpc").snapshot().outbox
    # Both failed in the same reconcile (same resources, same array): one digest naming both.
    digests = [m for m in outbox if "never" in m["body"]]
    assert len(digests) == 1 and "never2" in digests[0]["body"]


def test_bad_input_gives_one_line_and_leaves_ledger_unchanged(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    before = ledger_bytes(camp)
    (tmp_path / "notorca.inp").write_text("hello world\n")
    (tmp_path / "ok.inp").write_text(orca_input())
    for args in (
        ["submit", str(tmp_path / "missing.inp")],
        ["submit", str(tmp_path / "ok.inp"), str(tmp_path / "notorca.inp")],
        ["submit", str(tmp_path)],
    ):
        result = cli(camp, *args, expect=None)
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("orca-hpc: error: "), result.output
        assert "Traceback" not in result.output
    assert ledger_bytes(camp) == before


def _daemon_pid(name: str) -> int:
    return int((BASE / "run" / f"{name}.pid").read_text().strip())


def _restart_cluster() -> None:
    subprocess.run(
        ["bash", str(REPO / "scripts" / "local-slurm.sh"), "start"],
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.mark.disruptive
def test_reconcile_exits_75_and_changes_nothing_while_slurmdbd_is_down(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(tmp_path / "in", {"w.inp": orca_input()})
    [job] = json.loads(cli(camp, "submit", "--json", *paths).stdout)["submitted"]
    # sacct is asked only about jobs squeue no longer shows queued or running: wait until it ended
    deadline = time.monotonic() + 60
    while not all(r.finished for r in slurm._squeue(["-j", job["slurm_job_id"].split("_")[0]])):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    before = ledger_bytes(camp)
    os.kill(_daemon_pid("slurmdbd"), signal.SIGTERM)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["sacct", "-n", "-j", "1"], capture_output=True).returncode == 0:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        result = cli(camp, "reconcile", expect=75)
        assert "sacct" in result.output or "database" in result.output.lower()
        assert ledger_bytes(camp) == before
    finally:
        _restart_cluster()
    assert reconcile_until_done(camp)["counts"] == {"COMPLETED": 1}


@pytest.mark.disruptive
def test_submit_exits_75_when_slurmctld_is_down_and_records_nothing_as_submitted(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(tmp_path / "in", {"w.inp": orca_input()})
    os.kill(_daemon_pid("slurmctld"), signal.SIGTERM)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout.count("UP"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        result = cli(camp, "submit", *paths, expect=75)
        assert "slurm controller" in result.output.lower() or "sbatch" in result.output
        jobs = status(camp)["jobs"]
        # Recorded so nothing is lost, but not as submitted: it waits for the next reconcile.
        assert [(j["state"], j["slurm_job_id"]) for j in jobs] == [("CREATED", None)]
    finally:
        _restart_cluster()
    assert reconcile_until_done(camp)["counts"] == {"COMPLETED": 1}


def _tokens_in_slurm(camp: Path) -> dict[str, int]:
    """How many SLURM jobs carry each submission token of the campaign (must be exactly one)."""
    tokens = sorted(
        {
            a.token.split("/")[0]
            for j in Ledger(camp / ".orca-hpc").snapshot().all_jobs()
            for a in j.attempts
            if a.token
        }
    )
    found = slurm.find_by_names([f"ohpc-{t}" for t in tokens])
    return {t: len({r.array_job_id or r.job_id for r in found.get(f"ohpc-{t}", [])}) for t in tokens}


def test_submit_killed_right_after_sbatch_is_adopted_not_resubmitted(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(tmp_path / "in", {f"k{i}.inp": orca_input(extra=f"# k{i}\n") for i in range(2)})
    # An sbatch that works, then SIGKILLs its caller: the submit dies right after SLURM accepted the job.
    # (The first submit's site check, `sbatch --test-only`, goes through untouched.)
    fake = tmp_path / "bin"
    fake.mkdir()
    real = subprocess.run(["which", "sbatch"], capture_output=True, text=True, check=True).stdout.strip()
    (fake / "sbatch").write_text(
        f'#!/bin/bash\ncase " $* " in *" --test-only "*) exec "{real}" "$@";; esac\n'
        f'"{real}" "$@"\nrc=$?\nkill -9 $PPID\nexit $rc\n'
    )
    (fake / "sbatch").chmod(0o755)
    proc = cli_proc(camp, "submit", *paths, env={"PATH": f"{fake}:{os.environ['PATH']}"})
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    jobs = status(camp)["jobs"]
    assert {j["state"] for j in jobs} == {"SUBMITTING"} and all(j["slurm_job_id"] is None for j in jobs)
    final = reconcile_until_done(camp)
    assert final["counts"] == {"COMPLETED": 2}
    assert all(j["attempts"] == 1 for j in final["jobs"])
    assert set(_tokens_in_slurm(camp).values()) == {1}


def test_reconcile_killed_at_random_points_reaches_the_same_end(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(
        tmp_path / "in",
        {
            "ok.inp": orca_input(),
            "hard.inp": orca_input("PBE0 def2-SVP", directive="scf_fail_unless=SlowConv"),
            "typo.inp": orca_input("BP86 def2-SVP", directive="input_error"),
        },
    )
    cli(camp, "submit", *paths)
    delays = [0.05, 0.15, 0.3, 0.5, 0.8, 0.1, 0.25, 0.4]
    deadline = time.monotonic() + 240
    for i in range(40):
        proc = cli_proc(camp, "reconcile")
        time.sleep(delays[i % len(delays)])
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if all(j["state"] in ("COMPLETED", "PERMANENT_FAILED") for j in status(camp)["jobs"]):
            break
        assert time.monotonic() < deadline
        time.sleep(0.5)
    final = reconcile_until_done(camp)
    got = {j["name"]: (j["state"], j["attempts"]) for j in final["jobs"]}
    assert got == {"ok": ("COMPLETED", 1), "hard": ("COMPLETED", 3), "typo": ("PERMANENT_FAILED", 1)}
    # No attempt ever ran twice: each token maps to exactly one SLURM job.
    assert set(_tokens_in_slurm(camp).values()) == {1}


def test_walltime_kill_restarts_from_saved_files_with_more_time(tmp_path: Path) -> None:
    # SLURM may send the warning up to 60 s early (sbatch(1), --signal): with 1 min and 30 s it could come
    # before the first orbitals exist. 2 min and 50 s: no earlier than 10 s in (the .gbw is there after ~1 s).
    camp = new_campaign(tmp_path, overrides="\n[overrides.slurm]\nwalltime = 2\nsignal_before_end_s = 50\n")
    paths = write_inputs(tmp_path / "in", {"long.inp": orca_input("r2SCAN-3c Opt", directive="sleep=600")})
    cli(camp, "submit", *paths)
    deadline = time.monotonic() + 300
    while True:
        cli(camp, "reconcile")
        jobs = status(camp)["jobs"]
        if jobs[0]["attempts"] == 2:
            break
        assert time.monotonic() < deadline, jobs
        time.sleep(2)
    record = show(camp, jobs[0]["id"])
    first, second = record["attempts"]
    assert (first["outcome"], first["reason"]) == ("truncated", "walltime")
    saved = camp / first["folder"]
    assert (saved / "long.out").is_file() and (saved / "long.gbw").is_file()
    changes = [c["change"] for c in second["corrections"]]
    assert "--time 2 -> 4 min" in changes and "MORead previous.gbw" in changes
    assert json.loads((camp / second["folder"] / "spec.json").read_text())["time_min"] == 4
    assert (camp / second["folder"] / "previous.gbw").read_bytes() == (saved / "long.gbw").read_bytes()
    assert record["retries"] == 1
    cli(camp, "cancel", jobs[0]["id"])
    assert status(camp)["jobs"][0]["state"] == "CANCELLED"


@pytest.mark.disruptive
def test_node_failure_is_retried_without_counting(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(tmp_path / "in", {"nf.inp": orca_input(directive="sleep=300")})
    cli(camp, "submit", *paths)
    deadline = time.monotonic() + 60
    while status(camp, reconcile=True)["jobs"][0]["state"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(1)
    # The node dies: slurmd gone for longer than SlurmdTimeout (30 s) -> NODE_FAIL.
    os.kill(_daemon_pid("slurmd"), signal.SIGTERM)
    try:
        deadline = time.monotonic() + 150
        while (jobs := status(camp, reconcile=True)["jobs"])[0]["attempts"] < 2:
            assert time.monotonic() < deadline, jobs
            time.sleep(3)
    finally:
        _restart_cluster()
    record = show(camp, jobs[0]["id"])
    first = record["attempts"][0]
    assert (first["slurm_state"], first["outcome"], first["reason"]) == (
        "NODE_FAIL",
        "truncated",
        "node_fail",
    )
    assert first["counts_against_limit"] is False  # does not count against max_retries ...
    assert record["retries"] == 0 and record["node_failures"] == 1  # ... but against max_nodefail_retries
    assert record["attempts"][1]["corrections"][0]["handler"] == "restart"
    cli(camp, "cancel", jobs[0]["id"])


def test_a_damaged_attempt_folder_fails_that_job_only(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(
        tmp_path / "in",
        {"gone.inp": orca_input(directive="scf_fail"), "fine.inp": orca_input("PBE def2-SVP")},
    )
    cli(camp, "submit", *paths)
    gone = next(j for j in status(camp)["jobs"] if j["name"] == "gone")
    attempt = camp / "jobs" / gone["id"] / "attempt-1"
    deadline = time.monotonic() + 60
    while not (attempt / "result.json").exists():  # the runner is done with its spec
        assert time.monotonic() < deadline
        time.sleep(0.5)
    (attempt / "spec.json").write_text("{ not json")  # damaged before reconcile plans a retry
    final = reconcile_until_done(camp)
    assert {j["name"]: j["state"] for j in final["jobs"]} == {"gone": "PERMANENT_FAILED", "fine": "COMPLETED"}
    digest = Ledger(camp / ".orca-hpc").snapshot().outbox[0]["body"]
    assert "cannot read the attempt's plan" in digest


def test_a_person_retries_a_permanently_failed_job(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    # Needs the SCF ladder's strongest damping, which the last allowed attempt gets (docs/recovery.md).
    paths = write_inputs(tmp_path / "in", {"fix.inp": orca_input(directive="scf_fail_unless=VerySlowConv")})
    cli(camp, "submit", "--max-retries", "0", *paths)
    job = reconcile_until_done(camp)["jobs"][0]
    assert (job["state"], job["attempts"]) == ("PERMANENT_FAILED", 1)
    cli(camp, "retry", "--max-retries", "2", job["id"])
    final = reconcile_until_done(camp)
    record = show(camp, job["id"])
    assert final["jobs"][0]["state"] == "COMPLETED"
    assert record["attempts"][1]["corrections"] == [
        {"handler": "manual", "change": "none", "why": "orca-hpc retry"}
    ]
    assert [a["outcome"] for a in record["attempts"]] == ["scf_not_converged"] * 3 + ["success"]
    assert record["max_retries"] == 2
    again = cli(camp, "retry", job["id"], expect=1).output
    assert "only PERMANENT_FAILED or CANCELLED" in again


def test_minimum_with_an_imaginary_mode_is_displaced_and_reoptimised(tmp_path: Path) -> None:
    # Issue 13: ORCA ends normally, but the "minimum" has an imaginary mode: never COMPLETED as it is.
    camp = new_campaign(tmp_path)
    text = orca_input("B3LYP def2-SVP Opt Freq", directive="imaginary_unless=TightOpt")
    paths = write_inputs(tmp_path / "in", {"saddle.inp": text})
    cli(camp, "submit", *paths)
    final = reconcile_until_done(camp)
    job = final["jobs"][0]
    assert job["state"] == "COMPLETED"
    record = show(camp, job["id"])
    assert [a["outcome"] for a in record["attempts"]] == ["imaginary_modes", "success"]
    second = record["attempts"][1]
    assert [c["change"] for c in second["corrections"]] == [
        "* xyzfile displaced.xyz",
        "! TightOpt",
        "! DefGrid3",
    ]
    assert "imaginary mode 6 (-850.00 cm**-1)" in second["corrections"][0]["why"]
    assert (camp / second["folder"] / "displaced.xyz").is_file()
    text_view = cli(camp, "show", "--no-reconcile", job["id"]).output
    assert "imaginary mode" in text_view and "TightOpt" in text_view
    result = json.loads((camp / second["folder"] / "result.json").read_text())
    assert result["classification"]["n_imaginary"] == 0 and result["classification"]["intent"] == "minimum"


def test_broken_orca_path_pauses_with_one_alert_then_resumes_and_completes(tmp_path: Path) -> None:
    orca = tmp_path / "bin" / "orca"
    camp = new_campaign(
        tmp_path,
        overrides=f'\n[overrides.orca]\npath = "{orca}"\n'
        + "[overrides.retry]\npause_after_environment_failures = 2\n",
    )
    paths = write_inputs(tmp_path / "in", {f"m{i}.inp": orca_input(extra=f"# {i}\n") for i in range(2)})
    # --no-check: a first submit's site check refuses a missing ORCA; this one went missing later
    cli(camp, "submit", "--no-check", *paths)
    deadline = time.monotonic() + 180
    while (state := status(camp, reconcile=True))["paused"] is None:
        assert time.monotonic() < deadline, state
        time.sleep(1.0)
    assert state["paused"]["reason"] == "orca_missing"
    assert "PERMANENT_FAILED" not in state["counts"]
    waiting = {j["id"]: j["attempts"] for j in state["jobs"]}
    cli(camp, "reconcile")
    assert {j["id"]: j["attempts"] for j in status(camp)["jobs"]} == waiting  # nothing submitted
    orca.parent.mkdir()
    orca.symlink_to(shutil.which("orca-emulator") or "orca-emulator")
    final = reconcile_until_done(camp)
    assert final["counts"] == {"COMPLETED": 2} and final["paused"] is None
    outbox = Ledger(camp / ".orca-hpc").snapshot().outbox
    assert [m["kind"] for m in outbox].count("environment_pause") == 1
    record = show(camp, final["jobs"][0]["id"])
    assert record["attempts"][0]["outcome"] == "environment_error"
    assert record["retries"] == 0  # environment failures never use up max_retries
    assert [c["handler"] for c in record["attempts"][1]["corrections"]] == [
        "environment"
    ]  # same input, same size
