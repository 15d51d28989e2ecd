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
from orca_hpc.cli.common import auto_reconcile, campaign_of, no_reconcile_option, printable
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
            printable(r["name"])[:32],
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
        click.echo(json.dumps(job.to_dict(with_id=True), indent=1))
        return
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
        if att.message:
            click.echo(f"  message: {att.message}")
        if folder is not None and folder.is_dir():
            click.echo(f"  folder: {folder}")
            result = read_result(folder)
            if result and result.files:
                click.echo(f"  files: {', '.join(result.files)}")
            if att.outcome and att.outcome != "success":
                for out in sorted(folder.glob("*.out"))[:1]:
                    lines = read_tail(out, 4096).splitlines()[-8:]  # outputs can be GB
                    click.echo("  last lines of the output:")
                    for line in lines:
                        click.echo(f"    {line}")


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
    """One row per job: name, state, attempts, final energy, outcome, results folder."""
    campaign = campaign_of(obj)
    if not no_reconcile:
        auto_reconcile(obj, campaign)
    rows = []
    for job in campaign.ledger().snapshot().all_jobs():
        att = job.attempt
        rows.append(
            {
                "id": job.id,
                "name": job.name,
                "state": job.state.value,
                "attempts": len(job.attempts),
                "energy": att.energy if att else None,
                "outcome": att.outcome if att else None,
                "results": str(Path(campaign.root / att.dir)) if att and att.dir else "",
            }
        )
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
        click.echo(
            f"{r['id']}  {printable(str(r['name']))[:32]:32}  {r['state']:16}  {energy:>18}  {r['results']}"
        )
