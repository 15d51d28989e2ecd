"""`orca-hpc usage`: what the jobs really used (like `seff` for a whole campaign), and a suggestion per
group of similar jobs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
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
from orca_hpc.controller.public import document
from orca_hpc.controller.select import select_jobs
from orca_hpc.controller.usage_report import JOB_COLUMNS, usage_report

JOB_HEADER = ("ID", "NAME", "STATE", "CORE-H", "UNUSED", "CPU", "MEM MB", "MEM", "TIME")
GROUP_HEADER = ("GROUP", "METHOD", "ATOMS", "NP", "JOBS", "SAMPLES", "WALLTIME", "MEMORY")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _num(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


@click.command("usage")
@selection_options
@click.option(
    "--json", "as_json", is_flag=True, callback=one_format, help="Machine-readable report (docs/json.md)."
)
@click.option("--csv", "as_csv", is_flag=True, callback=one_format, help="One row per job, CSV.")
@click.option("--top", default=20, show_default=True, type=click.IntRange(min=0), help="Jobs listed (text).")
@no_reconcile_option
@click.pass_obj
def usage(
    obj: Any,
    refs: tuple[str, ...],
    states: tuple[str, ...],
    name_glob: str | None,
    everything: bool,
    as_json: bool,
    as_csv: bool,
    top: int,
    no_reconcile: bool,
) -> None:
    """CPU efficiency, memory used vs requested, time used vs limit and core-hours (successful, and
    wasted on failed attempts) per job and for the campaign, worst jobs first; and for each group of
    similar jobs (method line, basis, processes, atom count) the walltime and memory that would have
    covered 95 % of them, with a margin ([rightsize] margin, default 20 %)."""
    fmt = "json" if as_json else "csv" if as_csv else None
    campaign = campaign_of(obj)
    if not no_reconcile:
        auto_reconcile(obj, campaign)
    view = campaign.ledger().snapshot()
    jobs = select_jobs(view, selector_of(refs, states, name_glob, everything, required=False)).jobs
    settings = campaign.rightsize
    report = usage_report(
        jobs,
        campaign.root,
        margin=settings.margin,
        signal_s=campaign.site.signal_before_end_s,
        min_samples=settings.min_evidence,
    )
    if fmt == "json":
        click.echo(json.dumps(document("usage", **report), indent=1))
        return
    if fmt == "csv":
        rows = report["jobs"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(JOB_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        click.echo(buf.getvalue(), nl=False)
        return
    _text(report, top)


def _text(report: dict[str, Any], top: int) -> None:
    c = report["campaign"]
    click.echo(
        f"{c['jobs_measured']} of {c['jobs']} jobs measured ({c['attempts_measured']} attempts): "
        f"{c['core_hours']:.2f} core-hours, {c['core_hours_successful']:.2f} successful, "
        f"{c['core_hours_wasted']:.2f} wasted on failed attempts"
    )
    click.echo(
        f"CPU efficiency {_pct(c['cpu_efficiency'])}; memory used/requested median "
        f"{_pct(c['mem_efficiency_median'])} (max {_pct(c['mem_efficiency_max'])}); time used/limit median "
        f"{_pct(c['time_fraction_median'])} (max {_pct(c['time_fraction_max'])})"
    )
    rows = report["jobs"][:top]
    if rows:
        click.echo("")
        click.echo("worst first (core-hours wasted or idle):")
        table: list[tuple[str, ...]] = [JOB_HEADER]
        for r in rows:
            table.append(
                (
                    r["id"],
                    printable(r["name"])[:32],
                    r["state"],
                    f"{r['core_hours']:.3f}",
                    f"{r['core_hours_unused']:.3f}",
                    _pct(r["cpu_efficiency"]),
                    f"{_num(r['max_rss_mb'])}/{_num(r['requested_mem_mb'])}",
                    _pct(r["mem_efficiency"]),
                    _pct(r["time_fraction"]),
                )
            )
        _print_table(table)
    groups = report["groups"]
    if groups:
        click.echo("")
        click.echo("suggestions per group of similar jobs (95 % covered, with margin):")
        table = [GROUP_HEADER]
        for g in groups:
            enough = "" if g["enough_evidence"] else " (few)"
            table.append(
                (
                    g["group"],
                    printable(g["method"] + (f" [{g['basis']}]" if g["basis"] else ""))[:48],
                    g["atoms"],
                    str(g["processes"]),
                    str(g["jobs"]),
                    f"{g['time_samples']}/{g['mem_samples']}{enough}",
                    _num(g["suggested_walltime_min"], " min"),
                    _num(g["suggested_mem_mb"], " MB"),
                )
            )
        _print_table(table)


def _print_table(table: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
