"""Campaign commands through the CLI without a scheduler: gc, presets for .xyz inputs."""

from __future__ import annotations

import re
from pathlib import Path

from e2e import cli

from orca_hpc.attempt.scratch import make_private_dir, top_name
from orca_hpc.config.campaign import load_campaign
from orca_hpc.controller.submit import prepare_inputs
from orca_hpc.ledger.states import JobState


def test_gc_removes_stale_scratch_and_orphaned_state_files(tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local-slurm")
    config = camp / "orca-hpc.toml"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    config.write_text(config.read_text() + f'\n[overrides.scratch]\nroot = "{scratch}"\n')
    campaign = load_campaign(camp)
    # What killed runners and finished arrays leave behind: no job of this campaign is active.
    make_private_dir(scratch / top_name())
    stale = scratch / top_name() / f"{campaign.slug}-j000007" / "attempt-2"
    stale.mkdir(parents=True)
    (stale / "x.tmp").write_text("junk")
    other = scratch / top_name() / "another-campaign-j000007" / "attempt-1"
    other.mkdir(parents=True)
    manifest = campaign.arrays_dir / "deadbeef.txt"
    manifest.write_text("/nowhere\n")
    logs = campaign.state_dir / "slurm-logs"
    logs.mkdir()
    (logs / "999_0.out").write_text("old log\n")
    (logs / "555_0.out").write_text("the log a person reads next\n")
    with campaign.ledger().transaction() as txn:  # a job that failed for good in array 555
        job = txn.add_job("bad", "bad.inp", "0" * 64, "local-slurm", max_retries=0)
        job.new_attempt("t/0").slurm_id = "555_0"
        for state in (JobState.SUBMITTING, JobState.PENDING, JobState.FAILED, JobState.PERMANENT_FAILED):
            txn.set_state(job, state)

    dry = cli(camp, "gc", "--dry-run").output
    assert str(stale.parent) in dry and str(manifest) in dry and "999_0.out" in dry
    assert stale.exists() and manifest.exists()
    assert "another-campaign" not in dry

    cli(camp, "gc")
    assert not stale.parent.exists() and not manifest.exists() and not (logs / "999_0.out").exists()
    assert other.exists()  # never another campaign's scratch
    assert (logs / "555_0.out").exists()  # kept: its job failed permanently


def test_xyz_with_a_named_preset_of_the_campaign(tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local-slurm")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[presets]\nopt = "r2SCAN-3c Opt TightOpt"\n')
    (tmp_path / "h2.xyz").write_text("2\nhydrogen\nH 0 0 0\nH 0 0 0.74\n")
    script = cli(camp, "render", "--method", "opt", str(tmp_path / "h2.xyz")).output
    assert script.startswith("#!/bin/bash")
    made = prepare_inputs(load_campaign(camp), [tmp_path / "h2.xyz"], method="opt")[0].plan.input_text
    assert "r2SCAN-3c Opt TightOpt" in made and "%maxcore" in made
    bad = cli(camp, "render", str(tmp_path / "h2.xyz"), expect=1).output
    assert "needs --method" in bad and len(bad.strip().splitlines()) == 1
    config.write_text(config.read_text().replace('opt = "r2SCAN-3c Opt TightOpt"', "opt = 3"))
    broken = cli(camp, "render", "--method", "opt", str(tmp_path / "h2.xyz"), expect=1).output
    assert "[presets]" in broken


def test_init_takes_the_sites_lock_kind(tmp_path: Path) -> None:
    # A site without flock (some parallel file systems) must not see one from `init` either.
    shipped = (Path(__file__).resolve().parents[1] / "site_configs" / "local.toml").read_text()
    site = tmp_path / "softsite.toml"
    site.write_text(
        re.sub(
            r"(?m)^lock_kind = .*$",
            'lock_kind = "soft"',
            shipped.replace('name = "local"', 'name = "softsite"'),
        )
    )
    assert 'lock_kind = "soft"' in site.read_text()
    cli(tmp_path, "init", str(tmp_path / "camp"), "--site", str(site))
    assert not (tmp_path / "camp" / ".orca-hpc" / "ledger.lock").exists()
    assert (tmp_path / "camp" / ".orca-hpc" / "ledger.json").is_file()


def test_every_problem_of_the_campaign_file_is_named_at_once(tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local-slurm")
    config = camp / "orca-hpc.toml"
    mistakes = '\nnme = "x"\nmethod_template = 1\n[presets]\nopt = 3\n'
    config.write_text(config.read_text().replace("\n[overrides]", mistakes))
    before = (camp / ".orca-hpc" / "ledger.json").read_bytes()
    said = cli(camp, "status", "--no-reconcile", expect=1).output.strip()
    assert len(said.splitlines()) == 1 and said.startswith("orca-hpc: error: 3 problems: ")
    assert "unknown key 'nme'" in said and "[presets]" in said and "method_template" in said
    assert (camp / ".orca-hpc" / "ledger.json").read_bytes() == before


def test_on_the_local_site_an_orca_missing_here_is_a_problem(tmp_path: Path) -> None:
    # The local site runs its jobs on this machine with this PATH: no compute node could have it.
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[overrides.orca]\npath = "no-such-orca-here"\n')
    said = cli(camp, "check", expect=1).output
    assert "problem: site local: [orca] path 'no-such-orca-here' is not on this machine's PATH" in said
    config.write_text(config.read_text().replace("no-such-orca-here", "orca-emulator"))
    said = cli(camp, "check").output
    assert "no problem found" in said
    assert "compute nodes" not in said  # nothing runs elsewhere: no note about other machines
