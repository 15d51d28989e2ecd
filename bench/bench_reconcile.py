"""Benchmark `Reconciler.run()` against the local cluster with 1,000 / 10,000 active jobs.

Usage: python bench/bench_reconcile.py [--sizes 1000,10000] [--array 1000] [--repeat 3] [--dir DIR]
       [--profile N] [--fake [--change queued|completed] [--log]]

For each size N: a fresh local-slurm campaign whose ledger is built directly (Ledger API) with N
PENDING jobs, each holding a real SLURM id: arrays of ARRAY trivial tasks submitted with
``sbatch --hold`` (they never run) under the job name the submission token gives (``ohpc-<token>``),
as ``submit.Dispatcher`` names them. Once sacct knows every array, ``Reconciler(campaign).run()``
runs once (it records SLURM's state in every job: all of them change) and REPEAT more times
(nothing changes: the steady state of a cron reconcile; the median is reported). Reported: wall
time, scheduler calls (``slurm.CALLS``), the time inside scheduler commands (``slurm._run`` is
wrapped), our own time (wall minus that) and this process's CPU time (the commands run in children).
Only the arrays created here are cancelled at the end. Exit status 0 unless something failed.

``--fake`` (no cluster): the same ledger of N PENDING jobs, but ``scheduler/fake.py`` answers, and every
job changes in the one timed run: ``--change queued`` (SLURM's PENDING is recorded in every attempt, as in
the first cluster run) or ``--change completed`` (SLURM says COMPLETED and each attempt folder holds a
success ``result.json``: every job is finished, echoed and archived). ``--log`` echoes into the campaign
log as a command does (``log_echoed``). Each repeat rebuilds the campaign; the reference, measured in the
same run on the same ledger file, is ``json.loads`` + ``json.dumps`` of it (the least a reconcile that
rewrites every job could do in Python). Reported: medians of own time and their ratio to the reference.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import pstats
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orca_hpc.atomic import atomic_write_bytes
from orca_hpc.attempt.folder import RESULT_NAME, AttemptResult
from orca_hpc.clock import now_iso
from orca_hpc.config.campaign import Campaign, init_campaign
from orca_hpc.controller.reconcile import Reconciler
from orca_hpc.ledger.records import Job
from orca_hpc.ledger.states import JobState
from orca_hpc.ledger.store import Transaction
from orca_hpc.scheduler import slurm
from orca_hpc.scheduler.base import JobRecord, job_name
from orca_hpc.scheduler.fake import FakeScheduler

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


def record_pending(
    txn: Transaction, campaign: Campaign, name: str, token: str, task: int, array_id: str, submitted: str
) -> Job:
    """A job PENDING on task ``task`` of array ``array_id``, recorded as the Dispatcher records it."""
    site = campaign.site
    job = txn.add_job(name, f"/nonexistent/{name}.inp", secrets.token_hex(32), site.name, site.max_retries)
    att = job.new_attempt(token=f"{token}/{task}")
    txn.set_state(job, JobState.SUBMITTING)
    att.slurm_id, att.submitted = f"{array_id}_{task}", submitted
    txn.set_state(job, JobState.PENDING)
    return job


def leave_success(campaign: Campaign, job: Job, submitted: str) -> None:
    """The ``result.json`` a successful runner leaves in the job's attempt folder."""
    att = job.latest
    folder = campaign.root / att.dir
    folder.mkdir(parents=True)
    energy = -1.1 - int(att.token.split("/")[1]) * 1e-6
    result = AttemptResult(
        job_id=job.id,
        attempt=att.n,
        outcome="success",
        retryable=False,
        exit_code=0,
        energy=energy,
        classification={"outcome": "success", "energy": energy},
        started=submitted,
        ended=now_iso(),
        slurm_job_id=att.slurm_id,
        scratch_removed=True,
    )
    atomic_write_bytes(folder / RESULT_NAME, json.dumps(result.to_dict()).encode(), durable=False)


