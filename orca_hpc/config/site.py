"""Site configs (`site_configs/*.toml`) -> a validated, frozen `SiteConfig`.

A site config says how one cluster (or workstation) runs ORCA: SLURM partition and limits, how to
find ORCA and Open MPI, the environment of a job, scratch, retry limits. A campaign may override any
value but the name in its `[overrides]` table (`SiteConfig.with_overrides`). Every mistake is a one-line
`InputFileError` naming the file, the line when it can be found, the key and the problem.
"""

from __future__ import annotations

import copy
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, overload

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

from orca_hpc.config.tomlfile import read_config_text
from orca_hpc.errors import InputFileError, UserError, one_line
from orca_hpc.orca.outcomes import DEFAULT_IMAG_THRESHOLD_CM1
from orca_hpc.shipped import shipped_dir

SITE_DIR_ENV = "ORCA_HPC_SITE_DIR"
SCHEDULERS = ("slurm", "local")
LOCK_KINDS = ("flock", "soft")
# sbatch(1), --signal: "Due to the resolution of event handling by Slurm, the signal may be sent up
# to 60 seconds earlier than specified." A walltime must leave this room before the warning too.
SIGNAL_EARLY_S = 60
DEFAULT_KEEP = (
    "*.out",
    "*.gbw",
    "*.xyz",
    "*_trj.xyz",
    "*.hess",
    "*.engrad",
    "*.property.txt",
    "*.property.json",
)
# ORCA needs headroom beyond maxcore x nprocs: the job asks SLURM for maxcore x nprocs / 0.8.
MEM_FRACTION_NUM, MEM_FRACTION_DEN = 4, 5

