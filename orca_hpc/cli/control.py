"""`orca-hpc retry`, `orca-hpc cancel`, `orca-hpc gc`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import click

from orca_hpc.cli.common import campaign_of, molecule_option, say, selection_options, selector_of, warn
from orca_hpc.errors import UserError


def _skipped(skipped: list[tuple[str, str]]) -> str:
    if not skipped:
        return ""
    why = Counter(state for _id, state in skipped)
    return f", skipped {len(skipped)} ({', '.join(f'{n} {state}' for state, n in sorted(why.items()))})"


@click.command("retry")
@selection_options
@click.option(
    "--max-retries", type=click.IntRange(0, 100), default=None, help="New retry limit for these jobs."
)
@click.option(
    "--input",
    "replacement",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A corrected .inp for the (one) job; an edited original input is noticed without it.",
)
@molecule_option
@click.pass_obj
def retry(
    obj: Any,
    refs: tuple[str, ...],
    states: tuple[str, ...],
    name_glob: str | None,
    everything: bool,
    max_retries: int | None,
    replacement: Path | None,
    molecule: str | None,
) -> None:
    """Give PERMANENT_FAILED or CANCELLED jobs a fresh start (retry count reset).

    JOB is a job id or a job name; with --state/--name/--all, jobs that cannot be retried are skipped.
    A job whose .inp was edited since it was submitted runs the edited input (validated first); one
    made from an .xyz reruns the input recorded then (a changed .xyz is warned about). --input FILE
    gives one job a corrected input. `show` records what changed. A workflow step whose
    definition was fixed in orca-hpc.toml is made again from it; its chain then goes on. A COMPLETED
    step whose chain stopped (its next step could not be made) gets that next step, not a rerun.
    """
    from orca_hpc.controller.actions import retry_selected

    selector = selector_of(refs, states, name_glob, everything, required=True, molecule=molecule)
    if replacement is not None and not replacement.is_absolute():
        replacement = Path.cwd() / replacement
    report = retry_selected(
        campaign_of(obj),
        selector,
        max_retries=max_retries,
        echo=lambda m: say(obj, m),
        replacement=replacement,
    )
    for job_id in report.edited:
        say(obj, f"{job_id}: runs the corrected input (recorded as this attempt's correction)")
    for job_id in report.xyz_changed:
        warn(
            f"{job_id}: its .xyz changed since it was submitted, but a job made from an .xyz reruns the "
            "input recorded then; give the corrected input with --input FILE.inp"
        )
    if report.paused is not None:
        from orca_hpc.cli.submit import held_message

        say(obj, held_message(report.held, report.paused) + _skipped(report.skipped))
        return
    waiting = f", {report.waiting} waiting for a free slot" if report.waiting else ""
    say(
        obj,
        f"retrying {len(report.done)} job(s): submitted {len(report.submitted)} in "
        f"{report.sbatch_calls} scheduler call(s){waiting}{_skipped(report.skipped)}",
    )


@click.command("cancel")
@selection_options
@molecule_option
@click.pass_obj
def cancel(
    obj: Any,
    refs: tuple[str, ...],
    states: tuple[str, ...],
    name_glob: str | None,
    everything: bool,
    molecule: str | None,
) -> None:
    """scancel jobs and mark them CANCELLED (never retried).

    JOB is a job id or a job name; with --state/--name/--molecule/--all, finished jobs are skipped.
    Cancelling a workflow molecule's active step stops its chain.
    """
    from orca_hpc.controller.actions import cancel_selected

    selector = selector_of(refs, states, name_glob, everything, required=True, molecule=molecule)
    report = cancel_selected(campaign_of(obj), selector)
    say(obj, f"cancelled {len(report.done)} job(s){_skipped(report.skipped)}")


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
