"""What one attempt is on disk: its folder, input and extra files, and the two files of the contract
between controller and runner, each with its one typed record: ``AttemptSpec`` (``spec.json``, what to
run: written by the controller, read by the runner) and ``AttemptResult`` (``result.json``, how it
ended: written by the runner, read by the controller)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from orca_hpc.atomic import atomic_copy, atomic_write_bytes, write_new_file
from orca_hpc.errors import InputFileError
from orca_hpc.perms import FILE_MODE, make_dir

# typing.TYPE_CHECKING without importing typing: the runner imports this once per array task.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC_NAME = "spec.json"
RESULT_NAME = "result.json"
SPEC_VERSION = 1
RESULT_VERSION = 1
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class AttemptSpec:
    """``spec.json``: everything the runner needs to run one attempt, and the record of its plan."""

    campaign: str  # the campaign slug: names the scratch folder
    job_id: str
    job_name: str
    attempt: int
    input: str  # the input's file name in the attempt folder (a safe slug)
    extra_inputs: tuple[str, ...]  # files the input reads, beside it
    orca: str  # absolute path, or a command name resolved on the compute node
    scratch_root: str
    keep: tuple[str, ...]  # glob patterns copied back
    nprocs: int
    maxcore_mb: int
    mem_mb: int
    time_min: int
    imag_threshold_cm1: float | None = None  # the site's noise threshold for imaginary modes

    def to_json(self) -> bytes:
        # Field by field, not dataclasses.asdict (a deep copy): 10,000 of these per submit.
        body: dict[str, Any] = {"spec_version": SPEC_VERSION}
        body.update((f, getattr(self, f)) for f in _SPEC_FIELDS)
        body["extra_inputs"], body["keep"] = list(self.extra_inputs), list(self.keep)
        if self.imag_threshold_cm1 is None:
            del body["imag_threshold_cm1"]
        return json.dumps(body).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, path: Path) -> AttemptSpec:
        """The spec, validated; ``InputFileError`` naming ``path`` and every problem otherwise."""
        try:
            spec = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise InputFileError(path, f"unreadable: {err}") from None
        if not isinstance(spec, dict):
            raise InputFileError(path, "not a JSON object")
        problems: list[str] = []
        kinds = {"campaign": str, "job_id": str, "attempt": int, "input": str, "orca": str,
                 "scratch_root": str, "keep": list}  # fmt: skip
        for key, kind in kinds.items():
            if not isinstance(spec.get(key), kind) or isinstance(spec.get(key), bool):
                what = {str: "a string", int: "an integer", list: "a list"}[kind]
                problems.append(f"{key!r} missing or not {what}")
        extra = spec.get("extra_inputs", [])
        if not isinstance(extra, list) or not all(isinstance(x, str) and x for x in extra):
            problems.append("'extra_inputs' must be a list of file names")
        if isinstance(spec.get("keep"), list) and not all(isinstance(x, str) for x in spec["keep"]):
            problems.append("'keep' must be a list of glob patterns")
        campaign = spec.get("campaign")
        # The campaign slug may hold any letters (it names a folder), but never a path separator.
        if isinstance(campaign, str) and (
            not campaign or campaign.startswith(".") or "/" in campaign or "\0" in campaign
        ):
            problems.append(f"'campaign' {campaign!r} cannot name a scratch folder")
        for key in ("input", "job_id"):
            if isinstance(spec.get(key), str) and not _SAFE_NAME.match(spec[key]):
                problems.append(f"{key!r} {spec[key]!r} is not a safe name ([A-Za-z0-9._-])")
        if spec.get("orca") == "":
            problems.append("'orca' is empty")
        ints = {}
        for key in ("nprocs", "maxcore_mb", "mem_mb", "time_min"):
            value = spec.get(key, 0)  # hand-made specs (tests, old versions) may leave the plan out
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                problems.append(f"{key!r} must be a whole number")
            ints[key] = value
        threshold = spec.get("imag_threshold_cm1")
        if threshold is not None and (not isinstance(threshold, int | float) or isinstance(threshold, bool)):
            problems.append("'imag_threshold_cm1' must be a number")
        if problems:
            raise InputFileError(path, "; ".join(problems))
        return cls(
            campaign=spec["campaign"],
            job_id=spec["job_id"],
            job_name=str(spec.get("job_name", spec["job_id"])),
            attempt=spec["attempt"],
            input=spec["input"],
            extra_inputs=tuple(extra),
            orca=spec["orca"],
            scratch_root=spec["scratch_root"],
            keep=tuple(spec["keep"]),
            imag_threshold_cm1=None if threshold is None else float(threshold),
            **ints,
        )

    @classmethod
    def read(cls, directory: Path) -> AttemptSpec:
        path = directory / SPEC_NAME
        try:
            data = path.read_bytes()
        except OSError as err:
            raise InputFileError(path, f"unreadable: {err.strerror or err}") from None
        return cls.from_json(data, path)


_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(AttemptSpec))


@dataclass
class AttemptResult:
    """``result.json``: how the runner saw the attempt end. Read tolerantly (``from_dict``): a field a
    hand-made or older file lacks takes its default, and unknown fields are ignored."""

    job_id: str = ""
    attempt: int = 0
    outcome: str = "unknown_error"
    reason: str | None = None  # walltime, cancelled, preempted; mpi, orca_missing, disk_full
    retryable: bool | None = None  # None: not said (an input error is not retryable, the rest are)
    exit_code: int | None = None
    energy: float | None = None
    message: str = ""
    classification: dict[str, Any] = field(default_factory=dict)
    started: str | None = None
    ended: str | None = None
    node: str | None = None
    slurm_job_id: str | None = None
    files: list[str] = field(default_factory=list)
    scratch: str | None = None
    scratch_removed: bool = False
    error: str | None = None  # what went wrong in the runner itself
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"result_version": RESULT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptResult:
        known = {f.name: f for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if not isinstance(values.get("classification", {}), dict):
            values["classification"] = {}
        for key in ("files", "notes"):
            if not isinstance(values.get(key, []), list):
                values[key] = []
        return cls(**values)


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
    """Lay out the attempt folder. Running it again for the same attempt is harmless.

    Nothing here is fsynced: the ledger transaction that records the attempt makes the folder
    durable before it commits (``Transaction.sync_before_commit``), one file-system sync per batch."""
    make_dir(directory.parent)
    make_dir(directory)
    folder = os.fspath(directory)  # plain strings: Path arithmetic cost more than the writes on tmpfs
    _write_fresh(f"{folder}/{plan.input_name}", plan.input_text.encode("utf-8"))
    for name, source in plan.extra_files.items():
        atomic_copy(Path(source), directory / name, FILE_MODE, follow_src=True)  # a user's own files
    spec = AttemptSpec(
        campaign=campaign,
        job_id=job_id,
        job_name=job_name,
        attempt=attempt,
        input=plan.input_name,
        extra_inputs=tuple(sorted(plan.extra_files)),
        orca=orca,
        scratch_root=scratch_root,
        keep=tuple(keep),
        nprocs=plan.nprocs,
        maxcore_mb=plan.maxcore_mb,
        mem_mb=plan.mem_mb,
        time_min=plan.time_min,
        imag_threshold_cm1=imag_threshold_cm1,  # the runner's classifier needs the site's value
    )
    _write_fresh(f"{folder}/{SPEC_NAME}", spec.to_json())


def _write_fresh(path: str, data: bytes) -> None:
    """A file of an attempt folder being laid out. The common case is a new folder: one create,
    never through a planted link, and no temp + rename, because no runner reads the folder before
    the ledger records the attempt, which happens after this returns. Laid out again (after an
    interruption left a file, possibly half-written): replaced atomically."""
    try:
        write_new_file(path, data, FILE_MODE, fsync=False)
    except FileExistsError:
        atomic_write_bytes(Path(path), data, FILE_MODE, durable=False)


def read_result(directory: Path) -> AttemptResult | None:
    """The runner's result file, or None when there is none (yet) or it is unreadable."""
    try:
        data = json.loads((directory / RESULT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return AttemptResult.from_dict(data)
    except TypeError:  # a field of the wrong shape that from_dict cannot take: as if unreadable
        return None


def plan_of(directory: Path) -> AttemptPlan:
    """The plan an attempt was made from, read back from its folder (spec.json is its record)."""
    return plan_from_spec(directory, AttemptSpec.read(directory))


def relay_environment(directory: Path, spec: AttemptSpec, orca: str, scratch_root: str) -> AttemptSpec:
    """The spec with the site's current ORCA path and scratch root, rewritten in ``directory`` when they
    changed since the attempt was recorded (an attempt that waited out an environment pause must run
    with the fixed configuration, not the one that failed). Only for attempts no runner has started."""
    if spec.orca == orca and spec.scratch_root == scratch_root:
        return spec
    spec = dataclasses.replace(spec, orca=orca, scratch_root=scratch_root)
    atomic_write_bytes(directory / SPEC_NAME, spec.to_json(), FILE_MODE, durable=False)
    return spec


def plan_from_spec(directory: Path, spec: AttemptSpec) -> AttemptPlan:
    """The plan of the attempt in ``directory`` whose spec is ``spec`` (already read)."""
    return AttemptPlan(
        input_name=spec.input,
        input_text=(directory / spec.input).read_text(encoding="utf-8"),
        nprocs=spec.nprocs,
        maxcore_mb=spec.maxcore_mb,
        mem_mb=spec.mem_mb,
        time_min=spec.time_min,
        # Files the input reads (an xyzfile, orbitals) go along to every later attempt.
        extra_files={name: directory / name for name in spec.extra_inputs},
    )
