"""Benchmark `Reconciler.run()` against the local cluster with 1,000 / 10,000 active jobs.

Usage: python bench/bench_reconcile.py [--sizes 1000,10000] [--array 1000] [--repeat 3] [--dir DIR]
       [--profile N]

For each size N: a fresh local-slurm campaign whose ledger is built directly (Ledger API) with N
PENDING jobs, each holding a real SLURM id: arrays of ARRAY trivial tasks submitted with
``sbatch --hold`` (they never run) under the job name the submission token gives (``ohpc-<token>``),
as ``submit.Dispatcher`` names them. Once sacct knows every array, ``Reconciler(campaign).run()``
runs once (it records SLURM's state in every job: all of them change) and REPEAT more times
(nothing changes: the steady state of a cron reconcile; the median is reported). Reported: wall
time, scheduler calls (``slurm.CALLS``), the time inside scheduler commands (``slurm._run`` is
wrapped), our own time (wall minus that) and this process's CPU time (the commands run in children).
Only the arrays created here are cancelled at the end. Exit status 0 unless something failed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orca_hpc.clock import now_iso
from orca_hpc.config.campaign import Campaign, init_campaign
from orca_hpc.controller.reconcile import Reconciler
from orca_hpc.ledger.states import JobState
from orca_hpc.scheduler import slurm
from orca_hpc.scheduler.base import job_name

CALLS_PER_1000 = 2
OWN_TARGET_S = 0.3  # at 10,000 active jobs
PROFILE_SORT = "cumulative"  # --profile-sort


@dataclass
class InScheduler:
    seconds: float = 0.0


@contextmanager
def timed_scheduler() -> Iterator[InScheduler]:
    seen = InScheduler()
    original = slurm._run

    def wrapper(argv: list[str], *, allow_invalid_id: bool = False) -> str:
        t0 = time.perf_counter()
        try:
            return original(argv, allow_invalid_id=allow_invalid_id)
        finally:
            seen.seconds += time.perf_counter() - t0

    slurm._run = wrapper  # type: ignore[assignment]
    try:
        yield seen
    finally:
        slurm._run = original  # type: ignore[assignment]


def submit_held(tasks: int, name: str, workdir: Path) -> str:
    argv = ["sbatch", "--parsable", "--hold", f"--array=0-{tasks - 1}", "-J", name, "-p", "debug"]
    argv += ["-o", "/dev/null", "-D", str(workdir), "--wrap", "true"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return out.stdout.strip().split(";")[0]


def build(campaign: Campaign, n: int, array: int, arrays: list[str]) -> None:
    """N PENDING jobs in the ledger, one per task of real held arrays (ids appended to ``arrays``)."""
    ledger = campaign.ledger()
    site = campaign.site
    with ledger.lock, ledger.transaction() as txn:
        for start in range(0, n, array):
            size = min(array, n - start)
            token = secrets.token_hex(8)
            array_id = submit_held(size, job_name(token), campaign.root)
            arrays.append(array_id)
            submitted = now_iso()
            for i in range(size):
                job = txn.add_job(
                    f"mol{start + i:05d}",
                    f"/nonexistent/mol{start + i:05d}.inp",
                    secrets.token_hex(32),
                    site.name,
                    max_retries=site.max_retries,
                )
                att = job.new_attempt(token=f"{token}/{i}")
                txn.set_state(job, JobState.SUBMITTING)
                att.slurm_id = f"{array_id}_{i}"
                att.submitted = submitted
                txn.set_state(job, JobState.PENDING)


@dataclass
class Row:
    n: int
    wall: float
    cpu: float  # this process's CPU time: the scheduler commands run in children, so they are not in here
    in_scheduler: float
    calls: dict[str, int]

    @property
    def own(self) -> float:
        return self.wall - self.in_scheduler

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def calls_ok(self) -> bool:
        return self.total_calls <= CALLS_PER_1000 * max(1, -(-self.n // 1000))

    @property
    def own_ok(self) -> bool:
        return self.own <= OWN_TARGET_S


def wait_for_sacct(arrays: list[str], timeout_s: float = 20.0) -> None:
    """sacct lags sbatch by seconds: measure the steady state, where it knows every array."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        known = {r.array_job_id or r.job_id for r in slurm._sacct(["-j", ",".join(arrays)])}
        if known >= set(arrays):
            return
        time.sleep(0.5)


