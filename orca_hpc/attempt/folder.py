"""What one attempt is on disk: its folder, input and extra files, and the two files of the contract
between controller and runner, each with its one typed record: ``AttemptSpec`` (``spec.json``, what to
run: written by the controller, read by the runner) and ``AttemptResult`` (``result.json``, how it
ended: written by the runner, read by the controller)."""

from __future__ import annotations

import dataclasses
import errno
import functools
import json
import math
import os
import re
import stat
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any  # at run time too: the strict result reader resolves these annotations

from orca_hpc import jsontext
from orca_hpc.atomic import atomic_copy, atomic_link, atomic_write_bytes, write_new_file
from orca_hpc.clock import epoch, is_plain_time
from orca_hpc.errors import InputFileError
from orca_hpc.perms import DIR_MODE, FILE_MODE, make_dir

# json.dumps' text, by an encoder made once (json.dumps makes one per call: 10,000 specs per submit).
_spec_text = jsontext.encoder(compact=False, ascii_only=True, allow_nan=True)

SPEC_NAME = "spec.json"
RESULT_NAME = "result.json"
SPEC_VERSION = 1
RESULT_VERSION = 1
INPUT_MAX_BYTES = 256 * 1024 * 1024  # an attempt's input as read back for its next attempt
RESULT_MAX_BYTES = 8 * 1024 * 1024  # spec and result: a few KiB (the copied-back file list is the most)
# Processes, MB and minutes of one attempt: far above any machine, far below what breaks sbatch.
_MAX_PLAN = 2**31 - 1
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
    scratch_fallback: str | None = None  # the site's [scratch] fallback (None: /tmp)

    def to_json(self) -> bytes:
        # The instance's own dict, not dataclasses.asdict (a deep copy): 10,000 of these per submit.
        # Its keys are the fields, in their order (a frozen dataclass sets each one in __init__).
        body: dict[str, Any] = {"spec_version": SPEC_VERSION, **self.__dict__}
        body["extra_inputs"], body["keep"] = list(self.extra_inputs), list(self.keep)
        if self.imag_threshold_cm1 is None:
            del body["imag_threshold_cm1"]
        if self.scratch_fallback is None:
            del body["scratch_fallback"]
        return _spec_text(body).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, path: Path) -> AttemptSpec:
        """The spec, validated; ``InputFileError`` naming ``path`` and every problem otherwise."""
        try:
            spec = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)[:200]
            raise InputFileError(path, f"unreadable: {reason}") from None
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
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_PLAN:
                problems.append(f"{key!r} must be a whole number up to {_MAX_PLAN}")
            ints[key] = value
        threshold = spec.get("imag_threshold_cm1")
        if threshold is not None and (not isinstance(threshold, int | float) or isinstance(threshold, bool)):
            problems.append("'imag_threshold_cm1' must be a number")
        fallback = spec.get("scratch_fallback")
        if fallback is not None and not isinstance(fallback, str):
            problems.append("'scratch_fallback' must be a string")
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
            scratch_fallback=fallback,
            **ints,
        )

    @classmethod
    def read(cls, directory: Path) -> AttemptSpec:
        path = directory / SPEC_NAME
        data = _read_own_file(path, "spec file")
        if data is None:
            raise InputFileError(path, "unreadable: No such file or directory")
        return cls.from_json(data, path)


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
        """The result with every field of the wrong type at its default (for display)."""
        return cls.parse(data)[0]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> tuple[AttemptResult, list[str]]:
        """The result, tolerantly (a missing or wrong field takes its default; unknown ones are
        ignored), and what is wrong with it: a field of the wrong type, a number JSON cannot hold, a
        control character where an id or a time belongs, a classification value of the wrong type."""
        quick = cls._plainly_sound(data)
        return (quick, []) if quick is not None else cls._parse_fully(data)

    @classmethod
    def _parse_fully(cls, data: dict[str, Any]) -> tuple[AttemptResult, list[str]]:
        """``parse`` by the full rules alone (every problem, with its message)."""
        problems: list[str] = []
        values: dict[str, Any] = {}
        for name, hint in _result_hints().items():
            if name not in data:
                continue
            problem = _value_problem(name, data[name], hint, name in _PLAIN_FIELDS)
            if problem is None and name in ("started", "ended") and data[name] is not None:
                problem = (
                    None if epoch(data[name]) is not None else f"{name} is not a time (YYYY-MM-DDTHH:MM:SSZ)"
                )
            if problem:
                problems.append(problem)
            else:
                values[name] = data[name]
        classification = values.get("classification", {})
        known = _classification_hints()
        wrong = set()
        for key, value in classification.items():
            hint = known.get(key)
            problem = _value_problem(f"classification.{key}", value, hint, False) if hint else None
            if problem:
                problems.append(problem)
                wrong.add(key)
        if wrong:
            values["classification"] = {k: v for k, v in classification.items() if k not in wrong}
        return cls(**values), problems

    @classmethod
    def _plainly_sound(cls, data: dict[str, Any]) -> AttemptResult | None:
        """The result when every field is plainly of its type (exact JSON types, plain ids and times,
        finite numbers in range), else None: then ``parse`` applies the full rules. Never says yes
        where they find a problem (``tests/test_result_fuzz.py``), at a fraction of their cost
        (reconcile reads 10,000 of these after a mass completion, all with the same keys and types:
        what the types alone tell is worked out once per layout, see ``_quick_plan``)."""
        plan = _quick_plan(data, _result_quick)
        if plan is None:
            return None
        fields, checks = plan
        for name, check in checks:
            if not check(data[name]):
                return None
        classification = data.get("classification") if "classification" in fields else None
        if classification:
            inner = _quick_plan(classification, _classification_quick)
            if inner is None:
                return None
            for key, check in inner[1]:
                if not check(classification[key]):
                    return None
        return cls(**{name: data[name] for name in fields})

    @classmethod
    def read(cls, directory: str | os.PathLike[str]) -> AttemptResult | None:
        """The runner's ``result.json`` in ``directory``, None when there is none (yet). Anything
        else that is not a sound result raises ``InputFileError`` naming the file and every problem:
        a symbolic link, a directory, a FIFO or device, a file too large, not JSON or JSON nested too
        deeply, not an object, a field of the wrong type. Never follows a link, never blocks."""
        return cls.read_keyed(directory)[0]

    @classmethod
    def read_keyed(cls, directory: str | os.PathLike[str]) -> tuple[AttemptResult | None, FileKey | None]:
        """``read``, and the key of the file it read (``file_key``): a later ``file_key`` of the same
        path that differs means the runner has written the file again since."""
        path = f"{os.fspath(directory)}/{RESULT_NAME}"  # a string: reconcile reads thousands
        key: list[FileKey] = []
        data = _read_own_file(path, "result file", keys=key)
        if data is None:
            return None, None
        try:
            body = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)[:200]
            raise InputFileError(path, f"not a result file: {reason}") from None
        if not isinstance(body, dict):
            raise InputFileError(path, "not a result file: not a JSON object")
        result, problems = cls.parse(body)
        if problems:
            raise InputFileError(path, "; ".join(problems[:10]))
        return result, key[0]


