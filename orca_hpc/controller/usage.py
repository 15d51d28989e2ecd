"""What a finished attempt used: from the scheduler's accounting into the attempt's compact ``use``
record (``ledger/records.py``), and back out under public names.

SLURM: everything comes from the batched sacct call reconcile makes anyway (``scheduler.slurm``):
elapsed, time limit, CPU time, max RSS, requested memory and CPUs, node. The local site has no
accounting: only the elapsed time from the runner's ``result.json`` (its start and end) and the node
are recorded. Nothing is recorded that is not known (no key rather than a guess).
"""

from __future__ import annotations

from typing import Any

from orca_hpc.attempt.folder import AttemptResult
from orca_hpc.clock import epoch, utc_iso
from orca_hpc.scheduler.base import JobRecord


def usage_of(rec: JobRecord | None, result: AttemptResult | None) -> dict[str, Any] | None:
    """The ``use`` record of a finished attempt (None when nothing is known)."""
    use: dict[str, Any] = {}
    usage = rec.usage if rec is not None else None
    if usage is not None:
        for key, value in (
            ("el", usage.elapsed_s),
            ("tl", usage.limit_s),
            ("cpu", usage.cpu_s),
            ("rss", usage.max_rss_mb),
            ("mem", usage.req_mem_mb),
            ("np", usage.cpus),
        ):
            if value is not None:
                use[key] = value
    elif result is not None:
        began, ended = _seconds(result.started), _seconds(result.ended)
        if began is not None and ended is not None and ended >= began:
            use["el"] = int(ended - began)
    node = (rec.node if rec is not None else None) or (result.node if result is not None else None)
    if node and use:
        use["node"] = node
    return use or None


def _seconds(text: str | None) -> float | None:
    # A strictly read result holds times in the one format already: utc_iso only for any other form.
    seconds = epoch(text)
    return seconds if seconds is not None or not text else epoch(utc_iso(text))


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def usage_line(use: dict[str, Any]) -> str:
    """One line for ``show``: ``4m10s of 30m0s, CPU 15m02s (90 %), 1210 of 2000 MB, 4 CPUs on node7``."""
    parts = []
    if "el" in use:
        limit = f" of {_duration(use['tl'])}" if "tl" in use else ""
        parts.append(f"{_duration(use['el'])}{limit}")
    if "cpu" in use:
        share = ""
        if use.get("el") and use.get("np"):
            share = f" ({100 * use['cpu'] / (use['el'] * use['np']):.0f} %)"
        parts.append(f"CPU {_duration(use['cpu'])}{share}")
    if "rss" in use or "mem" in use:
        used = use.get("rss", "?")
        parts.append(f"{used} of {use['mem']} MB" if "mem" in use else f"{used} MB")
    where = f" on {use['node']}" if "node" in use else ""
    if "np" in use:
        parts.append(f"{use['np']} CPUs{where}")
    elif where:
        parts.append(where.strip())
    return ", ".join(parts)
