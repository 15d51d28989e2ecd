"""The Python API (`import orca_hpc`) drives a campaign as the CLI does, on the `local` site."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from e2e import orca_input

import orca_hpc
from orca_hpc.errors import UserError


def _campaign(tmp_path: Path) -> orca_hpc.CampaignHandle:
    camp = orca_hpc.create_campaign(str(tmp_path / "camp"), "local")
    config = camp.root / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[overrides.orca]\npath = "orca-emulator"\n')
    return camp


def test_a_notebook_campaign_from_submit_to_results(tmp_path: Path) -> None:
    camp = _campaign(tmp_path)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "a.inp").write_text(orca_input())
    (inputs / "b.inp").write_text(orca_input("PBE def2-SVP"))
    sent = camp.submit([str(inputs)])  # a folder, given as a str
    assert sent["schema"] == 1 and sent["kind"] == "submit"
    assert len(sent["submitted"]) + sent["waiting"] == 2
    deadline = time.monotonic() + 120
    while camp.counts() != {"COMPLETED": 2}:
        assert time.monotonic() < deadline, camp.counts()
        time.sleep(0.3)
    rows = camp.results(reconcile=False)
    assert [r["name"] for r in rows] == ["a", "b"]
    assert all(isinstance(r["energy_Eh"], float) for r in rows)
    assert len({tuple(r) for r in rows}) == 1  # the same columns in every row: a table as it is
    [record] = camp.jobs("a", reconcile=False)
    assert record["state"] == "COMPLETED" and record["attempts"][0]["outcome"] == "success"
    again = orca_hpc.open_campaign(camp.root / "jobs")  # from a sub-folder, like the CLI
    assert again.root == camp.root and again.results("b", reconcile=False)[0]["id"] == rows[1]["id"]


def test_errors_are_the_clis(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no orca-hpc\.toml"):
        orca_hpc.open_campaign(tmp_path)
    camp = _campaign(tmp_path)
    (tmp_path / "bad.inp").write_text("hello\n")
    with pytest.raises(UserError, match=r"bad\.inp"):
        camp.submit([tmp_path / "bad.inp"])
    assert camp.counts(reconcile=False) == {}  # nothing recorded
    with pytest.raises(UserError, match="name the jobs"):
        camp.cancel()


def test_a_first_submit_to_a_broken_site_names_the_inputs_problems_too(tmp_path: Path) -> None:
    camp = orca_hpc.create_campaign(str(tmp_path / "camp"), "local")
    config = camp.root / "orca-hpc.toml"
    config.write_text(config.read_text() + f'\n[overrides.orca]\npath = "{tmp_path / "no-orca"}"\n')
    (tmp_path / "bad.inp").write_text("! B3LYP\n* xyz 0 1\nO 0 0\n*\n")
    with pytest.raises(UserError) as refused:
        camp.submit([tmp_path / "bad.inp"])
    said = str(refused.value)
    assert said.startswith("2 problems: ") and "no-orca does not exist" in said
    assert f"{tmp_path / 'bad.inp'}:3: atom line" in said
    assert camp.counts(reconcile=False) == {}


def test_retry_and_cancel_answer_with_public_names(tmp_path: Path) -> None:
    camp = _campaign(tmp_path)
    (tmp_path / "fails.inp").write_text(orca_input(directive="input_error"))
    (tmp_path / "fine.inp").write_text(orca_input("PBE def2-SVP"))
    camp.submit([tmp_path / "fails.inp", tmp_path / "fine.inp"])
    deadline = time.monotonic() + 120
    while camp.counts() != {"COMPLETED": 1, "PERMANENT_FAILED": 1}:
        assert time.monotonic() < deadline, camp.counts()
        time.sleep(0.3)
    [failed] = camp.jobs(state="PERMANENT_FAILED", reconcile=False)
    [fine] = camp.jobs(state="COMPLETED", reconcile=False)
    cancelled = camp.cancel(name="*")
    assert cancelled["cancelled"] == [] and cancelled["skipped"] == [
        {"id": failed["id"], "state": "PERMANENT_FAILED"},
        {"id": fine["id"], "state": "COMPLETED"},
    ]
    retried = camp.retry(name="*")
    assert retried["retried"] == [failed["id"]]
    assert retried["skipped"] == [{"id": fine["id"], "state": "COMPLETED"}]
    assert [s["id"] for s in retried["submitted"]] == [failed["id"]]
    assert set(retried["submitted"][0]) == {"id", "name", "slurm_job_id"}
    while camp.counts() != {"COMPLETED": 1, "PERMANENT_FAILED": 1}:  # it fails again: nothing left running
        assert time.monotonic() < deadline, camp.counts()
        time.sleep(0.3)


def test_submit_warns_as_the_cli_does(tmp_path: Path) -> None:
    """What the CLI warns of (a method given for .inp inputs, which keep their own) reaches Python too."""
    camp = _campaign(tmp_path)
    (tmp_path / "a.inp").write_text(orca_input())
    (tmp_path / "bad.inp").write_text("hello\n")  # and nothing runs: the submit stops at this one
    warned = pytest.warns(UserWarning, match="--method applies to .xyz inputs only")
    with warned, pytest.raises(UserError, match=r"bad\.inp"):
        camp.submit([tmp_path / "a.inp", tmp_path / "bad.inp"], method="r2SCAN-3c")
    assert camp.counts(reconcile=False) == {}
