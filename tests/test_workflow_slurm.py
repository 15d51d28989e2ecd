"""Workflows on the real local SLURM cluster with the ORCA emulator: a chain runs to its end, a failing
middle step stops only its molecule until a person fixes the step, a cancel stops one molecule, and a
controller killed between steps loses no step and runs none twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from e2e import cli, cli_proc, reconcile_until_done, show, status

from orca_hpc.ledger.store import Ledger
from orca_hpc.scheduler import slurm

pytestmark = pytest.mark.slurm

# The middle step (freq) is refused as an input error unless it says TightSCF (Opt and def2-TZVP keep
# the other steps running): the emulator reads the directive from the comment line every step carries.
STEPS = """
[workflow]
rmsd = 0.0  # keep every frame: these test conformers differ by less than real ones
[[workflow.steps]]
name = "opt"
method = "r2SCAN-3c Opt"
hand_over = ["orbitals"]
[[workflow.steps]]
name = "freq"
method = "r2SCAN-3c Freq"
gate = "no-imaginary"
hand_over = ["hessian"]
max_retries = 0
[[workflow.steps]]
name = "sp"
method = "wB97M-V def2-TZVP"
"""
ATOMS = "O 0 0 {z}\nH 0 0.7555 -0.4712\nH 0 -0.7555 -0.4712\n"


def _campaign(tmp_path: Path) -> Path:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local-slurm")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text() + STEPS)
    return camp


def _molecule(folder: Path, name: str, comment: str = "", frames: int = 1) -> str:
    path = folder / f"{name}.xyz"
    path.write_text("".join(f"3\n{comment}\n" + ATOMS.format(z=0.1178 + 0.01 * i) for i in range(frames)))
    return str(path)


def _jobs(camp: Path) -> list[dict[str, Any]]:
    return list(json.loads(cli(camp, "show", "--no-reconcile", "--json", "--all").stdout)["jobs"])


def _one_job_per_step(camp: Path) -> dict[tuple[str, int, str], dict[str, Any]]:
    jobs = _jobs(camp)
    keys = [(j["chain"]["molecule"], j["chain"]["conformer"], j["chain"]["step"]) for j in jobs]
    assert len(keys) == len(set(keys)), keys  # never a step twice
    return dict(zip(keys, jobs, strict=True))


def _tokens_in_slurm(camp: Path) -> dict[str, int]:
    """How many SLURM jobs carry each submission token of the campaign (must be exactly one)."""
    jobs = Ledger(camp / ".orca-hpc").snapshot().all_jobs()
    tokens = sorted({a.token.split("/")[0] for j in jobs for a in j.attempts if a.token})
    found = slurm.find_by_names([f"ohpc-{t}" for t in tokens])
    return {t: len({r.array_job_id or r.job_id for r in found.get(f"ohpc-{t}", [])}) for t in tokens}


def test_chain_failing_middle_step_fix_and_retry_and_cancel_of_one_molecule(tmp_path: Path) -> None:
    camp = _campaign(tmp_path)
    water = _molecule(tmp_path, "water", "charge=0 mult=1", frames=2)  # two conformers
    bad = _molecule(tmp_path, "bad", "emulate: input_error_unless=Opt|TightSCF|def2-TZVP")
    slow = _molecule(tmp_path, "slow", "emulate: sleep=60")
    cli(camp, "submit", water, bad, slow)
    said = cli(camp, "cancel", "--molecule", "slow").output
    assert "cancelled 1 job(s)" in said
    final = reconcile_until_done(camp)
    steps = _one_job_per_step(camp)
    assert {k: j["state"] for k, j in steps.items()} == {
        ("water", 1, "opt"): "COMPLETED", ("water", 1, "freq"): "COMPLETED", ("water", 1, "sp"): "COMPLETED",
        ("water", 2, "opt"): "COMPLETED", ("water", 2, "freq"): "COMPLETED", ("water", 2, "sp"): "COMPLETED",
        ("bad", 1, "opt"): "COMPLETED", ("bad", 1, "freq"): "PERMANENT_FAILED",
        ("slow", 1, "opt"): "CANCELLED",
    }  # fmt: skip
    sp = steps[("water", 2, "sp")]
    assert sp["chain"]["after"] == steps[("water", 2, "freq")]["id"]
    assert (Path(sp["attempts"][0]["folder"]) / "prev.hess").is_file()  # the Hessian, handed over
    # One digest, one line for the molecule that stopped.
    outbox = json.loads((camp / ".orca-hpc" / "ledger.json").read_text())["outbox"]
    assert len(outbox) == 1 and "molecule bad" in json.dumps(outbox) and "water" not in json.dumps(outbox)
    assert final["counts"]["COMPLETED"] == 7
    # The person fixes the step in orca-hpc.toml; retry makes the step again and the chain goes on.
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text().replace('"r2SCAN-3c Freq"', '"r2SCAN-3c TightSCF Freq"'))
    freq_id = steps[("bad", 1, "freq")]["id"]
    assert f"{freq_id}: runs the corrected input" in cli(camp, "retry", "--molecule", "bad").output
    reconcile_until_done(camp)
    steps = _one_job_per_step(camp)
    assert steps[("bad", 1, "sp")]["state"] == "COMPLETED"
    assert [a["corrections"][0]["handler"] for a in show(camp, freq_id)["attempts"][1:]] == ["manual"]
    assert ("slow", 1, "freq") not in steps  # the cancelled molecule stays stopped
    assert set(_tokens_in_slurm(camp).values()) == {1}


def _step_results(camp: Path, n: int) -> bool:
    """``n`` first steps have ended on the cluster, and sacct has what they used (reconcile waits for
    that before it finishes a job, and only then makes the next step)."""
    if len(list((camp / "jobs").glob("*/attempt-1/result.json"))) < n:
        return False
    ids = [a.slurm_id for j in Ledger(camp / ".orca-hpc").snapshot().all_jobs() for a in j.attempts]
    found = slurm.query_jobs([i for i in ids if i])
    return len(found) >= n and all(r.finished and not r.usage_pending for r in found.values())


def test_controller_killed_between_steps_loses_none_and_runs_none_twice(tmp_path: Path) -> None:
    camp = _campaign(tmp_path)
    cli(camp, "submit", _molecule(tmp_path, "a"), _molecule(tmp_path, "b"))
    deadline = time.monotonic() + 120
    while not _step_results(camp, 2):  # both first steps have ended on the cluster
        assert time.monotonic() < deadline
        time.sleep(0.3)
    # The reconcile that records them and makes the next steps is killed right after sbatch took them.
    fake = tmp_path / "bin"
    fake.mkdir()
    real = subprocess.run(["which", "sbatch"], capture_output=True, text=True, check=True).stdout.strip()
    (fake / "sbatch").write_text(
        f'#!/bin/bash\ncase " $* " in *" --test-only "*) exec "{real}" "$@";; esac\n'
        f'"{real}" "$@"\nrc=$?\nkill -9 $PPID\nexit $rc\n'
    )
    (fake / "sbatch").chmod(0o755)
    proc = cli_proc(camp, "reconcile", env={"PATH": f"{fake}:{os.environ['PATH']}"})
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    states = {j["name"]: j["state"] for j in status(camp)["jobs"]}
    assert states == {
        "a.c1.opt": "COMPLETED",
        "b.c1.opt": "COMPLETED",
        "a.c1.freq": "SUBMITTING",
        "b.c1.freq": "SUBMITTING",
    }
    reconcile_until_done(camp)
    steps = _one_job_per_step(camp)
    assert len(steps) == 6 and {j["state"] for j in steps.values()} == {"COMPLETED"}
    assert all(len(j["attempts"]) == 1 for j in steps.values())
    assert set(_tokens_in_slurm(camp).values()) == {1}  # the killed submission was adopted, not repeated
