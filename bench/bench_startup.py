"""Benchmark the command's start-up: ``--version``, ``status`` of an idle campaign, ``status --json`` of a
campaign whose jobs all finished, against ``python -c pass`` and one ``sacct`` in the same run.

Usage: python bench/bench_startup.py [--jobs 1000] [--repeat 11] [--dir DIR] [--cli PATH] [--old PATH]

Two local-slurm campaigns are built without the cluster: an idle one (``orca-hpc init``, no jobs) and one
whose JOBS jobs finished and were archived (the ledger is built with ``bench_reconcile.build_fake`` and
reconciled once against ``scheduler/fake.py`` saying COMPLETED; after that no job is active, so a status
asks no scheduler). Then, interleaved round by round so that the machine's load falls on all alike:
``python -c pass``, one ``sacct`` (orca-hpc's flags and fields, of one job id: slurmdbd's answer time
without the size of an array), ``orca-hpc --version``, ``orca-hpc status`` of the idle campaign and
``orca-hpc status --json`` and ``status --summary`` of the finished one. Reported: medians of wall time
and of the child's CPU
(user + system), and their ratios to ``python -c pass`` and to the sacct. ``--cli`` times another
installed ``orca-hpc``; ``--old`` adds an old tree's ``orca-hpc`` to every round, on the same campaigns,
so old and new are measured side by side under the same load.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_reconcile import build_fake

from orca_hpc.config.campaign import init_campaign
from orca_hpc.controller.reconcile import Reconciler
from orca_hpc.scheduler import slurm

VERSION_TARGET_S = 0.12  # issue 15: orca-hpc --version
IDLE_STATUS_TARGET_S = 0.2  # issue 15: status of an idle campaign

# An installed orca-hpc has its bytecode compiled; a PYTHONDONTWRITEBYTECODE in this environment would
# make every command compile its modules again. Commands run without it, after one warm-up.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall time and the child's CPU (user + system) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=ENV)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="finished jobs of the 2nd campaign")
    parser.add_argument("--repeat", type=int, default=11, help="rounds (medians are reported)")
    parser.add_argument("--dir", default=None, help="where the campaigns go (default: $TMPDIR or /tmp)")
    parser.add_argument("--cli", default=None, help="the orca-hpc to time (default: this interpreter's)")
    parser.add_argument("--old", default=None, help="an old tree's orca-hpc, timed in the same rounds")
    args = parser.parse_args()
    clis = {"": [args.cli or str(Path(sys.executable).with_name("orca-hpc"))]}
    if args.old:
        clis = {"old ": [args.old], "new ": clis[""]}
    with tempfile.TemporaryDirectory(prefix="bench-startup-", dir=args.dir) as tmp:
        idle = init_campaign(Path(tmp) / "idle", "local-slurm")
        done = init_campaign(Path(tmp) / "done", "local-slurm")
        report = Reconciler(done, build_fake(done, args.jobs, 1000, completed=True)).run()
        assert len(report.changes) == args.jobs, "every job finished"
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "one sacct": ["sacct", "-X", "-P", "-n", "-j", "1", "-o", ",".join(slurm.SACCT_FIELDS)],
        }
        for label, cli in clis.items():
            commands[f"{label}orca-hpc --version"] = [*cli, "--version"]
            commands[f"{label}status, idle campaign"] = [*cli, "-C", str(idle.root), "status"]
            done_status = [*cli, "-C", str(done.root), "status", "--json"]
            commands[f"{label}status --json, {args.jobs:,} finished"] = done_status
            # idle too: nothing to reconcile; the counts come from the archive's index
            summary = [*cli, "-C", str(done.root), "status", "--summary"]
            commands[f"{label}status --summary, {args.jobs:,} finished"] = summary
        for argv in commands.values():
            subprocess.run(argv, check=True, capture_output=True, env=ENV)  # warm-up: bytecode, caches
        runs: dict[str, list[tuple[float, float]]] = {what: [] for what in commands}
        for _ in range(args.repeat):
            for what, argv in commands.items():
                runs[what].append(timed(argv))
    wall = {what: statistics.median(w for w, _ in r) for what, r in runs.items()}
    cpu = {what: statistics.median(c for _, c in r) for what, r in runs.items()}
    bare, sacct = wall["python -c pass"], wall["one sacct"]
    print(
        f"medians of {args.repeat} interleaved rounds; "
        + ", ".join(f"{k or 'cli '}{v[0]}" for k, v in clis.items())
    )
    print("| command | wall | CPU | wall / python -c pass | wall / one sacct |")
    print("| :--- | ---: | ---: | ---: | ---: |")
    for what in commands:
        print(
            f"| {what} | {wall[what]:.3f} s | {cpu[what]:.3f} s | {wall[what] / bare:.1f}x "
            f"| {wall[what] / sacct:.2f}x |"
        )
    label = "new " if args.old else ""
    version, idle_status = wall[f"{label}orca-hpc --version"], wall[f"{label}status, idle campaign"]
    print(f"{label}--version {version:.3f} s (target {VERSION_TARGET_S} s); ", end="")
    print(f"idle status {idle_status:.3f} s (target {IDLE_STATUS_TARGET_S} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
