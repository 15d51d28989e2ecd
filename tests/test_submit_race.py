"""Simultaneous `orca-hpc submit` runs of one input (cron plus a person, two terminals): one job.

The duplicate check and the insert happen under one ledger lock (``controller.submit.submit``); a
check on an unlocked snapshot let two processes both see "new" and record the input twice.
"""

from __future__ import annotations

import json
from pathlib import Path

from e2e import cli, cli_proc, orca_input, status, write_inputs

SUBMITTERS = 8
INPUTS = 40


def test_simultaneous_submits_of_one_input_record_one_job(tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    config.write_text(
        config.read_text() + '\n[overrides.orca]\npath = "orca-emulator"\n'
        "[overrides.slurm]\narray_parallelism = 1\n"
    )
    # Many inputs per run: a longer insert is a wider window for the others' duplicate check.
    paths = write_inputs(tmp_path / "in", {f"w{i}.inp": orca_input(extra=f"# {i}\n") for i in range(INPUTS)})

    procs = [cli_proc(camp, "submit", "--json", *paths) for _ in range(SUBMITTERS)]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))

    jobs = status(camp)["jobs"]
    assert sorted(j["name"] for j in jobs) == sorted(f"w{i}" for i in range(INPUTS))
    skipped = [s for r in reports for s in r["skipped"]]
    assert len(skipped) == (SUBMITTERS - 1) * INPUTS
    assert {s["existing"] for s in skipped} == {j["id"] for j in jobs}
