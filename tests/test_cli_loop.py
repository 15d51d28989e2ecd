"""The chemist's loop through the real CLI strings: finding the campaign, selecting jobs, honest output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from e2e import cli, new_campaign, orca_input

from orca_hpc.cli import main


def _run(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == expect, f"exit {result.exit_code}: {result.output}"
    return result.output


def test_commands_find_the_campaign_from_a_sub_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = new_campaign(tmp_path)
    deep = camp / "inputs" / "batch1"
    deep.mkdir(parents=True)
    (deep / "h2.inp").write_text(orca_input())
    monkeypatch.chdir(deep)
    # No -C: the campaign is the nearest folder up with orca-hpc.toml; relative inputs stay relative
    # to where the command was typed.
    assert json.loads(_run("status", "--no-reconcile", "--json"))["jobs"] == []
    assert _run("render", "h2.inp").startswith("#!/bin/bash")
    # -C into a sub-folder works the same way.
    monkeypatch.chdir(tmp_path)
    assert json.loads(_run("-C", str(deep), "status", "--no-reconcile", "--json"))["jobs"] == []
    # Outside any campaign: one clear line, exit 1.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    message = _run("-C", str(outside), "status", "--no-reconcile", expect=1)
    assert "not an orca-hpc campaign" in message and "any parent folder" in message
    # init still makes a new campaign where it is told, even inside another one.
    _run("-C", str(deep), "init", "nested", "--site", "local-slurm")
    assert (deep / "nested" / "orca-hpc.toml").is_file()
    assert cli(camp, "status", "--no-reconcile").output.strip().endswith("no jobs")
