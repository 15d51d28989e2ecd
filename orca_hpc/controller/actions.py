"""A person's actions on jobs: retry after a permanent failure, cancel. The CLI only parses and prints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orca_hpc.attempt.folder import AttemptPlan, plan_of
from orca_hpc.config.campaign import Campaign
from orca_hpc.controller import chain
from orca_hpc.controller.select import Selection, Selector, select_jobs
from orca_hpc.controller.submit import Dispatcher, pause_holding, prepare_inputs, record_attempt
from orca_hpc.errors import OrcaHpcError, TemporaryFailure, UserError
from orca_hpc.ledger.records import Job
from orca_hpc.ledger.states import FINISHED, JobState
from orca_hpc.ledger.store import Ledger, Transaction
from orca_hpc.scheduler import Scheduler, scheduler_for
from orca_hpc.scheduler.base import record_of

RETRYABLE = (JobState.PERMANENT_FAILED, JobState.CANCELLED)


@dataclass
class ActionReport:
    """What a bulk action did: the jobs it acted on, those it left alone (and why, each), and for
    a retry what went to the scheduler."""

    done: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (job id, why)
    submitted: list[tuple[str, str, str]] = field(default_factory=list)  # retry: (id, name, scheduler id)
    waiting: int = 0  # retry: recorded, waiting for a free slot
    sbatch_calls: int = 0
    edited: list[str] = field(default_factory=list)  # retry: jobs whose input changed (or was replaced)
    # retry: jobs made from an .xyz changed since: they rerun the input recorded at submit
    xyz_changed: list[str] = field(default_factory=list)
    held: int = 0  # retry: recorded, not submitted: the campaign is paused by environment failures
    paused: dict[str, Any] | None = None  # that pause


def _partition(
    selection: Selection, eligible: Callable[[Job], bool], why: Callable[[Job], str]
) -> tuple[list[Job], list[tuple[str, str]]]:
    """Eligible jobs, and the skipped ones; a job named one by one in the wrong state is an error
    (every such job listed), one chosen by a filter is only skipped."""
    refused = [j for j in selection.jobs if j.id in selection.by_ref and not eligible(j)]
    if refused:
        raise UserError("; ".join(why(j) for j in refused))
    keep = [j for j in selection.jobs if eligible(j)]
    skipped = [(j.id, j.state.value) for j in selection.jobs if not eligible(j)]
    return keep, skipped


def _stopped_chain(job: Job) -> bool:
    """A COMPLETED workflow step whose next step could not be made (its ``stop`` says why: the step
    renamed in orca-hpc.toml meanwhile, a file missing): `retry` makes that next step (the step itself
    is not run again), or the molecule would stay stopped for good whatever was fixed."""
    return job.state is JobState.COMPLETED and job.chain is not None and bool(job.extra.get("stop"))


def _retryable(job: Job) -> bool:
    return job.state in RETRYABLE or _stopped_chain(job)


def _retry_why(job: Job) -> str:
    return (
        f"{job.id} is {job.state.value}: only PERMANENT_FAILED or CANCELLED jobs can be retried "
        "(and a COMPLETED workflow step whose chain stopped)"
    )


def _cancel_why(job: Job) -> str:
    return f"{job.id} is {job.state.value} already"


@dataclass
class RetryReport:
    submitted: list[tuple[str, str, str]] = field(default_factory=list)  # (job id, name, scheduler id)
    held: int = 0  # recorded, not submitted: the campaign is paused
    paused: dict[str, Any] | None = None  # that pause


def retry_jobs(
    campaign: Campaign,
    job_ids: Sequence[str],
    *,
    max_retries: int | None = None,
    scheduler: Scheduler | None = None,
    echo: Callable[[str], None] | None = None,
) -> ActionReport:
    """Give PERMANENT_FAILED or CANCELLED jobs a fresh start (retry count reset); submits them unless
    the campaign is paused by environment failures (then reconcile submits them when it resumes)."""
    ledger = campaign.ledger()
    with ledger.lock:
        return _retry_locked(campaign, ledger, job_ids, max_retries, scheduler, echo)


def retry_selected(
    campaign: Campaign,
    selector: Selector,
    *,
    max_retries: int | None = None,
    scheduler: Scheduler | None = None,
    echo: Callable[[str], None] | None = None,
    replacement: Path | None = None,
) -> ActionReport:
    """Retry the jobs ``selector`` chooses: one ledger transaction, one scheduler call per array.
    Jobs named one by one must be retryable; jobs chosen by a filter that are not are skipped.
    An input a person edited since is read again; ``replacement`` is a new input for ONE job."""
    ledger = campaign.ledger()
    with ledger.lock:
        selection = select_jobs(ledger.snapshot(), selector, many_per_name=False)
        keep, skipped = _partition(selection, _retryable, _retry_why)
        replacements = None
        if replacement is not None:
            if len(keep) != 1:
                raise UserError(f"--input replaces the input of one job; {len(keep)} are selected")
            replacements = {keep[0].id: replacement}
        report = _retry_locked(
            campaign, ledger, [j.id for j in keep], max_retries, scheduler, echo, replacements
        )
        report.skipped = skipped
        return report


def _edited_plan(
    campaign: Campaign, job: Job, replacement: Path | None, report: ActionReport
) -> AttemptPlan | None:
    """The plan from the job's input file when a person edited it since (or gave a replacement),
    validated like a new submission; None when the input is as it was (or an .xyz, whose method
    line is not kept). What changed is the attempt's correction, so `show` tells."""
    if replacement is None and job.chain is not None:
        # A workflow step is made from its step in orca-hpc.toml (`chain.replan`), never from a file:
        # its input_path is the molecule file, and an .inp there is a predecessor's `--input`.
        return None
    source = replacement or Path(job.input_path)
    made_from_xyz = job.chain is None and source.suffix.lower() == ".xyz"  # (a step: from its predecessor)
    if replacement is None and made_from_xyz and _changed_since(source, job.created):
        report.xyz_changed.append(job.id)  # said, not silently ignored: the method line is not kept
    if replacement is None and (source.suffix.lower() != ".inp" or not source.is_file()):
        return None
    if source.suffix.lower() != ".inp":  # an .xyz needs a method line, which retry has no option for
        raise UserError(f"{source}: --input takes a corrected ORCA input (.inp)")
    [fresh] = prepare_inputs(campaign, [source])  # raises, naming every problem, if it is not sound
    if replacement is None and fresh.sha == job.input_sha:
        return None
    how = f"input replaced by {source}" if replacement is not None else f"input {source} edited"
    fresh.plan.corrections = [
        {"handler": "manual", "change": f"{how} (sha256 {job.input_sha[:12]} -> {fresh.sha[:12]})",
         "why": "orca-hpc retry after a fix"},
        *fresh.plan.corrections,  # the edited input fitted to the node (controller/fit.py), if it had to be
    ]  # fmt: skip
    job.input_sha = fresh.sha
    if replacement is not None and job.chain is None:
        # A workflow step keeps its molecule file: the next steps are made with it, and from it.
        job.input_path = str(replacement)
    report.edited.append(job.id)
    return fresh.plan


