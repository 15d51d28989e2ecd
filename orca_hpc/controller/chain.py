"""Workflow chains: each step of a molecule's conformer is a job; a COMPLETED step makes the next.

`submit` of a workflow campaign records the FIRST step's job per molecule and conformer
(`workflow_inputs`). When reconcile records a step's job COMPLETED, it calls `advance` in the same
ledger transaction: the gate is checked and the next step's job is recorded (CREATED, its attempt
folder laid out), so the completion and the successor are saved together or not at all. A crash
before the save loses neither (the completion is seen again by the next reconcile); a crash after it
leaves a CREATED job that the next reconcile dispatches. A successor whose ``chain.after`` is this job
is looked for first, so a step is never made twice.

The chain is driven by reconcile rather than SLURM ``--dependency``: the ledger is the only place that
knows whether a step really succeeded (the runner's classification, the gate), a dependency on a job
that SLURM calls COMPLETED but ORCA-aware recovery retries would start the next step on a bad
geometry, and the next step's input (the predecessor's final geometry) exists only once it ended.

The next step's input: its method line (or template) rendered on the predecessor's final geometry
(``<base>.xyz`` that ORCA wrote in the predecessor's last attempt folder), with the same charge,
multiplicity and comment line; ``orbitals`` hands the ``.gbw`` over as ``MORead``/``%moinp``,
``hessian`` the ``.hess`` as ``%geom InHess Read InHessName``.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from orca_hpc.attempt.folder import (
    AttemptPlan,
    AttemptResult,
    plan_of,
    read_attempt_input,
    read_result,
    safe_base,
)
from orca_hpc.config.campaign import Campaign
from orca_hpc.config.workflow import Step
from orca_hpc.controller.fit import excesses
from orca_hpc.controller.gather import expand_inputs
from orca_hpc.controller.submit import NewJob, Ready, _plan, record_attempt
from orca_hpc.errors import InputFileError, OrcaHpcError, UserError, one_line
from orca_hpc.ledger.records import Job
from orca_hpc.ledger.store import Transaction
from orca_hpc.molecules import ConformerSettings, read_molecules
from orca_hpc.orca.inputs import final_base, parse_input
from orca_hpc.orca.presets import render_preset
from orca_hpc.orca.xyz import Molecule, read_xyz, read_xyz_frames

PREV_GBW = "prev.gbw"
PREV_HESS = "prev.hess"


def job_name(molecule: str, conformer: int, step: str) -> str:
    """``water.c1.opt``: the step's job name (and, made safe, its ORCA base name)."""
    return f"{molecule}.c{conformer}.{step}"


def chain_of(molecule: str, conformer: int, step: str, after: str | None) -> dict[str, Any]:
    return {"molecule": molecule, "conformer": conformer, "step": step, "after": after}


def _step_plan(
    campaign: Campaign,
    step: Step,
    name: str,
    geometry: Molecule,
    charge: int,
    mult: int,
    source: Path,
    handed: Mapping[str, Path] | None = None,
) -> AttemptPlan:
    """The step's input for ``geometry``, with its resources; ``handed``: files from the step before."""
    site = campaign.site
    nprocs = step.nprocs or site.nprocs
    # The numbers rendered here are placeholders: `_plan` fits the request to the node where the site
    # says fit_to_node (or refuses it, with the numbers) and writes %pal and %maxcore again. Held to
    # the memory rule before that fit, a step over the node stopped every molecule it reached.
    maxcore = step.maxcore or 1
    handed = dict(handed or {})
    # ORCA refuses a keyword given twice: a step whose own line says MORead gets no second one.
    says_moread = "moread" in step.method.lower().split()
    method = step.method + (" MORead" if PREV_GBW in handed and not says_moread else "")
    blocks: tuple[str, ...] = ()
    if PREV_GBW in handed:
        blocks += (f'%moinp "{PREV_GBW}"',)
    if PREV_HESS in handed:
        blocks += (f'%geom\n  InHess Read\n  InHessName "{PREV_HESS}"\nend',)
    try:
        text, parsed = render_preset(method, geometry, charge, mult, nprocs, maxcore, step.template, blocks)
    except UserError as err:
        raise InputFileError(source, f"step {step.name!r}: {err}") from None
    # A step asking for more than a node has (its walltime too) is refused, or fitted when the site
    # says fit_to_node. The files handed over are the campaign's own, never rewritten in place: shared
    # with the predecessor's folder (a hard link) rather than copied.
    fit = campaign.site.fit_to_node
    try:
        plan = _plan(
            campaign, text, name, nprocs, step.maxcore, handed, source, fit, parsed, step.walltime_min
        )
    except InputFileError as err:
        raise InputFileError(source, f"step {step.name!r}: {err.problem}") from None
    plan.shared_files = frozenset(handed)
    return plan


