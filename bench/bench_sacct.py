"""Benchmark the scheduler boundary on the local cluster: batched query_jobs vs one query per job.

Usage: python bench/bench_sacct.py [--arrays 50] [--tasks 20] [--sample 20]
Submits ARRAYS held arrays of TASKS tasks, queries every task id in one batched call, then SAMPLE ids
one call each (extrapolated), prints SLURM calls and wall time, and cancels everything.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time

from orca_hpc.scheduler import slurm


def _submit_held(arrays: int, tasks: int, workdir: str) -> list[str]:
    ids = []
    for i in range(arrays):
        argv = ["sbatch", "--parsable", "--hold", f"--array=0-{tasks - 1}", "-J", f"ohpc-bench-{i}"]
        argv += ["-o", "/dev/null", "-D", workdir, "--wrap", "true"]
        out = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=True,
        )
        ids.append(out.stdout.strip().split(";")[0])
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrays", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--sample", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        arrays = _submit_held(args.arrays, args.tasks, workdir)
        task_ids = [f"{a}_{t}" for a in arrays for t in range(args.tasks)]
        try:
            slurm.CALLS.reset()
            t0 = time.perf_counter()
            found = slurm.query_jobs(task_ids)
            batched = time.perf_counter() - t0
            calls = dict(slurm.CALLS.counts)
            print(f"batched: {len(task_ids)} ids, {len(found)} found, {calls}, {batched:.3f} s")

            sample = task_ids[: args.sample]
            slurm.CALLS.reset()
            t0 = time.perf_counter()
            for jid in sample:
                slurm.query_jobs([jid])
            single = (time.perf_counter() - t0) / len(sample)
            print(
                f"one call per id: {single * 1000:.1f} ms/id ({dict(slurm.CALLS.counts)} for {len(sample)}), "
                f"extrapolated {single * len(task_ids):.2f} s for {len(task_ids)} ids, "
                f"{single * len(task_ids) / batched:.0f}x the batched time"
            )
        finally:
            slurm.scancel(arrays)


if __name__ == "__main__":
    main()
