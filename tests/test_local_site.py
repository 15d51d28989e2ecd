"""The `local` site: no SLURM, submitit's local executor on this machine."""

from __future__ import annotations

import json
import time
from pathlib import Path

from e2e import cli, orca_input, status, write_inputs


def test_local_site_runs_jobs_without_slurm_within_its_parallelism(tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[overrides.orca]\npath = "orca-emulator"\n')
    paths = write_inputs(
        tmp_path / "in",
        {f"m{i}.inp": orca_input(extra=f"# {i}\n") for i in range(3)}
        | {"hard.inp": orca_input(directive="scf_fail_unless=SlowConv")},
    )
    out = cli(camp, "submit", *paths).output
    # array_parallelism = 2 in site_configs/local.toml
    assert "recorded 4 job(s): submitted 2 in 1 scheduler call(s), 2 waiting for a free slot" in out
    assert sum(j["slurm_job_id"] is not None for j in status(camp)["jobs"]) == 2
    deadline = time.monotonic() + 120
    while True:
        cli(camp, "reconcile")
        state = status(camp)
        if all(j["state"] in ("COMPLETED", "PERMANENT_FAILED") for j in state["jobs"]):
            break
        assert time.monotonic() < deadline, state
        assert sum(j["state"] in ("PENDING", "RUNNING") for j in state["jobs"]) <= 2
        time.sleep(0.5)
    assert state["counts"] == {"COMPLETED": 4}
    assert all(j["slurm_job_id"].startswith("local-") for j in state["jobs"])
    hard = next(j for j in state["jobs"] if j["name"] == "hard")
    assert hard["attempts"] == 3


def test_submit_json_lists_the_jobs_waiting_for_a_slot(tmp_path: Path) -> None:
    # Issue 18: `submit --json` listed only the jobs handed to the scheduler, not those recorded and
    # waiting for one of the local site's slots (array_parallelism = 2).
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[overrides.orca]\npath = "orca-emulator"\n')
    paths = write_inputs(tmp_path / "in", {f"m{i}.inp": orca_input(extra=f"# {i}\n") for i in range(4)})
    out = json.loads(cli(camp, "submit", "--json", *paths).stdout)
    try:
        assert [j["name"] for j in out["jobs"]] == ["m0", "m1", "m2", "m3"] and out["waiting"] == 2
        states = {j["id"]: (j["state"], j["slurm_job_id"]) for j in out["jobs"]}
        in_ledger = {j["id"]: (j["state"], j["slurm_job_id"]) for j in status(camp)["jobs"]}
        assert states == in_ledger  # what submit said is what was recorded
        assert sorted(s for s, _sid in states.values()) == ["CREATED", "CREATED", "PENDING", "PENDING"]
        assert {j["id"] for j in out["submitted"]} == {i for i, (s, _sid) in states.items() if s == "PENDING"}
    finally:
        cli(camp, "cancel", "--all", expect=None)