def reconcile_once(campaign: Campaign, profile: int, n: int) -> Row:
    prof = cProfile.Profile() if profile else None
    with timed_scheduler() as seen:
        slurm.CALLS.reset()
        t0, cpu0 = time.perf_counter(), time.process_time()
        if prof:
            prof.enable()
        report = Reconciler(campaign).run()
        if prof:
            prof.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if report.submitted or report.permanent_failed:
        raise SystemExit(f"unexpected reconcile outcome: {report}")
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(PROFILE_SORT).print_stats(profile)
        print(f"--- cProfile, N={n}, top {profile} by {PROFILE_SORT} (scheduler included) ---")
        print(out.getvalue())
    return Row(n, wall, cpu, seen.seconds, dict(slurm.CALLS.counts))


def bench(
    n: int, array: int, repeat: int, base: Path, profile: int, profile_first: bool = False
) -> tuple[Row, Row]:
    """(the first reconcile, which records SLURM's state in every job; the median of REPEAT more)."""
    campaign = init_campaign(base / f"camp-{n}", "local-slurm")
    arrays: list[str] = []
    try:
        build(campaign, n, array, arrays)
        wait_for_sacct(arrays)
        first = reconcile_once(campaign, profile if profile_first else 0, n)
        steady_profile = 0 if profile_first else profile
        runs = [reconcile_once(campaign, steady_profile if k == repeat - 1 else 0, n) for k in range(repeat)]
        states = campaign.ledger().snapshot().states()
        pending = sum(1 for s in states.values() if s is JobState.PENDING)
        if pending != n:
            raise SystemExit(f"{pending} of {n} jobs PENDING after reconcile")
    finally:
        if arrays:
            slurm.scancel(arrays)
    runs.sort(key=lambda r: r.wall)
    return first, runs[len(runs) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated active job counts")
    parser.add_argument("--array", type=int, default=1000, help="tasks per held array")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--dir", default=None, help="where the temporary campaign goes (default: $TMPDIR or /tmp)"
    )
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the top N cProfile rows")
    parser.add_argument("--profile-first", action="store_true", help="profile the first run instead")
    parser.add_argument("--profile-sort", default="cumulative", help="pstats sort key (e.g. tottime)")
    args = parser.parse_args()
    global PROFILE_SORT
    PROFILE_SORT = args.profile_sort
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-", dir=args.dir) as tmp:
        for n in sizes:
            first, steady = bench(
                n, args.array, max(1, args.repeat), Path(tmp), args.profile, args.profile_first
            )
            rows += [("first", first), (f"steady (median of {args.repeat})", steady)]
    print(
        f"arrays of {args.array} held tasks; targets: scheduler calls <= "
        f"{CALLS_PER_1000} per 1,000 active jobs, own time <= {OWN_TARGET_S} s at 10,000"
    )
    print(
        "| active jobs | run | wall | in scheduler | own (wall - scheduler) | own CPU | scheduler calls "
        "| calls ok | own ok |"
    )
    print("| ---: | :--- | ---: | ---: | ---: | ---: | ---: | :---: | :---: |")
    for label, r in rows:
        calls = ", ".join(f"{k} {v}" for k, v in sorted(r.calls.items()))
        own_ok = "-" if r.n < 10_000 else ("yes" if r.own_ok else "NO")
        print(
            f"| {r.n:,} | {label} | {r.wall:.3f} s | {r.in_scheduler:.3f} s | {r.own:.3f} s | {r.cpu:.3f} s "
            f"| {r.total_calls} ({calls}) | {'yes' if r.calls_ok else 'NO'} | {own_ok} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
