"""Benchmark the runner's own cost per task: one attempt through ``python -m orca_hpc.runner`` against
the same emulated ORCA run started directly, in the same run (no SLURM: the cost the drain pays per task).

Usage: python bench/bench_runner.py [--tasks 30] [--dir DIR]

Each round runs, one after the other: (a) the runner on a fresh attempt folder (spec.json + input, as
submit lays it out), whose ORCA is ``orca-emulator``; (b) ``orca-emulator`` on the same input directly,
its output redirected to a file, as a raw array task would run it; (c) ``python -c pass``. CPU time is
each child's user + system time (``RUSAGE_CHILDREN``; the runner's includes the emulator it starts).
Reported: medians over the rounds, and the runner's own CPU (a - b) against a bare interpreter (c).
Rounds interleave the three, so load on the machine spreads over all of them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INPUT = "! HF STO-3G\n* xyz 0 1\nH 0.0 0.0 0.0\nH 0.0 0.0 0.74\n*\n"
KEEP = ["*.out", "*.gbw", "*.xyz", "*.property.txt"]


def _cpu_of(argv: list[str], **kw: object) -> tuple[float, float]:
    """(CPU seconds of the child and everything it waited for, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, **kw)  # type: ignore[call-overload]
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def make_attempt(base: Path, i: int, orca: str) -> Path:
    attempt_dir = base / "camp" / "jobs" / f"j{i:06d}" / "attempt-1"
    attempt_dir.mkdir(parents=True, mode=0o750)
    (attempt_dir / "h2_sp.inp").write_text(INPUT)
    os.chmod(attempt_dir / "h2_sp.inp", 0o640)
    spec = {
        "spec_version": 1,
        "campaign": "bench",
        "job_id": f"j{i:06d}",
        "job_name": "h2 sp",
        "attempt": 1,
        "input": "h2_sp.inp",
        "extra_inputs": [],
        "orca": orca,
        "scratch_root": str(base / "scratch"),
        "keep": KEEP,
    }
    (attempt_dir / "spec.json").write_text(json.dumps(spec))
    os.chmod(attempt_dir / "spec.json", 0o640)
    return attempt_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=30, help="rounds (each: runner, emulator, bare python)")
    parser.add_argument("--dir", default=None, help="where the attempt folders go (default: $TMPDIR or /tmp)")
    args = parser.parse_args()
    orca = shutil.which("orca-emulator")
    if orca is None:
        raise SystemExit("orca-emulator is not on PATH (activate the virtual environment)")
    runner_cpu, emulator_cpu, bare_cpu, runner_wall, emulator_wall = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-runner-", dir=args.dir) as tmp:
        base = Path(tmp)
        (base / "scratch").mkdir()
        for i in range(args.tasks):
            attempt_dir = make_attempt(base, i, orca)
            cpu, wall = _cpu_of([sys.executable, "-m", "orca_hpc.runner", "--attempt-dir", str(attempt_dir)])
            result = json.loads((attempt_dir / "result.json").read_text())
            if result["outcome"] != "success":
                raise SystemExit(f"the runner's attempt did not succeed: {result['outcome']}")
            runner_cpu.append(cpu)
            runner_wall.append(wall)
            direct = base / f"direct-{i}"
            direct.mkdir()
            (direct / "h2_sp.inp").write_text(INPUT)
            with open(direct / "h2_sp.out", "wb") as out:
                cpu, wall = _cpu_of([orca, "h2_sp.inp"], cwd=direct, stdout=out)
            emulator_cpu.append(cpu)
            emulator_wall.append(wall)
            bare_cpu.append(_cpu_of([sys.executable, "-c", "pass"])[0])
    med = statistics.median
    own = med(r - e for r, e in zip(runner_cpu, emulator_cpu, strict=True))
    print(f"{args.tasks} rounds; medians (CPU = user + system of the child and what it waited for)")
    print(
        "| runner task CPU | emulator alone CPU | runner's own CPU | python -c pass CPU "
        "| own / bare python | runner task wall / emulator wall |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {med(runner_cpu) * 1000:.0f} ms | {med(emulator_cpu) * 1000:.0f} ms | {own * 1000:.0f} ms "
        f"| {med(bare_cpu) * 1000:.0f} ms | {own / med(bare_cpu):.1f}x "
        f"| {med(runner_wall) / med(emulator_wall):.2f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
