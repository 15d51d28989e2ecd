"""`orca-hpc status`, `orca-hpc show JOB`, `orca-hpc results`."""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import click

from orca_hpc.cli.common import (
    auto_reconcile,
    campaign_of,
    no_reconcile_option,
    one_format,
    printable,
    selection_options,
    selector_of,
)
from orca_hpc.clock import epoch
from orca_hpc.controller.environment import pause_summary, paused
from orca_hpc.controller.public import as_text
from orca_hpc.controller.public import document as document_of

# What only `show` and `results` need (result files, chemistry, CSV), and the workflow steps, are
# imported inside them: `status` starts fast (tests/test_architecture.py holds what it loads).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from orca_hpc.ledger.records import Job


def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters; a cut one ends with an ellipsis, so it is not
    mistaken for the whole name (``show``/``--json`` give it in full)."""
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _job_row(job: Job) -> dict[str, Any]:
    att = job.attempt
    return {
        "id": job.id,
        "name": job.name,
        "state": job.state.value,
        "attempts": len(job.attempts),
        "retries": job.retry_count,
        "slurm_job_id": att.slurm_id if att else None,
        "slurm_state": att.slurm_state if att else None,
        "outcome": att.outcome if att else None,
        "energy": att.energy if att else None,
        "message": att.message if att else None,
    }


def _selected(
    view: Any,
    refs: tuple[str, ...],
    states: tuple[str, ...],
    name: str | None,
    every: bool,
    *,
    required: bool,
) -> list[Job]:
    from orca_hpc.controller.select import select_jobs

    return select_jobs(view, selector_of(refs, states, name, every, required=required)).jobs


# A state's colour at a glance; NO_COLOR (no-color.org) and a non-terminal output turn it off.
_STATE_COLOURS = {
    "COMPLETED": "green",
    "PERMANENT_FAILED": "red",
    "CANCELLED": "magenta",
    "FAILED": "yellow",
    "RUNNING": "cyan",
}


def _colour(text: str, state: str) -> str:
    colour = _STATE_COLOURS.get(state)
    if colour is None or os.environ.get("NO_COLOR"):
        return text
    return click.style(text, fg=colour)


def age(stamp: str | None, now: float | None = None) -> str:
    """How long ago ``stamp`` was, short: ``45s``, ``12m``, ``3h``, ``5d`` (``-`` if unknown)."""
    seconds = epoch(stamp)
    if seconds is None:
        return "-"
    elapsed = max(0.0, (time.time() if now is None else now) - seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if elapsed >= size:
            return f"{int(elapsed // size)}{unit}"
    return f"{int(elapsed)}s"


@click.command("status")
@selection_options
@click.option(
    "--json", "as_json", is_flag=True, callback=one_format, help="Machine-readable output (docs/json.md)."
)
@click.option(
    "--summary", is_flag=True, callback=one_format, help="Only the counts per state (and a pause), no table."
)
@no_reconcile_option
@click.pass_obj
def status(
    obj: Any,
    refs: tuple[str, ...],
    states: tuple[str, ...],
    name_glob: str | None,
    everything: bool,
    as_json: bool,
    summary: bool,
    no_reconcile: bool,
) -> None:
    """Every job's state, how long it has been in it, attempts, SLURM id, outcome and energy, and the
    counts per state (all jobs, or those JOB ids/names, --state and --name choose)."""
    campaign = campaign_of(obj)
    view = campaign.ledger().snapshot() if no_reconcile else auto_reconcile(obj, campaign)
    if summary and not as_json and not (refs or states or name_glob) and not view.has_workflow_steps():
        # Only the counts: the finished jobs are counted from the archive's index, not read.
        _summary(view.state_counts(), [], view.meta)
        return
    jobs = _selected(view, refs, states, name_glob, everything, required=False)
    counts = dict(sorted(Counter(j.state.value for j in jobs).items()))
    steps = []
    if any(j.chain is not None or "chain" in j.extra for j in jobs):  # workflows: per step
        from orca_hpc.controller.by_molecule import runs_of, step_progress

        steps = step_progress(runs_of(jobs, campaign.root, chemistry=False))
    if as_json:
        document = document_of(
            "status",
            jobs=[_job_row(j) for j in jobs],
            counts=counts,
            paused=paused(view.meta),
            steps=[{"step": p.step, "completed": p.completed, "total": p.total} for p in steps],
        )
        click.echo(as_text(document))
        return
    if not summary:
        _table(jobs)
    _summary(counts, steps, view.meta)


def _summary(counts: dict[str, int], steps: list[Any], meta: dict[str, Any]) -> None:
    """The counts per state, the workflow's steps, and a pause."""
    click.echo(", ".join(_colour(f"{k} {v}", k) for k, v in counts.items()) or "no jobs")
    if steps:
        from orca_hpc.controller.by_molecule import progress_line

        click.echo(f"steps: {printable(progress_line(steps))}")
    pause = pause_summary(meta)
    if pause:
        click.echo(pause)


