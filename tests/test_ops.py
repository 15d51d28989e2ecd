"""Unattended operation through the real `orca-hpc` executable: exit codes, `watch`, shipped systemd
units, `results --csv`."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orca_hpc.errors import EXIT_ERROR, EXIT_OK, EXIT_TEMPFAIL, EXIT_USAGE
from orca_hpc.ledger.states import JobState
from orca_hpc.ledger.store import Ledger
from orca_hpc.logs import LOG_NAME
from orca_hpc.scheduler import slurm
from tests.e2e import REPO, WATER, cli, new_campaign, orca_input, reconcile_until_done, write_inputs

UNITS = REPO / "contrib" / "systemd"
_SCRIPT = Path(sys.executable).with_name("orca-hpc")
ORCA_HPC = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "orca_hpc"]


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ORCA_HPC, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*ORCA_HPC, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def log_text(campaign: Path) -> str:
    path = campaign / ".orca-hpc" / "logs" / LOG_NAME
    return path.read_text() if path.exists() else ""


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def stop(proc: subprocess.Popen[str], timeout: float = 5.0) -> tuple[int, str, str]:
    """SIGTERM; the exit code and output (the process is killed if it does not stop in time)."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"did not stop within {timeout} s after SIGTERM:\n{err}")
    return proc.returncode, out, err


def dead_database_conf(tmp_path: Path) -> Path:
    """The cluster's slurm.conf with the accounting port pointing nowhere: sacct fails at once,
    as with slurmdbd down (the shared cluster itself is left alone)."""
    text = re.sub(
        r"^AccountingStoragePort=.*$",
        "AccountingStoragePort=1",
        Path("/etc/slurm/slurm.conf").read_text(),
        flags=re.M,
    )
    if "AccountingStoragePort=1" not in text:
        text += "\nAccountingStoragePort=1\n"
    path = tmp_path / "unreachable.conf"
    path.write_text(text)
    return path


def campaign_with_job(tmp_path: Path) -> Path:
    """A campaign whose one job SLURM has accepted (its state is what the ledger says: PENDING)."""
    camp = new_campaign(tmp_path)
    cli(camp, "submit", *write_inputs(tmp_path / "in", {"w.inp": orca_input()}))
    return camp


def campaign_with_ended_job(tmp_path: Path) -> Path:
    """`campaign_with_job` once its job has ended on the cluster (not reconciled: the ledger still says
    PENDING). Only then does reconcile need sacct: it asks slurmdbd only about the jobs squeue no
    longer shows queued or running, so a database outage cannot stop the others' reconcile."""
    camp = campaign_with_job(tmp_path)
    slurm_id = Ledger(camp / ".orca-hpc").snapshot().get("j000001").latest.slurm_id
    assert slurm_id is not None
    base = slurm_id.split("_")[0]
    wait_for(lambda: all(r.finished for r in slurm._squeue(["-j", base])), 120, "the job's end")
    return camp


# -- exit codes ------------------------------------------------------------------------------------


def test_usage_error_is_2() -> None:
    proc = run("--no-such-option")
    assert proc.returncode == EXIT_USAGE
    assert "No such option" in proc.stderr


def test_missing_campaign_is_1_with_one_line(tmp_path: Path) -> None:
    proc = run("-C", str(tmp_path / "nowhere"), "status")
    assert proc.returncode == EXIT_ERROR
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("orca-hpc: error: ")
    assert "not an orca-hpc campaign" in proc.stderr and "Traceback" not in proc.stderr


