"""Paused means paused: `submit` and `retry` record but do not hand attempts to the scheduler while
the campaign is paused by environment failures, and what waited runs with the fixed configuration."""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path

from e2e import cli, orca_input, show, status, write_inputs

from orca_hpc.attempt.folder import AttemptSpec
from orca_hpc.config.campaign import load_campaign
from orca_hpc.controller import environment
from orca_hpc.controller.ending import AttemptEnd
from orca_hpc.orca.outcomes import Outcome


def _paused_campaign(tmp_path: Path, orca: Path) -> Path:
    """A local-site campaign whose ORCA path is broken, paused after two environment failures."""
    root = tmp_path / "camp"
    cli(tmp_path, "init", str(root), "--site", "local")
    config = root / "orca-hpc.toml"
    config.write_text(
        config.read_text()
        + f'\n[overrides.orca]\npath = "{orca}"\n[overrides.retry]\npause_after_environment_failures = 2\n'
    )
    camp = load_campaign(root)
    end = AttemptEnd(Outcome.ENVIRONMENT_ERROR, "orca_missing", True, "environment (orca_missing): not found")
    ledger = camp.ledger()
    with ledger.lock, ledger.transaction() as txn:
        for n in range(2):
            environment.note_end(txn, end, types.SimpleNamespace(id=f"j{n}"), camp, lambda _m: None)
    return root


def test_submit_and_retry_hold_while_paused_and_run_with_the_fixed_orca_path(tmp_path: Path) -> None:
    broken = tmp_path / "old" / "orca"
    camp = _paused_campaign(tmp_path, broken)
    paths = write_inputs(tmp_path / "in", {"a.inp": orca_input(), "b.inp": orca_input(extra="# b\n")})

    # --no-check: the site check would refuse the broken path outright; here it broke after submitting
    said = cli(camp, "submit", "--no-check", paths[0]).output
    assert "recorded 1 job(s); the campaign is paused (orca_missing" in said
    assert "they start when it resumes" in said
    report = json.loads(cli(camp, "submit", "--no-check", "--json", paths[1]).stdout)  # warnings: stderr
    assert report["submitted"] == [] and report["held"] == 1 and report["paused"]["reason"] == "orca_missing"
    state = status(camp)
    assert state["counts"] == {"CREATED": 2} and state["paused"] is not None
    for job in state["jobs"]:
        assert job["slurm_job_id"] is None  # never handed to the scheduler
    first = state["jobs"][0]["id"]
    assert not any((camp / ".orca-hpc").glob("submitit/tokens/*"))  # the local site started nothing

    # A person's retry is held the same way (cancel first: retry takes CANCELLED jobs).
    cli(camp, "cancel", first)
    said = cli(camp, "retry", first).output
    assert "recorded 1 job(s); the campaign is paused (orca_missing" in said
    record = show(camp, first)
    assert (
        record["state"] == "CREATED"
        and len(record["attempts"]) == 2
        and record["attempts"][1]["slurm_job_id"] is None
    )

    # The fix is a NEW path in the campaign config: the held attempts must run with it.
    fixed = tmp_path / "new" / "orca"
    fixed.parent.mkdir()
    fixed.symlink_to(Path(sys.executable).parent / "orca-emulator")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text().replace(str(broken), str(fixed)))
    deadline = time.monotonic() + 120
    while True:
        state = status(camp, reconcile=True)
        if all(j["state"] == "COMPLETED" for j in state["jobs"]):
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.5)
    assert state["paused"] is None
    for job in state["jobs"]:
        latest = show(camp, job["id"])["attempts"][-1]
        assert AttemptSpec.read(camp / latest["folder"]).orca == str(fixed)
