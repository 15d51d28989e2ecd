"""Environment failures: retry unchanged, and stop the campaign's bleeding when they come in a row.

An ``environment_error`` (MPI start-up, ORCA missing, disk full; see ``orca.environment``) says
nothing about the input, so the failed attempt is repeated exactly as it was: no correction, no
smaller job, not counted against ``max_retries``, never PERMANENT_FAILED for it. When
``[retry] pause_after_environment_failures`` of them come in a row across the campaign (no success
between), every further attempt would fail the same way: reconcile stops submitting, queues ONE
alert, and records the pause in the ledger meta (key ``environment``) so it survives restarts. The
waiting jobs stay FAILED/CREATED with their next attempt recorded.

The pause ends on a later reconcile when the login-node check that found a problem at pause time
(ORCA path not executable, scratch root not writable or full) passes again, or when a person runs
``orca-hpc reconcile --resume``. A cause the login node cannot see (MPI on the compute nodes) only
ends by ``--resume``: resuming blindly would fail the next N attempts and alert again.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from orca_hpc.clock import now_iso
from orca_hpc.errors import InputFileError

# `status` reads the pause (``paused``, ``pause_summary``) and loads nothing more: what acts on a
# failure (attempt plans, output tails, the login-node check, submit) is imported where it is used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from orca_hpc.config.campaign import Campaign
    from orca_hpc.config.site import SiteConfig
    from orca_hpc.controller.ending import AttemptEnd
    from orca_hpc.ledger.records import Job
    from orca_hpc.ledger.store import Transaction

META_KEY = "environment"
HANDLER = "environment"
STDERR_TAIL_BYTES = 8192
MIN_FREE_MB = 1024  # a scratch root with less free space than this is "full" for the re-check
MAX_JOBS_LISTED = 20


def attempt_stderr(attempt_dir: Path) -> str:
    """The end of ORCA's stderr (``<base>.err``, copied back by the runner), or ""."""
    from orca_hpc.orca.read import read_tail

    parts = [read_tail(p, STDERR_TAIL_BYTES) for p in sorted(attempt_dir.glob("*.err")) if p.is_file()]
    return "\n".join(p for p in parts if p)


def _state(txn: Transaction) -> dict[str, Any]:
    value = txn.meta.get(META_KEY)
    return value if isinstance(value, dict) else {}


def _pause_of(state: dict[str, Any]) -> dict[str, Any] | None:
    value = state.get("paused")
    return value if isinstance(value, dict) else None


def paused(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The pause record when the campaign is paused, else None (works on any ledger view's meta)."""
    value = meta.get(META_KEY)
    return _pause_of(value) if isinstance(value, dict) else None


def pause_summary(meta: dict[str, Any]) -> str | None:
    """One line for `orca-hpc status`, or None when the campaign is not paused."""
    pause = paused(meta)
    if pause is None:
        return None
    how = (
        "resumes by itself once the login-node check passes"
        if pause.get("problems")
        else "resume with `orca-hpc reconcile --resume` after fixing it"
    )
    return (
        f"campaign PAUSED since {pause.get('since')}: {pause.get('failures')} environment failures in a "
        f"row ({pause.get('reason')}): {pause.get('message')}; {how}"
    )


def recheck(site: SiteConfig) -> list[str]:
    """What the login node can see of the environment: problems with the ORCA path and scratch root."""
    import shutil

    problems = []
    orca = site.orca_path
    found = orca if os.path.isabs(orca) else shutil.which(orca)
    if not found or not os.path.isfile(found) or not os.access(found, os.X_OK):
        problems.append(f"ORCA {orca!r} is not an executable file")
    root = os.path.expandvars(site.scratch_root)
    # "$TMPDIR" and node-local paths only exist on the compute nodes: nothing to check here.
    if "$" not in root and os.path.isdir(root):
        if not os.access(root, os.W_OK | os.X_OK):
            problems.append(f"scratch root {root} is not writable")
        else:
            free_mb = shutil.disk_usage(root).free // (1024 * 1024)
            if free_mb < MIN_FREE_MB:
                problems.append(f"scratch root {root} has only {free_mb} MB free")
    return problems


def note_end(
    txn: Transaction, end: AttemptEnd, job: Job, campaign: Campaign, notice: Callable[[str], None]
) -> None:
    """Count environment failures in a row; pauses the campaign (one alert) at the site's limit."""
    state = _state(txn)
    if end.success:
        if state.get("in_a_row"):
            txn.meta[META_KEY] = {**state, "in_a_row": 0, "jobs": []}
        return
    if not end.environment:
        return  # a chemistry failure says nothing about the machine either way
    jobs = [*state.get("jobs", []), job.id][-MAX_JOBS_LISTED:]
    state = {**state, "in_a_row": int(state.get("in_a_row", 0)) + 1, "jobs": jobs}
    state["last"] = {"job": job.id, "reason": end.reason, "message": end.message[:300], "at": now_iso()}
    limit = campaign.site.pause_after_environment_failures
    if state["in_a_row"] >= limit and _pause_of(state) is None:
        from orca_hpc.notify.digest import build_pause_alert

        pause = {
            "since": now_iso(),
            "reason": end.reason,
            "message": end.message[:300],
            "failures": state["in_a_row"],
            "jobs": jobs,
            "problems": recheck(campaign.site),
        }
        state["paused"] = pause
        txn.outbox.append(build_pause_alert(campaign.name, pause))
        notice(
            f"{state['in_a_row']} environment failures in a row ({end.reason}): no new submissions "
            "until it is fixed; one alert queued"
        )
    txn.meta[META_KEY] = state


def may_dispatch(txn: Transaction, site: SiteConfig, resume: bool, notice: Callable[[str], None]) -> bool:
    """Whether reconcile may submit attempts now; ends the pause when its cause is gone."""
    state = _state(txn)
    pause = _pause_of(state)
    if pause is None:
        return True
    how = None
    if resume:
        how = "resumed by a person (reconcile --resume)"
    elif pause.get("problems") and not recheck(site):
        how = "resumed: the login-node check passes again"
    if how is None:
        notice(pause_summary(txn.meta) or "campaign paused")
        return False
    history = [*state.get("pauses", []), {**pause, "ended": now_iso(), "how": how}][-10:]
    txn.meta[META_KEY] = {"in_a_row": 0, "jobs": [], "pauses": history, "last": state.get("last")}
    notice(f"environment pause ({pause.get('reason')}) ended: {how}")
    return True


def retry_unchanged(campaign: Campaign, txn: Transaction, job: Job, end: AttemptEnd) -> bool:
    """Record the next attempt exactly as the failed one (same input, same resources).

    Returns False when the failed attempt's plan cannot be read (the caller then treats it as any
    other failure).
    """
    from orca_hpc.attempt.folder import plan_of
    from orca_hpc.controller.submit import record_attempt

    att = job.attempt
    assert att is not None
    try:
        previous = plan_of(campaign.root / att.dir)
    except (OSError, InputFileError):
        return False
    change = {
        "handler": HANDLER,
        "change": "none",
        "why": f"{end.reason or 'environment'}: the machine failed, not the input; run it again unchanged",
    }
    plan = dataclasses.replace(previous, extra_files=dict(previous.extra_files), corrections=[change])
    record_attempt(campaign, txn, job, plan)
    return True