# sbatch options that orca-hpc writes itself; a site setting them in extra_sbatch would fight it.
_MANAGED_SBATCH = {
    "job-name": "orca-hpc sets it (the submission token)",
    "array": "orca-hpc sets it (max_array_size, array_parallelism)",
    "output": "orca-hpc sets it",
    "error": "orca-hpc sets it",
    "ntasks": "it comes from the input's %pal (default [slurm] nprocs)",
    "nodes": "orca-hpc runs single-node jobs",
    "cpus-per-task": "orca-hpc sets it to 1",
    "mem": "it follows %maxcore (see [slurm] mem_per_cpu_mb, max_mem_mb)",
    "mem-per-cpu": "use [slurm] mem_per_cpu_mb",
    "time": "use [slurm] walltime",
    "signal": "use [slurm] signal_before_end_s",
    "partition": "use [slurm] partition",
    "account": "use [slurm] account",
    "qos": "use [slurm] qos",
    "requeue": "orca-hpc retries node failures itself (--no-requeue)",
}
# (section, key) -> (type, SiteConfig field). Section None is the top level.
_STR, _INT, _NUM, _WALL, _STRS, _TABLE, _ENV, _BOOL = (
    "a string",
    "an integer",
    "a number",
    "a walltime",
    "a list of strings",
    "a table",
    "a table of strings",
    "a boolean",
)
_SCHEMA: dict[str | None, dict[str, tuple[str, str]]] = {
    None: {
        "name": (_STR, "name"),
        "description": (_STR, "description"),
        "scheduler": (_STR, "scheduler"),
        "template_dir": (_STR, "template_dir"),
        "slurm": (_TABLE, ""),
        "orca": (_TABLE, ""),
        "environment": (_TABLE, ""),
        "scratch": (_TABLE, ""),
        "retry": (_TABLE, ""),
        "ledger": (_TABLE, ""),
        "mail": (_TABLE, "mail"),
        "chemistry": (_TABLE, ""),
    },
    "slurm": {
        "partition": (_STR, "partition"),
        "account": (_STR, "account"),
        "qos": (_STR, "qos"),
        "walltime": (_WALL, "walltime_min"),
        "max_walltime": (_WALL, "max_walltime_min"),
        "nodes": (_INT, "nodes"),
        "nprocs": (_INT, "nprocs"),
        "cores_per_node": (_INT, "cores_per_node"),
        "fit_to_node": (_BOOL, "fit_to_node"),
        "mem_per_cpu_mb": (_INT, "mem_per_cpu_mb"),
        "max_mem_mb": (_INT, "max_mem_mb"),
        "max_array_size": (_INT, "max_array_size"),
        "array_parallelism": (_INT, "array_parallelism"),
        "submit_throttle_s": (_NUM, "submit_throttle_s"),
        "signal_before_end_s": (_INT, "signal_before_end_s"),
        "extra_sbatch": (_STRS, "extra_sbatch"),
    },
    "orca": {"path": (_STR, "orca_path"), "openmpi_prefix": (_STR, "openmpi_prefix")},
    "environment": {
        "modules": (_STRS, "modules"),
        "setup": (_STRS, "setup"),
        "env": (_ENV, "env"),
        "python": (_STR, "job_python"),
    },
    "scratch": {
        "root": (_STR, "scratch_root"),
        "fallback": (_STR, "scratch_fallback"),
        "keep": (_STRS, "keep"),
    },
    "retry": {
        "max_retries": (_INT, "max_retries"),
        "max_nodefail_retries": (_INT, "max_nodefail_retries"),
        "disabled_handlers": (_STRS, "disabled_handlers"),
        "pause_after_environment_failures": (_INT, "pause_after_environment_failures"),
    },
    "ledger": {"lock_kind": (_STR, "lock_kind")},
    "chemistry": {"imag_threshold_cm1": (_NUM, "imag_threshold_cm1")},
}
_NOT_OVERRIDABLE = {"name"}
# The names [retry] disabled_handlers may hold: controller.recovery's handlers (a test keeps the two equal;
# config cannot import the controller).
RECOVERY_HANDLERS = (
    "scf", "opt", "memory", "processes", "walltime", "parallel", "wavefunction", "imaginary_modes", "restart",
)  # fmt: skip

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SBATCH_TOKEN = re.compile(r"^[A-Za-z0-9_.,:@+=/-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class SiteConfig:
    """One validated site. Walltimes are minutes; memory is MB; None means "not set / no limit"."""

    name: str
    scheduler: str  # "slurm" | "local"
    orca_path: str  # absolute path, or a command name resolved on the compute node
    source: Path | None = None  # the toml file
    description: str = ""
    # [slurm] (walltime, nprocs and memory are also the local executor's defaults)
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    walltime_min: int = 60
    max_walltime_min: int | None = None  # partition MaxTime: the ceiling for walltime retries
    nodes: int = 1
    nprocs: int = 1
    mem_per_cpu_mb: int = 2000
    max_mem_mb: int | None = None  # the most memory one job may ask for: a node's usable memory
    cores_per_node: int | None = None  # a node's CPUs (scontrol CPUTot): the most processes one job may use
    fit_to_node: bool = False  # scale inputs that ask for more than a node down to it, instead of refusing
    max_array_size: int = 1000
    array_parallelism: int | None = None
    submit_throttle_s: float = 0.0
    signal_before_end_s: int = 300
    extra_sbatch: tuple[str, ...] = ()
    # [orca]
    openmpi_prefix: str | None = None
    # [environment]
    modules: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()  # shell lines, inserted verbatim into the job script
    # The Python with orca-hpc that the compute nodes run, when it is not this one at the same path
    job_python: str | None = None
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    # [scratch]
    scratch_root: str = "$TMPDIR"
    scratch_fallback: str = "/tmp"
    keep: tuple[str, ...] = DEFAULT_KEEP
    # [retry]
    max_retries: int = 3
    max_nodefail_retries: int = 5
    disabled_handlers: tuple[str, ...] = ()
    # [chemistry]: negative modes smaller than this (cm**-1) are noise, reported but not counted
    imag_threshold_cm1: float = DEFAULT_IMAG_THRESHOLD_CM1
    pause_after_environment_failures: int = 3  # in a row, campaign-wide (controller/environment.py)
    # [ledger]
    lock_kind: str = "flock"
    # [mail]: passed through untouched, validated by orca_hpc.notify.config
    mail: Mapping[str, Any] = field(default_factory=dict, hash=False)
    template_dir: Path | None = None  # site templates, searched before the packaged ones
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)

    def with_overrides(self, overrides: Mapping[str, Any], source: str) -> SiteConfig:
        """This site with a campaign's `[overrides]` table applied (same keys as a site file).

        `source` is the file the table came from: it names it in errors, and a relative
        `template_dir` in the overrides is relative to its folder.
        """
        if not overrides:
            return self
        where = _Where(source, _read_text(Path(source)), prefix="overrides")
        if not isinstance(overrides, Mapping):
            raise InputFileError(source, "[overrides] must be a table")
        _check_shape(overrides, where)
        for key in _NOT_OVERRIDABLE & set(overrides):
            where.fail(None, key, "cannot be overridden (pick another site instead)")
        extra = copy.deepcopy(dict(overrides))
        if isinstance(extra.get("template_dir"), str):
            extra["template_dir"] = str(_resolve_dir(Path(source).parent, extra["template_dir"]))
        merged = _merge(self.raw, extra)
        return _build(merged, where, default_name=self.name, source=self.source, base_dir=Path(source).parent)


