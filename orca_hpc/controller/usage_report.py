"""``orca-hpc usage``: what the campaign's jobs really used, like ``seff`` for a whole campaign, and the
walltime and memory that would have been enough for each group of similar jobs.

Per attempt (from its ``use`` record, ``controller/usage.py``): core-hours = elapsed x CPUs; CPU
efficiency = CPU time / (elapsed x CPUs); memory = max RSS / requested; time = elapsed / limit. A job
adds up its attempts: core-hours of successful attempts, and core-hours *wasted* on attempts that
failed or were cancelled. Jobs are ranked by what they left unused: wasted core-hours plus the idle
share of their successful ones (core-hours x (1 - CPU efficiency)), worst first.

Similar jobs form a group: the same method line (the ``!`` keywords of every step, lower case, sorted,
without ``PALn``), ``%basis`` basis and number of processes, and an atom count in the same
power-of-two bucket (1, 2, 3-4, 5-8, 9-16, ...). A group's suggestion covers 95 % of its finished
attempts (nearest-rank 95th percentile) with a margin (``[rightsize] margin``, default 20 %):
walltime = p95(elapsed) x (1 + margin) + the site's ``signal_before_end_s`` (the runner is warned
that long before the end, and stops ORCA then) + the 60 s SLURM may send that warning early, in whole
minutes; memory = p95(max RSS) x (1 + margin), rounded up to
100 MB. The samples are the successful attempts, and the attempts that ran out of time or were killed
for memory count with their limit (the least they needed), so a group that keeps hitting its limits
is never told to ask for less.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orca_hpc.attempt.folder import safe_base
from orca_hpc.config.site import SIGNAL_EARLY_S
from orca_hpc.errors import OrcaHpcError
from orca_hpc.ledger.records import Attempt, Job
from orca_hpc.orca import inputs as orca_input

PERCENTILE = 0.95
DEFAULT_MARGIN = 0.2
MEM_STEP_MB = 100
# Reasons that say the attempt needed more time / memory than it had (its limit is a lower bound).
# ORCA's own out_of_memory is not one: it asks for a larger %maxcore, not for a larger job.
_OUT_OF_TIME, _OUT_OF_MEMORY = "walltime", "memory_limit"


# ---------------------------------------------------------------- groups of similar jobs


@dataclass(frozen=True)
class Group:
    """Jobs alike enough to need alike resources."""

    method: str
    basis: str | None
    atoms: str  # the bucket: "3-4", "9-16"; "?" when the count is not known
    procs: int  # processes (%pal): the same input on more cores is another resource profile

    @property
    def key(self) -> str:
        return f"{self.method}|{self.basis or ''}|{self.atoms}|{self.procs}"

    @property
    def tag(self) -> str:
        """A short stable id of the group (stored on a job as ``x.grp`` when right-sizing is on)."""
        return hashlib.sha1(self.key.encode("utf-8")).hexdigest()[:10]


def atom_bucket(natoms: int) -> str:
    """Powers of two: 1, 2, 3-4, 5-8, 9-16, ... ("?" for 0: not known)."""
    if natoms < 1:
        return "?"
    high = 1 << (natoms - 1).bit_length()
    low = high // 2 + 1 if high > 2 else high
    return str(high) if low == high else f"{low}-{high}"


def _xyz_atoms(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            first = fh.readline(64).strip()
    except OSError:
        return 0
    return int(first) if first.isdigit() else 0


def group_of(text: str, find_file: Callable[[str], Path | None], name: str = "input.inp") -> Group | None:
    """The group of an input (its text; ``find_file`` turns a referenced file name into its path, for
    the atom count of ``* xyzfile``). None when it cannot be parsed."""
    try:
        parsed = orca_input.parse_input(Path(name), text, check_files=False)
    except OrcaHpcError:
        return None
    steps = []
    for job in parsed.jobs:
        words = sorted(kw.lower() for kw in job.keywords if not kw.lower().startswith("pal"))
        steps.append(" ".join(words))
    first = parsed.first
    basis = first.option("basis", "basis")
    natoms = first.natoms
    if not natoms:
        for ref in first.files:
            if ref.kind in ("xyzfile",):
                path = find_file(ref.name)
                natoms = _xyz_atoms(path) if path is not None else 0
    basis = basis.strip('"').lower() if basis else None
    return Group(" / ".join(steps), basis, atom_bucket(natoms), parsed.nprocs)


def job_group(job: Job, root: Path) -> Group | None:
    """The group of a recorded job, from its first attempt's input (corrections come later)."""
    if not job.attempts or not job.attempts[0].dir:
        return None
    folder = root / job.attempts[0].dir
    path = folder / f"{safe_base(job.name)}.inp"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None

    def find(ref: str) -> Path | None:
        candidate = folder / Path(ref).name
        return candidate if candidate.is_file() else None

    return group_of(text, find, path.name)