def step_sha(name: str, plan: AttemptPlan, root: Path) -> str:
    """A step's identity: its input and the job's name (molecule, conformer, step), so two molecules
    that happen to share a geometry both run, and submitting the same molecules again skips them.
    A file handed over counts by where it comes from in the campaign (the predecessor's attempt
    folder, never rewritten), not by its bytes: a .gbw of hundreds of MB is not read to name a job."""
    digest = hashlib.sha256(f"{name}\0{plan.input_text}".encode())
    inside = os.path.join(root, "")
    for handed in sorted(plan.extra_files):
        where = os.fspath(plan.extra_files[handed])
        digest.update(f"\0{handed}\0{where.removeprefix(inside)}".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- submit: the first steps


def workflow_inputs(
    campaign: Campaign,
    paths: Sequence[Path],
    *,
    method: str | None = None,
    fit: bool | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[NewJob]:
    """The first step's job of every conformer of every molecule in ``paths``; every problem of every
    file in one `UserError`, before anything is recorded."""
    workflow = campaign.workflow
    assert workflow is not None
    if method:
        raise UserError(
            "this campaign runs a workflow: its methods come from [workflow] in orca-hpc.toml, not --method"
        )
    if fit is not None and fit != campaign.site.fit_to_node:
        # Later steps are made by reconcile, which never sees this submit's flag: one rule for all.
        raise UserError(
            "this campaign runs a workflow: its later steps are made by reconcile, which does not see "
            f"--{'' if fit else 'no-'}fit; set fit_to_node = {'true' if fit else 'false'} in "
            "[overrides.slurm] of orca-hpc.toml instead"
        )
    _check_steps_fit(campaign, workflow.steps)
    files, errors = expand_inputs(paths)
    settings = ConformerSettings(
        count=workflow.conformers, rmsd=workflow.rmsd, energy_window_kcal=workflow.energy_window_kcal
    )
    molecules = []
    try:
        molecules = read_molecules(files, settings)
    except UserError as err:
        errors.append(str(err))
    first = workflow.steps[0]
    jobs: list[NewJob] = []
    for mol in molecules:
        for conf in mol.conformers:
            if progress is not None:
                progress(1)
            name = job_name(mol.name, conf.index, first.name)
            try:
                geometry = read_xyz(mol.source, conf.xyz)
                plan = _step_plan(campaign, first, name, geometry, mol.charge, mol.multiplicity, mol.source)
            except OrcaHpcError as err:
                errors.append(str(err))
                continue
            nj = NewJob(mol.source, name, step_sha(name, plan, campaign.root), plan)
            nj.chain = chain_of(mol.name, conf.index, first.name, None)
            nj.max_retries = first.max_retries
            nj.maxcore_given = first.maxcore is not None  # right-sizing never lowers a step's own maxcore
            jobs.append(nj)
    if errors:
        raise UserError(one_line(errors))
    return jobs


def _check_steps_fit(campaign: Campaign, steps: Sequence[Step]) -> None:
    """Every step's request against the node, before the first step runs: a later step that asks for
    more would otherwise stop every molecule hours later, when reconcile makes it."""
    site = campaign.site
    if site.fit_to_node:
        return  # each step is scaled down when it is made
    problems = []
    for step in steps:
        nprocs = step.nprocs or site.nprocs
        over = excesses(site, nprocs, step.maxcore, step.walltime_min or site.walltime_min)
        if over:
            problems.append(
                f"{campaign.config_path}: workflow step {step.name!r}: asks for more than site "
                f"{site.name}'s nodes have: {'; '.join(over)}; fit_to_node = true in [overrides.slurm] "
                "scales it down to the node"
            )
    if problems:
        raise UserError(one_line(problems))


# ---------------------------------------------------------------- reconcile: the next step


def _final_geometry(attempt_dir: Path, base: str) -> Molecule:
    path = f"{attempt_dir}/{base}.xyz"
    # Read as the attempt's own files are (no link followed, no FIFO waited on, bounded).
    text = read_attempt_input(path, "step's final geometry")
    if text is None:
        raise UserError(f"the step left no final geometry ({path} is missing)")
    return read_xyz_frames(Path(path), text)[-1]


def gate_of(campaign: Campaign, job: Job, result: AttemptResult | None) -> str | None:
    """Why the step's gate refuses the successful attempt of workflow step ``job`` (None: it passes,
    or the step has no gate). Decided before the job is called COMPLETED. ``result``: the attempt's
    result file where the caller has read it already."""
    workflow = campaign.workflow
    step = workflow.step(job.chain["step"]) if workflow is not None and job.chain is not None else None
    if step is None or step.gate != "no-imaginary":
        return None
    attempt_dir = campaign.root / job.latest.dir
    result = result or read_result(attempt_dir)
    found = (result.classification or {}).get("n_imaginary") if result is not None else None
    if found is None:
        return f"gate no-imaginary: no frequencies found in {attempt_dir}"
    if found:
        freqs = (result.classification or {}).get("imaginary_freqs") if result is not None else None
        shown = f" ({', '.join(f'{f:.1f}' for f in freqs)} cm-1)" if freqs else ""
        return f"gate no-imaginary: {found} imaginary mode(s){shown}"
    return None


_COORDS_LINE = re.compile(r"^[ \t]*\*[ \t]*[A-Za-z]+[ \t]+(-?\d+)[ \t]+(\d+)", re.MULTILINE)


def _charge_mult(path: Path, text: str) -> tuple[int, int]:
    """The predecessor's charge and multiplicity: its ``* xyz q m`` line (one regex: the input was
    made and validated by orca-hpc), else what the parser finds."""
    found = _COORDS_LINE.search(text)
    if found:
        return int(found.group(1)), int(found.group(2))
    first = parse_input(path, text, check_files=False).first
    return first.charge or 0, first.multiplicity or 1


def next_plan(campaign: Campaign, step: Step, prev: Step | None, pred: Job, name: str) -> AttemptPlan:
    """The plan of ``step`` that starts where ``pred`` (the job of step ``prev``) ended."""
    pred_dir = campaign.root / pred.latest.dir
    # A step's input is named after its job (`_plan`): read it alone, not its spec first.
    input_path = pred_dir / f"{safe_base(pred.name)}.inp"
    input_text = read_attempt_input(input_path)
    if input_text is None:
        pred_plan = plan_of(pred_dir)
        input_path, input_text = pred_dir / pred_plan.input_name, pred_plan.input_text
    base = final_base(input_path, input_text)
    charge, mult = _charge_mult(input_path, input_text)
    geometry = _final_geometry(pred_dir, base)
    # The comment line travels with the molecule (it may say where the geometry came from).
    head = (input_text.split("\n", 1)[0].splitlines() or [""])[0]
    geometry.comment = head.lstrip("#").strip() if head.startswith("#") else geometry.comment
    handed: dict[str, Path] = {}
    for kind, suffix, as_name in (("orbitals", ".gbw", PREV_GBW), ("hessian", ".hess", PREV_HESS)):
        if prev is not None and kind in prev.hand_over:
            path = f"{pred_dir}/{base}{suffix}"
            try:
                plain = stat.S_ISREG(os.lstat(path).st_mode)  # a link there is not the step's own file
            except OSError:
                plain = False
            if not plain:
                raise UserError(f"step {prev.name!r} hands over {kind}, but {path} is missing or not a file")
            handed[as_name] = Path(path)
    return _step_plan(campaign, step, name, geometry, charge, mult, Path(pred.input_path), handed)


def advance(
    campaign: Campaign,
    txn: Transaction,
    done: Sequence[tuple[Job, AttemptResult | None]],
    ready: dict[str, Ready] | None = None,
) -> list[Job | str | None]:
    """After the jobs in ``done`` (workflow steps, each with its result file as read) became COMPLETED,
    in the transaction that records them: for each, the next step's job (recorded now, CREATED), or
    why the molecule's chain stops there (also noted in ``job.extra["stop"]``), or None after the
    last step. ``ready``: where each new job is put for the dispatch that follows (its plan is not
    read back from the files just written, nor the job decoded again). All inputs are made first, then
    all attempt folders laid out: the same work in one loop after another, as submit does it, costs
    less than interleaved."""
    made: list[Job | str | None] = []
    todo: list[tuple[int, Job, Step, str, AttemptPlan]] = []
    for job, result in done:
        outcome = _next_input(campaign, job, result)
        if isinstance(outcome, tuple):
            todo.append((len(made), job, *outcome))
        made.append(outcome if not isinstance(outcome, tuple) else None)
    site = campaign.site
    for at, job, following, name, plan in todo:
        chain = job.chain
        assert chain is not None
        sha = step_sha(name, plan, campaign.root)
        mine = (j for j in txn.find_by_hash(sha) if j.chain and j.chain.get("after") == job.id)
        existing = next(mine, None)
        if existing is not None:
            made[at] = existing  # made already (never twice)
            continue
        retries = following.max_retries if following.max_retries is not None else site.max_retries
        successor = txn.add_job(name, job.input_path, sha, site.name, max_retries=retries)
        successor.chain = chain_of(chain["molecule"], chain["conformer"], following.name, job.id)
        record_attempt(campaign, txn, successor, plan)
        if ready is not None:
            ready[successor.id] = Ready(successor.name, successor.latest.dir, plan)
        made[at] = successor
    return made


def _next_input(
    campaign: Campaign, job: Job, result: AttemptResult | None
) -> tuple[Step, str, AttemptPlan] | str | None:
    """The step after completed ``job``, its job's name and plan; or why the chain stops; or None."""
    chain = job.chain
    workflow = campaign.workflow
    if chain is None:
        return None
    if workflow is None:
        return _stop(job, "the campaign has no [workflow] any more")
    step = workflow.step(chain["step"])
    if step is None:
        return _stop(job, f"step {chain['step']!r} is no longer in the campaign's workflow")
    following = workflow.after(step.name)
    if following is None:
        return None
    name = job_name(chain["molecule"], chain["conformer"], following.name)
    try:
        return following, name, next_plan(campaign, following, step, job, name)
    except (OrcaHpcError, OSError) as err:
        return _stop(job, f"cannot make step {following.name!r}: {err}")


def _stop(job: Job, why: str) -> str:
    job.extra["stop"] = why[:500]
    return why


def replan(campaign: Campaign, txn: Transaction, job: Job) -> AttemptPlan | None:
    """A workflow job's input made again from the campaign's step as it is now, for ``retry`` after a
    person fixed the step in orca-hpc.toml; None when the step is unchanged (or gone)."""
    workflow = campaign.workflow
    chain = job.chain
    if workflow is None or chain is None:
        return None
    step = workflow.step(chain["step"])
    if step is None:
        return None
    if chain.get("after"):
        pred = txn.get(chain["after"])
        prev = workflow.step(pred.chain["step"]) if pred.chain else None
        plan = next_plan(campaign, step, prev, pred, job.name)
    elif (recorded := _recorded_start(campaign, job)) is not None:
        geometry, charge, mult = recorded
        plan = _step_plan(campaign, step, job.name, geometry, charge, mult, Path(job.input_path))
    else:
        # The workflow's own settings, as submit used them: with others (the defaults) the frames kept
        # differ, and conformer N is another geometry, or none.
        settings = ConformerSettings(
            count=max(workflow.conformers, chain["conformer"]),
            rmsd=workflow.rmsd,
            energy_window_kcal=workflow.energy_window_kcal,
        )
        found = [
            (mol, conf)
            for mol in read_molecules([Path(job.input_path)], settings)
            for conf in mol.conformers
            if mol.name == chain["molecule"] and conf.index == chain["conformer"]
        ]
        if not found:  # the molecule file changed since: run the step as it was
            return None
        mol, conf = found[0]
        geometry = read_xyz(mol.source, conf.xyz)
        plan = _step_plan(campaign, step, job.name, geometry, mol.charge, mol.multiplicity, mol.source)
    sha = step_sha(job.name, plan, campaign.root)
    if sha == job.input_sha:
        return None
    plan.corrections = [
        {"handler": "manual", "change": f"step {step.name!r} made again from orca-hpc.toml "
         f"(sha256 {job.input_sha[:12]} -> {sha[:12]})", "why": "orca-hpc retry after a fix"}
    ]  # fmt: skip
    job.input_sha = sha
    return plan


def _recorded_start(campaign: Campaign, job: Job) -> tuple[Molecule, int, int] | None:
    """The geometry, charge and multiplicity a first step started from, as its first attempt's input
    recorded them (None where that input has no plain ``* xyz`` block, e.g. a template's own form).
    Not the molecule file made into conformers again: with the workflow's conformer settings changed
    since (count, rmsd, energy window) or the file moved, conformer N is another geometry, or none."""
    first = job.attempts[0] if job.attempts else None
    if first is None:
        return None
    path = campaign.root / first.dir / f"{safe_base(job.name)}.inp"
    try:
        text = read_attempt_input(path)
        if text is None:
            return None
        start = parse_input(path, text, check_files=False).first
    except (OrcaHpcError, OSError):
        return None
    span = start.coord_span
    if start.coord_kind != "xyz" or span is None or start.charge is None or start.multiplicity is None:
        return None
    lines = text.split("\n")[span.start_line + 1 : span.end_line]
    head = text.split("\n", 1)[0]
    comment = head.lstrip("#").strip() if head.startswith("#") else ""
    try:
        geometry = read_xyz(path, f"{len(lines)}\n{comment}\n" + "\n".join(lines) + "\n")
    except OrcaHpcError:
        return None
    return geometry, start.charge, start.multiplicity


def by_molecule(rows: Sequence[Mapping[str, Any]], jobs: Mapping[str, Job]) -> list[dict[str, Any]]:
    """Digest rows of stopped workflow jobs merged into one row per molecule (plain jobs unchanged)."""
    out: list[dict[str, Any]] = []
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        job = jobs.get(str(row.get("id")))
        if job is None or job.chain is None:
            out.append(dict(row))
            continue
        mol = job.chain["molecule"]
        where = f"conformer {job.chain['conformer']} stopped at step {job.chain['step']!r} ({job.id})"
        if mol not in merged:
            merged[mol] = {
                **row,
                "name": f"molecule {mol}",
                "message": f"{where}: {row.get('message') or ''}",
            }
            out.append(merged[mol])
        else:
            merged[mol]["message"] = f"{merged[mol]['message']}; {where}: {row.get('message') or ''}"
    return out
