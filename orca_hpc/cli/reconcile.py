"""`orca-hpc reconcile` and `orca-hpc watch`."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import click

from orca_hpc.attempt.folder import file_key
from orca_hpc.cli.common import campaign_of, say, warn, warn_owed_mail
from orca_hpc.controller.public import reconcile_document
from orca_hpc.controller.reconcile import ReconcileReport
from orca_hpc.controller.reconcile import reconcile as run_reconcile
from orca_hpc.controller.watched import any_appeared, running_results
from orca_hpc.errors import OrcaHpcError, TemporaryFailure
from orca_hpc.ledger.store import LEDGER_FILE
from orca_hpc.logs import log_echoed

log = logging.getLogger("orca_hpc.controller.reconcile")

# After an attempt's result file appeared: look again this often, this many times, until SLURM and sacct
# say it ended (a few seconds), before waiting the whole interval again.
QUICK_LOOK_S = 2.0
QUICK_LOOKS = 8


def _report_json(report: ReconcileReport) -> str:
    return json.dumps(reconcile_document(report), indent=1)


def _deliver_mail(obj: Any, campaign: Any) -> None:
    """Owed notifications go out after the ledger work; mail trouble never fails a reconcile."""
    from orca_hpc.notify.outbox import deliver_campaign_outbox

    try:
        report = deliver_campaign_outbox(campaign, quick=True)
    except OrcaHpcError as err:  # a bad [mail] table: the ledger work is done, the outbox keeps the mail
        warn(f"mail not sent: {err}")
        return
    if report is None:
        warn_owed_mail(obj, campaign)
        return
    if report.sent or report.pending or report.failed:
        say(obj, report.summary())
    if report.given_up:
        warn(report.given_up_line())


@click.command("reconcile")
@click.option("--json", "as_json", is_flag=True, help="Print what changed as JSON.")
@click.option("--resume", is_flag=True, help="End a pause after environment failures (once fixed).")
@click.pass_obj
def reconcile(obj: Any, as_json: bool, resume: bool) -> None:
    """Compare the ledger with SLURM and the result files; retry, recover, notify. Cron-safe."""
    campaign = campaign_of(obj)
    report = run_reconcile(campaign, echo=None if as_json else (lambda m: say(obj, m)), resume=resume)
    _deliver_mail(obj, campaign)
    _log_report(report)
    if as_json:
        click.echo(_report_json(report))
    elif obj.verbose:
        say(obj, _summary(report))
    else:
        log_echoed(_summary(report))  # one line per run in the log: shows that cron is running


def _summary(report: ReconcileReport) -> str:
    return (
        f"reconciled: {len(report.changes)} change(s), {len(report.submitted)} submitted, "
        f"{report.scheduler_calls} scheduler call(s)"
    )


def _log_report(report: ReconcileReport) -> None:
    """Every state change and submission with its ids, for the log (the terminal shows them with -v)."""
    for job_id, old, new in report.changes:
        log.info("%s: %s -> %s", job_id, old, new)
    for job_id, name, slurm_id in report.submitted:
        log.info("%s %s: submitted as SLURM job %s", job_id, name, slurm_id)


@click.command("watch")
@click.option(
    "--interval",
    type=click.FloatRange(1.0),
    default=60.0,
    show_default=True,
    help="Seconds between reconciles (sooner when a job's result file appears).",
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
    stop: dict[str, str | None] = {"signal": None}

    def _stop(signum: int, _frame: object) -> None:
        # Only a flag: printing or logging here could re-enter a write that the signal interrupted.
        stop["signal"] = signal.Signals(signum).name

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log_echoed(f"watch: started, pid {os.getpid()}, every {interval:g} s")
    delay = interval
    quick_left = QUICK_LOOKS

    def stopped() -> bool:
        return stop["signal"] is not None

    while stop["signal"] is None:
        campaign = campaign_of(obj)
        try:
            report = run_reconcile(campaign, echo=lambda m: say(obj, m))
            _log_report(report)
            _deliver_mail(obj, campaign)
            delay = interval
        except TemporaryFailure as err:
            delay = min(max_backoff, delay * 2)
            warn(f"{err}; next try in {delay:.0f} s")
        view = campaign.ledger().snapshot()
        active = len(view.jobs)
        if until_done and not active:
            say(obj, "watch: every job has finished")
            return
        # A running attempt's result file appearing ends the wait: its job is recorded (a workflow's next
        # step made) seconds after it ended, not up to an interval later. The runner writes the file a
        # moment before SLURM calls the job ended (and sacct has its usage ~5 s later), so after such a
        # wake reconcile looks again every 2 s, at most QUICK_LOOKS times, until it has recorded them.
        # Not while backing off: the scheduler is unreachable then.
        wait = delay
        results: list[str] = []
        ledger_file = None
        if delay == interval:
            ledger_file = os.fspath(campaign.state_dir / LEDGER_FILE)
            results, ended = running_results(view, os.fspath(campaign.root))
            if ended and quick_left > 0:
                wait, quick_left = min(delay, QUICK_LOOK_S), quick_left - 1
            elif not ended:
                quick_left = QUICK_LOOKS
        # A heartbeat: a person (or a supervisor's log) sees the loop is alive and when it acts next.
        say(obj, f"watch: {active} active job(s); next reconcile in {wait:g} s")
        deadline = time.monotonic() + wait
        while True:
            why = wait_for_results(results, deadline, stopped, ledger_file=ledger_file)
            if why != "ledger":
                break
            results, _ended = running_results(campaign.ledger().snapshot(), os.fspath(campaign.root))
        if why == "result":
            quick_left = QUICK_LOOKS
    say(obj, f"watch: {stop['signal']} received, stopped")


def wait_for_results(
    results: list[str],
    deadline: float,
    stopped: Callable[[], bool],
    *,
    ledger_file: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Sleep until ``deadline``, a stop, one of ``results`` appearing, or ``ledger_file`` being saved by
    another command (a submit, a retry: new attempts to look for); each looked for once a second.
    Returns why it ended: "result", "ledger", "stop" or "deadline"."""
    # A save is an atomic rename: the file's key (device, inode, size, mtime) changes with it.
    saved = file_key(ledger_file) if ledger_file is not None else None
    next_look = clock() + 1.0
    while not stopped() and clock() < deadline:
        sleep(max(0.0, min(0.5, deadline - clock())))
        if clock() >= next_look:
            if results and any_appeared(results):
                return "result"
            if ledger_file is not None and file_key(ledger_file) != saved:
                return "ledger"
            next_look = clock() + 1.0
    return "stop" if stopped() else "deadline"
