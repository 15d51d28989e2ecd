"""A person's actions on jobs: retry after a permanent failure, cancel. The CLI only parses and prints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orca_hpc.attempt.folder import plan_of
from orca_hpc.config.campaign import Campaign
from orca_hpc.controller.submit import Dispatcher, pause_holding, record_attempt
from orca_hpc.errors import UserError
from orca_hpc.ledger.states import FINISHED, JobState
from orca_hpc.scheduler import Scheduler, scheduler_for


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
) -> RetryReport:
    """Give PERMANENT_FAILED or CANCELLED jobs a fresh start (retry count reset); submits them unless
    the campaign is paused by environment failures (then reconcile submits them when it resumes)."""
    ledger = campaign.ledger()
    with ledger.lock:
        with ledger.transaction() as txn:
            ids = []
            for job_id in job_ids:
                job = txn.get(job_id)
                if job.state not in (JobState.PERMANENT_FAILED, JobState.CANCELLED):
                    raise UserError(
                        f"{job.id} is {job.state.value}: only PERMANENT_FAILED or CANCELLED jobs "
                        "can be retried"
                    )
                txn.set_state(job, JobState.CREATED)  # brings an archived job back to the active ledger
                job.retry_count = 0
                job.nodefail_count = 0
                if max_retries is not None:
                    job.max_retries = max_retries
                plan = plan_of(campaign.root / job.latest.dir)
                plan.corrections = [{"handler": "manual", "change": "none", "why": "orca-hpc retry"}]
                record_attempt(campaign, txn, job, plan)
                ids.append(job.id)
            pause = pause_holding(campaign, txn)
        if pause is not None:
            return RetryReport(held=len(ids), paused=pause)
        dispatcher = Dispatcher(campaign, ledger, scheduler or scheduler_for(campaign), echo=echo)
        return RetryReport(submitted=dispatcher.dispatch(ids))


def cancel_jobs(campaign: Campaign, job_ids: Sequence[str], *, scheduler: Scheduler | None = None) -> int:
    """Cancel the jobs' running attempts and mark them CANCELLED (never retried); returns how many."""
    ledger = campaign.ledger()
    with ledger.lock:
        view = ledger.snapshot()
        jobs = [view.get(j) for j in job_ids]
        for job in jobs:
            if job.state in FINISHED:
                raise UserError(f"{job.id} is {job.state.value} already")
        running = [j.attempt.slurm_id for j in jobs if j.attempt and j.attempt.slurm_id]
        if running:
            (scheduler or scheduler_for(campaign)).cancel(running)
        with ledger.transaction() as txn:
            for job in jobs:
                live = txn.get(job.id)
                if live.attempt is not None:
                    live.attempt.reason = "cancelled"
                    live.attempt.outcome = live.attempt.outcome or "truncated"
                txn.set_state(live, JobState.CANCELLED)
    return len(jobs)
