"""``orca-hpc ledger check`` / ``orca-hpc ledger restore``: inspect and repair the ledger."""

from __future__ import annotations

import sys

import click

from orca_hpc.errors import EXIT_ERROR
from orca_hpc.ledger.lock import LOCK_KINDS
from orca_hpc.ledger.store import Ledger

_lock_kind = click.option(
    "--lock-kind",
    type=click.Choice(LOCK_KINDS),
    default="flock",
    show_default=True,
    help='Use "soft" on file systems without flock (as the site config says).',
)


def _ledger(ctx: click.Context, lock_kind: str) -> Ledger:
    return Ledger(ctx.obj.directory / ".orca-hpc", lock_kind=lock_kind)


@click.group("ledger")
def ledger() -> None:
    """Check the campaign's ledger or restore it from its backup."""


@ledger.command("check")
@_lock_kind
@click.pass_context
def check(ctx: click.Context, lock_kind: str) -> None:
    """Validate the ledger, its backup and the archive; print counts. Exit 1 if damaged."""
    report = _ledger(ctx, lock_kind).check()
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if report.ok:
        if not ctx.obj.quiet:
            click.echo(report.summary())
        return
    # One line per damaged file, each saying the way back.
    for problem in report.problems:
        if report.backup_ok and not report.ledger_ok and problem.startswith(f"ledger {report.ledger.path}"):
            problem += " (the backup is good)"
        click.echo(f"orca-hpc: error: {problem}", err=True)
    sys.exit(EXIT_ERROR)


@ledger.command("restore")
@click.option("--force", is_flag=True, help="Replace the ledger with the backup even if it is not damaged.")
@_lock_kind
@click.pass_context
def restore(ctx: click.Context, force: bool, lock_kind: str) -> None:
    """Put back the previous generation (ledger.json.bak); the replaced file is kept aside."""
    led = _ledger(ctx, lock_kind)
    aside = led.restore(force=force)
    if aside is not None:
        click.echo(f"saved the replaced ledger as {aside}")
    click.echo(f"restored {led.path} from {led.backup_path}")
    click.echo(led.check().summary())
