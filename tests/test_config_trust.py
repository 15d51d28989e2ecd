"""The configs that decide what runs as the campaign's owner (the campaign's orca-hpc.toml, a site
config: ORCA's path, setup lines, modules, job script templates) are refused when another user could
have changed them, as the runner refuses such a spec.json or input: otherwise a group member edits
`[overrides.orca] path` and the controller itself writes their program into a trusted spec.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from orca_hpc.config.campaign import init_campaign, load_campaign
from orca_hpc.config.site import load_site_file
from orca_hpc.errors import UserError


@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_a_campaign_config_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    init_campaign(tmp_path / "camp", "local-slurm")
    config = tmp_path / "camp" / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[overrides.orca]\npath = "/home/someone-else/not-orca"\n')
    config.chmod(mode)
    with pytest.raises(UserError, match=r"orca-hpc\.toml.*writable by (the group|others).*chmod go-w"):
        load_campaign(tmp_path / "camp")
    config.chmod(0o640)
    assert load_campaign(tmp_path / "camp").site.orca_path == "/home/someone-else/not-orca"


def test_a_site_config_others_may_write_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "mysite.toml"
    site.write_text('scheduler = "local"\n[orca]\npath = "orca"\n')
    site.chmod(0o664)
    with pytest.raises(UserError, match=r"mysite\.toml.*writable by the group"):
        load_site_file(site)
    site.chmod(0o644)
    assert load_site_file(site).orca_path == "orca"


def test_a_site_job_template_others_may_write_is_refused(tmp_path: Path) -> None:
    """A site's own job.sh.j2 is shell that runs as the campaign's owner: refused like its config."""
    from test_render import golden_context, site_with_templates

    from orca_hpc.scheduler.script import render_job_script

    site = site_with_templates(tmp_path, {"job.sh.j2": '{% extends "base.sh.j2" %}\n'})
    template = tmp_path / "mysite-templates" / "job.sh.j2"
    template.chmod(0o664)
    with pytest.raises(UserError, match=r"job\.sh\.j2.*writable by the group"):
        render_job_script(site, golden_context(site))
    template.chmod(0o644)
    assert "-m orca_hpc.runner" in render_job_script(site, golden_context(site))


def test_a_shipped_site_config_is_read_whatever_the_umask_that_installed_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip and git create files by the umask: 0664 under umask 002, and the README's `--site local`
    was refused in such a clone or install. A shipped config is as writable as the code beside it."""
    import shutil

    from orca_hpc import shipped as shipped_module
    from orca_hpc.config import site
    from orca_hpc.config.site import load_site

    installed = tmp_path / "install"
    (installed / "site_configs").mkdir(parents=True)
    shipped = installed / "site_configs" / "local.toml"
    shutil.copy(site.shipped_dir("site_configs") / "local.toml", shipped)
    shipped.chmod(0o664)
    for module in (site, shipped_module):
        monkeypatch.setattr(module, "shipped_dir", lambda name: installed / name)
    assert load_site("local").scheduler == "local"
    copied = tmp_path / "mine" / "local.toml"  # a person's copy of it is theirs to guard
    copied.parent.mkdir()
    shutil.copy(shipped, copied)
    copied.chmod(0o664)
    with pytest.raises(UserError, match=r"local\.toml: site config is writable by the group"):
        load_site_file(copied)
