"""Shared test setup: tests marked ``slurm`` get the real local SLURM cluster (scripts/local-slurm.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "local-slurm.sh"


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """Start (or confirm) the local cluster; returns its "SLURM CLUSTER READY ..." line.

    Fails rather than skips: a silently skipped scheduler test would hide exactly the bugs it is for.
    """
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=900, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{SCRIPT} start did not finish within 900 s", pytrace=False)
    ready = [ln for ln in proc.stdout.splitlines() if ln.startswith("SLURM CLUSTER READY")]
    if proc.returncode != 0 or not ready:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        pytest.fail(f"{SCRIPT} start failed (exit {proc.returncode}):\n{tail}", pytrace=False)
    return ready[0]


@pytest.fixture(autouse=True)
def _slurm_for_marked_tests(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("slurm") is not None:
        request.getfixturevalue("slurm_cluster")