def _changed_since(path: Path, stamp: str) -> bool:
    from orca_hpc.clock import epoch

    try:
        modified = path.stat().st_mtime
    except OSError:
        return False
    created = epoch(stamp)
    return created is not None and modified >= created + 1  # the stamp is in whole seconds


def _replanned_step(
    campaign: Campaign, txn: Transaction, job: Job, report: ActionReport
) -> AttemptPlan | None:
    """A workflow step whose definition a person fixed in orca-hpc.toml: its input made again."""
    plan = chain.replan(campaign, txn, job)
    if plan is not None:
        report.edited.append(job.id)
    return plan


def _retry_locked(
    campaign: Campaign,
    ledger: Ledger,
    job_ids: Sequence[str],
    max_retries: int | None,
    scheduler: Scheduler | None,
    echo: Callable[[str], None] | None,
    replacements: dict[str, Path] | None = None,
) -> ActionReport:
    report = ActionReport()
    if not job_ids:
        return report
    with ledger.transaction() as txn:
        jobs = [txn.get(job_id) for job_id in job_ids]
        refused = [j for j in jobs if not _retryable(j)]
        if refused:
            raise UserError("; ".join(_retry_why(j) for j in refused))
        plans: list[AttemptPlan] = []
        problems: list[str] = []  # every edited input's problems, not only the first job's
        stopped = [j for j in jobs if _stopped_chain(j)]
        jobs = [j for j in jobs if not _stopped_chain(j)]
        resumed = _resume_chains(campaign, txn, stopped, problems)
        for job in jobs:
            txn.set_state(job, JobState.CREATED)  # brings an archived job back to the active ledger
            job.retry_count = 0
            job.nodefail_count = 0
            job.extra.pop("stop", None)  # a workflow step's gate decides again on the new attempt
            if max_retries is not None:
                job.max_retries = max_retries
            try:
                plan = _edited_plan(campaign, job, (replacements or {}).get(job.id), report)
                if plan is None and job.chain is not None and job.id not in (replacements or {}):
                    plan = _replanned_step(campaign, txn, job, report)
            except OrcaHpcError as err:
                problems.append(str(err))
                continue
            if plan is None:
                plan = plan_of(campaign.root / job.latest.dir)
                plan.corrections = [{"handler": "manual", "change": "none", "why": "orca-hpc retry"}]
            plans.append(plan)
        if problems:  # raised inside the transaction: nothing is written, no attempt folder laid out
            if len(problems) == 1:
                raise UserError(problems[0])
            raise UserError(f"{len(problems)} problems, nothing was retried: " + "; ".join(problems))
        for job, plan in zip(jobs, plans, strict=True):
            record_attempt(campaign, txn, job, plan)
            report.done.append(job.id)
        report.done += resumed
        report.paused = pause_holding(campaign, txn)
    if report.paused is not None:  # reconcile submits them when the pause ends
        report.held = len(report.done)
        return report
    dispatcher = Dispatcher(campaign, ledger, scheduler or scheduler_for(campaign), echo=echo)
    report.submitted = dispatcher.dispatch(report.done)
    report.waiting = dispatcher.waiting
    report.sbatch_calls = dispatcher.sbatch_calls
    return report


