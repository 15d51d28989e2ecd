"""What one attempt needs on disk: its folder, input, extra files and the runner's spec.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orca_hpc.atomic import atomic_copy, atomic_write_bytes
from orca_hpc.perms import FILE_MODE, make_dir

SPEC_NAME = "spec.json"
RESULT_NAME = "result.json"


@dataclass
class AttemptPlan:
    """Everything that makes attempt n of a job what it is; corrections change it between attempts."""

    input_name: str  # safe slug + ".inp": ORCA's base name
    input_text: str
    nprocs: int
    maxcore_mb: int
    mem_mb: int
    time_min: int
    extra_files: dict[str, Path] = field(default_factory=dict)  # name in the attempt dir -> source
    corrections: list[dict[str, str]] = field(default_factory=list)

    @property
    def resources_key(self) -> tuple[int, int, int]:
        """Attempts that share this key can share one job array."""
        return (self.nprocs, self.mem_mb, self.time_min)


def attempt_dir(jobs_dir: Path, job_id: str, n: int) -> Path:
    return jobs_dir / job_id / f"attempt-{n}"


def safe_base(name: str, limit: int = 60) -> str:
    """ORCA's base name: only characters that no shell, MPI launcher or ORCA module trips over."""
    base = "".join(c if (c.isascii() and (c.isalnum() or c in "._-")) else "_" for c in name)
    base = base.strip("._-")[:limit]
    return base or "job"


def write_attempt(
    directory: Path,
    plan: AttemptPlan,
    *,
    campaign: str,
    job_id: str,
    job_name: str,
    attempt: int,
    orca: str,
    scratch_root: str,
    keep: tuple[str, ...] | list[str],
    imag_threshold_cm1: float | None = None,
) -> None:
    """Lay out the attempt folder. Running it again for the same attempt is harmless."""
    make_dir(directory.parent)
    make_dir(directory)
    atomic_write_bytes(directory / plan.input_name, plan.input_text.encode("utf-8"), FILE_MODE, durable=False)
    for name, source in plan.extra_files.items():
        atomic_copy(Path(source), directory / name, FILE_MODE, follow_src=True)  # a user's own files
    spec: dict[str, Any] = {
        "spec_version": 1,
        "campaign": campaign,
        "job_id": job_id,
        "job_name": job_name,
        "attempt": attempt,
        "input": plan.input_name,
        "extra_inputs": sorted(plan.extra_files),
        "orca": orca,
        "scratch_root": scratch_root,
        "keep": list(keep),
        "nprocs": plan.nprocs,
        "maxcore_mb": plan.maxcore_mb,
        "mem_mb": plan.mem_mb,
        "time_min": plan.time_min,
    }
    if imag_threshold_cm1 is not None:
        spec["imag_threshold_cm1"] = imag_threshold_cm1  # the runner's classifier needs the site's value
    # Atomic (the runner never reads half a spec) but not fsynced: 10,000 of these per submit.
    atomic_write_bytes(directory / SPEC_NAME, json.dumps(spec).encode("utf-8"), FILE_MODE, durable=False)


def read_result(directory: Path) -> dict[str, Any] | None:
    """The runner's result file, or None when there is none (yet) or it is unreadable."""
    try:
        data = json.loads((directory / RESULT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def plan_of(directory: Path) -> AttemptPlan:
    """The plan an attempt was made from, read back from its folder (spec.json is its record)."""
    spec = json.loads((directory / SPEC_NAME).read_text(encoding="utf-8"))
    return AttemptPlan(
        input_name=spec["input"],
        input_text=(directory / spec["input"]).read_text(encoding="utf-8"),
        nprocs=int(spec["nprocs"]),
        maxcore_mb=int(spec["maxcore_mb"]),
        mem_mb=int(spec["mem_mb"]),
        time_min=int(spec["time_min"]),
        # Files the input reads (an xyzfile, orbitals) go along to every later attempt.
        extra_files={name: directory / name for name in spec.get("extra_inputs", [])},
    )
