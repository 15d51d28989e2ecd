"""Results per molecule: a workflow's chain jobs turned into one table per molecule, and progress per step.

A workflow job carries a chain (``molecule``, 1-based ``conformer``, ``step``, ``after``: the job id of
the predecessor step's job, or None). Everything here but ``runs_of`` is pure: it takes ``StepRun``
rows (a job id, its state, its chain, what its latest attempt found) so it is tested without a ledger.

Per conformer, the table takes from the campaign's steps (ordered by their ``after`` links):

- the electronic energy of every COMPLETED step (``FINAL SINGLE POINT ENERGY``, Eh);
- ZPE, H, G, temperature and imaginary modes from the last step with thermochemistry (the frequency
  step);
- the composite free energy ``G = E(high) + (G(freq) - E(freq))``: the thermal correction of the
  frequency step (computed at the cheap level, on the geometry it shares with the high-level step)
  added to the electronic energy of the last step that has one (the high level). This is the usual
  transfer of a thermal correction between levels (e.g. ``G = E(DLPNO-CCSD(T)) + G_corr(B3LYP)``);
  with no later single point it is the frequency step's own G. A step between them that moved the
  atoms (an optimisation: the classifier's ``calc_kind``) leaves no free energy: the correction
  belongs to the geometry the frequencies were computed on;
- the final geometry: the ``final_xyz`` of the last step that brought one back.

Across the molecule's finished conformers: free energies relative to the lowest in kcal/mol
(1 Eh = 627.509474 kcal/mol) and Boltzmann weights ``exp(-dG/(kB T)) / sum`` (kB = 1.987204e-3
kcal/(mol K)) at the frequency step's temperature (298.15 K when no step reports one). When no finished
conformer has a free energy, the electronic energy of the last step ranks them instead (``ranked_by``
says which). Unfinished, failed and cancelled conformers are listed with what stopped them and get no
weight; so do finished ones that are no minimum (an imaginary mode at the frequency step; a step that
asked for a transition state wants exactly one) and those whose G is at another temperature than the
molecule's. Each weighed conformer counts once (no degeneracy factor: mirror-image or symmetry-equal
conformers are the user's to merge or count).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orca_hpc.ledger.records import Job

HARTREE_KCAL_MOL = 627.509474  # kcal/mol per hartree (CODATA 2018, as ORCA prints it)
KB_KCAL_MOL_K = 1.987204e-3  # Boltzmann constant in kcal/(mol K) (R = 8.314462618 J/(mol K))
DEFAULT_TEMPERATURE_K = 298.15  # when no step of a conformer reports a temperature

COMPLETED = "COMPLETED"
# ORCA prints the thermochemistry's E(el) to 1e-8 Eh, the final energy to 1e-12: within this they agree.
_PRINTED_AGREEMENT_EH = 1e-6
# The classifier's calc_kind of a step that moves the atoms (``orca.classify._calc_kind``).
_MOVES_ATOMS = frozenset({"optimisation", "transition_state", "neb", "irc", "molecular_dynamics"})
_STOPPED = {"PERMANENT_FAILED": "failed", "CANCELLED": "cancelled"}


@dataclass(frozen=True, slots=True)
class Chain:
    """Where a workflow job stands: its molecule, conformer (1-based), step and predecessor's job id."""

    molecule: str
    conformer: int
    step: str
    after: str | None = None


def _chain_value(raw: Any, key: str) -> Any:
    return raw.get(key) if isinstance(raw, Mapping) else getattr(raw, key, None)


def chain_of(job: Any) -> Chain | None:
    """The chain of a ledger job, None for a plain job (or a chain this version cannot read).

    The one place that reads the field: the ``chain`` attribute the workflow change adds to ``Job``
    (a dict or a record with the same names), else a ``chain`` kept in the job's extra fields, so
    tables work with either form of the ledger."""
    raw = getattr(job, "chain", None)
    if raw is None:
        extra = getattr(job, "extra", None)
        raw = extra.get("chain") if isinstance(extra, Mapping) else None
    if raw is None:
        return None
    molecule, conformer = _chain_value(raw, "molecule"), _chain_value(raw, "conformer")
    step, after = _chain_value(raw, "step"), _chain_value(raw, "after")
    if not (isinstance(molecule, str) and molecule and isinstance(step, str) and step):
        return None
    if not isinstance(conformer, int) or isinstance(conformer, bool) or conformer < 1:
        return None
    return Chain(molecule, conformer, step, after if isinstance(after, str) and after else None)


