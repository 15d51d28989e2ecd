"""Helpers for the end-to-end tests: a campaign driven through the real CLI strings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from orca_hpc.cli import main

REPO = Path(__file__).resolve().parents[1]
WATER = """\
O    0.000000    0.000000    0.117790
H    0.000000    0.755453   -0.471161
H    0.000000   -0.755453   -0.471161
"""


def orca_input(
    method: str = "B3LYP def2-SVP", directive: str | None = None, extra: str = "", coords: str = WATER
) -> str:
    head = f"# emulate: {directive}\n" if directive else ""
    return f"{head}! {method}\n{extra}* xyz 0 1\n{coords}*\n"


def cli(campaign: Path, *args: str, expect: int | None = 0) -> Any:
    """Run `orca-hpc -C CAMPAIGN ARGS...` in-process; asserts the exit code unless expect is None."""
    result = CliRunner().invoke(main, ["-C", str(campaign), *args], catch_exceptions=False)
    if expect is not None:
        assert result.exit_code == expect, f"exit {result.exit_code}: {result.output}"
    return result


def cli_proc(
    campaign: Path, *args: str, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.Popen[str]:
    """`orca-hpc` as a separate process (for tests that kill it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "orca_hpc", "-C", str(campaign), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        **kw,
    )


def new_campaign(tmp_path: Path, name: str = "camp", overrides: str = "") -> Path:
    root = tmp_path / name
    cli(tmp_path, "init", str(root), "--site", "local-slurm")
    if overrides:
        config = root / "orca-hpc.toml"
        config.write_text(config.read_text() + overrides)
    return root


def fresh_copy(template: Path, where: Path) -> Path:
    """``where`` made anew as a copy of the campaign ``template`` (hypothesis runs one test many times)."""
    if where.exists():
        shutil.rmtree(where)
    shutil.copytree(template, where, symlinks=True)
    return where


def write_inputs(folder: Path, inputs: dict[str, str]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in inputs.items():
        path = folder / name
        path.write_text(text)
        paths.append(str(path))
    return paths


def status(campaign: Path, reconcile: bool = False) -> dict[str, Any]:
    args = ["status", "--json"] + ([] if reconcile else ["--no-reconcile"])
    return json.loads(cli(campaign, *args).stdout)


def reconcile_until_done(campaign: Path, timeout: float = 180.0) -> dict[str, Any]:
    """Reconcile until every job has finished; returns the final `status --json`."""
    deadline = time.monotonic() + timeout
    while True:
        cli(campaign, "reconcile")
        state = status(campaign)
        if all(j["state"] in ("COMPLETED", "PERMANENT_FAILED", "CANCELLED") for j in state["jobs"]):
            return state
        assert time.monotonic() < deadline, f"not done after {timeout} s: {state['counts']}"
        time.sleep(1.0)


def show(campaign: Path, job: str) -> dict[str, Any]:
    [record] = json.loads(cli(campaign, "show", "--no-reconcile", "--json", job).stdout)["jobs"]
    return record


def ledger_bytes(campaign: Path) -> bytes:
    return (campaign / ".orca-hpc" / "ledger.json").read_bytes()
