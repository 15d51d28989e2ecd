"""`orca-hpc results --by molecule`: prints the tables of ``controller/by_molecule.py``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click

from orca_hpc.cli.common import printable
from orca_hpc.controller.by_molecule import (
    HARTREE_KCAL_MOL,
    KB_KCAL_MOL_K,
    MoleculeTable,
    chain_of,
    csv_columns,
    csv_rows,
    molecule_record,
    molecule_tables,
    runs_of,
    step_order,
)
from orca_hpc.controller.public import document
from orca_hpc.ledger.records import Job


def echo_by_molecule(root: Path, every: list[Job], selected: list[Job], fmt: str | None) -> None:
    """The molecules of the ``selected`` jobs, each from all its chain jobs in ``every``."""
    wanted = {c.molecule for c in map(chain_of, selected) if c is not None}
    runs = runs_of((j for j in every if (c := chain_of(j)) is not None and c.molecule in wanted), root)
    # The campaign's steps, whatever was chosen: the CSV columns and `steps` do not depend on the selection.
    steps = step_order(runs_of(every, root, chemistry=False))
    tables = molecule_tables(runs)
    if fmt == "json":
        body = {
            "steps": steps,
            "hartree_kcal_mol": HARTREE_KCAL_MOL,
            "kB_kcal_mol_K": KB_KCAL_MOL_K,
            "molecules": [molecule_record(t) for t in tables],
        }
        click.echo(json.dumps(document("results_by_molecule", **body), indent=1))
    elif fmt == "csv":
        rows = csv_rows(tables, steps)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=csv_columns(steps), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()}
            )
        click.echo(buf.getvalue(), nl=False)
    elif not tables:
        click.echo("no workflow jobs (results --by molecule lists the molecules of chained steps)")
    else:
        for i, table in enumerate(tables):
            if i:
                click.echo("")
            _echo_table(table)


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _echo_table(table: MoleculeTable) -> None:
    finished = sum(1 for r in table.conformers if r.status == "finished")
    head = f"{printable(table.molecule)}: {finished}/{len(table.conformers)} conformers finished"
    if table.best_conformer is not None:
        by = "free energy" if table.ranked_by == "free_energy" else "electronic energy (no thermochemistry)"
        head += f", best {table.best_conformer}, by {by}, weights at {table.temperature_K:.2f} K"
        if table.temperature_source == "default":
            head += " (default)"
    if table.note:
        head += f"; {table.note}"
    click.echo(head)
    rows: list[tuple[str, ...]] = [("CONF", "STATUS", "G/Eh", "dG/kcal/mol", "WEIGHT", "GEOMETRY / NOTE")]
    for r in table.conformers:
        energy = r.free_energy_Eh if table.ranked_by == "free_energy" else r.high_level_energy_Eh
        rows.append(
            (
                f"{r.conformer}{' *' if r.best else ''}",
                r.status,
                _cell(energy, ".8f"),
                _cell(r.relative_kcal_mol, ".2f"),
                _cell(r.boltzmann_weight, ".4f"),
                printable("; ".join(x for x in (r.final_xyz, r.note) if x) or "-"),  # names a step
            )
        )
    if table.ranked_by == "electronic_energy":
        rows[0] = ("CONF", "STATUS", "E/Eh", "dE/kcal/mol", "WEIGHT", "GEOMETRY / NOTE")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
