"""A job's request against the node: refused with the numbers, or scaled down to it (``--fit``).

Real inputs carry the ``%pal`` and ``%maxcore`` of their author's machine. The site declares what one
node of its partition has (``[slurm] cores_per_node``, ``max_mem_mb``, ``max_walltime``; `orca-hpc
check` verifies them against scontrol), and a job that asks for more is never handed to SLURM: it
would be refused, or queue forever. ``fit_request`` either lists every excess (the caller refuses the
file) or, when fitting, caps the processes at the node's cores, scales ``%maxcore`` so that the memory
rule (``config.site.job_memory_mb``) stays within ``max_mem_mb``, and caps the time at the partition's
limit; each change is a correction record (handler ``fit``) like the retry handlers', so ``show``
tells why the first attempt differs from the input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from orca_hpc.config.campaign import Campaign
from orca_hpc.config.site import SiteConfig, format_walltime, job_memory_mb, maxcore_within
from orca_hpc.errors import OrcaHpcError, UserError
from orca_hpc.scheduler import Scheduler

HANDLER = "fit"
FIT_HINT = "submit --fit (or [slurm] fit_to_node = true) scales it down to the node"


@dataclass
class Fitted:
    """The request as it will run, and what was changed to make it fit (empty: it fitted as it was)."""

    nprocs: int
    maxcore_mb: int | None
    time_min: int
    corrections: list[dict[str, str]] = field(default_factory=list)


def with_node_facts(campaign: Campaign, scheduler: Scheduler) -> Campaign:
    """The campaign, its site completed with what the scheduler says of the partition's smallest node
    and its MaxTime when the site does not declare them: a job (or a retry with more time) is never
    handed to a partition that cannot run it, declared or not. Two scontrol calls, only then."""
    site = campaign.site
    if None not in (site.cores_per_node, site.max_mem_mb, site.max_walltime_min):
        return campaign
    try:
        partition = scheduler.partition()
    except OrcaHpcError:
        return campaign  # scontrol unreachable: sbatch will say so, with the exit code for it
    if partition is None:
        return campaign  # not known here (local, fake)
    cpus, memory, _node = partition.smallest() or (None, None, None)  # a partition without nodes: its MaxTime
    known = dataclasses.replace(
        site,
        cores_per_node=site.cores_per_node or cpus,
        max_mem_mb=site.max_mem_mb or memory,
        max_walltime_min=site.max_walltime_min or partition.max_time_min,
    )
    return dataclasses.replace(campaign, site=known)


def _change(change: str, why: str) -> dict[str, str]:
    return {"handler": HANDLER, "change": change, "why": why}


def excesses(site: SiteConfig, nprocs: int, maxcore_mb: int | None, time_min: int) -> list[str]:
    """Every way the request exceeds what the site says one node (and the partition) has."""
    found = []
    cores = site.cores_per_node
    if cores is not None and nprocs > cores:
        found.append(f"{nprocs} processes (%pal) but a node has {cores} cores ([slurm] cores_per_node)")
    if maxcore_mb is not None and site.max_mem_mb is not None:
        mem = job_memory_mb(maxcore_mb, nprocs)
        if mem > site.max_mem_mb:
            found.append(
                f"%maxcore {maxcore_mb} MB x {nprocs} processes needs {mem} MB (maxcore x nprocs <= 80 % of "
                f"the job's memory) but a node allows {site.max_mem_mb} MB ([slurm] max_mem_mb)"
            )
    limit = site.max_walltime_min
    if limit is not None and time_min > limit:
        found.append(
            f"walltime {format_walltime(time_min)} is longer than the partition's limit "
            f"{format_walltime(limit)} ([slurm] max_walltime)"
        )
    return found


def fit_request(site: SiteConfig, nprocs: int, maxcore_mb: int | None, time_min: int, *, fit: bool) -> Fitted:
    """The request unchanged when it fits; else, with ``fit``, scaled down to the node; else UserError
    listing every excess (one line)."""
    problems = excesses(site, nprocs, maxcore_mb, time_min)
    if not problems:
        return Fitted(nprocs, maxcore_mb, time_min)
    if not fit:
        listed = "; ".join(problems)
        raise UserError(f"asks for more than site {site.name}'s nodes have: {listed}; {FIT_HINT}")
    out = Fitted(nprocs, maxcore_mb, time_min)
    cores = site.cores_per_node
    if cores is not None and nprocs > cores:
        out.nprocs = cores
        out.corrections.append(_change(f"nprocs {nprocs} -> {cores}", f"a node has {cores} cores"))
    # Memory after the processes are capped: fewer processes may already fit the node's memory.
    max_mem = site.max_mem_mb
    needed = None if maxcore_mb is None else job_memory_mb(maxcore_mb, out.nprocs)
    if max_mem is not None and maxcore_mb is not None and needed is not None and needed > max_mem:
        scaled = maxcore_within(max_mem, out.nprocs)
        if scaled < 1:
            raise UserError(
                f"{out.nprocs} processes cannot have even 1 MB of %maxcore each in site {site.name}'s "
                f"max_mem_mb = {max_mem}"
            )
        out.maxcore_mb = scaled
        why = f"{maxcore_mb} MB x {out.nprocs} processes needs {needed} MB; a node allows {max_mem} MB"
        out.corrections.append(_change(f"%maxcore {maxcore_mb} -> {scaled} MB", why))
    limit = site.max_walltime_min
    if limit is not None and time_min > limit:
        out.time_min = limit
        why = f"the partition's time limit is {format_walltime(limit)}"
        out.corrections.append(_change(f"--time {time_min} -> {limit} min", why))
    return out
