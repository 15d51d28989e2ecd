"""Benchmark `orca-hpc submit` on the local cluster, against submitit's map_array in the same run.

Usage: python bench/bench_submit.py [--sizes 1000,10000] [--max-array-size 1000] [--dir DIR] [--repeat R]
       [--breakdown] [--profile N] [--profile-sort KEY] [--fake]

For each size N: a fresh campaign on the local-slurm site (overrides: max_array_size, and
``extra_sbatch = ["--hold"]`` so the submitted tasks never start: no ORCA runs, nothing to wait for),
N distinct water geometries (so content hashes differ), then ``submit.submit()`` in-process.
sbatch is timed by wrapping ``scheduler.slurm.sbatch``; "own" is wall minus that.
The raw baseline, measured in the same run, sbatches scripts with the same #SBATCH header (same
--array size, same --hold) and a trivial body, straight through subprocess. The reference, also in
the same run: submitit's ``AutoExecutor(cluster="slurm").map_array`` of a trivial function over N
items, held the same way. Every array submitted here (and only those, by the ids sbatch and submitit
returned) is cancelled at the end. Exit status 0 unless something failed outright.

``--fake``: the same submission handed to ``scheduler/fake.py`` instead of SLURM (no cluster, no
reference): our own CPU per job alone, at any size and as often as wanted, without leaving 30,000
cancelled jobs in slurmctld per run at 10,000.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import math
import pstats
import statistics
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
from orca_hpc.logs import setup_logging, teardown_logging
from orca_hpc.scheduler import slurm
from orca_hpc.scheduler.fake import FakeScheduler

CPU_TARGET_MS = 0.3  # own CPU per job at 10,000 (issue 15)
RATIO_TARGET = 0.5  # whole submit vs submitit map_array of a trivial function, same N, same run
PROFILE_SORT = "cumulative"  # --profile-sort


# (module, attribute) timed by --breakdown: where our own time goes, without cProfile's overhead.
PHASES = (
    ("orca_hpc.controller.submit", "prepare_inputs"),
    ("orca_hpc.orca.inputs", "parse_input"),
    ("orca_hpc.controller.submit", "record_attempt"),
    ("orca_hpc.controller.submit", "write_attempt"),
    ("orca_hpc.orca.inputs", "set_resources"),
    ("orca_hpc.controller.submit", "Dispatcher.dispatch"),
    ("orca_hpc.ledger.store", "Transaction.get"),
    ("orca_hpc.ledger.store", "Ledger._load"),
    ("orca_hpc.ledger.store", "Ledger._commit"),
)


@contextmanager
def timed_phases() -> Iterator[dict[str, float]]:
    """Accumulated CPU seconds inside each of PHASES (inclusive: phases may nest)."""
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
            t0 = time.process_time()  # CPU, not wall: the machine may be shared
            try:
                return _f(*args, **kw)
            finally:
                totals[_k] += time.process_time() - t0

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


def _trivial(x: int) -> int:
    """What the submitit reference maps: nothing to compute, so only the submission is measured."""
    return x


def submitit_map_array(n: int, folder: Path) -> tuple[float, float, list[str]]:
    """submitit's ``map_array`` of a trivial function over ``n`` items on the local SLURM cluster, held
    like ours (``--hold``: nothing runs). Returns (wall, this process's CPU, the array ids it got)."""
    import submitit  # the reference only: orca-hpc's SLURM path does not use it

    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(timeout_min=5, slurm_additional_parameters={"hold": True})
    t0, cpu0 = time.perf_counter(), time.process_time()
    jobs = executor.map_array(_trivial, range(n))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return wall, cpu, sorted({job.job_id.split("_")[0] for job in jobs})


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
    ref_wall: float  # submitit map_array of a trivial function, same N, same run (nan with --fake)
    ref_cpu: float

    @property
    def own_ms(self) -> float:
        return (self.wall - self.sbatch) / self.n * 1000

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.n * 1000

    @property
    def ratio(self) -> float:
        """Our whole submit's wall time over submitit's map_array, measured in the same run."""
        return self.wall / self.ref_wall

    @property
    def ok(self) -> bool:
        calls_ok = self.calls == self.expected_calls
        return self.cpu_ms <= CPU_TARGET_MS and self.ratio <= RATIO_TARGET and calls_ok


def bench(
    n: int, max_array: int, base: Path, profile: int, breakdown: bool, run: int = 0, fake: bool = False
) -> Row:
    root = base / f"camp-{n}-{run}"
    init_campaign(root, "local-slurm")
    config = root / "orca-hpc.toml"
    config.write_text(
        config.read_text() + f'[overrides.slurm]\nmax_array_size = {max_array}\nextra_sbatch = ["--hold"]\n'
    )
    campaign = load_campaign(root)
    paths = write_inputs(base / f"inputs-{n}-{run}", n)
    prof = cProfile.Profile() if profile else None
    mine: list[str] = []
    raw_ids: list[str] = []
    ref_ids: list[str] = []
    try:
        with ExitStack() as stack:
            seen = stack.enter_context(timed_sbatch())
            phases = stack.enter_context(timed_phases()) if breakdown else {}
            slurm.CALLS.reset()
            # The campaign log as the CLI sets it up: what a submit logs is part of its cost.
            setup_logging(root, command="submit")
            stack.callback(teardown_logging)
            t0, cpu0 = time.perf_counter(), time.process_time()
            if prof:
                prof.enable()
            report = submit(campaign, paths, scheduler=FakeScheduler(max_array=max_array) if fake else None)
            if prof:
                prof.disable()
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            mine = list(seen.ids)
            calls = report.sbatch_calls if fake else slurm.CALLS["sbatch"]
        if len(report.submitted) != n:
            raise SystemExit(f"submitted {len(report.submitted)} of {n}")
        if fake:
            raw, ref_wall, ref_cpu = math.nan, math.nan, math.nan
        else:
            raw, raw_ids = raw_sbatch(seen.scripts, base)
            ref_wall, ref_cpu, ref_ids = submitit_map_array(n, base / f"submitit-{n}-{run}")
    finally:
        if mine or raw_ids or ref_ids:
            slurm.scancel(mine + raw_ids + ref_ids)  # only the arrays this run submitted
    if phases:
        print(f"--- N={n}: CPU seconds inside (inclusive; CPU {cpu:.2f} s, wall {wall:.2f} s) ---")
        print("  ".join(f"{name} {sec:.2f}" for name, sec in phases.items()))
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(PROFILE_SORT).print_stats(profile)
        print(f"--- cProfile, N={n}, top {profile} by {PROFILE_SORT} (sbatch included) ---")
        print(out.getvalue())
    expected = math.ceil(n / max_array)
    return Row(n, wall, cpu, seen.seconds, calls, expected, raw, len(raw_ids), ref_wall, ref_cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated job counts")
    parser.add_argument("--max-array-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (the median ratio is printed)")
    parser.add_argument("--breakdown", action="store_true", help="CPU seconds inside submit's main phases")
    parser.add_argument(
        "--dir", default=None, help="where the temporary campaign goes (default: $TMPDIR or /tmp)"
    )
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the top N cProfile rows")
    parser.add_argument("--profile-sort", default="cumulative", help="pstats sort key (e.g. tottime)")
    parser.add_argument(
        "--fake", action="store_true", help="to scheduler/fake.py: own CPU only, no cluster, no reference"
    )
    args = parser.parse_args()
    global PROFILE_SORT
    PROFILE_SORT = args.profile_sort
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-submit-", dir=args.dir) as tmp:
        for n in sizes:
            for run in range(args.repeat):
                rows.append(
                    bench(n, args.max_array_size, Path(tmp), args.profile, args.breakdown, run, args.fake)
                )
    print(
        f"max_array_size={args.max_array_size}; targets: own CPU <= {CPU_TARGET_MS} ms/job, whole submit "
        f"<= {RATIO_TARGET}x submitit map_array (same N, same run), sbatch calls = ceil(N / max_array_size)"
    )
    print(
        "| jobs | wall | in sbatch | own CPU/job | submitit map_array | ratio (ours / submitit) "
        "| sbatch calls | raw sbatch (same headers) | ok |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |")
    for r in rows:
        print(
            f"| {r.n:,} | {r.wall:.2f} s | {r.sbatch:.2f} s | {r.cpu_ms:.3f} ms "
            f"| {r.ref_wall:.2f} s ({r.ref_cpu / r.n * 1000:.3f} ms CPU/job) | **{r.ratio:.2f}** "
            f"| {r.calls} (expected {r.expected_calls}) | {r.raw:.2f} s ({r.raw_calls} calls) "
            f"| {'yes' if r.ok else 'NO'} |"
        )
    for n in sizes:
        mine = [r for r in rows if r.n == n]
        print(
            f"N={n:,}: median over {len(mine)} run(s): ratio {statistics.median(r.ratio for r in mine):.2f}, "
            f"own CPU {statistics.median(r.cpu_ms for r in mine):.3f} ms/job"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