@dataclass(frozen=True, slots=True)
class StepRun:
    """One chain job: its state and, when COMPLETED, what its latest attempt found.

    ``chemistry`` holds the `results` columns of ``attempt.summary.chemistry_columns`` (``zpe_Eh``,
    ``enthalpy_Eh``, ``gibbs_Eh``, ``temperature_K``, ``n_imaginary``, ``final_xyz``, ...)."""

    job_id: str
    state: str
    chain: Chain
    energy: float | None = None
    chemistry: Mapping[str, Any] = field(default_factory=dict)
    # Why the molecule's chain stopped after this COMPLETED step (its gate failed, or the next step
    # could not be made: the job's ``extra["stop"]``); None when it went on or was the last step.
    stop: str | None = None


def runs_of(jobs: Iterable[Job], root: Path, *, chemistry: bool = True) -> list[StepRun]:
    """The chain jobs among ``jobs``; with ``chemistry``, a COMPLETED one's energy and what its
    result.json holds (`status` counts states only and reads no result file)."""
    from orca_hpc.attempt.folder import read_result
    from orca_hpc.attempt.summary import chemistry_columns

    runs = []
    for job in jobs:
        chain = chain_of(job)
        if chain is None:
            continue
        att = job.attempt
        stop = job.extra.get("stop") if isinstance(job.extra, Mapping) else None
        stop = stop if isinstance(stop, str) and stop else None
        if chemistry and job.state.value == COMPLETED and att is not None and att.dir:
            folder = root / att.dir
            result = read_result(folder)
            found = chemistry_columns(folder, result)
            # What the step asked of its frequencies and whether it moved the atoms: the table's
            # checks (a saddle point is no conformer; a correction belongs to its own geometry).
            asked = result.classification if result is not None else {}
            for key in ("intent", "calc_kind"):
                found[key] = asked.get(key) if isinstance(asked.get(key), str) else None
            found["thermo_energy_Eh"] = _number(asked.get("thermo_energy"))
            runs.append(StepRun(job.id, job.state.value, chain, att.energy, found, stop))
        else:
            runs.append(StepRun(job.id, job.state.value, chain, stop=stop))
    return runs


# ---------------------------------------------------------------- steps


def step_order(runs: Sequence[StepRun]) -> list[str]:
    """The steps, each after the steps its jobs' ``after`` links point to; otherwise (and for a cycle,
    which a sound workflow never makes) in the order their first jobs appear."""
    first: dict[str, int] = {}
    step_of: dict[str, str] = {}
    for i, run in enumerate(runs):
        first.setdefault(run.chain.step, i)
        step_of[run.job_id] = run.chain.step
    before: dict[str, set[str]] = {step: set() for step in first}
    for run in runs:
        previous = step_of.get(run.chain.after or "")
        if previous is not None and previous != run.chain.step:
            before[run.chain.step].add(previous)
    order: list[str] = []
    waiting = sorted(first, key=first.__getitem__)
    while waiting:
        ready = next((s for s in waiting if before[s] <= set(order)), waiting[0])
        order.append(ready)
        waiting.remove(ready)
    return order


@dataclass(frozen=True, slots=True)
class StepProgress:
    step: str
    completed: int
    total: int  # jobs that exist at this step (a step's jobs are made as predecessors complete)


def step_progress(runs: Sequence[StepRun]) -> list[StepProgress]:
    """Per step, in order: COMPLETED jobs and all jobs at that step."""
    return [
        StepProgress(
            step,
            sum(1 for r in runs if r.chain.step == step and r.state == COMPLETED),
            sum(1 for r in runs if r.chain.step == step),
        )
        for step in step_order(runs)
    ]


def progress_line(progress: Sequence[StepProgress]) -> str:
    """``opt 120/200  freq 80/120  sp 40/80`` (empty without chain jobs)."""
    return "  ".join(f"{p.step} {p.completed}/{p.total}" for p in progress)


# ---------------------------------------------------------------- the table


@dataclass(slots=True)
class StepResult:
    """One step of one conformer: its job, state, energy (Eh) and final geometry."""

    step: str
    job: str  # its id
    state: str
    energy_Eh: float | None
    final_xyz: str | None