def _resume_chains(
    campaign: Campaign, txn: Transaction, stopped: Sequence[Job], problems: list[str]
) -> list[str]:
    """The next steps of COMPLETED workflow steps whose chain stopped, made now from the campaign's
    workflow as it is (`chain.advance`, which never makes a step twice); their ids, to dispatch.
    Where one still cannot be made, why goes into ``problems`` (and nothing is saved)."""
    if not stopped:
        return []
    for job in stopped:
        job.extra.pop("stop", None)
    # Its gate may not have been checked when it completed (the step had another name then).
    gated = {job.id: chain.gate_of(campaign, job, None) for job in stopped}
    problems += [f"{job.id} {job.name}: {gated[job.id]}" for job in stopped if gated[job.id]]
    stopped = [job for job in stopped if not gated[job.id]]
    made = chain.advance(campaign, txn, [(job, None) for job in stopped])
    ids = []
    for job, next_job in zip(stopped, made, strict=True):
        if isinstance(next_job, str):
            problems.append(f"{job.id} {job.name}: {next_job}")
        elif next_job is None:
            problems.append(f"{job.id} {job.name}: the last step of the workflow: no next step to make")
        elif next_job.state is JobState.CREATED:
            ids.append(next_job.id)
    return ids


def cancel_jobs(campaign: Campaign, job_ids: Sequence[str], *, scheduler: Scheduler | None = None) -> int:
    """Cancel the jobs' running attempts and mark them CANCELLED (never retried); returns how many."""
    ledger = campaign.ledger()
    with ledger.lock:
        view = ledger.snapshot()
        jobs = [view.get(j) for j in job_ids]
        return len(_cancel_locked(campaign, ledger, jobs, scheduler))


