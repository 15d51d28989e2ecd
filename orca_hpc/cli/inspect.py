"""`orca-hpc inspect OUTPUT...`: how did these ORCA runs end?"""

from __future__ import annotations

import json

import click

from orca_hpc.controller.public import document
from orca_hpc.errors import UserError, one_line
from orca_hpc.orca.classify import Classification, classify_output
from orca_hpc.orca.read import check_output_path


def _summary(c: Classification) -> str:
    lines = [
        f"{c.file}: {c.outcome.value}"
        + ("" if c.outcome.value == "success" else f" ({'retryable' if c.retryable else 'not retryable'})")
    ]
    facts = [
        ("ORCA", c.orca_version),
        ("calculation", c.calc_kind),
        (
            "energy",
            None
            if c.energy is None
            else f"{c.energy:.10f} Eh" + ("" if c.energy_converged is not False else " (not converged)"),
        ),
        ("SCF cycles", c.scf_cycles),
        ("opt cycles", c.opt_cycles),
        ("processes", c.nprocs_used),
        ("memory asked", None if c.memory_required_mb is None else f"{c.memory_required_mb:g} MB"),
        ("run time", None if c.run_time_s is None else f"{c.run_time_s:.1f} s"),
    ]
    lines += [f"  {name}: {value}" for name, value in facts if value is not None]
    if c.message:
        lines.append(f"  message: {c.message}")
    return "\n".join(lines)


@click.command("inspect")
@click.argument("outputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="JSON: one object per file (docs/json.md).")
def inspect(outputs: tuple[str, ...], as_json: bool) -> None:
    """Say how each ORCA OUTPUT file ended (success, scf_not_converged, truncated, ...)."""
    # Check every path first so a typo in the last argument does not come after pages of output,
    # and name every bad path at once.
    problems = []
    for path in outputs:
        try:
            check_output_path(path)
        except UserError as err:
            problems.append(str(err))
    if problems:
        raise UserError(one_line(problems))
    results = [classify_output(path) for path in outputs]
    if as_json:
        click.echo(json.dumps(document("inspect", outputs=[r.to_dict() for r in results]), indent=2))
        return
    click.echo("\n\n".join(_summary(r) for r in results))
