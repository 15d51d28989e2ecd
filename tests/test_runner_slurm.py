"""The runner under the real local SLURM cluster: walltime warning (USR1) and scancel (TERM).

The job script has the shape the controller renders: the batch shell starts the runner in the
background, forwards USR1/TERM to it and waits; an array of one, so the id is ``A_0``.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_runner_support import make_attempt, write_fake_orca

from orca_hpc.attempt.scratch import top_name

pytestmark = pytest.mark.slurm
# Runs until it is signalled; a short SCF so the emulator writes the .gbw early.
DIRECTIVES = "sleep=200, scf_cycles=4"

JOB_SCRIPT = """#!/bin/bash
#SBATCH --job-name={name}
#SBATCH --array=0-0
#SBATCH --time=5
#SBATCH --signal=B:USR1@50
#SBATCH --ntasks=1
#SBATCH --output={log}
runner_pid=""
trap 'if [ -n "$runner_pid" ]; then kill -USR1 "$runner_pid" 2>/dev/null; fi' USR1
trap 'if [ -n "$runner_pid" ]; then kill -TERM "$runner_pid" 2>/dev/null; else exit 143; fi' TERM
PYTHON={python}
MANIFEST={manifest}
"$PYTHON" -m orca_hpc.runner --manifest "$MANIFEST" --index "${{SLURM_ARRAY_TASK_ID:-0}}" &
runner_pid=$!
while true; do wait "$runner_pid"; rc=$?; kill -0 "$runner_pid" 2>/dev/null || break; done
exit "$rc"
"""


def _orca(tmp_path: Path) -> Path:
    """The project's ORCA emulator when it exists, else the tests' fake ORCA."""
    if importlib.util.find_spec("orca_hpc.emulator") is not None and shutil.which("orca-emulator"):
        return Path(shutil.which("orca-emulator") or "orca-emulator")
    return write_fake_orca(tmp_path)


def _submit(tmp_path: Path, attempt_dir: Path) -> str:
    manifest = tmp_path / "manifest"
    manifest.write_text(f"{attempt_dir}\n")
    script = tmp_path / "job.sh"
    script.write_text(
        JOB_SCRIPT.format(
            name=f"runnertest-{tmp_path.name}",
            log=shlex.quote(str(tmp_path / "slurm-%A_%a.out")),
            python=shlex.quote(sys.executable),
            manifest=shlex.quote(str(manifest)),
        )
    )
    proc = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def _wait_for(path: Path, timeout: float, job: str) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            subprocess.run(["scancel", job], check=False)
            pytest.fail(f"{path} did not appear within {timeout} s (job {job})")
        time.sleep(0.5)


def _wait_gone(job: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True, check=False).stdout
        if not out.strip():
            return
        time.sleep(0.5)
    pytest.fail(f"job {job} still in squeue after {timeout} s")


def _check_saved(attempt_dir: Path, scratch_root: Path, reason: str, job: str, gbw: bool = True) -> dict:
    result = json.loads((attempt_dir / "result.json").read_text())
    assert (result["outcome"], result["reason"], result["retryable"]) == ("truncated", reason, True)
    assert result["slurm_job_id"] == f"{job}_0"
    assert result["error"] is None and result["scratch_removed"] is True
    assert "h2_sp.out" in result["files"] and (attempt_dir / "h2_sp.out").stat().st_size > 0
    if gbw:
        assert "h2_sp.gbw" in result["files"] and (attempt_dir / "h2_sp.gbw").stat().st_size > 0
    assert not [p for p in attempt_dir.iterdir() if ".tmp" in p.name or "densities" in p.name]
    assert not list((scratch_root / top_name()).glob("*/attempt-*"))
    return result


def test_walltime_warning_saves_restart_files(tmp_path: Path) -> None:
    """The warning as SLURM delivers it (USR1 to the batch shell only, as --signal=B: does), sent once
    the orbitals exist: the runner stops ORCA and saves them. SLURM's own timer, which may send it up
    to 60 s early, is exercised by test_e2e_slurm's walltime test."""
    scratch_root = tmp_path / "scratch"
    scratch_root.mkdir()
    attempt_dir = make_attempt(tmp_path / "c", _orca(tmp_path), scratch_root, directives=DIRECTIVES)
    job = _submit(tmp_path, attempt_dir)  # 5 min: SLURM's own warning (up to 60 s early) comes later
    _wait_for(scratch_root / top_name() / "camp-j000001" / "attempt-1" / "h2_sp.gbw", 60, job)
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], check=True, timeout=30)
    _wait_for(attempt_dir / "result.json", 60, job)
    _wait_gone(job, 30)
    _check_saved(attempt_dir, scratch_root, "walltime", job)
    log = next(tmp_path.glob("slurm-*_0.out")).read_text()
    assert "truncated (walltime)" in log


def test_scancel_saves_files(tmp_path: Path) -> None:
    scratch_root = tmp_path / "scratch"
    scratch_root.mkdir()
    attempt_dir = make_attempt(tmp_path / "c", _orca(tmp_path), scratch_root, directives=DIRECTIVES)
    job = _submit(tmp_path, attempt_dir)
    scratch = scratch_root / top_name() / "camp-j000001" / "attempt-1"
    _wait_for(scratch / "h2_sp.gbw", 60, job)
    time.sleep(0.5)
    subprocess.run(["scancel", job], check=True, timeout=30)
    _wait_for(attempt_dir / "result.json", 20, job)
    _wait_gone(job, 30)
    _check_saved(attempt_dir, scratch_root, "cancelled", job)