def build_fake(campaign: Campaign, n: int, array: int, completed: bool) -> FakeScheduler:
    """N PENDING jobs in the ledger and a FakeScheduler that reports each of them changed: queued in
    SLURM (its state recorded for the first time) or COMPLETED with a success result.json."""
    fake = FakeScheduler()
    ledger = campaign.ledger()
    with ledger.lock, ledger.transaction() as txn:
        submitted = now_iso()
        for start in range(0, n, array):
            token, array_id = secrets.token_hex(8), str(100_000 + start)
            for i in range(min(array, n - start)):
                job = record_pending(txn, campaign, f"mol{start + i:05d}", token, i, array_id, submitted)
                att = job.latest
                state, code, begin, end = "PENDING", None, None, None
                if completed:
                    state, code, begin, end = "COMPLETED", 0, "2026-01-01T00:00:00", "2026-01-01T00:01:00"
                    leave_success(campaign, job, submitted)
                name_in_slurm = job_name(token)
                fake.jobs[att.slurm_id] = JobRecord(
                    att.slurm_id,
                    array_id,
                    i,
                    name_in_slurm,
                    state,
                    code,
                    code,
                    begin,
                    end,
                    None,
                    None,
                    "fake",
                )
    return fake


def reference_cpu(campaign: Campaign) -> float:
    """CPU time of json.loads + json.dumps of the ledger file: what rewriting every job costs at the
    least (CPU, not wall: on a machine shared with other work, wall time swings several-fold)."""
    data = (campaign.state_dir / "ledger.json").read_bytes()
    t0 = time.process_time()
    json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False).encode()
    return time.process_time() - t0


def bench_fake(n: int, args: argparse.Namespace, base: Path) -> tuple[float, float, float]:
    """(median own wall, median reference CPU, median own CPU) of REPEAT first reconciles on fresh
    campaigns."""
    change = args.change
    own, refs, cpus = [], [], []
    for k in range(max(1, args.repeat)):
        campaign = init_campaign(base / f"fake-{change}-{n}-{k}", "local-slurm")
        fake = build_fake(campaign, n, args.array, change == "completed")
        refs.append(reference_cpu(campaign))
        echo = None
        if args.log:
            from orca_hpc.logs import log_echoed, setup_logging, teardown_logging

            setup_logging(campaign.root, quiet=True, command="bench")
            echo = log_echoed
        prof = cProfile.Profile() if args.profile and k == 0 else None
        t0, cpu0 = time.perf_counter(), time.process_time()
        if prof:
            prof.enable()
        if args.log:
            import contextlib

            from orca_hpc import logs

            with getattr(logs, "held_records", contextlib.nullcontext)():  # as auto_reconcile does
                report = Reconciler(campaign, fake, echo=echo).run()
        else:
            report = Reconciler(campaign, fake, echo=echo).run()
        if prof:
            prof.disable()
        own.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - cpu0)
        if args.log:
            teardown_logging()
            logging.getLogger("orca_hpc").handlers.clear()
        if prof:
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats(PROFILE_SORT).print_stats(args.profile)
            print(f"--- cProfile, fake {change}, N={n}, top {args.profile} by {PROFILE_SORT} ---")
            print(out.getvalue())
        if len(report.changes) != n and change == "completed":
            raise SystemExit(f"{len(report.changes)} of {n} jobs changed")
        states = campaign.ledger().snapshot().states()
        want = JobState.PENDING if change == "queued" else None
        left = sum(1 for s in states.values() if s is not want) if want else len(states)
        if left:
            raise SystemExit(f"{left} of {n} jobs not in the expected state after reconcile")
    return statistics.median(own), statistics.median(refs), statistics.median(cpus)


def main_fake(args: argparse.Namespace, sizes: list[int]) -> int:
    logged = ", echoed to the campaign log" if args.log else ""
    print(
        f"fake scheduler, every job changes ({args.change}{logged});"
        f" medians of {args.repeat} fresh campaigns; reference: CPU of json.loads + json.dumps of the same"
        " ledger.json"
    )
    print("| jobs | change | own (wall) | own CPU | reference CPU | **ratio (CPU)** | target own |")
    print("| ---: | :--- | ---: | ---: | ---: | ---: | :---: |")
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-", dir=args.dir) as tmp:
        for n in sizes:
            own, ref, cpu = bench_fake(n, args, Path(tmp))
            ok = "-" if n < 10_000 else ("yes" if own <= OWN_TARGET_S else "NO")
            print(
                f"| {n:,} | {args.change} | {own:.3f} s | {cpu:.3f} s | {ref:.3f} s | **{cpu / ref:.2f}** "
                f"| {ok} |"
            )
    return 0


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
    parser.add_argument("--fake", action="store_true", help="no cluster: scheduler/fake.py answers")
    parser.add_argument(
        "--change", choices=("queued", "completed"), default="completed", help="with --fake: what changes"
    )
    parser.add_argument("--log", action="store_true", help="with --fake: echo into the campaign log")
    args = parser.parse_args()
    global PROFILE_SORT
    PROFILE_SORT = args.profile_sort
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.fake:
        return main_fake(args, sizes)
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
