"""The local site runs an attempt once, even when the submitter dies between starting it and saving
its id (the same promise SLURM submissions keep through their token). Reproduces issue 18's
double run: before the fix, reconcile said "never reached the scheduler; submitting it again"."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from e2e import cli, orca_input, status

from orca_hpc.config.campaign import load_campaign
from orca_hpc.controller.reconcile import reconcile

DIE_AFTER_START = """
import os, signal, sys
from pathlib import Path
from orca_hpc.config.campaign import load_campaign
from orca_hpc.controller.submit import submit
from orca_hpc.scheduler import scheduler_for

campaign = load_campaign(Path(sys.argv[1]))
scheduler = scheduler_for(campaign)
start = scheduler.submit

def start_then_die(request):
    start(request)  # the job runs now...
    os.kill(os.getpid(), signal.SIGKILL)  # ...and its id never reaches the ledger

scheduler.submit = start_then_die
submit(campaign, [Path(sys.argv[2])], scheduler=scheduler)
"""


def test_a_started_attempt_whose_id_was_lost_is_adopted_not_run_again(tmp_path: Path) -> None:
    runs = tmp_path / "runs.txt"
    orca = tmp_path / "orca"  # counts its runs, then is the emulator
    orca.write_text(f'#!/bin/bash\necho "$1" >> {runs}\nexec orca-emulator "$@"\n')
    orca.chmod(0o755)
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text() + f'\n[overrides.orca]\npath = "{orca}"\n')
    source = tmp_path / "once.inp"
    source.write_text(orca_input(directive="sleep=2"))

    died = subprocess.run([sys.executable, "-c", DIE_AFTER_START, str(camp), str(source)], check=False)
    assert died.returncode == -9
    [job] = status(camp)["jobs"]
    assert job["state"] == "SUBMITTING" and job["slurm_job_id"] is None

    # Long after the grace period: a job nobody found would be submitted again now.
    report = reconcile(load_campaign(camp), now=lambda: time.time() + 3600)
    assert report.adopted == [job["id"]] and not report.submitted
    deadline = time.monotonic() + 120
    while (state := status(camp, reconcile=True))["jobs"][0]["state"] != "COMPLETED":
        assert time.monotonic() < deadline, state
        time.sleep(0.3)
    assert state["jobs"][0]["attempts"] == 1
    assert runs.read_text().splitlines() == ["once.inp"]  # ORCA ran exactly once


def test_local_jobs_do_not_hold_the_callers_output(tmp_path: Path) -> None:
    """`orca-hpc submit ... | cat` must end when submit does, not when the jobs do: the job's
    controller must not inherit the caller's stdout/stderr (read from /proc, not timed)."""
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[overrides.orca]\npath = "orca-emulator"\n')
    source = tmp_path / "long.inp"
    source.write_text(orca_input(directive="sleep=300"))
    proc = subprocess.Popen(
        ["orca-hpc", "-C", str(camp), "submit", str(source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    ours = {f"pipe:[{os.fstat(f.fileno()).st_ino}]" for f in (proc.stdout, proc.stderr)}
    try:
        proc.wait(timeout=120)
        [job] = status(camp)["jobs"]
        pid = int(job["slurm_job_id"].removeprefix("local-"))
        held = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (0, 1, 2)}
        assert not held & ours, held  # the running job's controller writes elsewhere
    finally:
        cli(camp, "cancel", "--all", expect=None)
        proc.stdout.close()
        proc.stderr.close()
