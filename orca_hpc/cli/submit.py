"""`orca-hpc submit` and `orca-hpc render`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from orca_hpc.cli.common import auto_reconcile, campaign_of, say, warn
from orca_hpc.controller.gather import read_list_file
from orca_hpc.controller.public import dry_run_document, submit_document
from orca_hpc.controller.submit import submit as submit_inputs
from orca_hpc.errors import UserError


def _input_paths(inputs: tuple[Path, ...], from_file: Path | None) -> list[Path]:
    """The command line's inputs (relative to the current folder) and those of --from-file; folders
    and quoted globs are expanded by ``prepare_inputs``."""
    paths = [p if p.is_absolute() else Path.cwd() / p for p in inputs]
    if from_file is not None:
        listed, problems = read_list_file(from_file, Path.cwd())
        if problems:
            raise UserError("; ".join(problems))
        paths += listed
    if not paths:
        raise click.UsageError("give input files or folders, or --from-file LIST")
    return paths


def _paths(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[Path, ...]:
    # Path("") is the current folder: `submit "$INPUT"` with an empty variable would submit every input
    # of the folder the command runs in.
    if any(not text for text in value):
        raise click.BadParameter("an empty path ('') names no file (an empty shell variable?)", param=param)
    return tuple(Path(text) for text in value)


def _common_options(f: Any) -> Any:
    for option in reversed(
        [
            click.argument("inputs", nargs=-1, type=click.Path(), callback=_paths),
            click.option(
                "--from-file",
                "from_file",
                type=click.Path(dir_okay=False, path_type=Path),
                default=None,
                help="Also the inputs listed in this file (one path a line, # comments).",
            ),
            click.option(
                "--method", default=None, help="ORCA method line for .xyz inputs, e.g. 'r2SCAN-3c Opt'."
            ),
            click.option("--charge", default=0, show_default=True, help="Charge for .xyz inputs."),
            click.option("--mult", default=1, show_default=True, help="Multiplicity for .xyz inputs."),
            click.option(
                "--fit/--no-fit",
                default=None,
                help="Scale inputs that ask for more than a node (%pal, %maxcore, time) down to it instead "
                "of refusing them; default: the site's [slurm] fit_to_node.",
            ),
        ]
    ):
        f = option(f)
    return f


@click.command("submit")
@_common_options
@click.option("--force", is_flag=True, help="Submit inputs that this campaign already has.")
@click.option(
    "--dry-run", is_flag=True, help="Print the job script(s) that would be submitted; submit nothing."
)
@click.option(
    "--max-retries", type=click.IntRange(0, 100), default=None, help="Override the site's max_retries."
)
@click.option("--json", "as_json", is_flag=True, help="Print what was submitted as JSON.")
@click.option(
    "--no-check",
    is_flag=True,
    help="Skip the site check of a first submit (e.g. ORCA exists only on the compute nodes).",
)
@click.pass_obj
def submit(
    obj: Any,
    inputs: tuple[Path, ...],
    from_file: Path | None,
    method: str | None,
    charge: int,
    mult: int,
    fit: bool | None,
    force: bool,
    dry_run: bool,
    max_retries: int | None,
    as_json: bool,
    no_check: bool,
) -> None:
    """Submit ORCA inputs (.inp, or .xyz with --method) as SLURM job arrays.

    INPUTS are files, folders (their .inp and .xyz files) or quoted globs ('inputs/*.inp'). A
    multi-frame .xyz gives one job per frame, named NAME-1, NAME-2, ...
    """
    campaign = campaign_of(obj)
    paths = _input_paths(inputs, from_file)
    checked = False
    if not dry_run:
        auto_reconcile(obj, campaign)

        def validate_only() -> object:
            return submit_inputs(
                campaign, paths, method=method, charge=charge, mult=mult, fit=fit, dry_run=True
            )

        checked = not no_check and _check_site_once(campaign, validate_only)
    show_progress = len(paths) > 200 and sys.stderr.isatty() and not as_json
    with (
        # one step per input validated, then one per job recorded
        click.progressbar(length=2 * len(paths), label="validating and recording", file=sys.stderr)
        if show_progress
        else _Null() as bar
    ):
        report = submit_inputs(
            campaign,
            paths,
            method=method,
            charge=charge,
            mult=mult,
            fit=fit,
            force=force,
            dry_run=dry_run,
            max_retries=max_retries,
            echo=None if as_json else (lambda m: say(obj, m)),
            progress=bar.update,
            warn=warn,
        )
    if checked:  # the site passed the check and the submit went through: no need to check again
        from orca_hpc.controller.check import remember_check

        remember_check(campaign)
    if dry_run and as_json:
        click.echo(json.dumps(dry_run_document(report), indent=1))
        return
    if dry_run:
        for path, existing in report.skipped:  # on stderr: stdout is the scripts
            warn(f"would skip {path}: already in this campaign as {existing} (--force submits it again)")
        for script in report.scripts:
            click.echo(script, nl=False)
        if not report.scripts:
            say(obj, "nothing to submit")
        return
    if as_json:
        click.echo(
            json.dumps(
                submit_document(report),
                indent=1,
            )
        )
        return
    for path, existing in report.skipped:
        say(obj, f"skipped {path}: already in this campaign as {existing} (use --force to submit it again)")
    if report.paused is not None:
        say(obj, held_message(report.held, report.paused))
        return
    recorded = len(report.submitted) + report.waiting
    waiting = f", {report.waiting} waiting for a free slot" if report.waiting else ""
    say(
        obj,
        f"recorded {recorded} job(s): submitted {len(report.submitted)} in {report.sbatch_calls} "
        f"scheduler call(s){waiting}, skipped {len(report.skipped)}",
    )


def held_message(count: int, pause: dict[str, Any]) -> str:
    """What submit and retry say when the environment pause keeps recorded jobs from the scheduler."""
    return (
        f"recorded {count} job(s); the campaign is paused ({pause.get('reason')}: {pause.get('message')}); "
        "they start when it resumes"
    )


class _Null:
    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None


@click.command("render")
@_common_options
@click.pass_obj
def render(
    obj: Any,
    inputs: tuple[Path, ...],
    from_file: Path | None,
    method: str | None,
    charge: int,
    mult: int,
    fit: bool | None,
) -> None:
    """Print the exact job script(s) `submit` would use; submit nothing (same as submit --dry-run)."""
    campaign = campaign_of(obj)
    paths = _input_paths(inputs, from_file)
    report = submit_inputs(
        campaign, paths, method=method, charge=charge, mult=mult, fit=fit, force=True, dry_run=True, warn=warn
    )
    for script in report.scripts:
        click.echo(script, nl=False)


def _check_site_once(campaign: Any, dry_run: Callable[[], object]) -> bool:
    """The first submit to a site (or after its config changed) runs `orca-hpc check`: a wrong ORCA
    path or partition is found before any job queues, not after every job failed. When the site
    fails, the inputs' problems are listed too, so one run names everything to fix."""
    from orca_hpc.controller.check import first_submit_problems

    problems, checked = first_submit_problems(campaign, dry_run)
    for line in problems:
        click.echo(f"problem: {line}", err=True)
    if problems:
        raise UserError(
            f"site {campaign.site.name}: nothing submitted; fix the problems above (`orca-hpc check` "
            "shows them again)"
        )
    return checked
