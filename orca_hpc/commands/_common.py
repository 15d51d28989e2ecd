"""What the campaign commands share: finding the campaign and the reconcile that starts most commands."""

from __future__ import annotations

from typing import Any

import click

from ..campaign import Campaign, load_campaign
from ..errors import TemporaryFailure


def campaign_of(obj: Any) -> Campaign:
    return load_campaign(obj.directory)


def say(obj: Any, message: str) -> None:
    if not getattr(obj, "quiet", False):
        click.echo(message)


def auto_reconcile(obj: Any, campaign: Campaign) -> None:
    """Bring the ledger up to date before showing it; a busy lock or an unreachable scheduler only warns
    (the command still shows what the ledger knows)."""
    from ..reconcile import reconcile

    try:
        reconcile(campaign, echo=(lambda m: say(obj, m)) if getattr(obj, "verbose", 0) else None)
    except TemporaryFailure as err:
        click.echo(f"orca-hpc: warning: not reconciled: {err}", err=True)


no_reconcile_option = click.option(
    "--no-reconcile", is_flag=True, help="Show the ledger as it is, without asking SLURM first."
)
