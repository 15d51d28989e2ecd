"""`orca-hpc check`: what would make every job of a campaign fail, found before anything is queued.

Each check looks at one thing the compute nodes will need, from where it can be seen (the login
node, and the scheduler's ``sbatch --test-only``): the ORCA program, the Python that runs the runner,
the campaign folder, the scratch root, the resources against the partition, the site's declared cores,
memory and time limits against the partition's nodes (``scontrol show partition/node``), the mail
settings and the ledger's lock. Every problem comes back at once, each with its fix; notes are what
cannot be checked from here (a node-local scratch root, a program on the compute nodes' PATH only).
Cheap enough to run before every first submit to a site.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from orca_hpc.attempt.scratch import expand_root, usable_root
from orca_hpc.config.campaign import Campaign
from orca_hpc.config.site import format_walltime, resources_for
from orca_hpc.errors import OrcaHpcError, TemporaryFailure, UserError
from orca_hpc.scheduler import Scheduler, python_for_jobs, scheduler_for
from orca_hpc.scheduler.base import ArrayRequest

RESOLVE_TIMEOUT_S = 5.0


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)  # "what is wrong; how to fix it"
    notes: list[str] = field(default_factory=list)  # what could not be checked from here
    passed: list[str] = field(default_factory=list)  # what was checked and holds

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_orca(campaign: Campaign, report: CheckReport) -> None:
    path = campaign.site.orca_path
    where = f"site {campaign.site.name}: [orca] path"
    if os.path.isabs(path):
        if not os.path.exists(path):
            report.problems.append(
                f"{where} {path} does not exist; set it to the ORCA binary's absolute path"
            )
        elif not os.access(path, os.X_OK) or os.path.isdir(path):
            report.problems.append(f"{where} {path} is not an executable file; point it at the `orca` binary")
        else:
            report.passed.append(f"ORCA {path} is executable")
        return
    found = shutil.which(path)
    if found:
        report.passed.append(f"ORCA {path!r} is {found} here")
    elif campaign.site.scheduler == "local":  # the jobs run here, with this PATH (no modules, no setup)
        report.problems.append(
            f"{where} {path!r} is not on this machine's PATH, where the local site runs its jobs; "
            "set it to the ORCA binary's absolute path"
        )
    else:
        report.notes.append(
            f"{where} {path!r} is not on this machine's PATH; it must be on the compute nodes' PATH "
            "(after the site's modules and setup lines)"
        )


def _check_paths(campaign: Campaign, report: CheckReport) -> None:
    python = python_for_jobs(campaign.site)
    if campaign.site.job_python:
        report.notes.append(f"the jobs run {python} ([environment] python): it must have orca-hpc")
    elif not os.access(python, os.X_OK):
        report.problems.append(f"the jobs' Python {python} is not executable; reinstall orca-hpc")
    root = campaign.root
    if not os.access(root, os.W_OK | os.X_OK):
        report.problems.append(f"campaign folder {root} is not writable: results could not come back")
    if "%" in str(root) and campaign.site.scheduler == "slurm":
        report.notes.append(f"campaign folder {root} has a '%', which SLURM expands in file names")
    if campaign.site.scheduler != "local":  # the local site's jobs run here: no other machine
        report.notes.append(
            f"the compute nodes must see {root} and {python} at these same paths (a shared file system)"
        )


def _check_scratch(campaign: Campaign, report: CheckReport) -> None:
    raw = campaign.site.scratch_root
    root = expand_root(raw)
    if root is None and campaign.site.scheduler == "local":  # its jobs have this environment
        fallback = usable_root(raw, campaign.site.scratch_fallback)[0]  # what the runner will use
        report.notes.append(f"scratch root {raw!r} is not set here: the local site's jobs use {fallback}")
    elif root is None:
        report.notes.append(
            f"scratch root {raw!r} is set on the compute nodes (node-local); not checked here"
        )
    elif not root.is_dir():
        report.notes.append(
            f"scratch root {root} does not exist here; the runner falls back to /tmp if so there"
        )
    elif not os.access(root, os.W_OK | os.X_OK):
        report.problems.append(
            f"scratch root {root} is not writable; set [scratch] root to a writable folder"
        )
    else:
        report.passed.append(f"scratch root {root} is writable")


def _check_resources(campaign: Campaign, scheduler: Scheduler, report: CheckReport) -> bool:
    """The site's default job against ``sbatch --test-only``; False when the scheduler did not answer
    (each further call would wait out the same timeout: the submit's own sbatch will say so)."""
    site = campaign.site
    try:
        mem, _maxcore = resources_for(site, site.nprocs, None)
    except OrcaHpcError as err:
        report.problems.append(str(err))
        return True
    request = ArrayRequest("check", (campaign.jobs_dir / "check",), site.nprocs, mem, site.walltime_min)
    try:
        problem = scheduler.test_only(request)
    except TemporaryFailure as err:
        report.notes.append(f"the scheduler could not be asked: {err}")
        return False
    if problem:
        report.problems.append(
            f"the scheduler refuses the site's default job ({site.nprocs} processes, {mem} MB, "
            f"{site.walltime_min} min): {problem}; fix partition/account/qos/walltime/memory in the site"
        )
    else:
        report.passed.append(f"the scheduler accepts a {site.nprocs}-process, {mem} MB job")
    return True


def _declared(
    report: CheckReport,
    where: str,
    key: str,
    declared: int | None,
    real: int,
    unit: str,
    field: str,
    part: str,
) -> None:
    """One declaration of the node (cores or memory) against what scontrol says its nodes have."""
    if declared is None:
        report.notes.append(
            f"{where} {key} is not set: the nodes of partition {part} have {real}{unit}; set {key} = {real} "
            "so jobs asking for more are refused or fitted at submit (until then submit asks scontrol)"
        )
    elif declared > real:
        report.problems.append(
            f"{where} {key} = {declared} but the nodes of partition {part} have {real}{unit} "
            f"(scontrol {field}); set {key} = {real}" + (" or less" if unit else "")
        )
    else:
        report.passed.append(f"{key} = {declared} (the nodes have {real}{unit})")


def _check_node(campaign: Campaign, scheduler: Scheduler, report: CheckReport) -> None:
    """The site's declarations of one node and the partition's time limit against scontrol's answer:
    jobs are fitted to the declarations (controller/fit.py), so a declaration above the real node lets
    through jobs that SLURM refuses or never starts."""
    site = campaign.site
    try:
        partition = scheduler.partition()
    except TemporaryFailure as err:
        report.notes.append(f"the partition's nodes could not be read: {err}")
        return
    except OrcaHpcError as err:  # an unknown partition: the sbatch --test-only check names it
        report.notes.append(f"the partition's nodes could not be read: {err}")
        return
    if partition is None:
        return  # not a SLURM site, or no such partition (reported by the sbatch check)
    smallest = partition.smallest()
    where = f"site {site.name}: [slurm]"
    if smallest is None:
        report.problems.append(f"partition {partition.name} has no nodes (scontrol show node)")
    else:
        cores, memory, node = smallest
        if not any(n.usable for n in partition.nodes):
            report.notes.append(
                f"no node of partition {partition.name} takes jobs now (e.g. {node.name}: {node.state})"
            )
        _declared(report, where, "cores_per_node", site.cores_per_node, cores, "", "CPUTot", partition.name)
        _declared(report, where, "max_mem_mb", site.max_mem_mb, memory, " MB", "RealMemory", partition.name)
    limit = partition.max_time_min
    if limit is None:
        return
    shown = format_walltime(limit)
    if site.walltime_min > limit:
        report.problems.append(
            f"{where} walltime {format_walltime(site.walltime_min)} is longer than partition "
            f'{partition.name}\'s MaxTime {shown}; set walltime = "{shown}" or less'
        )
    if site.max_walltime_min is None or site.max_walltime_min > limit:
        declared = (
            "unset (unlimited)" if site.max_walltime_min is None else format_walltime(site.max_walltime_min)
        )
        report.problems.append(
            f"{where} max_walltime is {declared} but partition {partition.name}'s MaxTime is {shown}: "
            f'retries after a timeout would ask for more; set max_walltime = "{shown}"'
        )
    elif site.walltime_min <= limit:
        report.passed.append(f"walltime and max_walltime within the partition's MaxTime {shown}")


def _resolves(host: str) -> bool | None:
    """True/False, or None when the resolver did not answer in time (no network here)."""
    answer: list[bool] = []

    def ask() -> None:
        try:
            socket.getaddrinfo(host, None)
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(RESOLVE_TIMEOUT_S)
    return answer[0] if answer else None


def _check_mail(campaign: Campaign, report: CheckReport) -> None:
    from orca_hpc.notify.config import campaign_mail

    try:
        cfg = campaign_mail(campaign)
    except OrcaHpcError as err:
        report.problems.append(f"{err}")
        return
    if cfg is None:
        report.notes.append("no [mail] settings: failure digests wait in the outbox (README: Mail)")
        return
    resolved = _resolves(cfg.host)
    if resolved is False:
        report.problems.append(f"[mail] host {cfg.host!r} does not resolve; check the name")
    elif resolved is None:
        report.notes.append(f"[mail] host {cfg.host!r}: the resolver did not answer in time")
    else:
        report.passed.append(f"[mail] host {cfg.host} resolves")


def _check_lock(campaign: Campaign, report: CheckReport) -> None:
    try:
        with campaign.ledger().lock:
            pass
    except TemporaryFailure as err:
        report.notes.append(f"the ledger is busy: {err}")
    except OrcaHpcError as err:
        report.problems.append(f"{err}")
    except OSError as err:
        report.problems.append(
            f"the ledger lock ({campaign.site.lock_kind}) does not work in {campaign.state_dir}: "
            f'{err.strerror or err}; set [ledger] lock_kind = "soft" for file systems without flock'
        )
    else:
        report.passed.append(f"the ledger lock ({campaign.site.lock_kind}) works here")


def check_campaign(campaign: Campaign, scheduler: Scheduler | None = None) -> CheckReport:
    report = CheckReport()
    _check_orca(campaign, report)
    _check_paths(campaign, report)
    _check_scratch(campaign, report)
    scheduler = scheduler or scheduler_for(campaign)
    if _check_resources(campaign, scheduler, report):
        _check_node(campaign, scheduler, report)
    _check_mail(campaign, report)
    _check_lock(campaign, report)
    return report


CHECKED_KEY = "checked_site"


def site_fingerprint(campaign: Campaign) -> str:
    """Changes whenever the site config (with the campaign's overrides) changes."""
    import hashlib

    return hashlib.sha256(repr(campaign.site).encode("utf-8")).hexdigest()[:16]


def first_submit_check(campaign: Campaign, scheduler: Scheduler | None = None) -> CheckReport | None:
    """The check, once per site config: None when this exact site passed it before (the ledger says
    so). Writes nothing: ``remember_check`` does, once the submit it guarded went through."""
    if campaign.ledger().snapshot().meta.get(CHECKED_KEY) == site_fingerprint(campaign):
        return None
    return check_campaign(campaign, scheduler)


def first_submit_problems(campaign: Campaign, dry_run: Callable[[], object]) -> tuple[list[str], bool]:
    """What stops the first submit to a site (``first_submit_check`` failed): the site's problems and
    the inputs' own, found by ``dry_run`` (a submit that records nothing), so one run names everything
    to fix. Returns them (none: go on) and whether the check ran (``remember_check`` after the submit)."""
    report = first_submit_check(campaign)
    if report is None or report.ok:
        return [], report is not None
    problems = list(report.problems)
    try:
        dry_run()
    except UserError as err:
        problems.append(str(err))
    return problems, True


def remember_check(campaign: Campaign) -> None:
    fingerprint = site_fingerprint(campaign)
    ledger = campaign.ledger()
    if ledger.snapshot().meta.get(CHECKED_KEY) != fingerprint:
        with ledger.transaction() as txn:
            txn.meta[CHECKED_KEY] = fingerprint