# Every site default is written once, on SiteConfig; the builder reads it from there.
_D = SiteConfig


# ---------------------------------------------------------------- walltime


_WALLTIME_FORMS = (
    (re.compile(r"^(\d+)$"), ("m",)),
    (re.compile(r"^(\d+):(\d{1,2})$"), ("m", "s")),
    (re.compile(r"^(\d+):(\d{1,2}):(\d{1,2})$"), ("h", "m", "s")),
    (re.compile(r"^(\d+)-(\d{1,2})$"), ("d", "h")),
    (re.compile(r"^(\d+)-(\d{1,2}):(\d{1,2})$"), ("d", "h", "m")),
    (re.compile(r"^(\d+)-(\d{1,2}):(\d{1,2}):(\d{1,2})$"), ("d", "h", "m", "s")),
)


def parse_walltime(value: int | str) -> int:
    """A SLURM time limit (minutes as an integer, or "MM", "MM:SS", "HH:MM:SS", "D-HH",
    "D-HH:MM", "D-HH:MM:SS") -> whole minutes, seconds rounded up. ValueError if malformed."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f'expected minutes or "HH:MM:SS"/"D-HH:MM:SS", got {value!r}')
    if isinstance(value, int):
        minutes = value
    else:
        text = value.strip()
        for pattern, units in _WALLTIME_FORMS:
            match = pattern.match(text)
            if match:
                parts = dict(zip(units, map(int, match.groups()), strict=True))
                break
        else:
            raise ValueError(f'bad walltime format {value!r} (use minutes, "HH:MM:SS" or "D-HH:MM:SS")')
        if len(units) > 1 and (
            parts.get("s", 0) > 59
            or (parts.get("m", 0) > 59 and units[0] != "m")
            or ("d" in parts and parts.get("h", 0) > 23)
        ):
            raise ValueError(f"bad walltime {value!r}: a field is out of range")
        hours = parts.get("d", 0) * 24 + parts.get("h", 0)
        seconds = (hours * 60 + parts.get("m", 0)) * 60 + parts.get("s", 0)
        minutes = math.ceil(seconds / 60)
    if minutes <= 0:
        raise ValueError(f"walltime must be positive, got {value!r}")
    return minutes


def format_walltime(minutes: int) -> str:
    """Minutes -> SLURM's "D-HH:MM:SS" (or "HH:MM:SS" below a day)."""
    days, rest = divmod(int(minutes), 24 * 60)
    hours, mins = divmod(rest, 60)
    return f"{days}-{hours:02d}:{mins:02d}:00" if days else f"{hours:02d}:{mins:02d}:00"


