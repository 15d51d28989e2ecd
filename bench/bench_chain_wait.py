"""Measure how long a workflow's next step waits after its predecessor ended, on the local SLURM cluster,
orca-hpc's reconcile-driven chain against a SLURM dependency chain, in one run (issue 17, point b: "a
step starts as soon as its predecessor is COMPLETED, by reconcile, or by SLURM dependencies where that
shortens the wait: measure and document which").

Usage: python bench/bench_chain_wait.py [--molecules 6] [--intervals 1,2,5] [--step-s 3] [--spread-s 2]
                                        [--rounds 1] [--prototype] [--quiet-wait 600] [--dir DIR]

M water molecules, each a two-step chain (an optimisation, then a single point on its final geometry),
ORCA emulated (each step of molecule i sleeps step-s + spread-s * i / (M - 1) seconds, so the first
steps end at different times). The wait of molecule i is (the second step's SLURM Start) - (the first
step's SLURM End), both from sacct (whole seconds). Variants, one after the other:

* **orca-hpc, watch --interval I**: a campaign with the two steps as its `[workflow]`, `orca-hpc
  submit`, then `orca-hpc watch --interval I --until-done` (orca-hpc as shipped: the runner, the
  result file, reconcile's verdict and gate, then the next step's job and sbatch). Also split into
  End -> Submit (orca-hpc noticing and submitting) and Submit -> Start (the scheduler).
* **prototype** (`--prototype`; not orca-hpc as shipped): `orca-hpc reconcile` soon after a runner's
  result file appears, and every 5 s in any case: what reacting to the file instead of polling would give.
* **sbatch + afterok / aftercorr**: the best a dependency chain could do, with no orca-hpc at all: a raw
  `sbatch --array` of the emulator for the first steps, and at once a second array with
  `--dependency=afterok:<first>` (every first step must end) or `aftercorr:<first>` (task i waits for
  task i only), whose script puts the first step's final .xyz into its input and runs the emulator.
* **plain sbatch after an end** (context, the scheduler's latency): a one-second job; the moment squeue
  no longer shows it running, a second sbatch; its Start - the first's End.
* **afterok on a failed predecessor** (context): what SLURM does with the dependent job.

Prints the cluster's scheduler settings and a table: median, mean and max wait per variant and the
ratio and difference of each row's mean to the best dependency row's. The cluster is shared: before
each variant it waits (up to --quiet-wait) for others' jobs to leave the queue, reports how many were
there, and leaves out a round that a restart or a DOWN node broke. Everything it submits is its own: it
cancels only those ids, and removes only the temporary folder it made.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ATOMS = "O 0 0 {z:.6f}\nH 0 0.7555 -0.4712\nH 0 -0.7555 -0.4712\n"
MEM = "500M"  # the campaign asks for the same (mem_per_cpu_mb = 500): both ways fit the same jobs at once
SETTINGS = ("SLURM_VERSION", "SchedulerType", "SchedulerParameters", "PriorityType", "PriorityWeightAge",
            "DependencyParameters", "MinJobAge")  # fmt: skip
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED")
OWN: list[str] = []  # every SLURM id this run submitted: the only ones it may cancel


@dataclass
class Times:
    submit: int
    start: int
    end: int | None
    state: str


@dataclass
class Variant:
    label: str
    waits: list[int] = field(default_factory=list)  # successor Start - predecessor End, per molecule
    noticed: list[int] = field(default_factory=list)  # successor Submit - predecessor End (orca-hpc)
    others: int = 0  # the most jobs of others in the queue at the start or end of a round of it


def run(*cmd: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if check and proc.returncode:
        why = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(
            f"bench_chain_wait: {cmd[0]} {cmd[1] if len(cmd) > 1 else ''} exit {proc.returncode}: {why}"
        )
    return proc.stdout


def sbatch(*args: str) -> str:
    job = run("sbatch", "--parsable", *args).strip().split(";")[0]
    OWN.append(job)
    return job


def settings() -> dict[str, str]:
    found = {}
    for line in run("scontrol", "show", "config").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in SETTINGS:
            found[key.strip()] = value.strip()
    return found


def own_queued() -> list[str]:
    """Own jobs squeue still shows (pending, running, completing), by their array or job id."""
    out = run("squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%F %i")
    own = set(OWN)
    return [i for line in out.splitlines() for f, i in [line.split()] if f in own or i in own]


def foreign() -> int:
    """Jobs in the queue that are not this run's (the cluster is shared): they take the node's slots."""
    own = set(OWN)
    out = run("squeue", "-h", "-r", "-o", "%F %i")
    return sum(1 for line in out.splitlines() for f, i in [line.split()] if f not in own and i not in own)


def wait_until_quiet(limit: float) -> int:
    """Wait up to LIMIT seconds for a queue without others' jobs; how many there are when it starts."""
    deadline = time.monotonic() + limit
    while (others := foreign()) and time.monotonic() < deadline:
        time.sleep(5.0)
    return others


