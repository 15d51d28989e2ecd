#!/usr/bin/env python3
"""Ledger benchmark: load / transaction / save times and file sizes for large campaigns.

Run: ``python3 bench/bench_ledger.py [--quick]``. Builds synthetic campaigns in a temp folder
(1-2 attempts per job with realistic fields), then measures:

* load: ``Ledger.snapshot()`` (parse ``ledger.json``)
* txn-100: one transaction that changes 100 jobs (lock, load, change, save, unlock)
* reconcile: one transaction shaped like ``reconcile``: read every active job's state
  (``txn.states()``), update 100 (attempt ended, energy), finish 50 (archive append), add 50
* decode-all: the same, but decoding every active job (``jobs_by_state``) first
* by-hash: ``find_by_hash`` in a fresh snapshot (idempotent submit's question)

Targets (issue 3): 100,000 archived + 1,000 active -> reconcile <= 0.2 s;
100,000 active -> reconcile <= 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from orca_hpc.ledger.records import Job, format_job_id
from orca_hpc.ledger.states import JobState
from orca_hpc.ledger.store import Ledger, _encode_doc

STAMP = "2026-11-28T21:10:03Z"


def make_job(n: int, state: JobState) -> Job:
    job_id = format_job_id(n)
    job = Job(
        id=job_id,
        name=f"conformer-{n:06d} opt+freq",
        input_path=f"inputs/batch{n // 1000:03d}/conf-{n:06d}.inp",
        input_sha=f"{n * 2654435761 % 2**64:016x}" * 4,
        site="hpc-cluster",
        state=state,
        max_retries=3,
        created=STAMP,
        updated=STAMP,
        dir=f"jobs/{job_id}",
    )
    attempts = 1 + n % 2
    for k in range(1, attempts + 1):
        att = job.new_attempt(f"{n:08x}{k:02x}c0ffee")
        att.slurm_id = f"{4000000 + n // 500}_{n % 500}"
        att.submitted = att.started = STAMP
        if k < attempts or state.finished:
            att.ended = STAMP
            att.slurm_state = "COMPLETED" if state is JobState.COMPLETED and k == attempts else "FAILED"
            att.exit_code = "0:0" if att.slurm_state == "COMPLETED" else "1:0"
            att.outcome = "success" if att.slurm_state == "COMPLETED" else "scf_not_converged"
            att.energy = -76.02663273 - n * 1e-6 if att.outcome == "success" else None
            # what sacct reports for it (controller/usage.py): the ledger's biggest per-attempt record
            att.usage = {"el": 3000 + n % 600, "tl": 7200, "cpu": 11000 + n % 999, "rss": 1500 + n % 500,
                         "mem": 4000, "np": 4, "node": f"node{n % 64:03d}"}  # fmt: skip
        if k > 1:
            att.corrections = [{"handler": "scf", "change": "added SlowConv", "why": "SCF not converged"}]
    job.retry_count = attempts - 1
    return job


def build(state_dir: Path, active: int, archived: int) -> None:
    Ledger.create(state_dir, {"campaign": "bench", "site": "hpc-cluster"})
    lines = []
    for n in range(1, archived + 1):
        lines.append(json.dumps(make_job(n, JobState.COMPLETED).to_dict(with_id=True), separators=(",", ":")))
    if lines:
        (state_dir / "archive.jsonl").write_text("\n".join(lines) + "\n")
    running = (JobState.PENDING, JobState.RUNNING)
    jobs = {}
    for n in range(archived + 1, archived + active + 1):
        jobs[format_job_id(n)] = json.dumps(
            make_job(n, running[n % 2]).to_dict(), separators=(",", ":")
        ).encode()
    meta = {"campaign": "bench", "site": "hpc-cluster", "next_id": archived + active + 1}
    arch = [len(("\n".join(lines) + "\n").encode()) if lines else 0, archived]  # as the writer leaves it
    (state_dir / "ledger.json").write_bytes(_encode_doc(1, meta, [], jobs, arch))


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Median wall time of ``fn`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def txn_change_100(led: Ledger) -> None:
    with led.transaction() as txn:
        for job_id in list(txn.jobs)[:100]:
            txn.jobs[job_id].extra["touched"] = txn.jobs[job_id].extra.get("touched", 0) + 1


LIVE = (JobState.SUBMITTING, JobState.PENDING, JobState.RUNNING)


def txn_reconcile(led: Ledger, decode_all: bool = False) -> None:
    """Reconcile-shaped: read every active job's state, update 100, finish 50, add 50.

    ``decode_all`` decodes every active job (``jobs_by_state``) instead of reading the states
    cheaply (``states()``) and decoding only the 100 that SLURM says changed.
    """
    with led.transaction() as txn:
        if decode_all:
            changed = txn.jobs_by_state(*LIVE)[:100]
        else:
            states = txn.states()
            changed = [txn.jobs[i] for i in [i for i, st in states.items() if st in LIVE][:100]]
        for i, job in enumerate(changed):
            att = job.attempt or job.new_attempt("tok")
            att.ended, att.slurm_state, att.exit_code = STAMP, "COMPLETED", "0:0"
            if job.state is JobState.PENDING:
                txn.set_state(job, JobState.RUNNING)
            if i < 50:
                att.outcome, att.energy = "success", -76.0
                txn.set_state(job, JobState.COMPLETED)
        # Keep the campaign the same size between repeats: new active jobs replace finished ones.
        for _ in range(50):
            job = txn.add_job("refill", "inputs/refill.inp", "0" * 64, "hpc-cluster", 3)
            job.new_attempt("tok")  # the ledger refuses a submitted job without an attempt
            txn.set_state(job, JobState.SUBMITTING)
            txn.set_state(job, JobState.PENDING)


def bench(active: int, archived: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        state = Path(tmp) / ".orca-hpc"
        build(state, active, archived)
        led = Ledger(state, lock_timeout=60)
        size = (state / "ledger.json").stat().st_size
        archive = state / "archive.jsonl"
        return {
            "active": active,
            "archived": archived,
            "ledger_mb": size / 1e6,
            "archive_mb": (archive.stat().st_size if archive.exists() else 0) / 1e6,
            "load_s": timed(led.snapshot, repeat),
            "txn100_s": timed(lambda: txn_change_100(led), repeat),
            "reconcile_s": timed(lambda: txn_reconcile(led), repeat),
            "decode_all_s": timed(lambda: txn_reconcile(led, decode_all=True), repeat),
            "find_by_hash_s": timed(lambda: led.snapshot().find_by_hash("1" * 64), repeat),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the 100,000-active campaign")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cases = [(1_000, 0), (10_000, 0), (1_000, 100_000)]
    if not args.quick:
        cases.append((100_000, 0))
    header = f"{'active':>8} {'archived':>8} {'ledger MB':>9} {'archive MB':>10} {'load s':>7} "
    header += f"{'txn-100 s':>9} {'reconcile s':>11} {'decode-all s':>12} {'by-hash s':>9}"
    print(header)
    results = []
    for active, archived in cases:
        r = bench(active, archived, args.repeat)
        results.append(r)
        print(
            f"{active:>8} {archived:>8} {r['ledger_mb']:>9.2f} {r['archive_mb']:>10.2f} {r['load_s']:>7.3f} "
            f"{r['txn100_s']:>9.3f} {r['reconcile_s']:>11.3f} {r['decode_all_s']:>12.3f} "
            f"{r['find_by_hash_s']:>9.3f}",
            flush=True,
        )
    ok = True
    for r in results:
        if (r["active"], r["archived"]) == (1_000, 100_000):
            ok &= r["reconcile_s"] <= 0.2
            print(f"target 100k archived + 1k active: reconcile {r['reconcile_s']:.3f} s (<= 0.2 s)")
        if (r["active"], r["archived"]) == (100_000, 0):
            ok &= r["reconcile_s"] <= 1.5
            print(f"target 100k active: reconcile {r['reconcile_s']:.3f} s (<= 1.5 s)")
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