# Fields that reach the ledger's ids, times and reasons, or sort and compare as text: one short
# line each. message, error, notes, files and scratch quote ORCA, the OS or file names.
_PLAIN_FIELDS = frozenset({"job_id", "outcome", "reason", "started", "ended", "node", "slurm_job_id"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_PLAIN = 200
_MAX_INT = 2**63


@functools.cache
def _result_hints() -> dict[str, Any]:
    return typing.get_type_hints(AttemptResult)


@functools.cache
def _classification_hints() -> dict[str, Any]:
    """The classifier's fields and their types (``orca.outcomes.Classification``: not the classifier's
    module, whose import compiles its patterns): the keys the controller reads back. Its outcome is
    written as its string value."""
    from orca_hpc.orca.outcomes import Classification

    return {**typing.get_type_hints(Classification), "outcome": str}


@functools.cache
def _shape(hint: Any) -> tuple[bool, Any, Any, tuple[Any, ...]]:
    """(None allowed, origin, type, args) of a hint, "X | None" unwrapped to X; worked out once per hint
    (``typing.get_origin``/``get_args`` cost more than the check, and reconcile checks every field of
    10,000 result files after a mass completion). A union of several types is not checked (Any)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    nullable = False
    if origin in (typing.Union, types.UnionType):  # here always "X | None"
        options = [o for o in args if o is not type(None)]
        nullable = len(options) < len(args)
        if len(options) != 1:
            return nullable, None, Any, ()
        hint = options[0]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    return nullable, origin, hint, args


# What ``_plainly_fine`` checks a value for: (None allowed, kind, the kind of a list's items).
_ANY, _STR, _PLAIN, _BOOL, _INT, _FLOAT, _DICT, _LIST, _UNKNOWN = range(9)
_Kind = tuple[bool, int, Any]


@functools.cache
def _kind_of(hint: Any, plain: bool) -> _Kind:
    """The quick check of a hint, in the terms of ``_value_problem`` (worked out once per hint)."""
    nullable, origin, hint, args = _shape(hint)
    if origin is list:
        return nullable, _LIST, _kind_of(args[0] if args else Any, plain)
    if origin is dict or hint is dict:
        return nullable, _DICT, None
    if hint is Any:
        return True, _ANY, None
    simple = {bool: _BOOL, int: _INT, float: _FLOAT}.get(hint)
    if simple is None and isinstance(hint, type) and issubclass(hint, str):
        simple = _PLAIN if plain else _STR
    return nullable, _UNKNOWN if simple is None else simple, None


def _plainly_fine(value: Any, kind: _Kind) -> bool:
    """True only when ``_value_problem`` finds nothing wrong with ``value`` (exact types: JSON's)."""
    nullable, k, item = kind
    if value is None:
        return nullable or k == _ANY
    t = type(value)
    if k == _STR:
        return t is str
    if k == _PLAIN:  # ASCII and printable: none of _CONTROL's characters
        return t is str and len(value) <= _MAX_PLAIN and value.isascii() and value.isprintable()
    if k == _FLOAT:
        return ((t is float and math.isfinite(value)) or t is int) and -_MAX_INT <= value <= _MAX_INT
    if k == _INT:
        return t is int and -_MAX_INT <= value <= _MAX_INT
    if k == _BOOL:
        return t is bool
    if k == _DICT:
        return t is dict
    if k == _LIST:
        return t is list and all(_plainly_fine(entry, item) for entry in value)
    return k == _ANY


# A field's quick rule: (types fine outright, types fine when ``check`` says so, check).
_Quick = tuple[frozenset[type], frozenset[type], Callable[[Any], bool]]
_EVERY_TYPE = frozenset({type(None), str, int, float, bool, list, dict})  # what JSON decodes to


def _quick_rule(kind: _Kind, is_time: bool = False) -> _Quick:
    """``_plainly_fine`` of ``kind`` as a rule that tells the usual values by their type alone, and
    the rest with a check made for that one kind (no dispatch per value)."""
    nullable, k, item = kind
    none: frozenset[type] = frozenset({type(None)}) if nullable else frozenset()
    if is_time and k == _PLAIN:  # a time in the one format is one short plain line
        return none, frozenset({str}), is_plain_time
    outright = {_ANY: _EVERY_TYPE, _STR: frozenset({str}), _BOOL: frozenset({bool}), _DICT: frozenset({dict})}
    if k in outright and not is_time:
        return none | outright[k], frozenset(), bool
    checks: dict[int, tuple[set[type], Callable[[Any], bool]]] = {
        _PLAIN: ({str}, lambda v: len(v) <= _MAX_PLAIN and v.isascii() and v.isprintable()),
        _INT: ({int}, lambda v: -_MAX_INT <= v <= _MAX_INT),
        _FLOAT: ({int, float}, lambda v: (type(v) is int or math.isfinite(v)) and -_MAX_INT <= v <= _MAX_INT),
        _LIST: ({list}, lambda v: all(_plainly_fine(entry, item) for entry in v)),
    }
    if is_time or k not in checks:
        return none, frozenset(), bool  # nothing but None is told quickly
    checked, check = checks[k]
    return none, frozenset(checked), check


@functools.cache
def _result_quick() -> dict[str, _Quick]:
    """Every field of ``AttemptResult`` and its quick rule."""
    return {
        name: _quick_rule(_kind_of(hint, name in _PLAIN_FIELDS), name in ("started", "ended"))
        for name, hint in _result_hints().items()
    }


@functools.cache
def _classification_quick() -> dict[str, _Quick]:
    return {key: _quick_rule(_kind_of(hint, False)) for key, hint in _classification_hints().items()}


# A layout (keys, and the type of each value) -> (the known fields, the checks left for their values),
# or None when a type alone declines. Bounded: a hostile file cannot grow it without limit.
_Plan = tuple[tuple[str, ...], tuple[tuple[str, Callable[[Any], bool]], ...]]
_PLANS: dict[tuple[Any, ...], _Plan | None] = {}
_PLANS_LIMIT = 256


def _quick_plan(data: dict[str, Any], rules: Callable[[], dict[str, _Quick]]) -> _Plan | None:
    """What is left to check of ``data`` once its layout is known (see ``_PLANS``)."""
    layout = (rules, tuple(data), tuple(map(type, data.values())))
    if layout in _PLANS:
        return _PLANS[layout]
    table = rules()
    fields, checks = [], []
    plan: _Plan | None = None
    for name, value in data.items():
        rule = table.get(name)
        if rule is None:
            continue  # not a field (result_version, unknown ones): ignored by the full rules too
        outright, checked, check = rule
        t = type(value)
        if t in outright:
            fields.append(name)
        elif t in checked:
            fields.append(name)
            checks.append((name, check))
        else:
            break
    else:
        plan = (tuple(fields), tuple(checks))
    if len(_PLANS) >= _PLANS_LIMIT:
        _PLANS.clear()
    _PLANS[layout] = plan
    return plan


def _value_problem(name: str, value: Any, hint: Any, plain: bool) -> str | None:
    """Why ``value`` is not of type ``hint`` (str, int, float, bool, None, unions, list[X], dict),
    or None."""
    nullable, origin, hint, args = _shape(hint)
    if value is None and nullable:
        return None
    if type(value) is hint and (hint is bool or hint is dict or (hint is str and not plain)):
        return None  # the usual case, told at once
    if origin is list:
        if not isinstance(value, list):
            return f"{name} is {_kind(value)}, not a list"
        (item,) = args or (Any,)
        for i, entry in enumerate(value):
            problem = _value_problem(f"{name}[{i}]", entry, item, plain)
            if problem:
                return problem
        return None
    if origin is dict or hint is dict:
        return None if isinstance(value, dict) else f"{name} is {_kind(value)}, not an object"
    if hint is Any:
        return None
    if hint is bool:
        return None if isinstance(value, bool) else f"{name} is {_kind(value)}, not true/false"
    if hint is float or hint is int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (hint is int and isinstance(value, float))
        ):
            return f"{name} is {_kind(value)}, not {'a whole number' if hint is int else 'a number'}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name} is {value}"
        return f"{name} is out of range" if abs(value) > _MAX_INT else None
    if isinstance(hint, type) and issubclass(hint, str):
        if not isinstance(value, str):
            return f"{name} is {_kind(value)}, not a string"
        if plain and (len(value) > _MAX_PLAIN or _CONTROL.search(value)):
            return f"{name} is not one short line of text"
        return None
    return None


def _kind(value: Any) -> str:
    return (
        "null"
        if value is None
        else {bool: "true/false", dict: "an object", list: "a list"}.get(type(value), type(value).__name__)
    )


# Device, inode, size and modification time: a file replaced (the runner renames a new one in place)
# or rewritten has another key.
FileKey = tuple[int, int, int, int]


def file_key(path: str) -> FileKey | None:
    """The key of the file at ``path`` now; None when there is none or it is a link. Opened, not only
    stat'ed: NFS checks a file again on open, while a stat may answer from its attribute cache."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _read_own_file(
    path: str | os.PathLike[str], what: str, limit: int = RESULT_MAX_BYTES, keys: list[FileKey] | None = None
) -> bytes | None:
    """The bytes of ``spec.json`` or ``result.json``; None when it does not exist. Opened without
    following a link and without blocking (a FIFO), read only when it is a regular file of at most
    ``limit`` bytes: a planted link to /dev/zero or a FIFO must not hang reconcile or the runner.
    ``keys`` gets the key (``file_key``) of the file read."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise InputFileError(path, f"is a symbolic link, not the {what}") from None
        raise InputFileError(path, f"unreadable: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputFileError(path, f"is a directory, not the {what}")
        if not stat.S_ISREG(st.st_mode):
            raise InputFileError(path, f"is not a regular file, not the {what}")
        if st.st_size > limit:
            raise InputFileError(path, f"is larger than {limit // (1024 * 1024)} MiB")
        if keys is not None:
            keys.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        # A buffer of the file's size, not of the limit: reading limit + 1 at once allocates 8 MiB per
        # call (~40 us each, 10,000 times in a reconcile after a mass completion). Plain reads, no file
        # object: that costs more than the read of a result file.
        data = _read_up_to(fd, st.st_size + 1)
        if len(data) > st.st_size:  # it grew since fstat: the rest, up to the same limit as before
            data += _read_up_to(fd, limit + 1 - len(data))
        return data
    except OSError as err:
        raise InputFileError(path, f"unreadable: {err.strerror or err}") from None
    finally:
        os.close(fd)


def _read_up_to(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes from ``fd``: fewer only at the end of the file."""
    chunks = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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
    # Extra files the campaign itself wrote and nobody rewrites (a step's handed-over orbitals): linked,
    # not copied, when the file system allows.
    shared_files: frozenset[str] = frozenset()
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
    directory: Path | str,
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
    scratch_fallback: str | None = None,
) -> None:
    """Lay out the attempt folder. Running it again for the same attempt is harmless.

    Nothing here is fsynced: the ledger transaction that records the attempt makes the folder
    durable before it commits (``Transaction.sync_before_commit``), one file-system sync per batch."""
    folder = os.fspath(directory)  # plain strings: Path arithmetic cost more than the writes on tmpfs
    _real_dir(os.path.dirname(folder))
    _real_dir(folder)
    _write_fresh(f"{folder}/{plan.input_name}", plan.input_text.encode("utf-8"))
    for name, source in plan.extra_files.items():
        if name in plan.shared_files:
            atomic_link(Path(source), Path(folder, name), FILE_MODE)
        else:
            atomic_copy(Path(source), Path(folder, name), FILE_MODE, follow_src=True)  # a user's own files
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
        scratch_fallback=scratch_fallback,
    )
    _write_fresh(f"{folder}/{SPEC_NAME}", spec.to_json())


def _real_dir(path: str) -> None:
    """Make the job's or the attempt's folder, or accept a real folder of ours there. A symbolic link
    there (the next job ids are predictable) is refused, not followed: the input and spec.json would
    be written into the folder it points to, and the runner would run there."""
    try:
        os.mkdir(path, DIR_MODE)  # the common case, a new folder: one call
        return
    except FileExistsError:
        pass
    if os.path.islink(path):
        raise InputFileError(path, "is a symbolic link; refusing to lay an attempt out through it")
    make_dir(path)  # an existing folder: group and other write taken away, as everywhere


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
    """The runner's result file for display, or None when there is none (yet) or it is no result file
    at all; a field of the wrong type takes its default. Reconcile reads it strictly
    (``AttemptResult.read``)."""
    try:
        return AttemptResult.read(directory)
    except InputFileError:
        pass
    try:  # damaged fields: what can be shown of the rest
        data = _read_own_file(directory / RESULT_NAME, "result file")
        body = json.loads(data.decode("utf-8")) if data is not None else None
    except (InputFileError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return AttemptResult.from_dict(body) if isinstance(body, dict) else None


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
    path = directory / spec.input
    text = read_attempt_input(path)
    if text is None:
        raise InputFileError(path, "the attempt's input is missing")
    return AttemptPlan(
        input_name=spec.input,
        input_text=text,
        nprocs=spec.nprocs,
        maxcore_mb=spec.maxcore_mb,
        mem_mb=spec.mem_mb,
        time_min=spec.time_min,
        # Files the input reads (an xyzfile, orbitals) go along to every later attempt.
        extra_files={name: directory / name for name in spec.extra_inputs},
    )


def read_attempt_input(path: Path | str, what: str = "attempt's input") -> str | None:
    """The text of a file of an attempt folder (its ORCA input; ``what`` names another), None when
    there is none; read as its spec is: never through a link, never a FIFO, never more than the input
    limit."""
    data = _read_own_file(path, what, INPUT_MAX_BYTES)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputFileError(Path(path), f"not UTF-8 text (byte {err.start})") from None