def wait_until_gone(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while own_queued():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_chain_wait: own jobs still queued after {timeout:g} s: {own_queued()}")
        time.sleep(0.5)


def sacct(ids: Sequence[str], timeout: float = 120.0) -> dict[str, Times]:
    """Submit, Start, End of each id (array tasks as A_i), once sacct has all of them ended."""
    env = {**os.environ, "SLURM_TIME_FORMAT": "%s"}
    deadline = time.monotonic() + timeout
    while True:
        out = run("sacct", "-X", "-n", "-P", "-j", ",".join(sorted({i.split("_")[0] for i in ids})),
                  "--format=JobID,Submit,Start,End,State", env=env)  # fmt: skip
        rows = {}
        for line in out.splitlines():
            job, submit, start, end, state = line.split("|")
            if start.isdigit():
                rows[job] = Times(
                    int(submit), int(start), int(end) if end.isdigit() else None, state.split()[0]
                )
        if all(i in rows and rows[i].end is not None for i in ids):
            return rows
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_chain_wait: sacct has not recorded the end of {ids} in {timeout:g} s")
        time.sleep(1.0)


def sleeps(m: int, step_s: float, spread_s: float) -> list[float]:
    return [round(step_s + (spread_s * i / (m - 1) if m > 1 else 0.0), 2) for i in range(m)]


def waits_of(pairs: Sequence[tuple[str, str]], label: str) -> Variant:
    times = sacct([i for pair in pairs for i in pair])
    variant = Variant(label)
    for first, second in pairs:
        before, after = times[first], times[second]
        if before.state != "COMPLETED" or after.state != "COMPLETED":
            raise SystemExit(f"bench_chain_wait: {label}: {first} {before.state}, {second} {after.state}")
        assert before.end is not None
        variant.waits.append(after.start - before.end)
        variant.noticed.append(after.submit - before.end)
    return variant


def orca_hpc(camp: Path, *args: str) -> str:
    return run("orca-hpc", "-q", "-C", str(camp), *args)


def _campaign(root: Path, seconds: list[float]) -> tuple[Path, list[str]]:
    """A campaign whose workflow is the two steps, and the molecules' .xyz files."""
    camp = root / "campaign"
    run("orca-hpc", "init", str(camp), "--site", "local-slurm")
    config = camp / "orca-hpc.toml"
    config.write_text(
        config.read_text().replace("[overrides]\n", "[overrides]\n[overrides.slurm]\nmem_per_cpu_mb = 500\n")
        + '\n[workflow]\nrmsd = 0.0\n[[workflow.steps]]\nname = "opt"\nmethod = "r2SCAN-3c Opt"\n'
        '[[workflow.steps]]\nname = "sp"\nmethod = "wB97M-V def2-TZVP"\n'
    )
    paths = []
    for i, s in enumerate(seconds):
        path = root / f"w{i:03d}.xyz"  # the comment line, which every step carries, tells the emulator
        path.write_text(f"3\nemulate: sleep={s:g}\n" + ATOMS.format(z=0.1178 + 0.001 * i))
        paths.append(str(path))
    return camp, paths


def _chain_waits(camp: Path, label: str, m: int) -> Variant:
    jobs = json.loads(orca_hpc(camp, "show", "--no-reconcile", "--json", "--all"))["jobs"]
    OWN.extend({a["slurm_job_id"].split("_")[0] for j in jobs for a in j["attempts"] if a["slurm_job_id"]})
    by_id = {j["id"]: j for j in jobs}
    pairs = [(by_id[j["chain"]["after"]]["attempts"][-1]["slurm_job_id"], j["attempts"][0]["slurm_job_id"])
             for j in jobs if j["chain"]["after"]]  # fmt: skip
    if len(pairs) != m:
        raise SystemExit(f"bench_chain_wait: {label}: {len(pairs)} second steps for {m} molecules")
    return waits_of(pairs, label)


def orca_hpc_chain(root: Path, seconds: list[float], interval: float, timeout: float) -> Variant:
    """The workflow as shipped: submit, then watch --interval until every step has finished."""
    camp, paths = _campaign(root, seconds)
    orca_hpc(camp, "submit", *paths)
    watch = subprocess.Popen(
        ["orca-hpc", "-q", "-C", str(camp), "watch", "--interval", f"{interval:g}", "--until-done"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        watch.wait(timeout)
    except subprocess.TimeoutExpired:
        watch.terminate()
        watch.wait()
        _chain_waits(camp, "timed out", len(seconds))  # notes its ids, for the cancel
        raise SystemExit(
            f"bench_chain_wait: watch --interval {interval:g} not done in {timeout:g} s"
        ) from None
    return _chain_waits(camp, f"orca-hpc, watch --interval {interval:g}", len(seconds))


def orca_hpc_on_result(root: Path, seconds: list[float], fallback: float, timeout: float) -> Variant:
    """A prototype, not orca-hpc as shipped: reconcile (the CLI) half a second after a runner's result file
    appears (polled every 0.2 s, no scheduler call), again every 0.5 s until reconcile has ended that job
    (SLURM and sacct may lag the file), and every FALLBACK seconds in any case."""
    camp, paths = _campaign(root, seconds)
    orca_hpc(camp, "submit", *paths)
    seen: set[str] = set()
    waiting: dict[str, float] = {}  # job id -> when its result file was first seen
    ended: set[str] = set()
    last = time.monotonic()
    deadline = last + timeout
    while len(ended) < 2 * len(seconds):
        now = time.monotonic()
        if now > deadline:
            _chain_waits(camp, "timed out", len(seconds))
            raise SystemExit(f"bench_chain_wait: the result-file prototype not done in {timeout:g} s")
        for result in camp.glob("jobs/*/attempt-*/result.json"):
            if str(result) not in seen:
                seen.add(str(result))
                waiting[result.parent.parent.name] = now
        # The runner writes the file just before it exits: give SLURM half a second to see the end.
        due = any(now - t >= 0.5 for t in waiting.values()) and now - last >= 0.5
        if due or now - last >= fallback:
            changes = json.loads(orca_hpc(camp, "reconcile", "--json"))["changes"]
            last = time.monotonic()
            done = {c["id"] for c in changes if c["to"] in ("COMPLETED", "FAILED", "PERMANENT_FAILED")}
            ended |= done
            for job in done:
                waiting.pop(job, None)
        time.sleep(0.2)
    return _chain_waits(
        camp, f"prototype: reconcile on a result file (fallback {fallback:g} s)", len(seconds)
    )


def dependency_chain(root: Path, seconds: list[float], kind: str, timeout: float) -> Variant:
    """Raw sbatch of the first steps, the second steps submitted at once with --dependency=KIND."""
    emulator = shutil.which("orca-emulator")
    if emulator is None:
        raise SystemExit("bench_chain_wait: orca-emulator is not on PATH: activate the project's .venv")
    folders = []
    for i, s in enumerate(seconds):
        folder = root / f"m{i:03d}"
        folder.mkdir(parents=True)
        head = f"# emulate: sleep={s:g}\n"
        (folder / "opt.inp").write_text(
            f"{head}! r2SCAN-3c Opt\n* xyz 0 1\n{ATOMS.format(z=0.1178 + 0.001 * i)}*\n"
        )
        (folder / "sp.head").write_text(f"{head}! wB97M-V def2-TZVP\n* xyz 0 1\n")
        folders.append(folder)
    manifest = root / "folders.txt"
    manifest.write_text("".join(f"{f}\n" for f in folders))
    header = (f"#!/bin/bash\n#SBATCH -p debug\n#SBATCH --mem={MEM}\n#SBATCH --time=00:10:00\n"
              f"#SBATCH -o /dev/null\n#SBATCH --array=0-{len(folders) - 1}\n"
              f'cd "$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {manifest})" || exit 1\n')  # fmt: skip
    (root / "opt.sh").write_text(header + f'"{emulator}" opt.inp > opt.out\n')
    # The second step's input: its method line, then the first step's final geometry (ORCA's <base>.xyz).
    (root / "sp.sh").write_text(
        header + "{ cat sp.head; tail -n +3 opt.xyz; echo '*'; } > sp.inp || exit 1\n"
        f'"{emulator}" sp.inp > sp.out\n'
    )
    first = sbatch("-J", "cw-opt", str(root / "opt.sh"))
    second = sbatch("-J", "cw-sp", f"--dependency={kind}:{first}", str(root / "sp.sh"))
    wait_until_gone(timeout)
    pairs = [(f"{first}_{i}", f"{second}_{i}") for i in range(len(seconds))]
    return waits_of(pairs, f"sbatch + --dependency={kind} (array)")


def _ended(job: str) -> bool:
    """squeue no longer shows the job pending or running (completing, completed, or gone)."""
    state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout
    return state.strip() not in ("PENDING", "CONFIGURING", "RUNNING")


def plain_after_end(n: int) -> Variant:
    """A second plain sbatch the moment the first job is seen ended: the scheduler's own latency."""
    pairs = []
    for _ in range(n):
        first = sbatch(
            "-p", "debug", f"--mem={MEM}", "-o", "/dev/null", "-J", "cw-plain", "--wrap", "sleep 1"
        )
        while not _ended(first):
            time.sleep(0.1)
        pairs.append(
            (
                first,
                sbatch("-p", "debug", f"--mem={MEM}", "-o", "/dev/null", "-J", "cw-plain", "--wrap", "true"),
            )
        )
    wait_until_gone(60)
    return waits_of(pairs, "plain sbatch when the first is seen ended")


def failed_predecessor(wait_s: float = 10.0) -> str:
    """What SLURM does with an afterok dependent whose predecessor failed (cancelled here, by id)."""
    first = sbatch("-p", "debug", f"--mem={MEM}", "-o", "/dev/null", "-J", "cw-fail", "--wrap", "exit 1")
    second = sbatch("-p", "debug", f"--mem={MEM}", "-o", "/dev/null", "-J", "cw-fail",
                    f"--dependency=afterok:{first}", "--wrap", "true")  # fmt: skip
    sacct([first])
    t0 = time.monotonic()
    seen: list[tuple[float, str]] = []
    while time.monotonic() - t0 < wait_s:
        state = run("squeue", "-h", "-j", second, "-o", "%T %r", check=False).strip() or "gone from squeue"
        if not seen or seen[-1][1] != state:
            seen.append((time.monotonic() - t0, state))
        time.sleep(0.5)
    run("scancel", second, check=False)
    history = ", then ".join(f"'{state}' at {t:.0f} s" for t, state in seen)
    return f"afterok on a FAILED predecessor, from sacct's record of its end for {wait_s:g} s: {history}"


def cancel_own() -> None:
    queued = own_queued()
    if queued:
        run("scancel", *sorted({q.split("_")[0] for q in queued}), check=False)


def _table(variants: dict[str, Variant]) -> None:
    deps = [v for k, v in variants.items() if k.startswith("sbatch")]
    best = min(deps, key=lambda v: statistics.fmean(v.waits)) if deps else None
    b_mean = statistics.fmean(best.waits) if best else 0.0
    head = [
        "variant",
        "waits",
        "median s",
        "mean s",
        "max s",
        "End->Submit mean s",
        "mean / best",
        "mean - best",
    ]
    print("| " + " | ".join([*head, "others' jobs"]) + " |")
    print("| :--- |" + " ---: |" * len(head))
    for v in variants.values():
        mean = statistics.fmean(v.waits)
        ours = not v.label.startswith(("sbatch +", "plain"))
        cells = [v.label, len(v.waits), f"{statistics.median(v.waits):g}", f"{mean:.1f}", max(v.waits),
                 f"{statistics.fmean(v.noticed):.1f}" if ours else "-",
                 f"{mean / b_mean:.1f}x" if b_mean else "-", f"{mean - b_mean:+.1f} s" if best else "-",
                 v.others]  # fmt: skip
        print("| " + " | ".join(map(str, cells)) + " |")
    if best:
        print(f"\nbest dependency row (the reference): {best.label}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molecules", type=int, default=6)
    parser.add_argument("--intervals", default="1,2,5", help="watch intervals (seconds), comma-separated")
    parser.add_argument("--step-s", type=float, default=3.0, help="emulated run time of a step")
    parser.add_argument(
        "--spread-s", type=float, default=2.0, help="molecule i's steps take up to this longer"
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat every variant (pooled)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per variant")
    parser.add_argument("--prototype", action="store_true", help="also: reconcile when a result file appears")
    parser.add_argument("--quiet-wait", type=float, default=600.0, help="wait up to this long before each "
                        "variant for others' jobs to leave the queue (the cluster is shared)")  # fmt: skip
    parser.add_argument("--dir", default=None, help="where the temporary folders go (default: the temp dir)")
    args = parser.parse_args()
    intervals = [float(x) for x in args.intervals.split(",")]
    seconds = sleeps(args.molecules, args.step_s, args.spread_s)
    found = settings()
    variants: dict[str, Variant] = {}
    failure = "afterok on a FAILED predecessor: not measured (interrupted)"
    lost: list[str] = []

    def measure(make: Callable[..., Variant], *how: object) -> None:
        """One round of one variant; a round the shared cluster broke (a restart, a node DOWN) is left out."""
        before = wait_until_quiet(args.quiet_wait)
        try:
            v = make(*how)
        except SystemExit as err:
            lost.append(f"{make.__name__}: {err}")
            cancel_own()
            return
        kept = variants.setdefault(v.label, Variant(v.label))
        kept.waits += v.waits
        kept.noticed += v.noticed
        kept.others = max(kept.others, before, foreign())

    try:
        with tempfile.TemporaryDirectory(prefix="bench-chain-wait-", dir=args.dir) as tmp:
            root = Path(tmp)
            for r in range(args.rounds):
                measure(plain_after_end, args.molecules)
                for kind in ("afterok", "aftercorr"):
                    measure(dependency_chain, root / f"r{r}-{kind}", seconds, kind, args.timeout)
                for interval in intervals:
                    measure(orca_hpc_chain, root / f"r{r}-watch{interval:g}", seconds, interval, args.timeout)
                if args.prototype:
                    measure(orca_hpc_on_result, root / f"r{r}-on-result", seconds, 5.0, args.timeout)
            try:
                failure = failed_predecessor()
            except SystemExit as err:
                failure = f"afterok on a FAILED predecessor: not measured ({err})"
    except KeyboardInterrupt:
        print("interrupted: the rounds measured so far\n")
    finally:
        cancel_own()
    print(f"local SLURM cluster: {', '.join(f'{k} = {v}' for k, v in found.items())}")
    steps = f"steps of {seconds[0]:g}-{seconds[-1]:g} s (emulator)"
    print(f"{args.molecules} molecules x {args.rounds} round(s), {steps}")
    print("wait = second step's SLURM Start - first step's SLURM End (sacct, whole seconds: the mean of many")
    print("is unbiased, a single wait is +-1 s); End->Submit: the part before the second step's sbatch;")
    print("others' jobs: the most jobs of others in the queue at the start or end of a round (0 = alone)\n")
    if variants:
        _table(variants)
    print(failure)
    for line in lost:
        print(f"round left out: {line}")
    return 0 if variants else 1


if __name__ == "__main__":
    sys.exit(main())
