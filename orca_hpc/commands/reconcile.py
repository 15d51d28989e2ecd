"""`orca-hpc reconcile` and `orca-hpc watch`."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import click

from ..errors import OrcaHpcError, TemporaryFailure
from ..reconcile import ReconcileReport
from ..reconcile import reconcile as run_reconcile
from ._common import campaign_of, say


def _report_json(report: ReconcileReport) -> str:
    return json.dumps(
        {
            "changes": [{"id": i, "from": a, "to": b} for i, a, b in report.changes],
            "submitted": [{"id": i, "name": n, "slurm_job_id": s} for i, n, s in report.submitted],
            "permanent_failed": report.permanent_failed,
            "adopted": report.adopted,
            "scheduler_calls": report.scheduler_calls,
            "notices": report.notices,
        },
        indent=1,
    )


def _deliver_mail(obj: Any, campaign: Any) -> None:
    """Owed notifications go out after the ledger work; mail trouble never fails a reconcile."""
    from ..outbox import deliver_campaign_outbox

    try:
        report = deliver_campaign_outbox(campaign)
    except OrcaHpcError as err:  # a bad [mail] table: the ledger work is done, the outbox keeps the mail
        click.echo(f"orca-hpc: warning: mail not sent: {err}", err=True)
        return
    if report is not None and (report.sent or report.pending or report.failed):
        say(obj, report.summary())


@click.command("reconcile")
@click.option("--json", "as_json", is_flag=True, help="Print what changed as JSON.")
@click.pass_obj
def reconcile(obj: Any, as_json: bool) -> None:
    """Compare the ledger with SLURM and the result files; retry, recover, notify. Cron-safe."""
    campaign = campaign_of(obj)
    report = run_reconcile(campaign, echo=None if as_json else (lambda m: say(obj, m)))
    _deliver_mail(obj, campaign)
    if as_json:
        click.echo(_report_json(report))
    elif obj.verbose:
        say(
            obj,
            f"reconciled: {len(report.changes)} change(s), {len(report.submitted)} submitted, "
            f"{report.scheduler_calls} scheduler call(s)",
        )


@click.command("watch")
@click.option(
    "--interval",
    type=click.FloatRange(1.0),
    default=60.0,
    show_default=True,
    help="Seconds between reconciles.",
)
@click.option(
    "--max-backoff",
    type=click.FloatRange(1.0),
    default=900.0,
    show_default=True,
    help="Longest wait while the scheduler is unreachable.",
)
@click.option("--until-done", is_flag=True, help="Exit 0 once every job has finished.")
@click.pass_obj
def watch(obj: Any, interval: float, max_backoff: float, until_done: bool) -> None:
    """Reconcile in a loop (for sites that allow a long-running process, e.g. under systemd).

    SIGTERM/SIGINT end it cleanly between steps; an unrecoverable error exits non-zero so that a
    supervisor restarts it; while the scheduler is down it backs off exponentially.
    """
    stop = {"now": False}

    def _stop(signum: int, _frame: object) -> None:
        stop["now"] = True
        say(obj, f"watch: {signal.Signals(signum).name} received, stopping after this step")

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    delay = interval
    while not stop["now"]:
        campaign = campaign_of(obj)
        try:
            run_reconcile(campaign, echo=lambda m: say(obj, m))
            _deliver_mail(obj, campaign)
            delay = interval
        except TemporaryFailure as err:
            delay = min(max_backoff, delay * 2)
            click.echo(f"orca-hpc: warning: {err}; next try in {delay:.0f} s", err=True)
        if until_done and not campaign.ledger().snapshot().jobs:
            say(obj, "watch: every job has finished")
            return
        deadline = time.monotonic() + delay
        while not stop["now"] and time.monotonic() < deadline:
            time.sleep(min(0.5, deadline - time.monotonic()))
