"""`orca-hpc check`, and the check a first submit to a site runs: problems found before queueing."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e import cli, ledger_bytes, new_campaign, orca_input, status, write_inputs

pytestmark = pytest.mark.slurm  # `sbatch --test-only` asks the real local cluster


def _override(camp: Path, text: str) -> None:
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text().replace("[overrides]\n", f"[overrides]\n{text}"))


def test_a_sound_site_passes(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    out = cli(camp, "check").output
    assert "no problem found" in out and "problem:" not in out
    assert "must see" in out  # what cannot be checked from here is said, not hidden


def test_the_site_declarations_are_checked_against_the_real_node(tmp_path: Path) -> None:
    import subprocess

    node = subprocess.run(
        ["scontrol", "show", "node", "-o"], capture_output=True, text=True, check=True
    ).stdout
    cpus = int(node.split("CPUTot=")[1].split()[0])
    memory = int(node.split("RealMemory=")[1].split()[0])
    camp = new_campaign(tmp_path)
    sound = cli(camp, "-v", "check").output
    assert f"ok: cores_per_node = 8 (the nodes have {cpus})" in sound and "problem:" not in sound
    _override(camp, f"[overrides.slurm]\ncores_per_node = {cpus + 1}\nmax_mem_mb = {memory + 1}\n")
    result = cli(camp, "check", expect=1)
    problems = [line for line in result.output.splitlines() if line.startswith("problem:")]
    assert len(problems) == 2, result.output
    assert f"cores_per_node = {cpus + 1} but the nodes" in problems[0] and f"have {cpus} " in problems[0]
    assert f"max_mem_mb = {memory + 1} but" in problems[1] and f"have {memory} MB" in problems[1]


def test_every_problem_is_listed_with_its_fix(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    _override(camp, '[overrides.orca]\npath = "/nonexistent/orca"\n[overrides.slurm]\npartition = "nosuch"\n')
    result = cli(camp, "check", expect=1)
    problems = [line for line in result.output.splitlines() if line.startswith("problem:")]
    assert len(problems) == 2, result.output
    assert "/nonexistent/orca does not exist" in problems[0]
    assert "invalid partition" in problems[1].lower() and "fix partition" in problems[1]
    assert result.output.strip().splitlines()[-1].startswith("orca-hpc: error: site ")


def test_a_first_submit_to_a_broken_site_records_nothing(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    _override(camp, '[overrides.orca]\npath = "/nonexistent/orca"\n')
    paths = write_inputs(tmp_path / "in", {"a.inp": orca_input(), "b.inp": "! B3LYP\n* xyz 0 1\nO 0 0\n*\n"})
    before = ledger_bytes(camp)
    result = cli(camp, "submit", *paths, expect=1)
    assert "problem: site " in result.output and "nothing submitted" in result.output
    # The inputs' problems come with the site's: one run names everything to fix.
    assert f"problem: {paths[1]}:3: atom line needs an element and 3 coordinates" in result.output
    assert ledger_bytes(camp) == before  # not a job recorded, not the check remembered


def test_the_check_runs_once_per_site_config(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    orca = tmp_path / "bin" / "orca"
    orca.parent.mkdir()
    orca.symlink_to(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "orca-emulator")
    if not orca.exists():  # a venv elsewhere (ORCA_HPC_VENV): use the emulator on PATH
        import shutil

        orca.unlink()
        orca.symlink_to(shutil.which("orca-emulator") or "orca-emulator")
    _override(camp, f'[overrides.orca]\npath = "{orca}"\n')
    paths = write_inputs(tmp_path / "in", {"a.inp": orca_input(), "b.inp": orca_input(extra="# b\n")})
    cli(camp, "submit", paths[0])  # checked and passed: remembered
    orca.unlink()  # broken now, but the site config is the same: no second check
    cli(camp, "submit", paths[1])
    assert len(status(camp)["jobs"]) == 2
    cli(camp, "cancel", "--all")
