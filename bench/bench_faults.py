"""Fault-and-load run on the local SLURM cluster: drain a campaign while the cluster misbehaves.

A campaign of N emulated jobs (default 2,000; each a few seconds of emulated ORCA) lives on its own
small tmpfs. While ``orca-hpc reconcile`` drains it (as cron would, every few seconds), this script:

1. restarts slurmctld, then slurmdbd (SIGTERM by PID file, then ``scripts/local-slurm.sh start``);
2. takes the node down (slurmd stopped for longer than SlurmdTimeout) and brings it back;
3. fills the campaign's file system to the last byte, keeps it full for a while, and frees it.

Then it checks the end state against the ground truth and prints, for every job:
**lost** (no longer in the ledger), **duplicated** (more than one SLURM job ran the same attempt,
found by token in sacct; or more than one COMPLETED job for one input), **wrongly failed** (not
COMPLETED although the input always succeeds). Each must be 0; exit 1 otherwise.

Run as root on the project's test machine (it stops and starts the cluster's daemons, by PID), with
the project's virtualenv first on PATH (``orca-hpc`` and ``orca-emulator`` are its console scripts):

    PATH=$PWD/.venv/bin:$PATH python3 bench/bench_faults.py [--jobs 2000] [--task-seconds 2] [--size-mb 512]

Exit status: 0 when lost, duplicated and wrongly failed are all 0; 1 otherwise; 2 when the submit
itself failed (its message is printed).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE = Path("/var/tmp/orca-hpc-slurm")  # scripts/local-slurm.sh keeps PID files here
WATER = "O 0.0 0.0 0.0\nH 0.0 0.0 0.96\nH 0.93 0.0 -0.24\n"


def say(message: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {message}", flush=True)


def orca_hpc(campaign: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["orca-hpc", "-q", "-C", str(campaign), *args], capture_output=True, text=True, check=check
    )


def daemon_pid(name: str) -> int:
    return int((BASE / "run" / f"{name}.pid").read_text().strip())


def restart_cluster() -> None:
    subprocess.run(
        ["bash", str(REPO / "scripts" / "local-slurm.sh"), "start"], check=True, capture_output=True
    )


def stop_daemon(name: str) -> None:
    pid = daemon_pid(name)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)


class Drainer(threading.Thread):
    """Reconciles every few seconds, as cron would; counts the exit codes it saw."""

    def __init__(self, campaign: Path, interval: float) -> None:
        super().__init__(daemon=True)
        self.campaign, self.interval = campaign, interval
        self.codes: collections.Counter[int] = collections.Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.codes[orca_hpc(self.campaign, "reconcile").returncode] += 1
            self.stop.wait(self.interval)


def faults(campaign: Path, mount: Path) -> None:
    say("restarting slurmctld")
    stop_daemon("slurmctld")
    time.sleep(5)
    restart_cluster()
    time.sleep(10)
    say("restarting slurmdbd")
    stop_daemon("slurmdbd")
    time.sleep(5)
    restart_cluster()
    time.sleep(10)
    say("node down for 40 s (SlurmdTimeout is 30 s), then back")
    stop_daemon("slurmd")
    time.sleep(40)
    restart_cluster()
    time.sleep(10)
    say("filling the campaign's file system")
    filler = mount / "filler"
    # Unbuffered: a buffered file would raise ENOSPC once more when it is closed.
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * (1 << 20))
        except OSError:
            pass  # ENOSPC: the disk is full now (a last smaller write may still fit)
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    time.sleep(20)
    filler.unlink()
    say("freed the campaign's file system")


def check(campaign: Path, inputs: int) -> tuple[int, int, int]:
    """(lost, duplicated, wrongly failed), from the ledger (active and archived jobs) and sacct."""
    from orca_hpc.ledger.store import Ledger

    jobs = Ledger(campaign / ".orca-hpc").snapshot().all_jobs()
    names = collections.Counter(j.name for j in jobs)
    lost = inputs - len(names)
    duplicated = sum(n - 1 for n in names.values() if n > 1)  # one input recorded twice
    # One attempt run by two SLURM jobs: its token (job name ohpc-<token>, task index) twice in sacct.
    tokens = {a.token.split("/")[0] for j in jobs for a in j.attempts if a.token}
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", "now-1days", "-o", "JobID,JobName"], capture_output=True, text=True
    ).stdout
    seen: collections.Counter[tuple[str, str]] = collections.Counter()
    for row in out.splitlines():
        job_id, _, name = row.partition("|")
        if name.startswith("ohpc-") and name[5:] in tokens and "_" in job_id and "[" not in job_id:
            seen[(name, job_id.split("_", 1)[1])] += 1
    duplicated += sum(n - 1 for n in seen.values() if n > 1)
    wrongly_failed = sum(1 for j in jobs if j.state.value != "COMPLETED")
    return lost, duplicated, wrongly_failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--task-seconds", type=float, default=2.0)
    parser.add_argument("--size-mb", type=int, default=512, help="the campaign's tmpfs")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between reconciles")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root on the test machine: it restarts the local cluster's daemons")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        mount = Path(tmp) / "fs"
        mount.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={args.size_mb}m", "tmpfs", str(mount)], check=True
        )
        try:
            return run(mount, args)
        finally:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def run(mount: Path, args: argparse.Namespace) -> int:
    campaign = mount / "camp"
    subprocess.run(
        ["orca-hpc", "init", str(campaign), "--site", "local-slurm"], check=True, capture_output=True
    )
    folder = mount / "in"
    folder.mkdir()
    directive = f"# emulate: sleep={args.task_seconds:g}\n" if args.task_seconds > 0 else ""
    paths = []
    for i in range(args.jobs):
        path = folder / f"m{i:05d}.inp"
        path.write_text(f"{directive}! B3LYP def2-SVP\n# {i}\n* xyz 0 1\n{WATER}*\n")
        paths.append(str(path))
    say(f"submitting {args.jobs} jobs")
    submitted = orca_hpc(campaign, "submit", *paths)
    if submitted.returncode != 0:
        why = submitted.stderr.strip() or submitted.stdout.strip()
        say(f"submit failed (exit {submitted.returncode}): {why}")
        return 2
    drainer = Drainer(campaign, args.interval)
    drainer.start()
    t0 = time.monotonic()
    try:
        faults(campaign, mount)
        said = 0.0
        while time.monotonic() - t0 < args.timeout:
            status = json.loads(orca_hpc(campaign, "status", "--json", "--no-reconcile").stdout or "{}")
            counts = status.get("counts", {})
            if sum(counts.get(s, 0) for s in ("COMPLETED", "PERMANENT_FAILED", "CANCELLED")) >= args.jobs:
                break
            if time.monotonic() - said > 60:  # a sign of life once a minute
                said = time.monotonic()
                say(f"{time.monotonic() - t0:.0f} s: {counts}")
            time.sleep(args.interval)
    finally:
        drainer.stop.set()
        drainer.join()
    orca_hpc(campaign, "reconcile")
    lost, duplicated, wrongly_failed = check(campaign, args.jobs)
    say(f"drained in {time.monotonic() - t0:.0f} s; reconcile exit codes {dict(drainer.codes)}")
    print(f"jobs: {args.jobs}  lost: {lost}  duplicated: {duplicated}  wrongly failed: {wrongly_failed}")
    return 0 if lost == duplicated == wrongly_failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
