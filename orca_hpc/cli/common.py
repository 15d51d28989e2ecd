"""What the campaign commands share: finding the campaign and the reconcile that starts most commands."""

from __future__ import annotations

import logging
from typing import Any

import click

from orca_hpc.config.campaign import Campaign, load_campaign
from orca_hpc.errors import TemporaryFailure
from orca_hpc.logs import held_records, log_echoed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orca_hpc.ledger.store import LedgerView


def campaign_of(obj: Any) -> Campaign:
    return load_campaign(obj.directory)


def say(obj: Any, message: str) -> None:
    """A short message for the terminal (unless -q); it goes to the campaign log as well. Job names
    and result messages in it are shown with their control characters escaped, line by line."""
    message = "\n".join(printable(line) for line in message.split("\n"))
    if not getattr(obj, "quiet", False):
        click.echo(message)
    log_echoed(message)


def warn(message: str) -> None:
    """A warning on stderr (even with -q) and in the campaign log."""
    message = "\n".join(printable(line) for line in message.split("\n"))
    click.echo(f"orca-hpc: warning: {message}", err=True)
    log_echoed(message, logging.WARNING)


def warn_owed_mail(obj: Any, campaign: Campaign, view: LedgerView | None = None) -> None:
    """Once per command: failure notifications are waiting and nothing can send them. ``view``: the
    ledger as the command read it last (an empty outbox owes nothing: the mail modules stay unloaded)."""
    if getattr(obj, "warned_owed_mail", False) or (view is not None and not view.outbox):
        return
    from orca_hpc.notify.outbox import owed_without_mail

    owed = owed_without_mail(campaign)
    if owed:
        warn(
            f"{owed} notification(s) are waiting in the outbox but the campaign has no [mail] settings; "
            "add a [mail] table to orca-hpc.toml (see the README's Mail section) and run `orca-hpc notify`"
        )
        if obj is not None:
            obj.warned_owed_mail = True


def auto_reconcile(obj: Any, campaign: Campaign) -> LedgerView:
    """Bring the ledger up to date before showing it, and return it (a read-only view); a busy lock or
    an unreachable scheduler only warns (the command still shows what the ledger knows).

    When nothing in the ledger could change (``needs_reconcile``: no job queued, running or waiting to
    be sent, no pause), no lock is taken, no scheduler asked and the ledger is read once."""
    from orca_hpc.controller.watched import needs_reconcile

    view = campaign.ledger().snapshot()
    if needs_reconcile(view):
        from orca_hpc.controller.reconcile import reconcile

        try:
            # Without -v what changed is not shown, but it still goes to the log: in one append at the end.
            with held_records():
                echo = (lambda m: say(obj, m)) if getattr(obj, "verbose", 0) else log_echoed
                reconcile(campaign, echo=echo, view=view)
        except TemporaryFailure as err:
            warn(f"not reconciled: {err}")
        view = campaign.ledger().snapshot()
    warn_owed_mail(obj, campaign, view)
    return view


def one_format(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Callback of the flags that choose one output format (``--csv``, ``--json``, ``--summary``): naming
    two is a usage error, not the silent choice of one of them. (Each flag has its own name: flags that
    share one see only the last value given.)"""
    if value is True:
        given = ctx.meta.setdefault("orca_hpc.formats", [])
        given.append(param.opts[0])
        if len(given) > 1:
            raise click.UsageError(f"{' and '.join(given)}: choose one output format")
    return value


no_reconcile_option = click.option(
    "--no-reconcile", is_flag=True, help="Show the ledger as it is, without asking SLURM first."
)


def selection_options(f: Any) -> Any:
    """JOBS... (ids or names), ``--state`` (repeatable), ``--name GLOB``, ``--all``: the one way every
    command chooses jobs (``orca_hpc.controller.select``)."""
    from orca_hpc.ledger.states import JobState

    for option in reversed(
        [
            click.argument("refs", metavar="[JOB]...", nargs=-1),
            click.option(
                "--state",
                "states",
                multiple=True,
                type=click.Choice([s.value for s in JobState], case_sensitive=False),
                help="Only jobs in this state (repeatable).",
            ),
            click.option("--name", "name_glob", default=None, help="Only jobs whose name matches this glob."),
            click.option("--all", "everything", is_flag=True, help="Every job of the campaign."),
        ]
    ):
        f = option(f)
    return f


def selector_of(
    refs: tuple[str, ...],
    states: tuple[str, ...],
    name_glob: str | None,
    everything: bool,
    *,
    required: bool,
    molecule: str | None = None,
) -> Any:
    """The ``Selector`` for the options of ``selection_options``; ``required``: an empty selection is a
    usage error (commands that change jobs, or show one), else it means every job."""
    from orca_hpc.controller.select import Selector

    selector = Selector(tuple(refs), tuple(s.upper() for s in states), name_glob, everything, molecule)
    if selector.empty:
        if required:
            # --molecule only where the command has it (retry, cancel): `show` would refuse it
            ctx = click.get_current_context(silent=True)
            by_molecule = ctx is not None and any(p.name == "molecule" for p in ctx.command.params)
            ways = "--state, --name GLOB, --molecule," if by_molecule else "--state, --name GLOB,"
            raise click.UsageError(f"name the jobs: JOB ids or names, {ways} or --all")
        return Selector(everything=True)
    return selector


molecule_option = click.option(
    "--molecule", default=None, help="Workflow jobs of this molecule (every step and conformer)."
)


def printable(text: str) -> str:
    """A name from the ledger made safe for a terminal: control characters as ``\\xNN`` escapes.

    Job names come from file names, which may hold escape sequences (``\\x1b[2J`` clears the screen)
    or line breaks that would forge table rows.
    """
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
