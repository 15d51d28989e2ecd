"""`orca-hpc gc` through the CLI: stale scratch and files that no active job needs."""

from __future__ import annotations

from pathlib import Path

from e2e import cli

from orca_hpc.campaign import load_campaign


def test_gc_removes_stale_scratch_and_orphaned_state_files(tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local-slurm")
    config = camp / "orca-hpc.toml"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    config.write_text(config.read_text() + f'\n[overrides.scratch]\nroot = "{scratch}"\n')
    campaign = load_campaign(camp)
    # What killed runners and finished arrays leave behind: no job of this campaign is active.
    stale = scratch / "orca-hpc" / f"{campaign.slug}-j000007" / "attempt-2"
    stale.mkdir(parents=True)
    (stale / "x.tmp").write_text("junk")
    other = scratch / "orca-hpc" / "another-campaign-j000007" / "attempt-1"
    other.mkdir(parents=True)
    manifest = campaign.arrays_dir / "deadbeef.txt"
    manifest.write_text("/nowhere\n")
    logs = campaign.state_dir / "slurm-logs"
    logs.mkdir()
    (logs / "999_0.out").write_text("old log\n")

    dry = cli(camp, "gc", "--dry-run").output
    assert str(stale.parent) in dry and str(manifest) in dry and "999_0.out" in dry
    assert stale.exists() and manifest.exists()
    assert "another-campaign" not in dry

    cli(camp, "gc")
    assert not stale.parent.exists() and not manifest.exists() and not (logs / "999_0.out").exists()
    assert other.exists()  # never another campaign's scratch
