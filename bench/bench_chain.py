"""Benchmark a workflow's next steps against `submit`, per job, in one run (issue 17: "turning N
completed steps into the next step's jobs costs the same per job as submit").

Usage: python bench/bench_chain.py [--molecules 1000] [--repeat R] [--dir DIR] [--profile N]

A campaign with a two-step workflow (opt with `hand_over = ["orbitals"]`, then a single point) on the
in-memory FakeScheduler (no SLURM: both sides pay the same for the scheduler, which is not measured
here). N distinct water molecules are submitted (the reference: CPU per job of `submit`, which reads,
validates, records and dispatches the first steps). Then every first step is given what the runner
leaves (result.json, ORCA's final .xyz and .gbw) and one `reconcile` completes them all and makes and
dispatches the next steps. The same is done, in the same run, for a campaign of plain jobs (no
workflow), whose reconcile only completes them: the difference is what making the next steps costs,
compared per job with submit's. Printed as ratios.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

from orca_hpc.config.campaign import init_campaign, load_campaign
from orca_hpc.controller.reconcile import reconcile
from orca_hpc.controller.submit import submit
from orca_hpc.perms import FILE_MODE
from orca_hpc.scheduler.fake import FakeScheduler

STEPS = """
[workflow]
rmsd = 0.0
[[workflow.steps]]
name = "opt"
method = "r2SCAN-3c Opt Freq"
hand_over = ["orbitals"]
[[workflow.steps]]
name = "sp"
method = "wB97M-V def2-TZVP"
"""


def _water(i: int) -> str:
    z = 0.1178 + i * 1e-5  # distinct geometries, so distinct jobs
    return f"3\nwater {i}\nO 0 0 {z:.6f}\nH 0 0.7555 -0.4712\nH 0 -0.7555 -0.4712\n"


def _leave_results(root: Path, fake: FakeScheduler) -> int:
    """What the runner leaves for every first step, and the scheduler's COMPLETED."""
    campaign = load_campaign(root)
    jobs = campaign.ledger().snapshot().all_jobs()
    for job in jobs:
        att = job.latest
        folder = root / att.dir
        base = json.loads((folder / "spec.json").read_text())["input"][: -len(".inp")]
        (folder / f"{base}.xyz").write_text(_water(0).replace("water 0", f"final of {job.id}"))
        (folder / f"{base}.gbw").write_bytes(b"orbitals")
        (folder / f"{base}.gbw").chmod(FILE_MODE)  # as the runner copies it back
        body = {"result_version": 1, "job_id": job.id, "attempt": att.n, "outcome": "success",
                "retryable": False, "energy": -76.0, "classification": {"n_imaginary": 0}}  # fmt: skip
        (folder / "result.json").write_text(json.dumps(body))
        assert att.slurm_id is not None
        fake.finish(att.slurm_id)
    return len(jobs)


def _cpu(fn: object, profile: int) -> tuple[float, str]:
    prof = cProfile.Profile() if profile else None
    t0 = time.process_time()
    if prof:
        prof.enable()
    fn()  # type: ignore[operator]
    if prof:
        prof.disable()
    spent = time.process_time() - t0
    text = ""
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(profile)
        text = out.getvalue()
    return spent, text


def _run(tmp: Path, label: str, molecules: int, steps: str, profile: int) -> tuple[int, float, float, str]:
    """One campaign: submit N molecules, complete them all, reconcile once. CPU seconds of both."""
    root = tmp / label
    init_campaign(root, "local-slurm")
    (root / "orca-hpc.toml").write_text((root / "orca-hpc.toml").read_text() + steps)
    inputs = tmp / f"{label}-molecules"
    inputs.mkdir()
    paths = []
    for i in range(molecules):
        path = inputs / f"w{i:05d}.xyz"
        path.write_text(_water(i))
        paths.append(path)
    fake = FakeScheduler()
    campaign = load_campaign(root)
    method = None if steps else "r2SCAN-3c Opt Freq"  # plain jobs: the first step's method line
    submit_cpu, submit_prof = _cpu(lambda: submit(campaign, paths, method=method, scheduler=fake), profile)
    n = _leave_results(root, fake)
    campaign = load_campaign(root)
    step_cpu, step_prof = _cpu(lambda: reconcile(campaign, scheduler=fake), profile)
    jobs = load_campaign(root).ledger().snapshot().all_jobs()
    made = sum(1 for j in jobs if j.chain and j.chain["step"] == "sp")
    if steps and made != n:
        raise SystemExit(f"bench_chain: {made} next steps made for {n} completed first steps")
    text = f"--- {label}: submit ---\n{submit_prof}--- {label}: reconcile ---\n{step_prof}" if profile else ""
    return n, submit_cpu, step_cpu, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molecules", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1, help="pairs of campaigns, one after the other")
    parser.add_argument("--dir", default=None, help="where the campaigns live (default: a temp dir)")
    parser.add_argument("--profile", type=int, default=0, help="print the N top cumulative entries")
    args = parser.parse_args()
    rows = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            folder, size, depth = Path(tmp), args.molecules, args.profile
            n, plain_submit, plain_done, plain_prof = _run(folder, "plain", size, "", depth)
            n, flow_submit, flow_done, flow_prof = _run(folder, "chain", size, STEPS, depth)
        ms = 1e3 / n
        next_steps = flow_done - plain_done
        rows.append((next_steps / flow_submit, plain_submit * ms, flow_submit * ms, plain_done * ms,
                     flow_done * ms, next_steps * ms))  # fmt: skip
        if args.profile:
            print(plain_prof + flow_prof)
    print(f"molecules: {n}, pairs of runs: {len(rows)} (medians; per run: ratio)")
    med = [statistics.median(col) for col in zip(*rows, strict=True)]
    print(f"submit, plain .xyz jobs:                 {med[1]:.2f} ms CPU per job")
    print(f"submit, a workflow's first steps:        {med[2]:.2f} ms CPU per job")
    print(f"reconcile completing plain jobs:         {med[3]:.2f} ms CPU per job")
    print(f"reconcile completing steps + next steps: {med[4]:.2f} ms CPU per job")
    print(f"making the next steps (the difference):  {med[5]:.2f} ms CPU per job")
    each = ", ".join(f"{row[0]:.2f}" for row in rows)
    print(f"ratio next steps / submit of the first steps: {med[0]:.2f}x (each run: {each})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