def test_success_is_0(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    proc = run("-C", str(camp), "status", "--no-reconcile")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "no jobs" in proc.stdout


def test_locked_ledger_is_75_naming_the_holder(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    with Ledger(camp / ".orca-hpc").lock:
        proc = run("-C", str(camp), "reconcile")  # waits out the 10 s lock timeout
    assert proc.returncode == EXIT_TEMPFAIL
    assert proc.stderr.count("\n") == 1
    assert f"locked by another orca-hpc, pid {os.getpid()}" in proc.stderr
    assert re.search(rf"WARNING orca_hpc.cli: exit 75: .*pid {os.getpid()}", log_text(camp))


@pytest.mark.slurm
def test_scheduler_unreachable_is_75_and_changes_nothing(tmp_path: Path) -> None:
    camp = campaign_with_ended_job(tmp_path)
    before = (camp / ".orca-hpc" / "ledger.json").read_bytes()
    proc = run("-C", str(camp), "reconcile", env={"SLURM_CONF": str(dead_database_conf(tmp_path))})
    assert proc.returncode == EXIT_TEMPFAIL, proc.stderr
    assert proc.stderr.startswith("orca-hpc: error: ") and proc.stderr.count("\n") == 1
    assert (camp / ".orca-hpc" / "ledger.json").read_bytes() == before


# -- watch -----------------------------------------------------------------------------------------


def test_watch_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    # An hour between reconciles: stopping at all shows SIGTERM cuts the wait short, on any machine.
    proc = start("-C", str(camp), "watch", "--interval", "3600")
    try:
        wait_for(lambda: "next reconcile in 3600 s" in log_text(camp), 30, "the heartbeat")  # now it sleeps
    finally:
        code, out, err = stop(proc, timeout=60)
    assert code == EXIT_OK, err
    assert "watch: SIGTERM received, stopped" in out
    assert re.search(r"pid=\d+ watch INFO orca_hpc.cli: watch: SIGTERM received, stopped", log_text(camp))
    ledger = Ledger(camp / ".orca-hpc")
    assert ledger.check().ok
    assert ledger.snapshot().meta["campaign"] == "camp"


def test_watch_waits_until_a_result_file_appears_or_the_interval_ends(tmp_path: Path) -> None:
    """The wait between reconciles ends when one of the watched result files appears (looked for once a
    second), at the deadline otherwise, or on a stop; on a simulated clock, so no machine's speed counts."""
    from orca_hpc.cli.reconcile import wait_for_results

    now = [0.0]
    sleeps: list[float] = []
    appears_at = 5.0
    result = tmp_path / "attempt-1" / "result.json"
    result.parent.mkdir()

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds
        if now[0] >= appears_at and not result.exists():
            result.write_text("{}")

    why = wait_for_results([str(result)], 3600.0, lambda: False, clock=lambda: now[0], sleep=sleep)
    assert why == "result" and appears_at <= now[0] <= appears_at + 1.5  # a second after, not at 3600 s
    result.unlink()
    now[0], appears_at = 0.0, 1e9
    why = wait_for_results([str(result)], 30.0, lambda: False, clock=lambda: now[0], sleep=sleep)
    assert why == "deadline" and now[0] == 30.0  # the whole interval, exactly
    now[0] = 0.0
    why = wait_for_results([], 30.0, lambda: now[0] >= 2.0, clock=lambda: now[0], sleep=sleep)
    assert why == "stop" and now[0] == 2.0  # a stop ends it at once
    # Another command saving the ledger (a submit: new attempts to look for) ends it too.
    ledger = tmp_path / "ledger.json"
    ledger.write_text("1")

    def save_at_3(seconds: float) -> None:
        now[0] += seconds
        if now[0] >= 3.0 and ledger.read_text() == "1":
            (tmp_path / "new").write_text("22")
            (tmp_path / "new").replace(ledger)  # as a save does: rename over it

    now[0] = 0.0
    why = wait_for_results(
        [], 3600.0, lambda: False, ledger_file=str(ledger), clock=lambda: now[0], sleep=save_at_3
    )
    assert why == "ledger" and 3.0 <= now[0] <= 4.5


def test_watch_looks_for_the_result_files_of_running_then_queued_attempts(tmp_path: Path) -> None:
    from orca_hpc.config.campaign import load_campaign
    from orca_hpc.controller.submit import submit
    from orca_hpc.controller.watched import running_results
    from orca_hpc.scheduler.fake import FakeScheduler

    camp = new_campaign(tmp_path)
    inputs = {f"w{i}.inp": orca_input(coords=WATER) + f"# {i}\n" for i in range(3)}  # 3 distinct inputs
    paths = write_inputs(tmp_path / "in", inputs)
    campaign = load_campaign(camp)
    submit(campaign, [Path(p) for p in paths], scheduler=FakeScheduler())
    ledger = Ledger(camp / ".orca-hpc")
    with ledger.transaction() as txn:
        txn.set_state(txn.get("j000003"), JobState.RUNNING)
    view = ledger.snapshot()
    expected = [str(camp / view.get(j).latest.dir / "result.json") for j in ("j000003", "j000001", "j000002")]
    assert running_results(view, str(camp)) == (expected, 0)  # the running one first
    Path(expected[1]).write_text("{}")  # an attempt that ended already is not waited for, but counted
    assert running_results(ledger.snapshot(), str(camp), limit=2) == ([expected[0]], 1)


@pytest.mark.slurm
def test_watch_records_an_ended_job_long_before_its_interval(tmp_path: Path) -> None:
    """With an hour between reconciles, `watch` still records the job COMPLETED once its result file
    appears: the only way it can, within the test's wait, is by reacting to the file (never a timing
    assertion: the hour is what the test could never wait for)."""
    camp = new_campaign(tmp_path)
    # watch is asleep for an hour before the job even exists: only the result file can wake it.
    proc = start("-C", str(camp), "watch", "--interval", "3600")
    wait_for(lambda: "next reconcile in 3600 s" in log_text(camp), 60, "watch's first reconcile")
    cli(camp, "submit", *write_inputs(tmp_path / "in", {"w.inp": orca_input(directive="sleep=5")}))
    try:
        wait_for(
            lambda: Ledger(camp / ".orca-hpc").snapshot().get("j000001").state is JobState.COMPLETED,
            180,
            "the job recorded COMPLETED by watch",
        )
    finally:
        code, out, err = stop(proc, timeout=60)
    assert code == EXIT_OK, err
    assert "j000001 w: COMPLETED" in out and "next reconcile in 3600 s" in out


def test_watch_exits_nonzero_on_damaged_ledger(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    (camp / ".orca-hpc" / "ledger.json").write_text("{ not json at all")
    proc = start("-C", str(camp), "watch", "--interval", "1")
    try:
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_ERROR  # systemd's Restart=on-failure restarts it
    assert "damaged" in err and "Traceback" not in err
    assert "ERROR orca_hpc.cli: exit 1: ledger" in log_text(camp)


@pytest.mark.slurm
def test_watch_backs_off_while_the_scheduler_is_down(tmp_path: Path) -> None:
    camp = campaign_with_ended_job(tmp_path)
    state_before = Ledger(camp / ".orca-hpc").snapshot().get("j000001").state
    env = {"SLURM_CONF": str(dead_database_conf(tmp_path))}
    proc = start("-C", str(camp), "watch", "--interval", "1", "--max-backoff", "4", env=env)
    try:
        wait_for(lambda: log_text(camp).count("next try in") >= 3, 20, "three failed tries")
    finally:
        code, _, err = stop(proc)
    assert code == EXIT_OK, err
    delays = [int(d) for d in re.findall(r"next try in (\d+) s", err)]
    assert delays[:3] == [2, 4, 4]  # doubles from the interval, capped by --max-backoff
    assert "WARNING orca_hpc.cli:" in log_text(camp)
    # nothing was decided while SLURM could not be asked
    assert Ledger(camp / ".orca-hpc").snapshot().get("j000001").state == state_before
    assert state_before in (JobState.PENDING, JobState.RUNNING)


# -- results ---------------------------------------------------------------------------------------


@pytest.mark.slurm
def test_results_csv_matches_the_ledger(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    inputs = {
        "water.inp": orca_input(),
        "water_stretched.inp": orca_input(coords=WATER.replace("0.755453", "0.800000")),
    }
    cli(camp, "submit", *write_inputs(tmp_path / "in", inputs))
    reconcile_until_done(camp)
    proc = run("-C", str(camp), "results", "--csv", "--no-reconcile")
    assert proc.returncode == EXIT_OK, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    jobs = Ledger(camp / ".orca-hpc").snapshot().all_jobs()
    assert [r["id"] for r in rows] == [j.id for j in jobs] and len(rows) == 2
    for row, job in zip(rows, jobs, strict=True):
        assert job.attempt is not None and job.attempt.energy is not None
        assert row["name"] == job.name
        assert row["state"] == job.state.value == "COMPLETED"
        assert int(row["attempts"]) == len(job.attempts)
        assert float(row["energy"]) == job.attempt.energy  # repr() round-trips exactly
        assert row["outcome"] == job.attempt.outcome
        assert Path(row["results"]) == camp / job.attempt.dir and Path(row["results"]).is_dir()
    assert rows[0]["energy"] != rows[1]["energy"]


# -- systemd units ---------------------------------------------------------------------------------

CAMPAIGN_PATH = "/home/alice/campaigns/water"


def _verify_root(tmp_path: Path, stub: bool = True) -> tuple[Path, list[str]]:
    """A root for `systemd-analyze verify --root`: the host's system units (for the targets ours
    name), the shipped templates instantiated for one campaign, and a stand-in `orca-hpc`."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    escaped = subprocess.run(
        ["systemd-escape", "--path", CAMPAIGN_PATH], capture_output=True, text=True, check=True
    ).stdout.strip()
    names = []
    for template in sorted(UNITS.glob("*@.*")):
        name = template.name.replace("@.", f"@{escaped}.")
        shutil.copy(template, units / name)
        names.append(f"/etc/systemd/system/{name}")
    if stub:
        exe = root / "usr/local/bin/orca-hpc"
        exe.parent.mkdir(parents=True)
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    return root, names


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or not Path("/usr/lib/systemd/system").is_dir(),
    reason="systemd-analyze missing: apt-get install -y systemd",
)


def test_shipped_units_are_the_expected_templates() -> None:
    names = sorted(p.name for p in UNITS.iterdir())
    assert names == ["orca-hpc-reconcile@.service", "orca-hpc-reconcile@.timer", "orca-hpc-watch@.service"]
    watch = (UNITS / "orca-hpc-watch@.service").read_text()
    assert "Restart=on-failure" in watch and re.search(r"^RestartSec=\S+", watch, re.M)
    reconcile = (UNITS / "orca-hpc-reconcile@.service").read_text()
    assert "SuccessExitStatus=75" in reconcile
    assert "-C %f reconcile" in reconcile and "-C %f watch" in watch


@needs_systemd_analyze
def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    root, names = _verify_root(tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *names], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 on many problems and only prints them: a clean run prints nothing.
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


@needs_systemd_analyze
def test_systemd_analyze_verify_would_catch_a_problem(tmp_path: Path) -> None:
    root, names = _verify_root(tmp_path, stub=False)
    unit = root / names[0].lstrip("/")
    unit.write_text(unit.read_text() + "Bogus=1\n")
    proc = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *names], capture_output=True, text=True, timeout=60
    )
    out = proc.stdout + proc.stderr
    assert "is not executable" in out and "Bogus" in out


def _exec_start(unit: str, campaign: Path) -> list[str]:
    line = next(ln for ln in (UNITS / unit).read_text().splitlines() if ln.startswith("ExecStart="))
    argv = line.removeprefix("ExecStart=").replace("%f", str(campaign)).split()
    assert argv[0] == "/usr/local/bin/orca-hpc"
    return [*ORCA_HPC, *argv[1:]]


def test_unit_command_lines_work(tmp_path: Path) -> None:
    """What the units run is a valid orca-hpc command line (here with this test's orca-hpc)."""
    camp = new_campaign(tmp_path)
    once = subprocess.run(
        _exec_start("orca-hpc-reconcile@.service", camp), capture_output=True, text=True, timeout=60
    )
    assert once.returncode == 0 and once.stdout + once.stderr == "", once.stderr
    assert "reconcile INFO orca_hpc.cli: reconciled:" in log_text(camp)
    proc = subprocess.Popen(
        _exec_start("orca-hpc-watch@.service", camp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: "watch: started, pid" in log_text(camp), 15, "watch to start")
    code, _, err = stop(proc)
    assert code == 0, err
