"""A campaign's workflow: the ordered, named steps every molecule goes through (``orca-hpc.toml``).

Either a shipped preset::

    workflow = "opt-freq-sp"

or the steps themselves (a ``[workflow]`` table may also set ``conformers`` and say which preset it
starts from)::

    [workflow]
    conformers = 5                       # at most this many conformers per molecule
    [[workflow.steps]]
    name = "opt"
    method = "r2SCAN-3c Opt Freq"        # an ORCA method line, or a [presets] name
    nprocs = 4                           # default: the site's
    maxcore = 2000                       # MB per process; default: the site's memory rule
    walltime = "02:00:00"                # minutes or SLURM's forms; default: the site's
    max_retries = 2                      # default: the site's
    hand_over = ["orbitals", "hessian"]  # besides the final geometry (always)
    gate = "no-imaginary"                # frequencies must show no imaginary mode, else stop
    [[workflow.steps]]
    name = "sp"
    method = "wB97M-V def2-TZVP"

Every problem is found at once (``Workflow.parse`` raises one ``UserError``, one line per problem,
each naming the step and the key), when the campaign is loaded: ``init``, ``submit`` and every
other command refuse a workflow that could not run, before the ledger is touched.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orca_hpc.config.site import parse_walltime
from orca_hpc.errors import UserError, one_line
from orca_hpc.orca.inputs import input_intents
from orca_hpc.orca.presets import render_preset, resolve_method
from orca_hpc.orca.xyz import Atom, Molecule

GATES = ("no-imaginary",)
HAND_OVER = ("geometry", "orbitals", "hessian")
_STEP_KEYS = (
    "name",
    "method",
    "template",
    "nprocs",
    "maxcore",
    "walltime",
    "max_retries",
    "hand_over",
    "gate",
)
_WORKFLOW_KEYS = ("preset", "steps", "conformers", "rmsd", "energy_window")
_STEP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")

#: Shipped chains. r2SCAN-3c is a cheap, robust composite for geometries and frequencies; the single
#: point is a range-separated hybrid with a triple-zeta basis on that geometry.
PRESETS: dict[str, list[dict[str, Any]]] = {
    "opt-freq": [
        {"name": "opt", "method": "r2SCAN-3c Opt Freq", "gate": "no-imaginary"},
    ],
    "opt-freq-sp": [
        {"name": "opt", "method": "r2SCAN-3c Opt Freq", "gate": "no-imaginary"},
        {"name": "sp", "method": "wB97M-V def2-TZVP"},
    ],
    "xtb-opt-freq-sp": [
        {"name": "pre", "method": "XTB2 Opt"},
        {"name": "opt", "method": "r2SCAN-3c Opt Freq", "gate": "no-imaginary"},
        {"name": "sp", "method": "wB97M-V def2-TZVP"},
    ],
}


@dataclass(frozen=True)
class Step:
    name: str
    method: str  # the ORCA method line (a preset name already resolved)
    template: str | None = None  # Jinja2 input template (same variables as method_template)
    nprocs: int | None = None
    maxcore: int | None = None
    walltime_min: int | None = None
    max_retries: int | None = None
    hand_over: tuple[str, ...] = ()  # besides the geometry: "orbitals", "hessian"
    gate: str | None = None


@dataclass(frozen=True)
class Workflow:
    steps: tuple[Step, ...]
    conformers: int = 10
    rmsd: float = 0.125  # angstrom: CREST's default; 0.5 merges mirror-image rotamers (gauche+/-)
    energy_window_kcal: float = 10.0
    source: str = ""  # the preset it came from, if any

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def after(self, name: str) -> Step | None:
        """The step that follows ``name``; None after the last (or for a step no longer declared)."""
        names = [s.name for s in self.steps]
        if name not in names:
            return None
        i = names.index(name)
        return self.steps[i + 1] if i + 1 < len(self.steps) else None

    @staticmethod
    def parse(
        value: Any, config_path: Path, presets: Mapping[str, str], default_template: str | None
    ) -> Workflow:
        problems: list[str] = []
        where = f"{config_path}: workflow"
        settings: dict[str, Any] = {}
        source = ""
        if isinstance(value, str):
            raw_steps: Any = PRESETS.get(value)
            source = value
            if raw_steps is None:
                raise UserError(f"{where}: unknown preset {value!r} (presets: {', '.join(PRESETS)})")
        elif isinstance(value, dict):
            problems += [
                f"{where}: unknown key {k!r} (known: {', '.join(_WORKFLOW_KEYS)})"
                for k in value
                if k not in _WORKFLOW_KEYS
            ]
            source = value.get("preset", "")
            if source and source not in PRESETS:
                problems.append(f"{where}: unknown preset {source!r} (presets: {', '.join(PRESETS)})")
            raw_steps = value.get("steps", PRESETS.get(source) if source else None)
            if raw_steps is None:
                raw_steps = []  # reported below, with an empty list of steps
            settings = _settings(value, where, problems)
        else:
            raise UserError(f"{where}: must be a preset name or a [workflow] table")
        if not isinstance(raw_steps, list) or not all(isinstance(s, dict) for s in raw_steps):
            problems.append(f"{where}: steps must be a list of tables ([[workflow.steps]])")
            raw_steps = []
        elif not raw_steps:
            # every chain starts at the first step: a workflow without one could never run
            problems.append(f"{where}: no steps (add [[workflow.steps]] tables, or preset = NAME)")
        steps = []
        seen: set[str] = set()
        for number, raw in enumerate(raw_steps, 1):
            last = number == len(raw_steps)
            step = _step(raw, f"{where} step {number}", presets, default_template, last, problems)
            if step is not None:
                if step.name in seen:
                    problems.append(f"{where} step {number}: name {step.name!r} is used by an earlier step")
                seen.add(step.name)
                steps.append(step)
        for step, following in itertools.pairwise(steps):
            if "orbitals" in step.hand_over:
                problems += _orbitals_problems(step, following, where)
        if problems:
            raise UserError(one_line(problems))
        return Workflow(tuple(steps), source=source, **settings)


# Semi-empirical and tight-binding methods: their minimal-basis orbitals are no guess for an ab initio
# step (MORead has nothing to project, or a poor start), and they read no .gbw as a guess themselves.
_SEMI_EMPIRICAL = re.compile(
    r"(native-)?(gfn[012]?-?xtb|xtb[012]?|gfn-?ff|xtbff)|am1|pm3|mndo|(zindo|indo|cndo|nddo)/.*",
    re.IGNORECASE,
)


def semi_empirical(method: str) -> bool:
    """Whether an ORCA method line asks for a semi-empirical or tight-binding method (xTB, AM1, ...)."""
    return any(_SEMI_EMPIRICAL.fullmatch(word.lstrip("!")) for word in method.split())


def _orbitals_problems(step: Step, following: Step, where: str) -> list[str]:
    said = f"{where}: step {step.name!r}: key 'hand_over': 'orbitals'"
    if semi_empirical(step.method):
        return [f"{said}: its semi-empirical orbitals ({step.method}) are no guess for {following.name!r}"]
    if semi_empirical(following.method):
        return [f"{said}: the next step {following.name!r} is semi-empirical ({following.method})"]
    return []


def _settings(table: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, attr, kind in (
        ("conformers", "conformers", int),
        ("rmsd", "rmsd", float),
        ("energy_window", "energy_window_kcal", float),
    ):
        if key not in table:
            continue
        value = table[key]
        ok = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int)
        # rmsd 0 keeps every frame a file gives (no duplicates removed); the others must be positive.
        if not ok or value < 0 or (value == 0 and key != "rmsd"):
            low = "0 or more" if key == "rmsd" else "positive"
            what = "number" if kind is float else "whole number"
            problems.append(f"{where}: key {key!r} must be a {low} {what}")
        else:
            out[attr] = kind(value)
    return out


def _positive_int(
    raw: dict[str, Any], key: str, where: str, problems: list[str], zero_ok: bool = False
) -> int | None:
    if key not in raw:
        return None
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero_ok else 1):
        what = "a whole number from 0" if zero_ok else "a positive whole number"
        problems.append(f"{where}: key {key!r} must be {what}, not {value!r}")
        return None
    return value


# A small molecule to render each step's method line through its template: what ORCA would refuse
# is found when the campaign loads, not when the step's first job is made hours later.
_PROBE = Molecule([Atom("H", 0.0, 0.0, 0.0), Atom("H", 0.0, 0.0, 0.74)], "probe")


def _step(
    raw: dict[str, Any],
    where: str,
    presets: Mapping[str, str],
    default_template: str | None,
    last: bool,
    problems: list[str],
) -> Step | None:
    before = len(problems)
    problems += [
        f"{where}: unknown key {k!r} (known: {', '.join(_STEP_KEYS)})" for k in raw if k not in _STEP_KEYS
    ]
    name = raw.get("name")
    if not isinstance(name, str) or not _STEP_NAME.fullmatch(name):
        problems.append(f"{where}: key 'name' must be a letter then letters, digits, '_' or '-' (at most 32)")
        name = "?"
    else:
        where = f"{where} ({name!r})"
    method = raw.get("method")
    if not isinstance(method, str) or not method.strip():
        problems.append(f"{where}: key 'method' must be an ORCA method line or a [presets] name")
        method = ""
    else:
        try:
            method = resolve_method(method, presets)
        except UserError as err:
            problems.append(f"{where}: key 'method': {err}")
    template = raw.get("template", default_template)
    if template is not None and not isinstance(template, str):
        problems.append(f"{where}: key 'template' must be a string (a Jinja2 input template)")
        template = None
    nprocs = _positive_int(raw, "nprocs", where, problems)
    maxcore = _positive_int(raw, "maxcore", where, problems)
    max_retries = _positive_int(raw, "max_retries", where, problems, zero_ok=True)
    walltime = None
    if "walltime" in raw:
        try:
            walltime = parse_walltime(raw["walltime"])
        except ValueError as err:
            problems.append(f"{where}: key 'walltime': {err}")
    hand_over = raw.get("hand_over", [])
    if not isinstance(hand_over, list) or not all(isinstance(h, str) and h in HAND_OVER for h in hand_over):
        problems.append(f"{where}: key 'hand_over' must be a list of {', '.join(map(repr, HAND_OVER))}")
        hand_over = []
    gate = raw.get("gate")
    if gate is not None and gate not in GATES:
        problems.append(f"{where}: key 'gate' must be one of {', '.join(map(repr, GATES))}, not {gate!r}")
        gate = None
    freq = False
    if method and len(problems) == before:
        try:
            text, parsed = render_preset(method, _PROBE, 0, 1, 1, 100, template)
            freq = any(intent.freq for intent in input_intents(Path("<step>"), text))
            jobs = parsed.jobs
            if len(jobs) > 1 and jobs[-1].base is None and any(job.base for job in jobs[:-1]):
                # Its last job's files (the final geometry, the orbitals) would be named after an
                # earlier job's %base or after the input, as ORCA carries settings over: not plain.
                problems.append(
                    f"{where}: key 'template': its last job ($new_job) sets no %base while an earlier "
                    "job does: give the last job its own %base (its files hand the step over)"
                )
        except UserError as err:
            problems.append(f"{where}: key 'method': {err}")
    if len(problems) > before:
        return None
    if gate == "no-imaginary" and not freq:
        problems.append(
            f"{where}: key 'gate': 'no-imaginary' needs frequencies (add Freq to the method line)"
        )
    if "hessian" in hand_over and not freq:
        problems.append(
            f"{where}: key 'hand_over': 'hessian' needs frequencies (add Freq to the method line)"
        )
    if last and set(hand_over) - {"geometry"}:
        problems.append(f"{where}: key 'hand_over': the last step has no next step to hand files to")
    if len(problems) > before:
        return None
    return Step(
        name=name,
        method=method,
        template=template,
        nprocs=nprocs,
        maxcore=maxcore,
        walltime_min=walltime,
        max_retries=max_retries,
        hand_over=tuple(h for h in hand_over if h != "geometry"),
        gate=gate,
    )
