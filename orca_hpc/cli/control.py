"""`orca-hpc retry`, `orca-hpc cancel`, `orca-hpc gc`."""

from __future__ import annotations

from typing import Any

import click

from orca_hpc.cli.common import campaign_of, say
from orca_hpc.errors import UserError


@click.command("retry")
@click.argument("job_ids", nargs=-1, required=True)
@click.option(
    "--max-retries", type=click.IntRange(0, 100), default=None, help="New retry limit for these jobs."
)
@click.pass_obj
def retry(obj: Any, job_ids: tuple[str, ...], max_retries: int | None) -> None:
    """Give PERMANENT_FAILED or CANCELLED jobs a fresh start (retry count reset)."""
    from orca_hpc.cli.submit import held_message
    from orca_hpc.controller.actions import retry_jobs

    report = retry_jobs(campaign_of(obj), job_ids, max_retries=max_retries, echo=lambda m: say(obj, m))
    if report.paused is not None:
        say(obj, held_message(report.held, report.paused))
        return
    say(obj, f"retrying {len(report.submitted)} job(s)")


@click.command("cancel")
@click.argument("job_ids", nargs=-1, required=True)
@click.pass_obj
def cancel(obj: Any, job_ids: tuple[str, ...]) -> None:
    """scancel jobs and mark them CANCELLED (never retried)."""
    from orca_hpc.controller.actions import cancel_jobs

    count = cancel_jobs(campaign_of(obj), job_ids)
    say(obj, f"cancelled {count} job(s)")


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
