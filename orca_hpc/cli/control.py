"""`orca-hpc retry`, `orca-hpc cancel`, `orca-hpc gc`."""

from __future__ import annotations

from typing import Any

import click

from orca_hpc.attempt.folder import plan_of
from orca_hpc.cli.common import campaign_of, say
from orca_hpc.controller.submit import Dispatcher, record_attempt
from orca_hpc.errors import UserError
from orca_hpc.ledger.states import FINISHED, JobState
from orca_hpc.scheduler import slurm
from orca_hpc.scheduler.local import cancel_local, is_local


@click.command("retry")
@click.argument("job_ids", nargs=-1, required=True)
@click.option(
    "--max-retries", type=click.IntRange(0, 100), default=None, help="New retry limit for these jobs."
)
@click.pass_obj
def retry(obj: Any, job_ids: tuple[str, ...], max_retries: int | None) -> None:
    """Give PERMANENT_FAILED or CANCELLED jobs a fresh start (retry count reset)."""
    campaign = campaign_of(obj)
    ledger = campaign.ledger()
    with ledger.lock:
        with ledger.transaction() as txn:
            ids = []
            for job_id in job_ids:
                job = txn.get(job_id)
                if job.state not in (JobState.PERMANENT_FAILED, JobState.CANCELLED):
                    raise UserError(
                        f"{job.id} is {job.state.value}: only PERMANENT_FAILED or CANCELLED jobs "
                        "can be retried"
                    )
                txn.set_state(job, JobState.CREATED)  # brings an archived job back to the active ledger
                job.retry_count = 0
                job.nodefail_count = 0
                if max_retries is not None:
                    job.max_retries = max_retries
                plan = plan_of(campaign.root / job.attempt.dir)
                plan.corrections = [{"handler": "manual", "change": "none", "why": "orca-hpc retry"}]
                record_attempt(campaign, txn, job, plan)
                ids.append(job.id)
        submitted = Dispatcher(campaign, ledger, echo=lambda m: say(obj, m)).dispatch(ids)
    say(obj, f"retrying {len(submitted)} job(s)")


@click.command("cancel")
@click.argument("job_ids", nargs=-1, required=True)
@click.pass_obj
def cancel(obj: Any, job_ids: tuple[str, ...]) -> None:
    """scancel jobs and mark them CANCELLED (never retried)."""
    campaign = campaign_of(obj)
    ledger = campaign.ledger()
    with ledger.lock:
        view = ledger.snapshot()
        jobs = [view.get(j) for j in job_ids]
        for job in jobs:
            if job.state in FINISHED:
                raise UserError(f"{job.id} is {job.state.value} already")
        ids = [j.attempt.slurm_id for j in jobs if j.attempt and j.attempt.slurm_id]
        slurm_ids = [i for i in ids if not is_local(i)]
        if slurm_ids:
            slurm.scancel(slurm_ids)
        cancel_local([i for i in ids if is_local(i)])
        with ledger.transaction() as txn:
            for job in jobs:
                live = txn.get(job.id)
                if live.attempt is not None:
                    live.attempt.reason = "cancelled"
                    live.attempt.outcome = live.attempt.outcome or "truncated"
                txn.set_state(live, JobState.CANCELLED)
    say(obj, f"cancelled {len(jobs)} job(s)")


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="List what would be removed.")
@click.pass_obj
def gc(obj: Any, dry_run: bool) -> None:
    """Remove scratch left behind by killed runners, and old submitit/job-log files of finished jobs."""
    from orca_hpc.controller.housekeeping import collect_garbage

    campaign = campaign_of(obj)
    lines = collect_garbage(campaign, dry_run=dry_run)
    for line in lines:
        click.echo(line)
    failed = [line for line in lines if line.startswith("could not")]
    say(obj, f"{len(lines) - len(failed)} item(s) {'to remove' if dry_run else 'removed'}")
    if failed:
        raise UserError(f"{len(failed)} item(s) could not be removed (see above)")
