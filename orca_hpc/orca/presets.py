"""Make an ORCA input from an xyz file and a method line, through a small Jinja2 template."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from pathlib import Path

from orca_hpc.errors import TEMPLATE_RUNTIME_ERRORS, InputFileError, UserError
from orca_hpc.orca.inputs import OrcaInput, parse_input
from orca_hpc.orca.xyz import Molecule, spin_problem

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import jinja2

#: The default preset template; a site or campaign may pass its own (same variables).
DEFAULT_TEMPLATE = """\
# {{ comment }}
! {{ method }}
%pal nprocs {{ nprocs }} end
%maxcore {{ maxcore }}

* xyz {{ charge }} {{ mult }}
{% for atom in molecule.atoms -%}
{{ "%-3s %15.8f %15.8f %15.8f"|format(atom.symbol, atom.x, atom.y, atom.z) }}
{% endfor -%}
*
"""


@functools.cache
def _environment() -> jinja2.Environment:
    """The Jinja2 environment, made on first use: commands that never render a preset (status,
    reconcile) import this module through submit and should not pay for jinja2."""
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


@functools.lru_cache(maxsize=32)
def _compiled(template: str) -> jinja2.Template:
    """Compiling costs more than rendering: a submit or a reconcile renders one template many times."""
    return _environment().from_string(template)


def render_preset(
    method: str,
    molecule: Molecule,
    charge: int,
    mult: int,
    nprocs: int,
    maxcore: int,
    template: str | None = None,
    blocks: tuple[str, ...] = (),
) -> tuple[str, OrcaInput]:
    """An ORCA input for ``molecule``, e.g. ``render_preset("r2SCAN-3c Opt", mol, 0, 1, 8, 3000)``, and
    its parse: a template or method that ORCA would refuse fails here, as ``UserError``, and the
    resource edit that follows reuses the parse rather than parsing the input again. ``blocks``: lines
    put before the coordinates (a workflow step's ``%moinp``), part of what is parsed."""
    method = method.strip().lstrip("!").strip()
    if not method or any(ch in method for ch in "\n\r#%*$"):
        raise UserError(f"method line {method!r} must be one line of ORCA keywords")
    if not molecule.atoms:
        raise UserError("the molecule has no atoms")
    if nprocs < 1 or maxcore < 1:
        raise UserError(f"nprocs ({nprocs}) and maxcore ({maxcore} MB) must be positive")
    problem = spin_problem(molecule.electrons_neutral, charge, mult)
    if problem:
        raise UserError(f"{molecule.formula} with charge {charge}, multiplicity {mult}: {problem}")
    comment = " ".join(molecule.comment.replace("#", " ").split()) or molecule.formula
    try:
        import jinja2

        text = _compiled(template or DEFAULT_TEMPLATE).render(
            method=method,
            molecule=molecule,
            charge=int(charge),
            mult=int(mult),
            nprocs=int(nprocs),
            maxcore=int(maxcore),
            comment=comment,
        )
    except jinja2.TemplateError as exc:
        raise UserError(f"preset template: {exc}") from None
    except TEMPLATE_RUNTIME_ERRORS as exc:  # the template's own code failed ({{ 1/0 }}, a loop of macros)
        raise UserError(f"preset template: {type(exc).__name__}: {str(exc)[:200]}") from None
    if blocks:
        text = _before_coordinates(text, blocks)
    try:
        parsed = parse_input(Path("<preset>"), text, check_files=False)
    except InputFileError as exc:
        raise UserError(f"the preset template makes an input ORCA would refuse: {exc}") from None
    return text, parsed


def _before_coordinates(text: str, blocks: tuple[str, ...]) -> str:
    lines = text.splitlines(keepends=True)
    at = next((i for i, line in enumerate(lines) if line.lstrip().startswith("*")), len(lines))
    return "".join(lines[:at]) + "".join(b + "\n" for b in blocks) + "".join(lines[at:])


def resolve_method(method: str, presets: Mapping[str, str]) -> str:
    """The method line for ``--method``: a preset's line when ``method`` names one of ``presets``,
    else ``method`` itself. A single word that is close to a preset's name is refused with a
    did-you-mean: a typo must not reach ORCA as a keyword. ``! WORD`` always means the keyword."""
    if method in presets:
        return presets[method]
    stripped = method.strip()
    if stripped.startswith("!") or len(stripped.split()) != 1 or not presets:
        return method
    lowered = {name.lower(): name for name in presets}
    close = difflib.get_close_matches(stripped.lower(), list(lowered), n=3, cutoff=0.6)
    if close:
        names = " or ".join(repr(lowered[c]) for c in close)
        raise UserError(
            f"--method {stripped!r} is not a preset of this campaign "
            f"(presets: {', '.join(sorted(presets))}); "
            f"did you mean {names}? To send {stripped!r} to ORCA as a keyword, write --method '! {stripped}'"
        )
    return method