# ---------------------------------------------------------------- suggestions


def percentile(values: list[int], share: float = PERCENTILE) -> int:
    """Nearest rank: the smallest value that at least ``share`` of ``values`` do not exceed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class Evidence:
    """What a group's finished attempts used: the samples its suggestion comes from."""

    elapsed_s: list[int] = field(default_factory=list)
    rss_mb: list[int] = field(default_factory=list)

    def add(self, att: Attempt) -> None:
        use = att.usage or {}
        if att.outcome == "success":
            if "el" in use:
                self.elapsed_s.append(use["el"])
            if "rss" in use:
                self.rss_mb.append(use["rss"])
        elif att.reason == _OUT_OF_TIME and "tl" in use:
            self.elapsed_s.append(max(use["tl"], use.get("el", 0)))
        elif att.reason == _OUT_OF_MEMORY and "mem" in use:
            self.rss_mb.append(max(use["mem"], use.get("rss", 0)))


@dataclass(frozen=True)
class Suggestion:
    walltime_min: int | None  # None: fewer samples than asked for
    mem_mb: int | None
    elapsed_p95_s: int | None
    rss_p95_mb: int | None
    time_samples: int
    mem_samples: int
    margin: float


def suggest(evidence: Evidence, *, margin: float, signal_s: int, min_samples: int = 1) -> Suggestion:
    """Walltime and memory that cover 95 % of the samples with ``margin`` (the module's rule)."""
    wall = mem = el95 = rss95 = None
    if evidence.elapsed_s and len(evidence.elapsed_s) >= min_samples:
        el95 = percentile(evidence.elapsed_s)
        wall = max(1, math.ceil((el95 * (1 + margin) + signal_s + SIGNAL_EARLY_S) / 60))
    if evidence.rss_mb and len(evidence.rss_mb) >= min_samples:
        rss95 = percentile(evidence.rss_mb)
        mem = max(MEM_STEP_MB, math.ceil(rss95 * (1 + margin) / MEM_STEP_MB) * MEM_STEP_MB)
    return Suggestion(wall, mem, el95, rss95, len(evidence.elapsed_s), len(evidence.rss_mb), margin)


# ---------------------------------------------------------------- the report


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den > 0 else None


def _core_s(use: dict[str, Any]) -> int:
    return int(use.get("el", 0)) * int(use.get("np", 1))


#: The keys of a `job_row`, in order: the CSV header of `usage --csv`, also when no job is measured.
JOB_COLUMNS = (
    "id", "name", "state", "attempts", "attempts_measured", "core_hours", "core_hours_successful",
    "core_hours_wasted", "core_hours_unused", "cpu_efficiency", "max_rss_mb", "requested_mem_mb",
    "mem_efficiency", "elapsed_s", "time_limit_s", "time_fraction", "cpus", "node",
)  # fmt: skip


def job_row(job: Job) -> dict[str, Any] | None:
    """One job's usage over all its attempts (None when no attempt has a usage record)."""
    measured = [a.usage for a in job.attempts if a.usage and "el" in a.usage]
    if not measured:
        return None
    all_s = ok_s = idle_s = cpu_s = cpu_core_s = 0
    for att in job.attempts:
        use = att.usage
        if not use or "el" not in use:
            continue
        core = _core_s(use)
        all_s += core
        has_cpu = "cpu" in use and "np" in use
        if has_cpu:
            cpu_s += use["cpu"]
            cpu_core_s += core
        if att.outcome == "success":
            ok_s += core
            idle_s += max(0, core - use["cpu"]) if has_cpu else 0
    latest = measured[-1]
    rss = [u["rss"] for u in measured if "rss" in u]
    mem_eff = _ratio(latest["rss"], latest["mem"]) if "rss" in latest and "mem" in latest else None
    return {
        "id": job.id,
        "name": job.name,
        "state": job.state.value,
        "attempts": len(job.attempts),
        "attempts_measured": len(measured),
        "core_hours": round(all_s / 3600, 6),
        "core_hours_successful": round(ok_s / 3600, 6),
        "core_hours_wasted": round((all_s - ok_s) / 3600, 6),
        "core_hours_unused": round((all_s - ok_s + idle_s) / 3600, 6),
        "cpu_efficiency": _ratio(cpu_s, cpu_core_s),
        "max_rss_mb": max(rss) if rss else None,
        "requested_mem_mb": latest.get("mem"),
        "mem_efficiency": mem_eff,
        "elapsed_s": latest.get("el"),
        "time_limit_s": latest.get("tl"),
        "time_fraction": _ratio(latest["el"], latest["tl"]) if "tl" in latest else None,
        "cpus": latest.get("np"),
        "node": latest.get("node"),
    }


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return round(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2, 4)


