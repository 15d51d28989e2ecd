"""Benchmark ``orca-hpc status --json`` right after a whole array finished, against one ``sacct`` of it.

Usage: python bench/bench_status.py [--tasks 1000] [--repeat 3] [--first 1] [--dir DIR]

A fresh local-slurm campaign whose ledger is built directly (Ledger API) with TASKS PENDING jobs, one per
task of a real array of trivial tasks (``--wrap true``, named ``ohpc-<token>`` as the Dispatcher names
them), each attempt folder holding the ``result.json`` a successful runner writes. Once sacct reports
every task COMPLETED, in the same run: ``sacct`` of the array (the same fields and flags orca-hpc asks
for; median of REPEAT) and then ``orca-hpc status --json`` as a command, first (it reconciles: every job
goes COMPLETED and is archived) and REPEAT more times (nothing changes); with ``--first N`` the first call
is timed N times, each on a fresh copy of the campaign as it was before it (median). Reported: wall times
and their ratio to the sacct. Only the array created here is cancelled at the end (a no-op once it finished).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_reconcile import leave_success, record_pending  # bench/ is this script's folder

from orca_hpc.clock import now_iso
from orca_hpc.config.campaign import Campaign, init_campaign
from orca_hpc.scheduler import slurm
from orca_hpc.scheduler.base import job_name

FIRST_TARGET = 1.5  # first status --json <= 1.5x one sacct of the array
REPEAT_TARGET = 1.1


def submit_array(tasks: int, name: str, workdir: Path) -> str:
    argv = ["sbatch", "--parsable", f"--array=0-{tasks - 1}", "-J", name, "-o", "/dev/null"]
    argv += ["-D", str(workdir), "--wrap", "true"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip().split(";")[0]


def build(campaign: Campaign, tasks: int) -> str:
    """TASKS PENDING jobs on the tasks of one real array; each attempt has a success result.json."""
    token = secrets.token_hex(8)
    array_id = submit_array(tasks, job_name(token), campaign.root)
    ledger = campaign.ledger()
    with ledger.lock, ledger.transaction() as txn:
        submitted = now_iso()
        for i in range(tasks):
            job = record_pending(txn, campaign, f"mol{i:05d}", token, i, array_id, submitted)
            leave_success(campaign, job, submitted)
    return array_id


def wait_completed(array_id: str, tasks: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = sum(1 for r in slurm._sacct(["-j", array_id]) if r.state == "COMPLETED")
        if done >= tasks:
            return
        time.sleep(2)
    raise SystemExit(f"the array {array_id} did not complete within {timeout_s:.0f} s")


# An installed orca-hpc has its bytecode compiled; a PYTHONDONTWRITEBYTECODE in this environment would
# make every command compile ~130 modules again. Commands run without it, after one warm-up.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=ENV)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--first", type=int, default=1, help="time the first call N times (median)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the array")
    parser.add_argument("--dir", default=None, help="where the campaign goes (default: $TMPDIR or /tmp)")
    args = parser.parse_args()
    cli = [str(Path(sys.executable).with_name("orca-hpc"))]  # the installed command, as a person runs it
    with tempfile.TemporaryDirectory(prefix="bench-status-", dir=args.dir) as tmp:
        campaign = init_campaign(Path(tmp) / "camp", "local-slurm")
        array_id = ""
        try:
            array_id = build(campaign, args.tasks)
            wait_completed(array_id, args.tasks, args.timeout)
            sacct = ["sacct", "-X", "-P", "-n", "-j", array_id, "-o", ",".join(slurm.SACCT_FIELDS)]
            ref = statistics.median(timed(sacct) for _ in range(args.repeat))
            # What the first reconcile must ask to record usage (issue 16): the step rows, where MaxRSS is.
            with_steps = statistics.median(timed([c for c in sacct if c != "-X"]) for _ in range(args.repeat))
            # The reference, "one sacct of the array": sacct as a person types it (its default
            # fields, step rows included).
            plain = statistics.median(timed(["sacct", "-j", array_id]) for _ in range(args.repeat))
            status = [*cli, "-C", str(campaign.root), "status", "--json"]
            subprocess.run([*cli, "--version"], check=True, capture_output=True, env=ENV)  # bytecode written
            shutil.copytree(campaign.root, Path(tmp) / "before", symlinks=True)
            firsts = []
            for i in range(args.first):
                if i:  # the campaign as it was before the first call
                    shutil.rmtree(campaign.root)
                    shutil.copytree(Path(tmp) / "before", campaign.root, symlinks=True)
                firsts.append(timed(status))
            first = statistics.median(firsts)
            repeats = statistics.median(timed(status) for _ in range(args.repeat))
            out = subprocess.run(status, check=True, capture_output=True, text=True, env=ENV).stdout
        finally:
            if array_id:
                slurm.scancel([array_id])
    completed = json.loads(out).get("counts", {}).get("COMPLETED")
    print(f"{args.tasks} tasks, all COMPLETED in SLURM; status --json reports COMPLETED: {completed}")
    print("| tasks | one sacct of the array | status --json first | ratio | repeats (median) | ratio |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {args.tasks:,} | {ref:.3f} s | {first:.3f} s | **{first / ref:.2f}** (target {FIRST_TARGET}) "
        f"| {repeats:.3f} s | **{repeats / ref:.2f}** (target {REPEAT_TARGET}) |"
    )
    print(
        f"the same sacct with the step rows the first reconcile asks for (usage): {with_steps:.3f} s; "
        f"first status against it: {first / with_steps:.2f}x"
    )
    print(
        f"plain `sacct -j ARRAY` (default fields, step rows): {plain:.3f} s; first status against it: "
        f"**{first / plain:.2f}x** (target {FIRST_TARGET}), "
        f"repeats **{repeats / plain:.2f}x** (target {REPEAT_TARGET})"
    )
    if len(firsts) > 1:
        print("first calls: " + ", ".join(f"{t:.3f}" for t in sorted(firsts)) + " s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