@dataclass(slots=True)
class ConformerRow:
    conformer: int
    status: str  # finished | unfinished | failed | cancelled
    note: str | None  # what stopped or holds an unfinished conformer, or why it has no weight
    steps: list[StepResult]
    thermo_step: str | None = None
    zpe_Eh: float | None = None
    enthalpy_Eh: float | None = None
    gibbs_Eh: float | None = None
    temperature_K: float | None = None
    n_imaginary: int | None = None
    high_level_step: str | None = None
    high_level_energy_Eh: float | None = None
    free_energy_Eh: float | None = None  # composite: E(high) + G(freq) - E(freq)
    relative_kcal_mol: float | None = None
    boltzmann_weight: float | None = None
    best: bool = False
    final_xyz: str | None = None
    # Why this finished conformer gets no weight at all (an imaginary mode it should not have), and why
    # it has no free energy though it has thermochemistry (the atoms moved after the frequency step).
    unweighable: str | None = None
    no_free_energy: str | None = None


@dataclass(slots=True)
class MoleculeTable:
    molecule: str
    conformers: list[ConformerRow]
    ranked_by: str | None  # free_energy | electronic_energy | None (no finished conformer)
    temperature_K: float
    temperature_source: str  # frequency step | default
    best_conformer: int | None
    note: str | None


def _number(value: Any) -> float | None:
    # result.json may be hand-edited (and Python's json reads NaN): a wrong or non-finite value is absent.
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value)


def _conformer_row(number: int, by_step: dict[str, StepRun], order: Sequence[str]) -> ConformerRow:
    steps = []
    for step in order:
        run = by_step.get(step)
        if run is None:
            continue
        done = run.state == COMPLETED
        xyz = run.chemistry.get("final_xyz") if done else None
        steps.append(
            StepResult(
                step,
                run.job_id,
                run.state,
                _number(run.energy) if done else None,
                xyz if isinstance(xyz, str) else None,
            )
        )
    stopped = next((s for s in steps if s.state in _STOPPED), None)
    # A COMPLETED step whose gate failed (an imaginary mode: not a minimum) or whose successor could
    # not be made ends the chain for good: failed, never weighed, even at the last step.
    gated = next((s for s in steps if s.state == COMPLETED and by_step[s.step].stop), None)
    if stopped is not None:
        status, note = _STOPPED[stopped.state], f"{stopped.step} {stopped.state} ({stopped.job})"
        if by_step[stopped.step].stop:  # a failed gate says why
            note = f"{note}: {by_step[stopped.step].stop}"
    elif gated is not None:
        status, note = "failed", f"{gated.step} stopped the chain ({gated.job}): {by_step[gated.step].stop}"
    elif order and order[-1] in by_step and by_step[order[-1]].state == COMPLETED:
        status, note = "finished", None
    else:
        latest = steps[-1]
        status, note = "unfinished", f"at {latest.step} ({latest.state}, {latest.job})"
    row = ConformerRow(number, status, note, steps)
    for s in steps:
        if s.final_xyz is not None:
            row.final_xyz = s.final_xyz
        if s.energy_Eh is not None:
            row.high_level_step, row.high_level_energy_Eh = s.step, s.energy_Eh
    thermo = next(
        (
            s
            for s in reversed(steps)
            if s.state == COMPLETED and _number(by_step[s.step].chemistry.get("gibbs_Eh")) is not None
        ),
        None,
    )
    if thermo is not None:
        chemistry = by_step[thermo.step].chemistry
        row.thermo_step = thermo.step
        row.zpe_Eh = _number(chemistry.get("zpe_Eh"))
        row.enthalpy_Eh = _number(chemistry.get("enthalpy_Eh"))
        row.gibbs_Eh = _number(chemistry.get("gibbs_Eh"))
        kelvin = _number(chemistry.get("temperature_K"))
        row.temperature_K = kelvin if kelvin is not None and kelvin > 0 else None  # weights divide by it
        n = chemistry.get("n_imaginary")
        row.n_imaginary = n if isinstance(n, int) and not isinstance(n, bool) else None
        row.unweighable = _imaginary_verdict(thermo.step, row.n_imaginary, chemistry.get("intent"))
        # G - E(el) with the E(el) ORCA's thermochemistry started from. The step's final energy says
        # the same to more digits, unless it is another job's (freq, then a $new_job single point).
        printed, final = _number(chemistry.get("thermo_energy_Eh")), thermo.energy_Eh
        other_job = printed is not None and (final is None or abs(printed - final) > _PRINTED_AGREEMENT_EH)
        high, low = row.high_level_energy_Eh, printed if other_job else final
        later = steps[steps.index(thermo) + 1 :]
        moved = next((s for s in later if by_step[s.step].chemistry.get("calc_kind") in _MOVES_ATOMS), None)
        if moved is not None and row.high_level_step in {s.step for s in later[later.index(moved) :]}:
            # G - E is a property of the geometry the frequencies were computed on: adding it to an
            # energy at another geometry (a later optimisation) is no free energy of anything.
            row.no_free_energy = (
                f"{moved.step} moved the atoms after the frequency step {thermo.step}: "
                "its thermal correction does not apply, no free energy"
            )
        elif row.gibbs_Eh is not None and row.high_level_step == thermo.step and not other_job:
            row.free_energy_Eh = row.gibbs_Eh  # no later single point: the frequency step's own G
        elif row.gibbs_Eh is not None and high is not None and low is not None:
            row.free_energy_Eh = high + (row.gibbs_Eh - low)
    return row


