"""`orca-hpc check`: find what would make every job fail, before anything is queued."""

from __future__ import annotations

from typing import Any

import click

from orca_hpc.cli.common import campaign_of
from orca_hpc.errors import UserError


def print_check(obj: Any, campaign: Any) -> bool:
    """Run the checks and print them; True when nothing is wrong."""
    from orca_hpc.controller.check import check_campaign

    report = check_campaign(campaign)
    quiet = getattr(obj, "quiet", False)
    for line in report.passed if getattr(obj, "verbose", 0) else []:
        click.echo(f"ok: {line}")
    for line in report.notes if not quiet else []:
        click.echo(f"note: {line}")
    for line in report.problems:
        click.echo(f"problem: {line}", err=True)
    return report.ok


@click.command("check")
@click.pass_obj
def check(obj: Any) -> None:
    """Check the campaign's site before queueing: ORCA path, the jobs' Python and folders, scratch,
    `sbatch --test-only` of the site's resources, mail settings, the ledger lock. Every problem is
    listed with its fix (exit 1 when there is one)."""
    campaign = campaign_of(obj)
    if not print_check(obj, campaign):
        raise UserError(f"site {campaign.site.name}: the check found problems (listed above)")
    if not getattr(obj, "quiet", False):
        click.echo(f"site {campaign.site.name}: no problem found")