# ---------------------------------------------------------------- memory


def job_memory_mb(maxcore_mb: int, nprocs: int) -> int:
    """The memory rule, the one place it is written: ceil(maxcore x nprocs / 0.8) MB, in integers."""
    return -(-maxcore_mb * nprocs * MEM_FRACTION_DEN // MEM_FRACTION_NUM)


def maxcore_within(mem_mb: int, nprocs: int) -> int:
    """The memory rule backwards: the largest %maxcore whose ``job_memory_mb`` for ``nprocs`` processes
    is at most ``mem_mb`` (0 when not even 1 MB per process fits)."""
    return mem_mb * MEM_FRACTION_NUM // (MEM_FRACTION_DEN * nprocs)


def resources_for(site: SiteConfig, nprocs: int, maxcore_mb: int | None) -> tuple[int, int]:
    """(job memory for --mem, ORCA %maxcore), both MB, keeping maxcore x nprocs <= 80 % of the job's memory.

    With a maxcore, the job asks for ceil(maxcore x nprocs / 0.8) MB; UserError if that exceeds the
    site's max_mem_mb. Without one, the job asks for mem_per_cpu_mb per process (capped at max_mem_mb)
    and maxcore is 80 % of each process's share.
    """
    if isinstance(nprocs, bool) or not isinstance(nprocs, int) or nprocs < 1:
        raise UserError(f"site {site.name}: nprocs must be a positive integer, got {nprocs!r}")
    if maxcore_mb is not None:
        if isinstance(maxcore_mb, bool) or not isinstance(maxcore_mb, int) or maxcore_mb < 1:
            raise UserError(f"site {site.name}: %maxcore must be a positive integer (MB), got {maxcore_mb!r}")
        mem = job_memory_mb(maxcore_mb, nprocs)
        if site.max_mem_mb is not None and mem > site.max_mem_mb:
            raise UserError(
                f"site {site.name}: %maxcore {maxcore_mb} MB x {nprocs} processes needs {mem} MB "
                f"(maxcore x nprocs <= 80 % of the job's memory), more than max_mem_mb = {site.max_mem_mb}; "
                "lower %maxcore or the number of processes"
            )
        return mem, maxcore_mb
    mem = site.mem_per_cpu_mb * nprocs
    if site.max_mem_mb is not None and mem > site.max_mem_mb:
        mem = site.max_mem_mb
    maxcore = maxcore_within(mem, nprocs)
    if maxcore < 1:
        raise UserError(
            f"site {site.name}: {mem} MB for {nprocs} processes leaves less than 1 MB of %maxcore per process"
        )
    return mem, maxcore


# ---------------------------------------------------------------- lookup


def shipped_site_dirs() -> list[Path]:
    """The site configs that come with orca-hpc: inside the package (wheel), else the repo's folder."""
    folder = shipped_dir("site_configs")
    return [folder] if folder.is_dir() else []


def site_search_path(search_dirs: Iterable[str | os.PathLike[str]] | None = None) -> list[Path]:
    """Where a bare site name is looked for, first match wins: `search_dirs` (a campaign's
    `site_configs/`), then each folder in $ORCA_HPC_SITE_DIR (os.pathsep-separated), then the shipped ones."""
    dirs = [Path(d) for d in (search_dirs or ())]
    dirs += [Path(p) for p in os.environ.get(SITE_DIR_ENV, "").split(os.pathsep) if p]
    return dirs + shipped_site_dirs()


def available_sites(search_dirs: Iterable[str | os.PathLike[str]] | None = None) -> dict[str, Path]:
    """Site name -> its file, for every site on the search path (first one wins)."""
    found: dict[str, Path] = {}
    for folder in site_search_path(search_dirs):
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def load_site(
    name_or_path: str | os.PathLike[str], search_dirs: Iterable[str | os.PathLike[str]] | None = None
) -> SiteConfig:
    """Load a site by bare name (see `site_search_path`) or by path to its toml file."""
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or os.sep in text or text.endswith(".toml"):
        return load_site_file(Path(text))
    if not _SITE_NAME.match(text):
        raise UserError(
            f"bad site name {text!r}: use letters, digits, '.', '_', '-' (or give a path to a .toml file)"
        )
    dirs = site_search_path(search_dirs)
    for folder in dirs:
        candidate = folder / f"{text}.toml"
        if candidate.is_file():
            return load_site_file(candidate)
    known = available_sites(search_dirs)
    hint = _suggest(text, known)
    listing = ", ".join(sorted(known)) or "none"
    raise UserError(
        f"unknown site {text!r}{hint}; known sites: {listing} "
        f"(searched {', '.join(str(d) for d in dirs) or 'nothing'})"
    )


def load_site_file(path: Path) -> SiteConfig:
    """Load and validate one site toml file."""
    try:
        text = read_config_text(path, "site config")
    except FileNotFoundError:
        raise UserError(f"{path}: site config not found") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read site config: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+)", str(exc))
        raise InputFileError(path, f"invalid TOML: {exc}", int(match.group(1)) if match else None) from None
    except RecursionError:
        raise InputFileError(path, "invalid TOML: nested too deeply") from None
    except ValueError as exc:  # tomllib's int() of a 4,300+ digit number
        raise InputFileError(path, f"invalid TOML: {str(exc)[:80]}") from None
    where = _Where(str(path), text)
    _check_shape(data, where)
    if isinstance(data.get("template_dir"), str):
        data["template_dir"] = str(_resolve_dir(path.parent, data["template_dir"]))
    return _build(data, where, default_name=path.stem, source=path, base_dir=path.parent)


