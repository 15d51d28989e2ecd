"""Benchmark `orca-hpc submit` on the local cluster: our own time per job vs the time inside sbatch.

Usage: python bench/bench_submit.py [--sizes 1000,10000] [--max-array-size 1000] [--dir DIR] [--breakdown]
       [--profile N]

For each size N: a fresh campaign on the local-slurm site (overrides: max_array_size, and
``extra_sbatch = ["--hold"]`` so the submitted tasks never start: no ORCA runs, nothing to wait for),
N distinct water geometries (so content hashes differ), then ``submit.submit()`` in-process.
sbatch is timed by wrapping ``scheduler.slurm.sbatch``; "own" is wall minus that.
The raw baseline, measured in the same run, sbatches scripts with the same #SBATCH header (same
--array size, same --hold) and a trivial body, straight through subprocess. Every array submitted
here (and only those) is cancelled at the end. Exit status 0 unless something failed outright.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import math
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from orca_hpc.config.campaign import init_campaign, load_campaign
from orca_hpc.controller.submit import submit
from orca_hpc.scheduler import slurm

OWN_TARGET_MS = 0.5


# (module, attribute) timed by --breakdown: where our own time goes, without cProfile's overhead.
PHASES = (
    ("orca_hpc.controller.submit", "prepare_inputs"),
    ("orca_hpc.orca.inputs", "parse_input"),
    ("orca_hpc.controller.submit", "record_attempt"),
    ("orca_hpc.attempt.folder", "write_attempt"),
    ("orca_hpc.controller.submit", "Dispatcher.dispatch"),
    ("orca_hpc.ledger.store", "Ledger._load"),
    ("orca_hpc.ledger.store", "Ledger._commit"),
)


@contextmanager
def timed_phases() -> Iterator[dict[str, float]]:
    """Accumulated seconds inside each of PHASES (inclusive: phases may nest)."""
    totals: dict[str, float] = {}
    restore = []
    for module_name, attr in PHASES:
        owner: object = importlib.import_module(module_name)
        name = attr
        if "." in attr:
            cls, name = attr.split(".")
            owner = getattr(owner, cls)
        original = getattr(owner, name)
        totals[attr] = 0.0

        def wrapper(
            *args: object, _f: Callable[..., object] = original, _k: str = attr, **kw: object
        ) -> object:
            t0 = time.perf_counter()
            try:
                return _f(*args, **kw)
            finally:
                totals[_k] += time.perf_counter() - t0

        setattr(owner, name, wrapper)
        restore.append((owner, name, original))
    try:
        yield totals
    finally:
        for owner, name, original in restore:
            setattr(owner, name, original)


@dataclass
class Sbatch:
    """What the wrapped sbatch saw: time inside it, scripts it sent, ids it got."""

    seconds: float = 0.0
    scripts: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


@contextmanager
def timed_sbatch() -> Iterator[Sbatch]:
    seen = Sbatch()
    original = slurm.sbatch

    def wrapper(script: Path) -> str:
        t0 = time.perf_counter()
        try:
            job_id = original(script)
        finally:
            seen.seconds += time.perf_counter() - t0
        seen.scripts.append(script.read_text())
        seen.ids.append(job_id)
        return job_id

    slurm.sbatch = wrapper  # SlurmScheduler.submit calls the module's sbatch
    try:
        yield seen
    finally:
        slurm.sbatch = original


def write_inputs(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        z = 0.117790 + i * 1e-6  # a distinct geometry per input: distinct content hash
        path = folder / f"w{i:05d}.inp"
        path.write_text(
            "! B3LYP def2-SVP\n* xyz 0 1\n"
            f"O 0.000000 0.000000 {z:.6f}\nH 0.000000 0.755453 -0.471161\nH 0.000000 -0.755453 -0.471161\n*\n"
        )
        paths.append(path)
    return paths


def raw_sbatch(scripts: list[str], workdir: Path) -> tuple[float, list[str]]:
    """sbatch each script's #SBATCH header with a trivial body; (seconds, array ids)."""
    seconds, ids = 0.0, []
    for i, script in enumerate(scripts):
        header = [ln for ln in script.splitlines() if ln.startswith("#SBATCH")]
        path = workdir / f"raw-{i}.sh"
        path.write_text("\n".join(["#!/bin/bash", *header, "true", ""]))
        t0 = time.perf_counter()
        out = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True, check=True)
        seconds += time.perf_counter() - t0
        ids.append(out.stdout.strip().split(";")[0])
    return seconds, ids