def campaign_totals(jobs: list[Job], rows: list[dict[str, Any]]) -> dict[str, Any]:
    uses = [a.usage for j in jobs for a in j.attempts if a.usage and "el" in a.usage]
    with_cpu = [u for u in uses if "cpu" in u and "np" in u]
    mem = [r["mem_efficiency"] for r in rows if r["mem_efficiency"] is not None]
    time = [r["time_fraction"] for r in rows if r["time_fraction"] is not None]
    return {
        "jobs": len(jobs),
        "jobs_measured": len(rows),
        "attempts_measured": len(uses),
        "core_hours": round(sum(r["core_hours"] for r in rows), 6),
        "core_hours_successful": round(sum(r["core_hours_successful"] for r in rows), 6),
        "core_hours_wasted": round(sum(r["core_hours_wasted"] for r in rows), 6),
        "cpu_efficiency": _ratio(sum(u["cpu"] for u in with_cpu), sum(_core_s(u) for u in with_cpu)),
        "mem_efficiency_median": _median(mem),
        "mem_efficiency_max": max(mem) if mem else None,
        "time_fraction_median": _median(time),
        "time_fraction_max": max(time) if time else None,
    }


def group_rows(
    jobs: Iterable[Job], root: Path, *, margin: float, signal_s: int, min_samples: int
) -> list[dict[str, Any]]:
    """One row per group of similar jobs with finished attempts: its evidence and suggestion."""
    groups: dict[str, tuple[Group, Evidence, list[str]]] = {}
    for job in jobs:
        finished = [a for a in job.attempts if a.usage and a.outcome]
        if not finished:
            continue
        group = job_group(job, root)
        if group is None:
            continue
        _group, evidence, ids = groups.setdefault(group.key, (group, Evidence(), []))
        ids.append(job.id)
        for att in finished:
            evidence.add(att)
    rows: list[dict[str, Any]] = []
    for group, evidence, ids in sorted(groups.values(), key=lambda g: (-len(g[2]), g[0].key)):
        s = suggest(evidence, margin=margin, signal_s=signal_s)
        rows.append(
            {
                "method": group.method,
                "basis": group.basis,
                "atoms": group.atoms,
                "processes": group.procs,
                "group": group.tag,
                "jobs": len(ids),
                "time_samples": s.time_samples,
                "mem_samples": s.mem_samples,
                "enough_evidence": min(s.time_samples, s.mem_samples) >= min_samples,
                "elapsed_p95_s": s.elapsed_p95_s,
                "max_rss_p95_mb": s.rss_p95_mb,
                "suggested_walltime_min": s.walltime_min,
                "suggested_mem_mb": s.mem_mb,
                "margin": margin,
                "example_job": ids[0],
            }
        )
    return rows


def usage_report(
    jobs: list[Job], root: Path, *, margin: float, signal_s: int, min_samples: int
) -> dict[str, Any]:
    """The whole report (the body of ``usage --json``): campaign totals, jobs worst first, groups."""
    rows = [row for job in jobs if (row := job_row(job)) is not None]
    rows.sort(key=lambda r: (-r["core_hours_unused"], r["cpu_efficiency"] or 0.0, r["id"]))
    return {
        "campaign": campaign_totals(jobs, rows),
        "jobs": rows,
        "groups": group_rows(jobs, root, margin=margin, signal_s=signal_s, min_samples=min_samples),
    }
