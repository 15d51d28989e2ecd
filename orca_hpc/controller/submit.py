"""Submission: validate inputs, record the intent, render the job script, sbatch arrays, exactly once.

The order is what makes it safe. Under the ledger lock, held for the whole submission:
  1. each attempt gets a token and its job goes SUBMITTING (saved before sbatch runs);
  2. sbatch runs with ``--job-name ohpc-<token>`` (sacct stores the name);
  3. the SLURM ids are saved and the jobs go PENDING.
If the process dies between 1 and 3, reconcile looks the token up in the scheduler and adopts what
it finds instead of submitting again (``Reconciler._adopt``). If sbatch refuses, the jobs go back
to CREATED, so the ledger never shows as submitted what SLURM does not have; if it was sent but got no
answer (SubmissionUnconfirmed: the array may be queued all the same), they stay SUBMITTING for reconcile
to adopt by token, or to submit again once the grace has passed and SLURM has nothing under it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orca_hpc.attempt.folder import (
    AttemptPlan,
    AttemptSpec,
    plan_from_spec,
    relay_environment,
    safe_base,
    write_attempt,
)
from orca_hpc.clock import now_iso
from orca_hpc.config.campaign import Campaign
from orca_hpc.config.site import resources_for
from orca_hpc.controller import rightsize
from orca_hpc.controller.fit import fit_request, with_node_facts
from orca_hpc.controller.gather import expand_inputs
from orca_hpc.errors import InputFileError, OrcaHpcError, SubmissionUnconfirmed, UserError
from orca_hpc.ledger.records import Job
from orca_hpc.ledger.states import JobState
from orca_hpc.ledger.store import Ledger, LedgerView, Transaction, gc_paused
from orca_hpc.orca import inputs as orca_input
from orca_hpc.orca.presets import render_preset, resolve_method
from orca_hpc.orca.xyz import read_xyz_frames
from orca_hpc.scheduler import Scheduler, scheduler_for
from orca_hpc.scheduler.base import ArrayRequest

log = logging.getLogger(__name__)


@dataclass
class NewJob:
    """A validated input, ready to become a job."""

    source: Path
    name: str
    sha: str
    plan: AttemptPlan
    chain: dict[str, Any] | None = None  # a workflow step's link (`controller/chain.py`)
    max_retries: int | None = None  # the workflow step's own limit, else the site's
    maxcore_given: bool = False  # the input has its own %maxcore (else the site's default was written in)
    group: str | None = None  # its group of similar jobs, when right-sizing is on (controller/rightsize.py)


@dataclass
class SubmitReport:
    submitted: list[tuple[str, str, str]] = field(default_factory=list)  # (job id, name, slurm id)
    # Every job this submit recorded, in order, with its state when submit returned: PENDING when
    # handed to the scheduler, CREATED when waiting for a free slot or held by a pause.
    recorded: list[tuple[str, str, str]] = field(default_factory=list)  # (job id, name, state)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, existing job id)
    scripts: list[str] = field(default_factory=list)  # dry run: what would be submitted
    sbatch_calls: int = 0
    waiting: int = 0  # recorded, waiting for a free slot (local site)
    paused: dict[str, Any] | None = None  # the environment pause that kept the jobs from the scheduler
    held: int = 0  # recorded but not submitted because of that pause


# ---------------------------------------------------------------- inputs


def _sha(text: str, extra: dict[str, Path]) -> str:
    digest = hashlib.sha256(text.encode("utf-8"))
    for name in sorted(extra):
        digest.update(b"\0" + name.encode() + b"\0")
        digest.update(extra[name].read_bytes())
    return digest.hexdigest()


def _plan(
    campaign: Campaign,
    text: str,
    name: str,
    nprocs: int | None,
    maxcore: int | None,
    extra: dict[str, Path],
    source: Path,
    fit: bool,
    parsed: orca_input.OrcaInput | None = None,
    time_min: int | None = None,
) -> AttemptPlan:
    site = campaign.site
    try:
        # Never more than a node has: refused with the numbers, or scaled down to it (controller/fit.py).
        # ``time_min``: a workflow step's own walltime, held to the partition's limit like the site's.
        sized = fit_request(site, nprocs or site.nprocs, maxcore, time_min or site.walltime_min, fit=fit)
        mem_mb, maxcore_mb = resources_for(site, sized.nprocs, sized.maxcore_mb)
        text = orca_input.set_resources(text, sized.nprocs, maxcore_mb, parsed)
    except UserError as err:
        raise InputFileError(source, str(err)) from None
    return AttemptPlan(
        input_name=f"{safe_base(name)}.inp",
        input_text=text,
        nprocs=sized.nprocs,
        maxcore_mb=maxcore_mb,
        mem_mb=mem_mb,
        time_min=sized.time_min,
        extra_files=extra,
        corrections=sized.corrections,
    )


def _from_inp(campaign: Campaign, path: Path, fit: bool) -> NewJob:
    try:
        raw = orca_input.read_input(path)  # read once: the parse and the attempt's input share it
    except (InputFileError, ValueError):
        # A missing path or a folder is said as for every input, without a stat of each input that
        # reads fine (expand_inputs made one already); any other failure to read as read_input says it.
        _check_not_folder_or_missing(path)
        raise
    parsed = orca_input.parse_input(path, raw)
    text = raw.replace("\r\n", "\n").replace("\r", "\n")  # line ends as a text-mode read gives them
    extra: dict[str, Path] = {}
    # Referenced files travel with the attempt; the runner copies them flat into scratch.
    for ref in parsed.files:
        ref_path = Path(ref.name) if Path(ref.name).is_absolute() else path.parent / ref.name
        if not ref_path.is_file():
            if ref.job == 0:
                raise InputFileError(path, f"{ref.kind} {ref.name!r} not found", ref.line)
            continue  # written by an earlier $new_job step
        flat = ref_path.name
        if flat in extra and extra[flat] != ref_path:
            raise InputFileError(path, f"two referenced files are both named {flat!r}", ref.line)
        extra[flat] = ref_path
        if ref.name != flat:
            # Copied flat beside the input: the input must name it there, whatever the kind and step.
            try:
                text = orca_input.set_file_ref(text, ref, flat)
            except UserError as err:
                raise InputFileError(path, str(err), ref.line) from None
    explicit = any(job.nprocs for job in parsed.jobs)
    # The validating parse serves the resource edit too while the text is still the very string it
    # parsed (no reference renamed, no CR translated: str.replace returns the same object when it
    # changes nothing); otherwise set_resources parses the edited text again.
    same = parsed if text is raw else None
    nprocs = parsed.nprocs if explicit else None
    plan = _plan(campaign, text, path.stem, nprocs, parsed.maxcore, extra, path, fit, same)
    return NewJob(
        path, path.stem, _sha(plan.input_text, extra), plan, maxcore_given=parsed.maxcore is not None
    )


def _from_xyz(
    campaign: Campaign, path: Path, method: str, charge: int, mult: int, template: str | None, fit: bool
) -> list[NewJob]:
    """One job per frame: a multi-frame file (a conformer search's output, a trajectory) is one
    calculation per geometry, named ``<stem>-<frame>`` (from 1); a one-frame file keeps ``<stem>``."""
    frames = read_xyz_frames(path)
    site = campaign.site
    _mem, maxcore = resources_for(site, site.nprocs, None)
    out = []
    for number, molecule in enumerate(frames, 1):
        name = path.stem if len(frames) == 1 else f"{path.stem}-{number}"
        where = "" if len(frames) == 1 else f"frame {number}: "
        # A frame's own comment (`charge=-1 mult=2`) wins over the command line's defaults.
        try:
            own_charge, own_mult = molecule.charge_and_mult()
        except ValueError as err:
            raise InputFileError(path, f"{where}{err}") from None
        frame_charge = charge if own_charge is None else own_charge
        frame_mult = mult if own_mult is None else own_mult
        try:
            text, parsed = render_preset(
                method, molecule, frame_charge, frame_mult, site.nprocs, maxcore, template
            )
        except UserError as err:
            raise InputFileError(path, f"{where}{err}") from None
        plan = _plan(campaign, text, name, site.nprocs, maxcore, {}, path, fit, parsed)
        out.append(NewJob(path, name, _sha(plan.input_text, {}), plan))
    return out


def _check_not_folder_or_missing(path: Path) -> None:
    """A folder or a missing path is a one-line error (one stat: asked of an .inp only when it could not
    be read, 10,000 inputs are common)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        raise UserError(f"{path}: no such file") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{path}: is a folder, not an ORCA input")


def prepare_inputs(
    campaign: Campaign,
    paths: Sequence[Path],
    *,
    method: str | None = None,
    charge: int = 0,
    mult: int = 1,
    fit: bool | None = None,
    warn: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[NewJob]:
    """Validate every input before anything is recorded: one bad file stops the whole call, and the
    error names every problem of every file (not only the first). Folders and quoted globs are
    expanded (``controller.gather``); ``warn`` hears what is accepted but probably not meant.
    ``fit``: scale inputs that ask for more than a node down to it (None: the site's fit_to_node)."""
    fit = campaign.site.fit_to_node if fit is None else fit
    template = campaign.config.get("method_template")
    paths, errors = expand_inputs(paths)
    # A named preset of the campaign (`[presets] opt = "r2SCAN-3c Opt"`), else the method line itself.
    presets = campaign.config.get("presets") or {}
    method_refused = False
    if method:
        try:
            method = resolve_method(method, presets)
        except UserError as err:
            errors.append(str(err))
            method, method_refused = None, True
    inp = [p for p in paths if p.suffix.lower() != ".xyz"]
    if method and inp and warn is not None:
        warn(
            f"--method applies to .xyz inputs only: {len(inp)} .inp file(s) keep their own method line "
            f"(e.g. {inp[0].name})"
        )
    jobs: list[NewJob] = []
    with gc_paused():
        for path in paths:
            if progress is not None:
                progress(1)  # validation is most of a large submit's time: the bar shows it too
            try:
                if path.suffix.lower() == ".xyz":
                    _check_not_folder_or_missing(path)
                    if method_refused:
                        continue  # the method's own problem is reported already
                    if not method:
                        raise UserError(
                            f"{path}: an .xyz file needs --method (e.g. --method 'r2SCAN-3c Opt')"
                        )
                    jobs.extend(_from_xyz(campaign, path, method, charge, mult, template, fit))
                else:
                    jobs.append(_from_inp(campaign, path, fit))
            except OrcaHpcError as err:
                errors.append(str(err))
    if errors:
        if len(errors) == 1:
            raise UserError(errors[0])
        raise UserError(f"{len(errors)} problems, nothing was submitted: " + "; ".join(errors))
    return jobs


# ---------------------------------------------------------------- dispatch


def _chunks(items: list[str], size: int | None) -> Iterable[list[str]]:
    size = size or max(1, len(items))
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Dispatcher:
    """Hands the latest attempt of CREATED jobs to the scheduler, as arrays grouped by resources.

    The caller holds the ledger lock for the whole dispatch (``ledger.lock``).
    """

    def __init__(
        self,
        campaign: Campaign,
        ledger: Ledger,
        scheduler: Scheduler,
        *,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.campaign = campaign
        self.ledger = ledger
        self.scheduler = scheduler
        self.echo = echo or (lambda _msg: None)
        self.sbatch_calls = 0
        self.waiting = 0  # jobs left CREATED because the scheduler had no free slot

    def requests(
        self,
        jobs: Sequence[tuple[str, Path | str, AttemptPlan]],
        token: Callable[[], str] = lambda: secrets.token_hex(8),
    ) -> list[tuple[list[str], ArrayRequest]]:
        """(job ids, request) per array: grouped by resources, split at the scheduler's array limit."""
        groups: dict[tuple[int, int, int], list[tuple[str, Path | str, AttemptPlan]]] = {}
        for job in jobs:
            groups.setdefault(job[2].resources_key, []).append(job)
        size = self.scheduler.max_array_size() or len(jobs) or 1
        out = []
        for members in groups.values():
            for start in range(0, len(members), size):
                chunk = members[start : start + size]
                plan = chunk[0][2]
                request = ArrayRequest(
                    token=token(),
                    attempt_dirs=tuple(d for _j, d, _p in chunk),
                    nprocs=plan.nprocs,
                    mem_mb=plan.mem_mb,
                    time_min=plan.time_min,
                )
                out.append(([j for j, _d, _p in chunk], request))
        return out

    def _current_plan(self, attempt_dir: Path) -> AttemptPlan:
        """The recorded plan, its spec brought up to the site's current ORCA path and scratch root.

        An attempt may have been recorded long before it is dispatched (during an environment pause,
        or waiting for a slot); the person may have fixed the configuration meanwhile. The spec is
        read here anyway, so re-laying it costs nothing when nothing changed."""
        site = self.campaign.site
        recorded = AttemptSpec.read(attempt_dir)
        spec = relay_environment(attempt_dir, recorded, site.orca_path, site.scratch_root)
        return plan_from_spec(attempt_dir, spec)

    def dispatch(
        self,
        job_ids: Sequence[str],
        plans: dict[str, AttemptPlan] | None = None,
        ready: Mapping[str, Ready] | None = None,
    ) -> list[tuple[str, str, str]]:
        """Submit every given CREATED job's latest attempt; returns (job id, name, scheduler id).

        ``plans``: the attempts' plans where the caller has them (else read back from spec.json).
        ``ready``: what the caller knows of jobs it has just recorded under the lock it still holds
        (submit): their tokens, states and ids are then written into the jobs' bytes without a decode
        (``Transaction.move_latest_attempt``)."""
        if not job_ids:
            return []
        ready = ready or {}
        # 1. The intent of every array, saved before the scheduler hears of any. One transaction
        # decodes each job once (a snapshot first would decode all of them a second time).
        with self.ledger.transaction() as txn:
            busy = (JobState.SUBMITTING, JobState.PENDING, JobState.RUNNING)
            slots = self.scheduler.free_slots(sum(s in busy for s in txn.states().values()))
            take = list(job_ids) if slots is None else list(job_ids)[:slots]
            self.waiting = len(job_ids) - len(take)
            jobs: list[tuple[str, Path | str, AttemptPlan]] = []
            root = os.fspath(self.campaign.root)
            for job_id in take:
                known = ready.get(job_id)
                if known is not None:
                    jobs.append((job_id, f"{root}/{known.attempt_dir}", known.plan))  # no Path per job
                    continue
                attempt_dir = self.campaign.root / txn.get(job_id).latest.dir
                try:
                    plan = (plans or {}).get(job_id) or self._current_plan(attempt_dir)
                except (InputFileError, OSError) as err:
                    # A damaged attempt folder keeps its own job back, never the others'.
                    log.warning("%s: not submitted: %s", job_id, err)
                    self.echo(f"{job_id}: not submitted: {err} (fix the file, or cancel the job)")
                    continue
                jobs.append((job_id, attempt_dir, plan))
            arrays = self.requests(jobs)
            for chunk, request in arrays:
                for i, job_id in enumerate(chunk):
                    _move(txn, job_id, JobState.SUBMITTING, {"tok": f"{request.token}/{i}"}, job_id in ready)
        # 2. Submit, array by array, until one is refused.
        accepted: list[tuple[list[str], list[str]]] = []
        refused: OrcaHpcError | None = None
        unknown = 0  # arrays whose fate is unknown: they keep their tokens (SUBMITTING)
        for chunk, request in arrays:
            try:
                self.sbatch_calls += 1
                accepted.append((chunk, self.scheduler.submit(request)))
            except SubmissionUnconfirmed as err:
                # No answer is not a refusal: sbatch's "Socket timed out" often comes after slurmctld
                # queued the array. Back to CREATED, it would be submitted a second time; SUBMITTING
                # with its token, reconcile adopts it, or submits it after the grace if SLURM has none.
                refused, unknown = err, 1
                break
            except OrcaHpcError as err:
                refused = err
                break
        # 3. The ids of what the scheduler accepted; the rest waits as CREATED for the next run.
        submitted = now_iso()
        out: list[tuple[str, str, str]] = []
        with self.ledger.transaction() as txn:
            for chunk, ids in accepted:
                for job_id, scheduler_id in zip(chunk, ids, strict=True):
                    known = ready.get(job_id)
                    ids_now = {"sid": scheduler_id, "sub": submitted}
                    _move(txn, job_id, JobState.PENDING, ids_now, known is not None)
                    name = known.name if known is not None else txn.get(job_id).name  # decoded already
                    out.append((job_id, name, scheduler_id))
            for chunk, _request in arrays[len(accepted) : len(accepted) + unknown]:
                for job_id in chunk:
                    # The grace before "never reached the scheduler" counts from now, not from before
                    # an sbatch that may have waited up to its timeout for slurmctld.
                    txn.get(job_id).updated = submitted
            for chunk, _request in arrays[len(accepted) + unknown :]:
                for job_id in chunk:
                    _move(txn, job_id, JobState.CREATED, {"tok": ""}, job_id in ready)
        for chunk, ids in accepted:
            # One line per array (a record per job cost more than recording the job): grep finds a job.
            pairs = ", ".join(
                f"{job_id} as {scheduler_id}" for job_id, scheduler_id in zip(chunk, ids, strict=True)
            )
            log.info("%d attempt(s) submitted: %s", len(chunk), pairs)
        for chunk, ids in accepted:
            self.echo(f"submitted {len(chunk)} job(s) {self.scheduler.describe(ids)}")
        if refused is not None:
            raise refused
        return out


# The latest attempt's fields a dispatch sets, by their keys in the ledger's bytes.
_MOVED_FIELDS = {"tok": "token", "sid": "slurm_id", "sub": "submitted"}


def _move(
    txn: Transaction, job_id: str, state: JobState, changes: dict[str, str], recorded_now: bool
) -> None:
    """Set the latest attempt's ``changes`` and move the job to ``state``: in the job's bytes when the
    caller has just recorded it (``Transaction.move_latest_attempt``), else by a decode."""
    if recorded_now and txn.move_latest_attempt(job_id, state, changes):
        return
    job = txn.get(job_id)
    for key, value in changes.items():
        setattr(job.latest, _MOVED_FIELDS[key], value)
    txn.set_state(job, state)


@dataclass(frozen=True, slots=True)
class Ready:
    """A CREATED job that its caller has just recorded: its name, its latest attempt's folder (relative
    to the campaign) and that attempt's plan, so that dispatching it needs no decode of the job."""

    name: str
    attempt_dir: str
    plan: AttemptPlan


def record_attempt(campaign: Campaign, txn: Transaction, job: Job, plan: AttemptPlan) -> None:
    """Add the next attempt to ``job`` and lay out its folder; the Dispatcher then submits it."""
    if plan.corrections:
        # A correction may have changed the resources: the input must say what SLURM is asked for.
        plan.input_text = orca_input.set_resources(plan.input_text, plan.nprocs, plan.maxcore_mb)
    att = job.new_attempt(token="")
    att.corrections = list(plan.corrections)
    site = campaign.site
    root = os.fspath(campaign.root)  # strings: a Path per job cost more than laying the folder out
    write_attempt(
        f"{root}/{att.dir}",
        plan,
        campaign=campaign.slug,
        job_id=job.id,
        job_name=job.name,
        attempt=att.n,
        orca=site.orca_path,
        scratch_root=site.scratch_root,
        keep=site.keep,
        imag_threshold_cm1=site.imag_threshold_cm1,
        scratch_fallback=site.scratch_fallback,
    )
    txn.sync_before_commit(f"{root}/jobs")  # durable before the ledger names it: one sync per batch


def _not_yet_recorded(
    view: LedgerView, new_jobs: Sequence[NewJob], force: bool, report: SubmitReport
) -> list[NewJob]:
    """The inputs that the ledger ``view`` does not hold yet (all with ``force``); the rest go to
    ``report.skipped`` with the job that already has them."""
    fresh: list[NewJob] = []
    seen: set[str] = set()
    for nj in new_jobs:
        existing = view.find_by_hash(nj.sha)
        if (existing or nj.sha in seen) and not force:
            report.skipped.append((str(nj.source), existing[0].id if existing else "(same input twice)"))
            continue
        seen.add(nj.sha)
        fresh.append(nj)
    if not force:
        _refuse_molecule_clashes(view, fresh)
    return fresh


def _refuse_molecule_clashes(view: LedgerView, fresh: Sequence[NewJob]) -> None:
    """A workflow molecule's job name (``<molecule>.c<n>.<step>``) that the campaign already has, with
    another input: another molecule under the same name (a second batch's ``ethanol.xyz``). Recorded,
    its conformers would be ranked and Boltzmann-weighed with the first one's in `results --by
    molecule`, and `retry`/`cancel --molecule` would act on both. The same input again was skipped
    above; ``--force`` (run it again on purpose) is not checked."""
    problems = []
    for nj in fresh:
        if nj.chain is None:
            continue
        existing = view.by_name(nj.name)
        if existing:
            problems.append(
                f"{nj.source}: molecule {nj.chain['molecule']!r} conformer {nj.chain['conformer']} is in "
                f"this campaign already ({existing[0].id}, from {existing[0].input_path}) with another "
                "geometry, charge or step: rename the molecule (an .xyz file's name, a SMILES line's name, "
                "an SDF record's title), or submit --force to run it again under the same name"
            )
    if problems:
        raise UserError("\n".join(problems))


def submit(
    campaign: Campaign,
    paths: Sequence[Path],
    *,
    method: str | None = None,
    charge: int = 0,
    mult: int = 1,
    force: bool = False,
    fit: bool | None = None,
    dry_run: bool = False,
    max_retries: int | None = None,
    echo: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
    scheduler: Scheduler | None = None,
    warn: Callable[[str], None] | None = None,
) -> SubmitReport:
    echo = echo or (lambda _msg: None)
    scheduler = scheduler or scheduler_for(campaign)
    campaign = with_node_facts(campaign, scheduler)
    if campaign.workflow is not None:  # molecules in: each conformer's first step is a job
        from orca_hpc.controller.chain import workflow_inputs

        new_jobs = workflow_inputs(campaign, paths, method=method, fit=fit, progress=progress)
    else:
        new_jobs = prepare_inputs(
            campaign, paths, method=method, charge=charge, mult=mult, fit=fit, warn=warn, progress=progress
        )
    report = SubmitReport()
    ledger = campaign.ledger()
    rightsize.apply(campaign, ledger, new_jobs)
    if dry_run:
        fresh = _not_yet_recorded(ledger.snapshot(), new_jobs, force, report)
        dispatcher = Dispatcher(campaign, ledger, scheduler)
        placeholder = campaign.jobs_dir / "<job>" / "attempt-1"
        jobs = [(str(i), placeholder, nj.plan) for i, nj in enumerate(fresh)]
        for _chunk, request in dispatcher.requests(jobs, token=lambda: "dry-run"):
            report.scripts.append(dispatcher.scheduler.render(request))
        return report
    max_retries = campaign.site.max_retries if max_retries is None else max_retries
    with ledger.lock:
        with ledger.transaction() as txn:
            # Checked under the same lock as the insert: another submit of the same input may be
            # running right now, and whichever locks second must see the first one's jobs.
            fresh = _not_yet_recorded(txn, new_jobs, force, report)
            ids = []
            names = {}
            ready: dict[str, Ready] = {}
            for count, nj in enumerate(fresh, 1):
                retries = max_retries if nj.max_retries is None else nj.max_retries
                job = txn.add_job(
                    nj.name, str(nj.source.absolute()), nj.sha, campaign.site.name, max_retries=retries
                )
                job.chain = nj.chain
                if nj.group:
                    job.extra["grp"] = nj.group
                record_attempt(campaign, txn, job, nj.plan)
                ids.append(job.id)
                names[job.id] = nj.name
                ready[job.id] = Ready(nj.name, job.latest.dir, nj.plan)
                if progress and count % 100 == 0:
                    progress(100)
            report.paused = pause_holding(campaign, txn)
        if report.paused is not None:
            report.held = len(ids)  # recorded as CREATED; reconcile submits them when the pause ends
            report.recorded = [(i, names[i], JobState.CREATED.value) for i in ids]
            return report
        dispatcher = Dispatcher(campaign, ledger, scheduler, echo=echo)
        report.submitted = dispatcher.dispatch(ids, ready=ready)
        report.waiting = dispatcher.waiting
        report.sbatch_calls = dispatcher.sbatch_calls
    sent = {job_id for job_id, _name, _sid in report.submitted}
    report.recorded = [
        (i, names[i], (JobState.PENDING if i in sent else JobState.CREATED).value) for i in ids
    ]
    return report


def pause_holding(campaign: Campaign, txn: Transaction) -> dict[str, Any] | None:
    """The environment pause that forbids handing attempts to the scheduler now, or None.

    Asked the same way reconcile asks (``environment.may_dispatch``), so a pause whose login-node check
    passes again ends here too. Imported here, not at the top: ``environment`` records its retries
    through this module."""
    from orca_hpc.controller import environment

    if environment.may_dispatch(txn, campaign.site, False, lambda _msg: None):
        return None
    return environment.paused(txn.meta)