def _table(jobs: list[Job]) -> None:
    header = ("ID", "NAME", "STATE", "AGE", "ATT", "SLURM", "OUTCOME", "ENERGY/Eh")
    table = [header]
    for job in jobs:
        r = _job_row(job)
        table.append(
            (
                r["id"],
                shorten(printable(str(r["name"])), 32),
                r["state"],
                age(job.updated),  # since the last change of state
                str(r["attempts"]),
                r["slurm_job_id"] or "-",
                r["outcome"] or "-",
                f"{r['energy']:.8f}" if isinstance(r["energy"], float) else "-",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for n, row in enumerate(table):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
        if n:  # pad first, then colour: the escape codes take no column
            cells[2] = _colour(cells[2], row[2])
        click.echo("  ".join(cells).rstrip())


@click.command("show")
@selection_options
@click.option("--json", "as_json", is_flag=True, help="Every attempt of every job as JSON (docs/json.md).")
@no_reconcile_option
@click.pass_obj
def show(
    obj: Any,
    refs: tuple[str, ...],
    states: tuple[str, ...],
    name_glob: str | None,
    everything: bool,
    as_json: bool,
    no_reconcile: bool,
) -> None:
    """Every attempt of the jobs: SLURM id and state, outcome, corrections, files, last lines of the
    error. JOB is a job id or a job name (a name several jobs share shows them all)."""
    from orca_hpc.controller.public import job_record

    campaign = campaign_of(obj)
    view = campaign.ledger().snapshot() if no_reconcile else auto_reconcile(obj, campaign)
    jobs = _selected(view, refs, states, name_glob, everything, required=True)
    if as_json:
        records = [_with_summaries(job_record(job, campaign.root), job, campaign.root) for job in jobs]
        click.echo(as_text(document_of("show", jobs=records)))
        return
    if not jobs:  # filters left none of the jobs named: say so, as `status` does, not nothing at all
        click.echo("no jobs")
    for i, job in enumerate(jobs):
        if i:
            click.echo("")
        _show_one(campaign, job)


def _show_one(campaign: Any, job: Job) -> None:
    from orca_hpc.attempt.folder import read_result
    from orca_hpc.attempt.summary import attempt_summary
    from orca_hpc.controller.usage import usage_line
    from orca_hpc.orca.read import read_tail

    click.echo(
        f"{job.id}  {printable(job.name)}  {job.state.value}  (retries {job.retry_count}/{job.max_retries}, "
        f"node failures {job.nodefail_count})"
    )
    click.echo(f"input: {job.input_path}")
    for att in job.attempts:
        folder = campaign.root / att.dir if att.dir else None
        reason = f" ({att.reason})" if att.reason else ""
        click.echo(
            f"attempt {att.n}: SLURM {att.slurm_id or '-'} {att.slurm_state or ''}"
            f" exit {att.exit_code or '-'}  outcome {att.outcome or '-'}{reason}"
        )
        for fix in att.corrections:
            click.echo(f"  correction [{fix.get('handler')}] {fix.get('change')}: {fix.get('why')}")
        if att.energy is not None:
            click.echo(f"  energy {att.energy:.10f} Eh")
        if att.usage:
            click.echo(f"  used: {usage_line(att.usage)}")
        if att.message:
            click.echo(f"  message: {printable(att.message)}")
        if folder is not None and folder.is_dir():
            click.echo(f"  folder: {folder}")
            for line in _summary_lines(attempt_summary(folder, att.outcome, att.reason)):
                click.echo(f"  {printable(line)}")
            result = read_result(folder)
            if result and result.files:
                click.echo(f"  files: {printable(', '.join(result.files))}")
            if att.outcome and att.outcome != "success":
                for out in sorted(folder.glob("*.out"))[:1]:
                    lines = read_tail(out, 4096).splitlines()[-8:]  # outputs can be GB
                    click.echo("  last lines of the output:")
                    for line in lines:
                        click.echo(f"    {printable(line)}")


def _with_summaries(record: dict[str, Any], job: Job, root: Path) -> dict[str, Any]:
    """The job's public record; each attempt's ``summary`` from its result.json (null without one:
    every key is always present)."""
    from orca_hpc.attempt.summary import attempt_summary

    for att, entry in zip(job.attempts, record["attempts"], strict=True):
        summary = attempt_summary(root / att.dir, att.outcome, att.reason) if att.dir else {}
        entry["summary"] = summary or None
    return record


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    if "environment" in summary:
        lines.append(
            f"environment: {summary['environment']} (the machine failed, not the input: rerun unchanged, "
            "not counted against max_retries)"
        )
    if "frequencies" in summary:
        lines.append(f"frequencies: {summary['frequencies']}")
    if "lowest_freq_cm1" in summary:
        lines.append(f"lowest frequency: {summary['lowest_freq_cm1']:.2f} cm**-1")
    thermo = [
        f"{label} {summary[key]:.8f} Eh"
        for label, key in (("ZPE", "zpe_Eh"), ("H", "enthalpy_Eh"), ("G", "gibbs_Eh"))
        if key in summary
    ]
    if thermo:
        at = f" at {summary['temperature_K']:.2f} K" if "temperature_K" in summary else ""
        lines.append(f"thermochemistry{at}: {', '.join(thermo)}")
    if "s2" in summary:
        lines.append(f"<S**2>: {summary['s2']:.6f}")
    if "orca_version" in summary:
        lines.append(f"ORCA {summary['orca_version']}")
    if "final_xyz" in summary:
        lines.append(f"final geometry: {summary['final_xyz']}")
    return lines


@click.command("results")
@selection_options
@click.option("--csv", "as_csv", is_flag=True, callback=one_format, help="CSV (for a spreadsheet).")
@click.option(
    "--json", "as_json", is_flag=True, callback=one_format, help="JSON: one row per job (docs/json.md)."
)
@click.option(
    "--by",
    type=click.Choice(["molecule"]),
    help="One table per molecule of a workflow: conformers, energies of every step, Boltzmann weights.",
)
@no_reconcile_option
@click.pass_obj
def results(
    obj: Any,
    refs: tuple[str, ...],
    states: tuple[str, ...],
    name_glob: str | None,
    everything: bool,
    as_csv: bool,
    as_json: bool,
    by: str | None,
    no_reconcile: bool,
) -> None:
    """One row per job (all, or those JOB ids/names, --state and --name choose): name, state,
    attempts, final energy, outcome, results folder; with --csv/--json also the chemistry from the
    attempt's result.json (ZPE, enthalpy, Gibbs free energy and temperature, imaginary modes, lowest
    frequency, <S**2>, ORCA version, final geometry). --by molecule: per molecule of a workflow (of the
    chosen jobs), each conformer's energies from every step, free energy, relative free energy,
    Boltzmann weight, final geometry, and the best conformer."""
    import csv
    import io

    fmt = "csv" if as_csv else "json" if as_json else None

    from orca_hpc.controller.public import result_columns, result_row

    campaign = campaign_of(obj)
    view = campaign.ledger().snapshot() if no_reconcile else auto_reconcile(obj, campaign)
    rows = []
    if by == "molecule":
        from orca_hpc.cli.by_molecule import echo_by_molecule

        chosen = _selected(view, refs, states, name_glob, everything, required=False)
        echo_by_molecule(campaign.root, view.all_jobs(), chosen, fmt)
        return
    for job in _selected(view, refs, states, name_glob, everything, required=False):
        # the plain listing shows no chemistry: no result file to read
        rows.append(result_row(campaign.root, job, chemistry=fmt is not None))
    if fmt == "json":
        click.echo(as_text(document_of("results", jobs=rows)))
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=result_columns(), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()}
            )
        click.echo(buf.getvalue(), nl=False)
        return
    line = "{:7}  {:32}  {:16}  {:>3}  {:16}  {:>18}  {}"
    if rows:  # a header, as status has: a row of bare numbers says nothing
        click.echo(line.format("ID", "NAME", "STATE", "ATT", "OUTCOME", "ENERGY/Eh", "RESULTS"))
    for r in rows:  # the columns the help names: attempts and outcome tell a failure from a success
        energy = f"{r['energy']:.10f}" if isinstance(r["energy"], float) else "-"
        name = shorten(printable(str(r["name"])), 32)
        outcome = printable(str(r["outcome"] or "-"))
        click.echo(line.format(r["id"], name, r["state"], r["attempts"], outcome, energy, r["results"]))
