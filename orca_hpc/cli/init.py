"""`orca-hpc init DIR --site NAME`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from orca_hpc.config.campaign import init_campaign


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--site", "site", required=True, help="Site config: a name from site_configs/ or a .toml path.")
@click.option("--name", default=None, help="Campaign name (default: the folder's name).")
@click.option(
    "--workflow", default=None, help="A workflow preset for the campaign's molecules (e.g. opt-freq-sp)."
)
@click.pass_obj
def init(obj: Any, directory: Path | None, site: str, name: str | None, workflow: str | None) -> None:
    """Create a campaign folder: its config, ledger and state folder."""
    root = directory if directory is not None else obj.directory
    if not root.is_absolute():
        root = obj.directory / root
    campaign = init_campaign(root, site, name, workflow)
    click.echo(f"initialised campaign {campaign.name!r} in {campaign.root} (site {campaign.site.name})")
    from orca_hpc.cli.check import print_check

    if not print_check(obj, campaign):  # the campaign is made; say now what would fail its jobs
        click.echo("fix the problems above before submitting (`orca-hpc check` shows them again)", err=True)
