"""The built wheel carries its templates and site configs: `pip install .` works, not only editable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_installed_wheel_finds_templates_and_sites(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheel = next(dist.glob("orca_hpc-*.whl"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    work = tmp_path / "elsewhere"  # not the repo: nothing can come from the source tree
    work.mkdir()
    probe = (
        "import orca_hpc, orca_hpc.scheduler.script as r, orca_hpc.config.site as s;"
        "print(orca_hpc.__file__); print(r.template_root()); print(s.shipped_site_dirs()[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=work, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert all(line.startswith(str(target)) for line in out), out
    assert (Path(out[1]) / "slurm" / "base.sh.j2").is_file()
    assert (Path(out[2]) / "local-slurm.toml").is_file()
    cli = [sys.executable, "-m", "orca_hpc"]
    subprocess.run(
        [*cli, "init", "camp", "--site", "local-slurm"], env=env, cwd=work, check=True, capture_output=True
    )
    (work / "w.inp").write_text("! B3LYP def2-SVP\n* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n")
    script = subprocess.run(
        [*cli, "-C", "camp", "render", "w.inp"], env=env, cwd=work, check=True, capture_output=True, text=True
    ).stdout
    assert script.startswith("#!/bin/bash") and "orca_hpc.runner" in script
