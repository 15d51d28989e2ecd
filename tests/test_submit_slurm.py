"""Submission that a cluster admin trusts (issue 5), on the real local cluster."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from e2e import cli, ledger_bytes, new_campaign, orca_input, reconcile_until_done, status, write_inputs

pytestmark = pytest.mark.slurm

HOSTILE = [
    "with space",
    "semi;colon",
    "dollar$(touch PWNED)",
    "back`touch PWNED`tick",
    "quote'single",
    'quote"double',
    "new\nline",
    "ünïcödé-分子",
    "-starts-with-dash",
]


def _queue(camp: Path) -> list[str]:
    """The campaign's jobs in squeue (their script lives in the campaign): other tests run beside this
    one on the same cluster, so the whole queue is not this test's to compare."""
    argv = ["squeue", "-h", "-o", "%i %j %o"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if str(camp) in line]


def test_dry_run_submits_nothing(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(tmp_path / "in", {"w.inp": orca_input(extra="%pal nprocs 2 end\n%maxcore 600\n")})
    before_ledger, before_queue = ledger_bytes(camp), _queue(camp)
    out = cli(camp, "submit", "--dry-run", *paths).output
    assert out.startswith("#!/bin/bash")
    assert "#SBATCH --ntasks=2" in out and "#SBATCH --mem=1500M" in out
    assert "orca_hpc.runner" in out and "srun" not in out and "mpirun" not in out
    assert ledger_bytes(camp) == before_ledger
    assert _queue(camp) == before_queue
    assert cli(camp, "render", *paths).output == out
    # --json: the same scripts as a document, still nothing recorded or queued
    document = json.loads(cli(camp, "submit", "--dry-run", "--json", *paths).stdout)
    assert document["kind"] == "submit_dry_run" and document["scripts"] == [out]
    assert ledger_bytes(camp) == before_ledger and _queue(camp) == before_queue


def test_hostile_file_names_run_and_cannot_inject(tmp_path: Path) -> None:
    folder = tmp_path / "in dir; $(touch PWNED)"
    camp = new_campaign(tmp_path, name="camp 'x' $(touch PWNED)")
    inputs = {f"{name}.inp": orca_input(extra=f"# {i}\n") for i, name in enumerate(HOSTILE)}
    paths = write_inputs(folder, inputs)
    cli(camp, "submit", *paths)
    final = reconcile_until_done(camp)
    assert final["counts"] == {"COMPLETED": len(HOSTILE)}
    assert sorted(j["name"] for j in final["jobs"]) == sorted(HOSTILE)
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
    for job in final["jobs"]:
        assert job["energy"] is not None


def test_arrays_respect_max_array_size(tmp_path: Path) -> None:
    """5 inputs with a max array size of 2 -> exactly 3 sbatch calls (2 + 2 + 1), all COMPLETED.

    The property (split at the site's limit, every task runs its own attempt) at its smallest size;
    the 10,000-job scale is measured by bench/bench_submit.py."""
    camp = new_campaign(tmp_path, overrides="\n[overrides.slurm]\nmax_array_size = 2\n")
    n = 5
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for i in range(n):
        path = folder / f"c{i:04d}.inp"
        path.write_text(orca_input(extra=f"# conformer {i}\n"))
        paths.append(str(path))
    report = json.loads(cli(camp, "submit", "--json", *paths).stdout)
    assert report["sbatch_calls"] == 3
    arrays: dict[str, int] = {}
    for s in report["submitted"]:
        array, _, task = s["slurm_job_id"].partition("_")
        arrays[array] = max(arrays.get(array, 0), int(task) + 1)
    assert sorted(arrays.values()) == [1, 2, 2]
    final = reconcile_until_done(camp)
    assert final["counts"] == {"COMPLETED": n}
    # each task ran the attempt its manifest line names: every job has its own energy and name
    assert sorted(j["name"] for j in final["jobs"]) == [f"c{i:04d}" for i in range(n)]
    assert all(j["energy"] is not None for j in final["jobs"])
    assert len(status(camp)["jobs"]) == n