def _imaginary_verdict(step: str, n: int | None, intent: Any) -> str | None:
    """Why a conformer whose frequency step found ``n`` imaginary modes must not be weighed, or None.

    A conformer is a minimum: any imaginary mode (beyond the noise threshold) makes it a saddle point,
    whose G (ORCA drops the imaginary mode from the partition function) is no conformer's free energy.
    Only a step that asked for a transition state (OptTS: intent ``saddle``) wants exactly one."""
    if n is None:
        return None
    wanted = 1 if intent == "saddle" else 0
    if n == wanted:
        return None
    what = "not a transition state (1 wanted)" if wanted else "not a minimum"
    return f"{step}: {n} imaginary mode(s), {what}: no weight"


def _rank(molecule: str, rows: list[ConformerRow]) -> MoleculeTable:
    finished = [r for r in rows if r.status == "finished"]
    eligible = [r for r in finished if r.unweighable is None]
    with_g = [r for r in eligible if r.free_energy_Eh is not None]
    ranked_by: str | None
    if with_g:
        ranked_by, ranked = "free_energy", with_g
    else:
        ranked = [r for r in eligible if r.high_level_energy_Eh is not None]
        ranked_by = "electronic_energy" if ranked else None
    temperatures = sorted({r.temperature_K for r in ranked if r.temperature_K is not None})
    known = [r.temperature_K for r in ranked if r.temperature_K is not None]
    # The temperature most conformers share (the first one's on a tie): one rerun at another
    # temperature must not leave the rest unweighed.
    temperature = max(known, key=known.count) if known else None
    off: dict[int, float | None] = {}
    if ranked_by == "free_energy" and temperature is not None:
        # Free energies at different temperatures cannot be compared, nor weighed at one temperature.
        off = {r.conformer: r.temperature_K for r in ranked if r.temperature_K not in (None, temperature)}
        ranked = [r for r in ranked if r.conformer not in off]
    weighed = {r.conformer for r in ranked}
    for r in finished:
        if r.unweighable is not None:
            r.note = r.unweighable
        elif r.conformer in off:
            r.note = f"G at {off[r.conformer]:g} K, not at the molecule's {temperature:g} K: no weight"
        elif r.conformer not in weighed:
            r.note = (
                f"{r.no_free_energy}: no weight"
                if r.no_free_energy
                else "no free energy (no thermochemistry, or no energy at its frequency step): no weight"
                if ranked_by == "free_energy"
                else "no electronic energy: no weight"
            )
    note = None
    if not finished:
        note = "no finished conformer"
    elif len(temperatures) > 1:
        note = f"frequency steps at different temperatures ({', '.join(f'{t:g}' for t in temperatures)} K)"
    source = "frequency step" if temperature is not None else "default"
    kelvin = temperature if temperature is not None else DEFAULT_TEMPERATURE_K
    best = None
    if ranked:

        def value(r: ConformerRow) -> float:
            found = r.free_energy_Eh if ranked_by == "free_energy" else r.high_level_energy_Eh
            assert found is not None  # ranked rows have it
            return found

        lowest = min(value(r) for r in ranked)
        for r in ranked:
            r.relative_kcal_mol = (value(r) - lowest) * HARTREE_KCAL_MOL
        factors = [math.exp(-(r.relative_kcal_mol or 0.0) / (KB_KCAL_MOL_K * kelvin)) for r in ranked]
        total = sum(factors)  # >= 1: the lowest conformer's factor is exp(0)
        for r, f in zip(ranked, factors, strict=True):
            r.boltzmann_weight = f / total
        best = min(ranked, key=lambda r: (value(r), r.conformer))
        best.best = True
    return MoleculeTable(molecule, rows, ranked_by, kelvin, source, best.conformer if best else None, note)