# ---------------------------------------------------------------- validation


class _Where:
    """Turns (section, key, problem) into a one-line error naming the file and, if found, the line."""

    def __init__(self, label: str, text: str | None, prefix: str | None = None) -> None:
        self.label = label
        self.text = text
        self.prefix = prefix

    def table(self, section: str | None) -> str | None:
        parts = [p for p in (self.prefix, section) if p]
        return ".".join(parts) or None

    def fail(self, section: str | None, key: str, problem: str) -> NoReturn:
        raise self.problem(section, key, problem)

    def problem(self, section: str | None, key: str, problem: str) -> InputFileError:
        table = self.table(section)
        shown = f"[{table}] {key}" if table else key
        return InputFileError(self.label, f"{shown}: {problem}", _find_line(self.text, table, key))


def _find_line(text: str | None, table: str | None, key: str) -> int | None:
    """Best effort: the line where `table.key` is set (as a key or a [table] header)."""
    if not text:
        return None
    target = f"{table}.{key}" if table else key
    current = ""
    header = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]")
    assign = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        match = header.match(line)
        if match:
            current = _normalise_key(match.group(1))
            if current == target:
                return number
            continue
        match = assign.match(line)
        if match:
            full = _normalise_key(match.group(1))
            if (f"{current}.{full}" if current else full) == target:
                return number
    return None


def _normalise_key(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))


