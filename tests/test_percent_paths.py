"""A `%` in the campaign's path (issue 18): sbatch and submitit expand `%j`, `%A`, ... in file names.

Before the fix every job of a campaign under such a folder lost its log (SLURM) or died at once
(local site: submitit's controller could not open its log).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from e2e import cli, new_campaign, orca_input, reconcile_until_done, status, write_inputs

from orca_hpc.config.campaign import load_campaign
from orca_hpc.scheduler import scheduler_for
from orca_hpc.scheduler.base import ArrayRequest
from orca_hpc.scheduler.script import slurm_filename

PERCENT = "run 50%j %A%%a"


def test_slurm_filename_doubles_every_percent() -> None:
    assert slurm_filename("/a/50%j/%%x") == "/a/50%%j/%%%%x"
    assert slurm_filename("/plain") == "/plain"


def test_rendered_output_pattern_keeps_the_folder_literal(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path, name=PERCENT)
    request = ArrayRequest(
        token="t", attempt_dirs=(camp / "jobs" / "j000001" / "attempt-1",), nprocs=1, mem_mb=1000, time_min=10
    )
    script = scheduler_for(load_campaign(camp)).render(request)
    (line,) = [x for x in script.splitlines() if x.startswith("#SBATCH --output=")]
    assert line == f'#SBATCH --output="{tmp_path}/run 50%%j %%A%%%%a/.orca-hpc/slurm-logs/%A_%a.out"'


def test_local_site_runs_in_a_folder_with_percent(tmp_path: Path) -> None:
    camp = tmp_path / PERCENT
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[overrides.orca]\npath = "orca-emulator"\n')
    cli(camp, "submit", *write_inputs(tmp_path / "in", {"w.inp": orca_input()}))
    deadline = time.monotonic() + 120
    while status(camp)["jobs"][0]["state"] not in ("COMPLETED", "PERMANENT_FAILED"):
        assert time.monotonic() < deadline, status(camp)
        time.sleep(0.3)
        cli(camp, "reconcile")
    final = status(camp)
    assert final["counts"] == {"COMPLETED": 1} and final["jobs"][0]["attempts"] == 1


@pytest.mark.slurm
def test_slurm_job_in_a_folder_with_percent_keeps_its_log(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path, name=PERCENT)
    cli(camp, "submit", *write_inputs(tmp_path / "in", {"w.inp": orca_input()}))
    final = reconcile_until_done(camp)
    assert final["counts"] == {"COMPLETED": 1}
    logs = list((camp / ".orca-hpc" / "slurm-logs").glob("*_0.out"))
    assert len(logs) == 1 and logs[0].stat().st_size > 0
