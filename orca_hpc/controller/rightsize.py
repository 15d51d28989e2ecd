"""Right-sizing (``[rightsize] enabled = true`` in ``orca-hpc.toml``): a new submission gets the
walltime and memory that ``orca-hpc usage`` suggests for its group of similar jobs
(``controller/usage_report.py``), so a campaign of 10,000 jobs learns from its first hundred.

Only a group with at least ``min_evidence`` samples is used. The result is never below what the input
needs: with its own ``%maxcore``, the job's memory is the suggestion but at least ``%maxcore`` x
processes / 0.8 (the memory rule of ``config/site.py``) and ``%maxcore`` is kept; without one (the
site's default was written in), ``%maxcore`` x processes becomes the suggested memory and the job asks
for that / 0.8 by the same rule (so ORCA may use what the group used plus the margin, and a group whose
memory follows ``%maxcore`` does not shrink with every generation). It never exceeds the site's
``max_walltime`` / ``max_mem_mb``, and the walltime stays longer than the runner's warning
(``signal_before_end_s``) plus the 60 s SLURM may send it early. Each change is recorded as a
correction on the attempt (handler ``rightsize``) that names its evidence, so ``orca-hpc show`` tells
why the job asked for what it did. A job that needs more than its group anyway is caught by the
walltime and memory retry handlers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from orca_hpc.attempt.folder import AttemptPlan
from orca_hpc.config.campaign import Campaign
from orca_hpc.config.site import (
    MEM_FRACTION_DEN,
    MEM_FRACTION_NUM,
    SIGNAL_EARLY_S,
    SiteConfig,
    job_memory_mb,
)
from orca_hpc.controller.usage_report import Evidence, Group, Suggestion, group_of, job_group, suggest
from orca_hpc.ledger.store import Ledger, LedgerView

if TYPE_CHECKING:
    from orca_hpc.controller.submit import NewJob

HANDLER = "rightsize"


def evidence_by_group(view: LedgerView, root: Path) -> dict[str, Evidence]:
    """What every group's finished attempts used, by group tag. Reads the whole ledger and archive;
    a job recorded with right-sizing on carries its tag (``x.grp``), others' inputs are read."""
    out: dict[str, Evidence] = {}
    for job in view.all_jobs():
        finished = [a for a in job.attempts if a.usage and a.outcome]
        if not finished:
            continue
        tag = job.extra.get("grp")
        if not isinstance(tag, str):
            group = job_group(job, root)
            if group is None:
                continue
            tag = group.tag
        evidence = out.setdefault(tag, Evidence())
        for att in finished:
            evidence.add(att)
    return out


def resize(
    plan: AttemptPlan, group: Group, s: Suggestion, site: SiteConfig, own_maxcore: bool
) -> dict[str, str] | None:
    """Change ``plan`` to the suggestion within the rules above; the correction, or None if unchanged."""
    changes = []
    if s.walltime_min is not None:
        floor = (site.signal_before_end_s + SIGNAL_EARLY_S) // 60 + 1
        minutes = max(floor, s.walltime_min)
        if site.max_walltime_min is not None:
            minutes = min(minutes, site.max_walltime_min)
        if minutes != plan.time_min:
            changes.append(f"walltime {plan.time_min} -> {minutes} min")
            plan.time_min = minutes
    if s.mem_mb is not None:
        maxcore = plan.maxcore_mb
        if own_maxcore:
            mem = max(s.mem_mb, job_memory_mb(plan.maxcore_mb, plan.nprocs))
        else:
            # ORCA's share (maxcore x processes) is the suggestion itself, so it stays above what the
            # group used and a group bound by %maxcore does not shrink a little with every generation.
            maxcore = -(-s.mem_mb // plan.nprocs)
            mem = job_memory_mb(maxcore, plan.nprocs)
        if site.max_mem_mb is not None and mem > site.max_mem_mb:
            mem = site.max_mem_mb  # an input's own need was held to it when it was validated
            if not own_maxcore:
                maxcore = max(1, mem * MEM_FRACTION_NUM // (MEM_FRACTION_DEN * plan.nprocs))
        if mem != plan.mem_mb:
            extra = f" (%maxcore {plan.maxcore_mb} -> {maxcore} MB)" if maxcore != plan.maxcore_mb else ""
            changes.append(f"memory {plan.mem_mb} -> {mem} MB{extra}")
            plan.mem_mb, plan.maxcore_mb = mem, maxcore
    if not changes:
        return None
    used = []
    if s.elapsed_p95_s is not None:
        used.append(f"{s.time_samples} took <= {s.elapsed_p95_s} s")
    if s.rss_p95_mb is not None:
        used.append(f"{s.mem_samples} used <= {s.rss_p95_mb} MB")
    why = (
        f"95 % of similar finished attempts (group {group.tag}: {group.method or '-'}"
        f"{', basis ' + group.basis if group.basis else ''}, {group.atoms} atoms, {group.procs} processes): "
        + " and ".join(used)
        + f"; plus a margin of {s.margin:.0%}"
        + (
            f" and the {site.signal_before_end_s} s walltime warning"
            f" (which SLURM may send {SIGNAL_EARLY_S} s early)"
            if s.walltime_min is not None
            else ""
        )
    )
    return {"handler": HANDLER, "change": "; ".join(changes), "why": why}


def apply(campaign: Campaign, ledger: Ledger, new_jobs: Sequence[NewJob]) -> None:
    """Right-size ``new_jobs`` (their plans and corrections) when the campaign asks for it."""
    settings = campaign.rightsize
    if not settings.enabled or not new_jobs:
        return
    evidence = evidence_by_group(ledger.snapshot(), campaign.root)
    site = campaign.site
    for nj in new_jobs:
        plan = nj.plan

        def find(name: str, plan: AttemptPlan = plan) -> Path | None:
            return plan.extra_files.get(Path(name).name)

        group = group_of(plan.input_text, find, plan.input_name)
        if group is None:
            continue
        nj.group = group.tag
        found = evidence.get(group.tag)
        if found is None:
            continue
        s = suggest(
            found,
            margin=settings.margin,
            signal_s=site.signal_before_end_s,
            min_samples=settings.min_evidence,
        )
        correction = resize(plan, group, s, site, nj.maxcore_given)
        if correction is not None:
            plan.corrections.append(correction)
