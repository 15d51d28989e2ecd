"""What the campaign commands share: finding the campaign and the reconcile that starts most commands."""

from __future__ import annotations

import logging
from typing import Any

import click

from orca_hpc.config.campaign import Campaign, load_campaign
from orca_hpc.errors import TemporaryFailure
from orca_hpc.logs import log_echoed


def campaign_of(obj: Any) -> Campaign:
    return load_campaign(obj.directory)


def say(obj: Any, message: str) -> None:
    """A short message for the terminal (unless -q); it goes to the campaign log as well."""
    if not getattr(obj, "quiet", False):
        click.echo(message)
    log_echoed(message)


def warn(message: str) -> None:
    """A warning on stderr (even with -q) and in the campaign log."""
    click.echo(f"orca-hpc: warning: {message}", err=True)
    log_echoed(message, logging.WARNING)


def auto_reconcile(obj: Any, campaign: Campaign) -> None:
    """Bring the ledger up to date before showing it; a busy lock or an unreachable scheduler only warns
    (the command still shows what the ledger knows)."""
    from orca_hpc.controller.reconcile import reconcile

    try:
        # Without -v what changed is not shown, but it still goes to the log.
        reconcile(campaign, echo=(lambda m: say(obj, m)) if getattr(obj, "verbose", 0) else log_echoed)
    except TemporaryFailure as err:
        warn(f"not reconciled: {err}")


no_reconcile_option = click.option(
    "--no-reconcile", is_flag=True, help="Show the ledger as it is, without asking SLURM first."
)


def printable(text: str) -> str:
    """A name from the ledger made safe for a terminal: control characters as ``\\xNN`` escapes.

    Job names come from file names, which may hold escape sequences (``\\x1b[2J`` clears the screen)
    or line breaks that would forge table rows.
    """
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