def _suggest(word: str, choices: Iterable[str]) -> str:
    import difflib  # only for a mistyped key: every command loads this module

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _toml_type(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def _type_ok(kind: str, value: object) -> bool:
    if kind == _STR:
        return isinstance(value, str)
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _NUM:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == _WALL:
        return isinstance(value, (int, str)) and not isinstance(value, bool)
    if kind == _STRS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == _TABLE:
        return isinstance(value, dict)
    if kind == _ENV:
        return isinstance(value, dict) and all(
            isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value.values()
        )
    raise AssertionError(kind)


def _check_shape(data: Mapping[str, Any], where: _Where) -> None:
    """Unknown keys and wrong types, for a whole file or a partial overrides table: every one of them
    on one line (a person fixes all their typos at once, not one per run)."""
    problems: list[InputFileError] = []
    for section, keys in _SCHEMA.items():
        table = data if section is None else data.get(section, {})
        if not isinstance(table, Mapping):
            continue  # reported below as a wrong type of the top-level key
        for key, value in table.items():
            try:
                _check_key(section, keys, key, value, where)
            except InputFileError as err:
                problems.append(err)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise UserError(one_line([str(p) for p in problems]))


def _check_key(section: str | None, keys: Mapping[str, Any], key: str, value: object, where: _Where) -> None:
    if key not in keys:
        where.fail(section, key, f"unknown key{_suggest(key, keys)}")
    kind = keys[key][0]
    if not _type_ok(kind, value):
        if kind == _STRS and isinstance(value, list):
            bad = next(v for v in value if not isinstance(v, str))
            where.fail(section, key, f"expected {kind}, but an item is {_toml_type(bad)} ({bad!r})")
        if kind == _WALL:
            where.fail(section, key, f'expected minutes or "HH:MM:SS", got {_toml_type(value)} ({value!r})')
        shown = "" if isinstance(value, (dict, list)) else f" ({value!r})"
        where.fail(section, key, f"expected {kind}, got {_toml_type(value)}{shown}")


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key (except [mail], which is replaced whole); other values are replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if key != "mail" and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _resolve_dir(base: Path, value: str) -> Path:
    return (base / Path(value).expanduser()).resolve()


def _build(
    data: dict[str, Any], where: _Where, default_name: str, source: Path | None, base_dir: Path
) -> SiteConfig:
    fields: dict[str, Any] = {}
    for section, keys in _SCHEMA.items():
        table = data if section is None else data.get(section, {})
        for key, (kind, attr) in keys.items():
            if attr and key in table:
                fields[attr] = (section, key, table[key], kind)

    # Every value's problem is noted and the checks go on (a bad value stands in as its default or
    # None), so that one error names them all: a person fixes a config once, not once per problem.
    problems: list[InputFileError] = []

    def note(section: str | None, key: str, problem: str) -> None:
        problems.append(where.problem(section, key, problem))

    def fail(attr: str, problem: str) -> None:
        note(*_ATTR_KEYS[attr], problem)

    def get(attr: str, default: Any = None) -> Any:
        return fields[attr][2] if attr in fields else default

    def text(attr: str, default: str | None = None, required: str = "") -> str | None:
        value = get(attr, default)
        if isinstance(value, str) and not value.strip():
            fail(attr, "missing value (empty string)")
            return None
        if value is not None and _CONTROL.search(value):
            fail(attr, "must be one line without control characters")
            return None
        if value is None and required:
            fail(attr, f"missing value ({required})")
        return value

    @overload
    def integer(attr: str, default: int, minimum: int) -> int: ...
    @overload
    def integer(attr: str, default: None, minimum: int) -> int | None: ...
    def integer(attr: str, default: int | None, minimum: int) -> int | None:
        value = get(attr, default)
        if value is not None and value < minimum:
            fail(attr, f"must be at least {minimum}, got {value}")
            return default
        return value

    def strings(attr: str, default: Sequence[str] = ()) -> tuple[str, ...]:
        value = tuple(get(attr, default))
        for item in value:
            if not item.strip():
                fail(attr, "an item is an empty string")
        return value

    name = text("name", default_name) or ""
    scheduler = text("scheduler", required='set scheduler = "slurm" or "local"') or ""
    if scheduler and scheduler not in SCHEDULERS:
        hint = _suggest(scheduler, SCHEDULERS)
        fail("scheduler", f'must be "slurm" or "local", got {scheduler!r}{hint}')
    slurm = scheduler == "slurm"
    if slurm and not isinstance(data.get("slurm"), Mapping):
        raise InputFileError(
            where.label, f'[{where.table("slurm")}]: missing table (needed when scheduler = "slurm")'
        )

    for attr in ("partition", "account", "qos"):
        value = text(attr)
        if value is not None and not _SBATCH_TOKEN.match(value):
            fail(
                attr, f"{value!r} has characters SLURM names do not use (allowed: letters, digits, _.,:@+=/-)"
            )

    wall_required = 'needed when scheduler = "slurm"' if slurm else ""
    for attr in ("walltime_min", "max_walltime_min"):
        value = get(attr)
        if value is None:
            if attr == "walltime_min" and wall_required:
                note("slurm", "walltime", f"missing value ({wall_required})")
            continue
        unlimited = isinstance(value, str) and value.upper() in ("UNLIMITED", "INFINITE")
        if attr == "max_walltime_min" and unlimited:
            fields[attr] = (*fields[attr][:2], None, _WALL)
            continue
        try:
            fields[attr] = (*fields[attr][:2], parse_walltime(value), _WALL)
        except ValueError as exc:
            fail(attr, str(exc))
            del fields[attr]  # its default stands in for the checks that use it
    walltime = get("walltime_min", _D.walltime_min)
    max_walltime = get("max_walltime_min")
    if max_walltime is not None and walltime > max_walltime:
        fail(
            "walltime_min",
            f"{format_walltime(walltime)} is longer than max_walltime {format_walltime(max_walltime)}",
        )

    if integer("nodes", _D.nodes, 1) != 1:
        fail("nodes", "only single-node jobs are supported (ORCA runs on one node here): use 1")
    nprocs = integer("nprocs", _D.nprocs, 1)
    cores_per_node = integer("cores_per_node", None, 1)
    if cores_per_node is not None and nprocs > cores_per_node:
        fail("nprocs", f"{nprocs} processes are more than cores_per_node = {cores_per_node}")
    if get("mem_per_cpu_mb") is None and slurm:
        note("slurm", "mem_per_cpu_mb", f"missing value ({wall_required})")
    mem_per_cpu = integer("mem_per_cpu_mb", _D.mem_per_cpu_mb, 1)
    max_mem = integer("max_mem_mb", None, 1)
    max_array = integer("max_array_size", _D.max_array_size, 1)
    parallelism = integer("array_parallelism", None, 1)
    throttle = get("submit_throttle_s", _D.submit_throttle_s)
    if throttle < 0:
        fail("submit_throttle_s", f"must not be negative, got {throttle}")
    signal = integer("signal_before_end_s", _D.signal_before_end_s, 0)
    if signal + SIGNAL_EARLY_S >= walltime * 60:
        fail(
            "signal_before_end_s",
            f"{signal} s is not shorter than the walltime ({walltime} min) less the {SIGNAL_EARLY_S} s "
            "SLURM may send the warning early",
        )

    extra_sbatch = strings("extra_sbatch")
    for line in extra_sbatch:
        _check_sbatch_line(line, lambda problem: fail("extra_sbatch", problem))

    orca_path = text("orca_path", required="the ORCA binary: an absolute path or a command name") or ""
    if "/" in orca_path and not orca_path.startswith("/"):
        fail("orca_path", f"{orca_path!r} must be an absolute path or a bare command name (found on PATH)")
    openmpi = text("openmpi_prefix")
    if openmpi is not None and not openmpi.startswith("/"):
        fail("openmpi_prefix", f"{openmpi!r} must be an absolute path (the folder holding bin/ and lib/)")

    modules = strings("modules")
    for module in modules:
        if _CONTROL.search(module) or any(c.isspace() for c in module):
            fail("modules", f"module name {module!r} must be one word (list each module separately)")
    setup = strings("setup")
    job_python = text("job_python")
    if job_python is not None and not job_python.startswith("/"):
        fail("job_python", f"{job_python!r} must be an absolute path (the compute nodes' python)")
    env: dict[str, str] = {}
    for var, value in get("env", {}).items():
        if not _ENV_NAME.match(var):
            fail("env", f"{var!r} is not a valid environment variable name")
        env[var] = str(value)

    scratch_root = text("scratch_root", _D.scratch_root) or ""
    scratch_fallback = text("scratch_fallback", _D.scratch_fallback) or ""
    for attr, value in (("scratch_root", scratch_root), ("scratch_fallback", scratch_fallback)):
        if value and not value.startswith(("/", "$")):
            fail(attr, f"{value!r} must be an absolute path or start with an environment variable ($TMPDIR)")
    keep = strings("keep", _D.keep)
    if not keep:
        fail("keep", 'must name at least one pattern (the ORCA output itself: "*.out")')

    max_retries = integer("max_retries", _D.max_retries, 0)
    max_nodefail = integer("max_nodefail_retries", _D.max_nodefail_retries, 0)
    disabled = strings("disabled_handlers")
    for handler in disabled:
        if handler not in RECOVERY_HANDLERS:
            known = ", ".join(RECOVERY_HANDLERS)
            fail(
                "disabled_handlers",
                f"no recovery handler {handler!r}{_suggest(handler, RECOVERY_HANDLERS)}; known: {known}",
            )
    imag_threshold = get("imag_threshold_cm1", _D.imag_threshold_cm1)
    if imag_threshold < 0:
        fail("imag_threshold_cm1", f"must not be negative, got {imag_threshold}")
    pause_after_env = integer("pause_after_environment_failures", _D.pause_after_environment_failures, 1)

    lock_kind = text("lock_kind", _D.lock_kind) or ""
    if lock_kind and lock_kind not in LOCK_KINDS:
        hint = _suggest(lock_kind, LOCK_KINDS)
        fail("lock_kind", f'must be "flock" or "soft", got {lock_kind!r}{hint}')

    template_dir = get("template_dir")
    if template_dir is not None:
        template_dir = _resolve_dir(base_dir, template_dir)
        if not template_dir.is_dir():
            fail("template_dir", f"{template_dir} is not a folder")
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise UserError(one_line([str(p) for p in problems]))

    return SiteConfig(
        name=name,
        scheduler=scheduler,
        orca_path=orca_path,
        source=source,
        description=get("description", _D.description),
        partition=get("partition"),
        account=get("account"),
        qos=get("qos"),
        walltime_min=walltime,
        max_walltime_min=max_walltime,
        nodes=1,
        nprocs=nprocs,
        cores_per_node=cores_per_node,
        fit_to_node=get("fit_to_node", _D.fit_to_node),
        mem_per_cpu_mb=mem_per_cpu,
        max_mem_mb=max_mem,
        max_array_size=max_array,
        array_parallelism=parallelism,
        submit_throttle_s=float(throttle),
        signal_before_end_s=signal,
        extra_sbatch=extra_sbatch,
        openmpi_prefix=openmpi,
        modules=modules,
        job_python=job_python,
        setup=setup,
        env=env,
        scratch_root=scratch_root,
        scratch_fallback=scratch_fallback,
        keep=keep,
        max_retries=max_retries,
        max_nodefail_retries=max_nodefail,
        disabled_handlers=disabled,
        imag_threshold_cm1=float(imag_threshold),
        pause_after_environment_failures=pause_after_env,
        lock_kind=lock_kind,
        mail=copy.deepcopy(get("mail", {})),
        template_dir=template_dir,
        raw=copy.deepcopy(data),
    )


_ATTR_KEYS: dict[str, tuple[str | None, str]] = {
    attr: (section, key) for section, keys in _SCHEMA.items() for key, (_, attr) in keys.items() if attr
}


def _check_sbatch_line(line: str, fail: Any) -> None:
    if _CONTROL.search(line):
        fail(f"{line!r} must be one line without control characters")
    if not line.startswith("--"):
        fail(f'{line!r} must start with "--" (the long option, e.g. "--constraint=skylake")')
    option = re.split(r"[=\s]", line[2:], maxsplit=1)[0]
    if option in _MANAGED_SBATCH:
        fail(f"{line!r}: --{option} cannot be set here: {_MANAGED_SBATCH[option]}")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