@dataclass
class Row:
    n: int
    wall: float
    cpu: float  # this process's CPU time (user + system): sbatch runs in a child, so it is not in here
    sbatch: float
    calls: int
    expected_calls: int
    raw: float
    raw_calls: int

    @property
    def own_ms(self) -> float:
        return (self.wall - self.sbatch) / self.n * 1000

    @property
    def ok(self) -> bool:
        return self.own_ms <= OWN_TARGET_MS and self.calls == self.expected_calls


def bench(n: int, max_array: int, base: Path, profile: int, breakdown: bool) -> Row:
    root = base / f"camp-{n}"
    init_campaign(root, "local-slurm")
    config = root / "orca-hpc.toml"
    config.write_text(
        config.read_text() + f'[overrides.slurm]\nmax_array_size = {max_array}\nextra_sbatch = ["--hold"]\n'
    )
    campaign = load_campaign(root)
    paths = write_inputs(base / f"inputs-{n}", n)
    prof = cProfile.Profile() if profile else None
    mine: list[str] = []
    raw_ids: list[str] = []
    try:
        with ExitStack() as stack:
            seen = stack.enter_context(timed_sbatch())
            phases = stack.enter_context(timed_phases()) if breakdown else {}
            slurm.CALLS.reset()
            t0, cpu0 = time.perf_counter(), time.process_time()
            if prof:
                prof.enable()
            report = submit(campaign, paths)
            if prof:
                prof.disable()
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            mine = list(seen.ids)
            calls = slurm.CALLS["sbatch"]
        if len(report.submitted) != n:
            raise SystemExit(f"submitted {len(report.submitted)} of {n}")
        raw, raw_ids = raw_sbatch(seen.scripts, base)
    finally:
        slurm.scancel(mine + raw_ids)
    if phases:
        print(f"--- N={n}: seconds inside (inclusive; wall {wall:.2f} s, sbatch {seen.seconds:.2f} s) ---")
        print("  ".join(f"{name} {sec:.2f}" for name, sec in phases.items()))
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(profile)
        print(f"--- cProfile, N={n}, top {profile} by cumulative time (sbatch included) ---")
        print(out.getvalue())
    return Row(n, wall, cpu, seen.seconds, calls, math.ceil(n / max_array), raw, len(raw_ids))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated job counts")
    parser.add_argument("--max-array-size", type=int, default=1000)
    parser.add_argument("--breakdown", action="store_true", help="time the main phases of submit")
    parser.add_argument(
        "--dir", default=None, help="where the temporary campaign goes (default: $TMPDIR or /tmp)"
    )
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the top N cProfile rows")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-submit-", dir=args.dir) as tmp:
        for n in sizes:
            rows.append(bench(n, args.max_array_size, Path(tmp), args.profile, args.breakdown))
    print(
        f"max_array_size={args.max_array_size}; target: own <= {OWN_TARGET_MS} ms/job, "
        "sbatch calls = ceil(N / max_array_size)"
    )
    print(
        "| jobs | wall | in sbatch | own (wall - sbatch) | own/job | own CPU/job | sbatch calls "
        "| raw sbatch (same headers) | ok |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |")
    for r in rows:
        print(
            f"| {r.n:,} | {r.wall:.2f} s | {r.sbatch:.2f} s | {r.wall - r.sbatch:.2f} s | {r.own_ms:.2f} ms "
            f"| {r.cpu / r.n * 1000:.2f} ms | {r.calls} (expected {r.expected_calls}) "
            f"| {r.raw:.2f} s ({r.raw_calls} calls) "
            f"| {'yes' if r.ok else 'NO'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