def cancel_selected(
    campaign: Campaign, selector: Selector, *, scheduler: Scheduler | None = None
) -> ActionReport:
    """Cancel the jobs ``selector`` chooses: one scheduler cancel call for all of them, one ledger
    transaction. Jobs named one by one must be active; finished jobs chosen by a filter are skipped."""
    ledger = campaign.ledger()
    with ledger.lock:
        selection = select_jobs(ledger.snapshot(), selector, many_per_name=False)
        keep, skipped = _partition(selection, lambda j: j.state not in FINISHED, _cancel_why)
        return ActionReport(done=_cancel_locked(campaign, ledger, keep, scheduler), skipped=skipped)


def _cancel_locked(
    campaign: Campaign, ledger: Ledger, jobs: Sequence[Job], scheduler: Scheduler | None
) -> list[str]:
    refused = [j for j in jobs if j.state in FINISHED]
    if refused:
        raise UserError("; ".join(_cancel_why(j) for j in refused))
    if not jobs:
        return []
    running = [j.attempt.slurm_id for j in jobs if j.attempt and j.attempt.slurm_id]
    # A submission whose SLURM id was never recorded (the submitter was killed after sbatch) may be
    # queued all the same: found by its token, as reconcile would adopt it, and cancelled too, or it
    # would run unwatched (and beside the attempt of a later `retry`).
    unconfirmed = [j for j in jobs if j.attempt and not j.attempt.slurm_id and j.attempt.token]
    if running or unconfirmed:
        scheduler = scheduler or scheduler_for(campaign)
        if unconfirmed:
            started = _started_by(scheduler, [j.latest.token for j in unconfirmed])
            _refuse_unseen_within_grace([j for j in unconfirmed if j.latest.token not in started])
            running += started.values()
        if running:
            scheduler.cancel(running)
    with ledger.transaction() as txn:
        for job in jobs:
            live = txn.get(job.id)
            if live.attempt is not None:
                live.attempt.reason = "cancelled"
                live.attempt.outcome = live.attempt.outcome or "truncated"
            txn.set_state(live, JobState.CANCELLED)
    return [job.id for job in jobs]


def _started_by(scheduler: Scheduler, tokens: Sequence[str]) -> dict[str, str]:
    """The scheduler ids of the attempts these submission tokens (``<array token>/<index>``) started,
    by token; a token the scheduler shows nothing for is missing."""
    found = scheduler.find_by_tokens(sorted({t.partition("/")[0] for t in tokens}))
    records = {token: record_of(found, token) for token in tokens}
    return {token: scheduler.task_id(rec) for token, rec in records.items() if rec is not None}


def _refuse_unseen_within_grace(jobs: Sequence[Job]) -> None:
    """Submissions the scheduler shows nothing for may still be on their way (an sbatch without an
    answer, a busy slurmctld): reconcile waits ``UNCONFIRMED_GRACE_S`` before it calls one never
    queued, and so does cancel, or the array it marked CANCELLED would appear and run unwatched."""
    import time

    from orca_hpc.clock import epoch
    from orca_hpc.controller.reconcile import UNCONFIRMED_GRACE_S

    young = [j for j in jobs if time.time() - (epoch(j.updated) or 0.0) <= UNCONFIRMED_GRACE_S]
    if young:
        names = ", ".join(j.id for j in young)
        raise TemporaryFailure(
            f"{names}: submitted without an answer (or by a run that was stopped), and the scheduler shows "
            "nothing under its token yet; "
            f"nothing was cancelled: run cancel again in {UNCONFIRMED_GRACE_S:.0f} s"
        )
