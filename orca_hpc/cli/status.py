"""`orca-hpc status`, `orca-hpc show JOB`, `orca-hpc results`."""

from __future__ import annotations

import csv
import fnmatch
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import click

from orca_hpc.attempt.folder import read_result
from orca_hpc.attempt.summary import attempt_summary, chemistry_columns
from orca_hpc.cli.common import auto_reconcile, campaign_of, no_reconcile_option
from orca_hpc.controller.environment import pause_summary, paused
from orca_hpc.ledger.records import Job
from orca_hpc.ledger.states import JobState
from orca_hpc.orca.read import read_tail


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


def _select(jobs: list[Job], states: tuple[str, ...], name: str | None) -> list[Job]:
    wanted = {s.upper() for s in states}
    return [
        j
        for j in jobs
        if (not wanted or j.state.value in wanted) and (name is None or fnmatch.fnmatchcase(j.name, name))
    ]


@click.command("status")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([s.value for s in JobState], case_sensitive=False),
    help="Only jobs in this state (repeatable).",
)
@click.option("--name", default=None, help="Only jobs whose name matches this glob.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@no_reconcile_option
@click.pass_obj
def status(obj: Any, states: tuple[str, ...], name: str | None, as_json: bool, no_reconcile: bool) -> None:
    """Every job's state, attempts, SLURM id, outcome and energy, and the counts per state."""
    campaign = campaign_of(obj)
    if not no_reconcile:
        auto_reconcile(obj, campaign)
    view = campaign.ledger().snapshot()
    jobs = _select(view.all_jobs(), states, name)
    counts = dict(sorted(Counter(j.state.value for j in jobs).items()))
    if as_json:
        document = {"jobs": [_job_row(j) for j in jobs], "counts": counts, "paused": paused(view.meta)}
        click.echo(json.dumps(document, indent=1))
        return
    rows = [_job_row(j) for j in jobs]
    header = ("ID", "NAME", "STATE", "ATT", "SLURM", "OUTCOME", "ENERGY/Eh")
    table = [header] + [
        (
            r["id"],
            r["name"][:32],
            r["state"],
            str(r["attempts"]),
            r["slurm_job_id"] or "-",
            r["outcome"] or "-",
            f"{r['energy']:.8f}" if isinstance(r["energy"], float) else "-",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    click.echo(", ".join(f"{k} {v}" for k, v in counts.items()) or "no jobs")
    summary = pause_summary(view.meta)
    if summary:
        click.echo(summary)


@click.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@no_reconcile_option
@click.pass_obj
def show(obj: Any, job_id: str, as_json: bool, no_reconcile: bool) -> None:
    """Every attempt of one job: SLURM id and state, outcome, corrections, files, last lines of the error."""
    campaign = campaign_of(obj)
    if not no_reconcile:
        auto_reconcile(obj, campaign)
    view = campaign.ledger().snapshot()
    job = _find(view, job_id)
    if as_json:
        click.echo(json.dumps(_with_summaries(campaign.root, job), indent=1))
        return
    click.echo(
        f"{job.id}  {job.name}  {job.state.value}  (retries {job.retry_count}/{job.max_retries}, "
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
        if att.message:
            click.echo(f"  message: {att.message}")
        if folder is not None and folder.is_dir():
            click.echo(f"  folder: {folder}")
            for line in _summary_lines(attempt_summary(folder, att.outcome, att.reason)):
                click.echo(f"  {line}")
            result = read_result(folder)
            if result and result.files:
                click.echo(f"  files: {', '.join(result.files)}")
            if att.outcome and att.outcome != "success":
                for out in sorted(folder.glob("*.out"))[:1]:
                    lines = read_tail(out, 4096).splitlines()[-8:]  # outputs can be GB
                    click.echo("  last lines of the output:")
                    for line in lines:
                        click.echo(f"    {line}")


def _with_summaries(root: Path, job: Job) -> dict[str, Any]:
    """The job's ledger record; each attempt with a result file gains ``summary`` (from result.json)."""
    record = job.to_dict(with_id=True)
    for att, entry in zip(job.attempts, record.get("att", []), strict=True):
        summary = attempt_summary(root / att.dir, att.outcome, att.reason) if att.dir else {}
        if summary:
            entry["summary"] = summary
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


def _find(view: Any, job_id: str) -> Job:
    matches = view.by_name(job_id) if not job_id.startswith("j") or not job_id[1:].isdigit() else []
    if len(matches) == 1:
        return matches[0]
    return view.get(job_id)


@click.command("results")
@click.option("--csv", "fmt", flag_value="csv", help="CSV (for a spreadsheet).")
@click.option("--json", "fmt", flag_value="json", help="JSON list.")
@no_reconcile_option
@click.pass_obj
def results(obj: Any, fmt: str | None, no_reconcile: bool) -> None:
    """One row per job (its latest attempt): name, state, attempts, final energy, outcome, results
    folder; with --csv/--json also the chemistry from the attempt's result.json (ZPE, enthalpy, Gibbs
    free energy and temperature, imaginary modes, lowest frequency, <S**2>, ORCA version, geometry)."""
    campaign = campaign_of(obj)
    if not no_reconcile:
        auto_reconcile(obj, campaign)
    rows = []
    for job in campaign.ledger().snapshot().all_jobs():
        att = job.attempt
        folder = campaign.root / att.dir if att and att.dir else None
        row: dict[str, Any] = {
            "id": job.id,
            "name": job.name,
            "state": job.state.value,
            "attempts": len(job.attempts),
            "energy": att.energy if att else None,
            "outcome": att.outcome if att else None,
            "results": str(folder) if folder is not None else "",
            "energy_Eh": att.energy if att else None,  # `energy` is kept for existing spreadsheets
        }
        if fmt is not None:  # the plain listing shows no chemistry: no result file to read
            found = read_result(folder) if folder is not None else None
            row.update(chemistry_columns(folder or campaign.root, found))
        rows.append(row)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["id"], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()}
            )
        click.echo(buf.getvalue(), nl=False)
        return
    for r in rows:
        energy = f"{r['energy']:.10f}" if isinstance(r["energy"], float) else "-"
        click.echo(f"{r['id']}  {str(r['name'])[:32]:32}  {r['state']:16}  {energy:>18}  {r['results']}")
