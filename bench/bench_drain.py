"""Benchmark the drain: submit N emulated ORCA inputs and wait until every one has finished.

Two ways, one after the other in the same run, on the local SLURM cluster, with the same inputs and
the same polling interval:

* **raw**: one ``sbatch --array`` whose task i runs ``orca-emulator`` directly on input i (what a
  shell script would do); done when sacct says every task ended.
* **orca-hpc**: ``orca-hpc submit`` of the same inputs into a fresh ``local-slurm`` campaign, then
  ``orca-hpc reconcile`` until every job is COMPLETED (the runner adds scratch, copy-back,
  classification and the result file to each task).

It prints both drain times and their ratio (target: orca-hpc <= 1.1x raw), and the runner's own cost
per task measured inside the runs (from the result files: wall time around ORCA vs the emulator's
run). Only the arrays it submitted are cancelled, by id, if it is interrupted.

    python3 bench/bench_drain.py [--tasks 100] [--task-seconds 0] [--poll 1.0] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WATER = "O 0.0 0.0 0.0\nH 0.0 0.0 0.96\nH 0.93 0.0 -0.24\n"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED"}


def write_inputs(folder: Path, n: int, seconds: float) -> list[Path]:
    folder.mkdir(parents=True)
    directive = f"# emulate: sleep={seconds:g}\n" if seconds > 0 else ""
    paths = []
    for i in range(n):
        path = folder / f"w{i:05d}.inp"
        path.write_text(f"{directive}! B3LYP def2-SVP\n# {i}\n* xyz 0 1\n{WATER}*\n")
        paths.append(path)
    return paths


def raw_drain(workdir: Path, inputs: list[Path], poll: float) -> float:
    """One array running the emulator directly; seconds from sbatch to the last task ending."""
    emulator = shutil.which("orca-emulator")
    if emulator is None:
        sys.exit("orca-emulator not on PATH: activate the project's .venv")
    manifest = workdir / "raw-inputs.txt"
    manifest.write_text("".join(f"{p}\n" for p in inputs))
    script = workdir / "raw.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"#SBATCH --array=0-{len(inputs) - 1}\n#SBATCH -p debug\n#SBATCH -o /dev/null\n#SBATCH --mem=100M\n"
        f'inp=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {manifest})\n'
        'cd "$(dirname "$inp")" && '
        f'"{emulator}" "$(basename "$inp")" > "${{inp%.inp}}.out"\n'
    )
    t0 = time.monotonic()
    array = subprocess.run(
        ["sbatch", "--parsable", str(script)], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        while True:
            time.sleep(poll)
            # squeue keeps finished tasks for MinJobAge and is fresher than sacct (which lags): the
            # same view orca-hpc's reconcile merges, so neither side waits for accounting.
            states = subprocess.run(
                ["squeue", "-h", "-r", "-t", "all", "-j", array, "-o", "%T"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            if len(states) == len(inputs) and all(s in TERMINAL for s in states):
                return time.monotonic() - t0
    finally:
        subprocess.run(["scancel", array], capture_output=True, check=False)


def orca_hpc(campaign: Path, *args: str) -> str:
    return subprocess.run(
        ["orca-hpc", "-q", "-C", str(campaign), *args], capture_output=True, text=True, check=True
    ).stdout


def orca_hpc_drain(workdir: Path, inputs: list[Path], poll: float) -> tuple[float, list[dict[str, object]]]:
    campaign = workdir / "camp"
    subprocess.run(
        ["orca-hpc", "init", str(campaign), "--site", "local-slurm"], capture_output=True, check=True
    )
    t0 = time.monotonic()
    orca_hpc(campaign, "submit", *map(str, inputs))
    while True:
        time.sleep(poll)
        status = json.loads(orca_hpc(campaign, "status", "--json"))
        if status["counts"].get("COMPLETED", 0) == len(inputs):
            elapsed = time.monotonic() - t0
            break
        if set(status["counts"]) - {"COMPLETED", "PENDING", "RUNNING", "SUBMITTING", "CREATED", "FAILED"}:
            sys.exit(f"jobs ended badly: {status['counts']}")
    results = [json.loads(p.read_text()) for p in sorted(campaign.glob("jobs/*/attempt-1/result.json"))]
    return elapsed, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument(
        "--task-seconds", type=float, default=0.0, help="each emulated ORCA run takes this long (sleep=)"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary folders go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        raw = raw_drain(
            root / "raw", write_inputs(root / "raw" / "in", args.tasks, args.task_seconds), args.poll
        )
        ours, results = orca_hpc_drain(
            root / "ours", write_inputs(root / "ours" / "in", args.tasks, args.task_seconds), args.poll
        )
    each = f"{args.task_seconds:g} s each" if args.task_seconds else "as fast as the emulator goes"
    print(f"{args.tasks} emulated tasks ({each}), poll every {args.poll:g} s, local SLURM cluster")
    print("| drain | seconds | ratio to raw |")
    print("| :--- | ---: | ---: |")
    print(f"| raw sbatch --array, emulator directly | {raw:.1f} | 1.00 |")
    print(f"| orca-hpc submit + reconcile | {ours:.1f} | {ours / raw:.2f} |")
    verdict = "met" if ours <= 1.1 * raw else "NOT met"
    print(f"results read: {len(results)}; target orca-hpc <= 1.1x raw: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