def molecule_tables(runs: Sequence[StepRun]) -> list[MoleculeTable]:
    """One table per molecule (in the order molecules first appear), conformers by number."""
    order = step_order(runs)
    grouped: dict[str, dict[int, dict[str, StepRun]]] = {}
    for run in runs:
        by_step = grouped.setdefault(run.chain.molecule, {}).setdefault(run.chain.conformer, {})
        by_step[run.chain.step] = run  # one job per step; a later id (a remade one) wins
    return [
        _rank(molecule, [_conformer_row(n, conformers[n], order) for n in sorted(conformers)])
        for molecule, conformers in grouped.items()
    ]


# ---------------------------------------------------------------- public forms


def conformer_record(row: ConformerRow) -> dict[str, Any]:
    """One conformer under its public names (docs/json.md, kind ``results_by_molecule``)."""
    return {
        "conformer": row.conformer,
        "status": row.status,
        "note": row.note,
        "best": row.best,
        "free_energy_Eh": row.free_energy_Eh,
        "relative_kcal_mol": row.relative_kcal_mol,
        "boltzmann_weight": row.boltzmann_weight,
        "high_level_step": row.high_level_step,
        "high_level_energy_Eh": row.high_level_energy_Eh,
        "thermo_step": row.thermo_step,
        "zpe_Eh": row.zpe_Eh,
        "enthalpy_Eh": row.enthalpy_Eh,
        "gibbs_Eh": row.gibbs_Eh,
        "temperature_K": row.temperature_K,
        "n_imaginary": row.n_imaginary,
        "final_xyz": row.final_xyz,
        "steps": [dataclasses.asdict(s) for s in row.steps],  # step, job, state, energy_Eh, final_xyz
    }


def molecule_record(table: MoleculeTable) -> dict[str, Any]:
    return {
        "molecule": table.molecule,
        "best_conformer": table.best_conformer,
        "ranked_by": table.ranked_by,
        "temperature_K": table.temperature_K,
        "temperature_source": table.temperature_source,
        "conformers_total": len(table.conformers),
        "conformers_finished": sum(1 for r in table.conformers if r.status == "finished"),
        "note": table.note,
        "conformers": [conformer_record(r) for r in table.conformers],
    }


def csv_columns(steps: Sequence[str]) -> list[str]:
    """The header of `results --by molecule --csv`, the same with or without rows."""
    record = conformer_record(ConformerRow(1, "finished", None, []))
    fixed = ["molecule", "ranked_by", "weights_temperature_K", *(k for k in record if k != "steps")]
    return fixed + [f"{step}_{what}" for step in steps for what in ("job", "state", "energy_Eh")]


def csv_rows(tables: Sequence[MoleculeTable], steps: Sequence[str]) -> list[dict[str, Any]]:
    """One row per conformer: the molecule's ranking, the conformer's thermochemistry, then each step's
    job, state and energy (``<step>_job``, ``<step>_state``, ``<step>_energy_Eh``)."""
    rows = []
    for table in tables:
        for r in table.conformers:
            record = conformer_record(r)
            row = {
                "molecule": table.molecule,
                "ranked_by": table.ranked_by,
                "weights_temperature_K": table.temperature_K,
                **{k: v for k, v in record.items() if k != "steps"},
            }
            by_step = {s["step"]: s for s in record["steps"]}
            for step in steps:
                found = by_step.get(step, {})
                row[f"{step}_job"] = found.get("job")
                row[f"{step}_state"] = found.get("state")
                row[f"{step}_energy_Eh"] = found.get("energy_Eh")
            rows.append(row)
    return rows
