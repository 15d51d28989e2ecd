"""`orca-hpc gc`: what a campaign would otherwise keep forever without need."""

from __future__ import annotations

import shutil
from pathlib import Path

from orca_hpc.attempt.scratch import FALLBACK_ROOT, expand_root
from orca_hpc.attempt.stale import find_stale_scratch, remove_paths
from orca_hpc.config.campaign import Campaign
from orca_hpc.ledger.states import JobState
from orca_hpc.ledger.store import LedgerView


def collect_garbage(campaign: Campaign, *, dry_run: bool) -> list[str]:
    """Stale scratch of this campaign (visible from here: shared scratch or this node's), and the
    array manifests, submitit folders and SLURM job logs that no active job refers to any more.
    Logs of jobs that failed permanently are kept: they are what a person reads next.

    Under the ledger lock, from the reading to the last removal: a submit or reconcile running
    meanwhile would record attempts that the reading does not hold, and their manifests and the
    scratch of their runners (the local site's start at once) would look stale and be removed."""
    ledger = campaign.ledger()
    with ledger.lock:
        return _collect(campaign, ledger.snapshot(), dry_run)


def _collect(campaign: Campaign, view: LedgerView, dry_run: bool) -> list[str]:
    active = {job.id: job.attempt.n for job in view.jobs.values() if job.attempt is not None}
    site = campaign.site
    roots = {
        r for r in (expand_root(site.scratch_root), expand_root(site.scratch_fallback), FALLBACK_ROOT) if r
    }
    scratch: list[Path] = []
    for root in sorted(roots):
        scratch += find_stale_scratch(root, campaign.slug, active)
    paths: list[Path] = []

    live_arrays: set[str] = set()
    live_tokens: set[str] = set()
    kept_logs: set[str] = set()
    for job in view.jobs.values():
        for att in job.attempts:
            if att.slurm_id:
                live_arrays.add(att.slurm_id.split("_")[0])
            if att.token:
                live_tokens.add(att.token.split("/")[0])
    for job in view.all_jobs():  # finished jobs live in the archive: read it (gc is rare)
        if job.state == JobState.PERMANENT_FAILED and job.attempt is not None and job.attempt.slurm_id:
            kept_logs.add(job.attempt.slurm_id)
    # Array manifests and scripts (<token>.txt, <token>.sh), and the local site's start notes (tokens/).
    for path in sorted([*campaign.arrays_dir.glob("*.*"), *(campaign.submitit_dir / "tokens").glob("*")]):
        if path.is_file() and path.name.split(".")[0] not in live_tokens:
            paths.append(path)
    for folder in sorted(p for p in campaign.submitit_dir.glob("*") if p.is_dir() and p.name != "tokens"):
        if folder.name.split("_")[0] not in live_arrays:
            paths.append(folder)
    for log in sorted((campaign.state_dir / "slurm-logs").glob("*.out")):
        if log.stem.split("_")[0] not in live_arrays and log.stem not in kept_logs:
            paths.append(log)
    return remove_paths(scratch, dry_run) + [_remove_state(p, campaign.state_dir, dry_run) for p in paths]


def _remove_state(path: Path, state_dir: Path, dry_run: bool) -> str:
    """Remove one file or folder of the campaign's own state folder (never anything outside it)."""
    if state_dir not in path.parents or path.is_symlink():
        return f"could not remove {path}: not inside {state_dir}"
    if dry_run:
        return f"would remove {path}"
    try:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as err:
        return f"could not remove {path}: {err.strerror or err}"
    return f"removed {path}"
