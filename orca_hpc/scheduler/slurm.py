"""SLURM behind the ``Scheduler`` interface: the only module that runs sbatch, squeue, sacct and scancel.

Queries are batched (one squeue + at most one sacct per chunk of job ids) because per-job sacct calls are
~350x slower and load slurmdbd. SLURM failures are never swallowed: an unreachable slurmctld or
slurmdbd raises ``SchedulerUnavailable`` (try again later), anything else ``OrcaHpcError``.
A job missing from the answers means "not known yet" (sacct lags squeue by up to ~5 s), not "lost".
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from orca_hpc.atomic import atomic_write_bytes
from orca_hpc.config.site import SiteConfig
from orca_hpc.errors import OrcaHpcError, SchedulerUnavailable, SubmissionUnconfirmed
from orca_hpc.perms import FILE_MODE, make_dir, without_secrets
from orca_hpc.scheduler.base import (
    REMOVED_REASON,
    RUNNING_STATES,
    TERMINAL_STATES,
    ArrayRequest,
    JobRecord,
    Scheduler,
    Usage,
    job_name,
)
from orca_hpc.scheduler.nodes import Partition, parse_partition, partition_of
from orca_hpc.scheduler.script import (
    JobScriptContext,
    ScriptLayout,
    render_job_script,
    slurm_filename,
    write_lines,
)

# Name last: it is the only free-text field and may itself contain the separator. ElapsedRaw (s) and
# TimelimitRaw (min) need no parsing; MaxRSS is only on the step rows (123_4.batch), not the job's.
SACCT_FIELDS = (
    "JobID",
    "State",
    "ExitCode",
    "Submit",
    "Start",
    "End",
    "NodeList",
    "ElapsedRaw",
    "TimelimitRaw",
    "TotalCPU",
    "MaxRSS",
    "ReqMem",
    "AllocCPUS",
    "JobName",
)
SQUEUE_FIELDS = (
    "JobArrayID",
    "State",
    "exit_code",
    "Reason",
    "NodeList",
    "SubmitTime",
    "StartTime",
    "EndTime",
    "Name",
)

# Substrings of SLURM's messages that mean "the scheduler or its database did not answer".
_UNAVAILABLE_PATTERNS = (
    "Unable to contact slurm controller",
    "Problem talking to the database",
    "Unable to connect to database",
    "Socket timed out",
    "Connection refused",
    "slurm_persist_conn_open",
    "Zero Bytes were transmitted or received",
    "Slurmctld is not responding",
)
# Of those, the ones that mean the request never reached slurmctld (no connection was made).
_NOT_SENT_PATTERNS = ("Unable to contact slurm controller", "Connection refused")
_INVALID_JOB_ID = "Invalid job id specified"
_JOB_ID_RE = re.compile(r"\d+(?:_\d+)?")
# 123, 123_4, 123_[2-9%2], 123_[1,3,5-7]
_SLURM_ID_RE = re.compile(r"^(?P<base>\d+)(?:_(?:(?P<task>\d+)|\[(?P<ranges>[0-9,\-]+)(?:%\d+)?\]))?$")
_EMPTY = frozenset({"", "Unknown", "None", "N/A", "(null)", "None assigned"})
_COMMAND_TIMEOUT_S = 120.0


class SlurmCalls:
    """Counts scheduler command invocations, so benchmarks and tests can report and bound them."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()  # reconcile may ask in a thread while the main one looks up tokens

    def record(self, command: str) -> None:
        with self._lock:
            self.counts[command] += 1

    def reset(self) -> None:
        self.counts.clear()

    def __getitem__(self, command: str) -> int:
        return self.counts[command]

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def __repr__(self) -> str:
        return f"SlurmCalls({dict(self.counts)})"


CALLS = SlurmCalls()


# ---------------------------------------------------------------- parsing


def parse_state(text: str) -> str:
    """First word, without the '+' that truncated columns carry: "CANCELLED by 0" -> "CANCELLED"."""
    words = text.split()
    return words[0].rstrip("+") if words else "UNKNOWN"


def parse_exit_code(text: str) -> tuple[int | None, int | None]:
    """sacct's "3:0" -> (3, 0); squeue's raw wait status "768" -> (3, 0); "11" -> (0, 11)."""
    text = text.strip()
    if ":" in text:
        code, _, sig = text.partition(":")
        try:
            return int(code), int(sig)
        except ValueError:
            return None, None
    if text.isdigit():
        status = int(text)
        return (status >> 8) & 0xFF, status & 0x7F
    return None, None


def expand_job_id(text: str) -> list[tuple[str, str | None, int | None]]:
    """One SLURM job id column -> [(job_id, array_job_id, array_task_id)], collapsed ranges expanded.

    ``123_[2-9%2]`` (sacct's row for an array's pending tasks) gives 123_2 .. 123_9.
    """
    m = _SLURM_ID_RE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"unrecognised SLURM job id {text!r}")
    base = m["base"]
    if m["task"] is not None:
        return [(f"{base}_{m['task']}", base, int(m["task"]))]
    if m["ranges"] is None:
        return [(base, None, None)]
    tasks: list[int] = []
    for part in m["ranges"].split(","):
        lo, _, hi = part.partition("-")
        if not lo:
            raise ValueError(f"unrecognised SLURM job id {text!r}")
        tasks.extend(range(int(lo), int(hi or lo) + 1))
    return [(f"{base}_{t}", base, t) for t in tasks]


# sacct's size suffixes, in MB; a bare number is in the field's own unit (MaxRSS K, ReqMem M)
_SIZE_MB = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2, "P": 1024.0**3}


def parse_size_mb(text: str, bare: str = "M", cpus: int | None = None) -> int | None:
    """sacct's MaxRSS / ReqMem ("41852K", "2000M", "1.50G", "0") -> whole MB, rounded up.

    SLURM before 21.08 wrote ReqMem as "2000Mc" (per CPU: times ``cpus``) or "2000Mn" (per node)."""
    if text[:-1].isdigit() and text[-1] in "KM":  # the usual forms, without float arithmetic
        return -(-int(text[:-1]) // 1024) if text[-1] == "K" else int(text[:-1])
    text = text.strip()
    per_cpu = text.endswith("c")
    text = text.rstrip("cn")
    if not text:
        return None
    unit = text[-1].upper()
    factor = _SIZE_MB.get(unit)
    if factor is None:
        factor, unit = _SIZE_MB[bare], ""
    try:
        value = float(text[: len(text) - len(unit)]) * factor
    except ValueError:
        return None
    if per_cpu and cpus:
        value *= cpus
    return math.ceil(value - 1e-9) if math.isfinite(value) and value >= 0 else None


def parse_duration_s(text: str) -> int | None:
    """sacct's TotalCPU / Elapsed ("00:00.512", "01:02:03", "1-02:03:04") -> whole seconds."""
    days, _, clock = text.strip().rpartition("-")
    if not clock:
        return None
    seconds = 0.0
    try:
        for part in clock.split(":"):
            seconds = seconds * 60 + float(part)
        seconds += int(days) * 86400 if days else 0
    except ValueError:
        return None
    return round(seconds) if math.isfinite(seconds) and seconds >= 0 else None


def _count(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None  # "UNLIMITED", "Partition_Limit", "" -> None


def _usage(elapsed: str, limit: str, cpu: str, rss_mb: int | None, req_mem: str, cpus: str) -> Usage:
    ncpus = _count(cpus)
    limit_min = _count(limit)
    return Usage(
        _count(elapsed),
        None if limit_min is None else limit_min * 60,
        parse_duration_s(cpu),
        rss_mb,
        parse_size_mb(req_mem, "M", ncpus),
        ncpus,
    )


def _value(text: str) -> str | None:
    text = text.strip()
    return None if text in _EMPTY else text


def _rows(text: str, nfields: int) -> Iterator[list[str]]:
    for line in text.splitlines():
        if line.strip():
            cols = line.split("|", nfields - 1)
            if len(cols) != nfields:
                raise OrcaHpcError(f"cannot parse SLURM output line {line!r}")
            yield cols


def _records(
    job_id_col: str,
    name: str,
    state_col: str,
    exit_col: str,
    start: str,
    end: str,
    node: str,
    reason: str | None,
    source: str,
    submit: str,
) -> list[JobRecord]:
    state = parse_state(state_col)
    code, sig = parse_exit_code(exit_col) if state in TERMINAL_STATES else (None, None)
    end_, node_, submit_ = _value(end), _value(node), _value(submit)
    # A start only for a job that has started: squeue's StartTime of a pending job is when the
    # scheduler expects it to start (its --begin, a backfill estimate), and a job cancelled while
    # pending gets the cancel time as its start from squeue and sacct alike (with no node).
    started = state in RUNNING_STATES or (state in TERMINAL_STATES and node_ is not None)
    start_ = _value(start) if started else None
    # Positional: 10,000 rows per reconcile at scale, and keyword calls cost measurably more.
    return [
        JobRecord(jid, array_id, task, name, state, code, sig, start_, end_, node_, reason, source, submit_)
        for jid, array_id, task in expand_job_id(job_id_col)
    ]


def parse_sacct(text: str) -> list[JobRecord]:
    """``sacct -P -n -o`` + SACCT_FIELDS output -> records, one per job or array task.

    A finished job's record carries its ``Usage``; its step rows (``123_4.batch``, ``123_4.extern``)
    make no records of their own: their MaxRSS, which the job row leaves empty, is folded into it."""
    out: list[JobRecord] = []
    step_rss: dict[str, int] = {}
    finished: list[tuple[JobRecord, list[str]]] = []
    for cols in _rows(text, len(SACCT_FIELDS)):
        jid, state, exit_code, submit, start, end, node, *_usage_cols, name = cols
        if "." in jid:
            mb = parse_size_mb(cols[10], "K") if cols[10] else None
            owner = jid.split(".", 1)[0]
            if mb is not None and mb > step_rss.get(owner, -1):
                step_rss[owner] = mb
            continue
        records = _records(jid, name, state, exit_code, start, end, node, None, "sacct", submit)
        if len(records) == 1 and records[0].finished:
            finished.append((records[0], cols))
        out.extend(records)
    # The step rows follow their job's row: the usage is complete only now.
    for rec, cols in finished:
        rss = parse_size_mb(cols[10], "K") if cols[10] else None
        steps = step_rss.get(rec.job_id)
        if steps is not None:
            rss = steps if rss is None else max(rss, steps)
        rec.usage = _usage(cols[7], cols[8], cols[9], rss, cols[11], cols[12])
    return out


_MAX_ARRAY_SIZE_RE = re.compile(r"^MaxArraySize\s*=\s*(\d+)\s*$", re.M)


def parse_max_array_size(config: str) -> int | None:
    """MaxArraySize from ``scontrol show config`` ("MaxArraySize            = 1001"), or None."""
    m = _MAX_ARRAY_SIZE_RE.search(config)
    return int(m[1]) if m else None


def parse_squeue(text: str) -> list[JobRecord]:
    """``squeue -h -r -O`` + SQUEUE_FIELDS (each with suffix "|") output -> records."""
    out: list[JobRecord] = []
    for jid, state, exit_code, reason, node, submit, start, end, name in _rows(text, len(SQUEUE_FIELDS)):
        out.extend(_records(jid, name, state, exit_code, start, end, node, _value(reason), "squeue", submit))
    return out


# ---------------------------------------------------------------- running commands


def _error_line(command: str, stderr: str, stdout: str = "") -> str:
    lines = [ln.strip() for ln in (stderr + "\n" + stdout).splitlines() if ln.strip()]
    for pattern in _UNAVAILABLE_PATTERNS:  # most telling first
        for ln in lines:
            if pattern in ln:
                return ln
    if not lines:
        return f"{command} failed without a message"
    # SLURM wraps one message over several "sbatch: error: ..." lines: make it one line again
    rest = [re.sub(r"^[\w.-]+: error: ", "", ln) for ln in lines[1:]]
    message = " ".join([lines[0], *rest])
    return message if len(message) <= 500 else message[:497] + "..."


def _is_unavailable(message: str) -> bool:
    return any(p in message for p in _UNAVAILABLE_PATTERNS)


def command_env(
    command: str, environ: Mapping[str, str], secrets: Sequence[str] = (), keep: Sequence[str] = ()
) -> dict[str, str]:
    """The environment a SLURM command runs in: without ``secrets`` and without the command's own
    input variables (``SQUEUE_*`` for squeue, ...), except those in ``keep``.

    Each command reads variables named after it as if they were options, and they change what we read
    or ask for: SQUEUE_USERS, SQUEUE_PARTITION or SQUEUE_NAMES hide our jobs from squeue even with -j;
    SCANCEL_STATE=RUNNING makes scancel leave a pending job alone and still exit 0; and sbatch lets
    SBATCH_* override the script's own #SBATCH lines (SBATCH_JOB_NAME replaces the token that finds a
    lost submission, SBATCH_REQUEUE undoes --no-requeue, SBATCH_TIMELIMIT the attempt's walltime)."""
    prefix = f"{command.upper()}_"
    kept = set(keep)
    env = {
        key: value
        for key, value in without_secrets(environ, secrets).items()
        if not key.startswith(prefix) or key in kept
    }
    # A user's SLURM_TIME_FORMAT=relative would make start/end unparseable.
    env["SLURM_TIME_FORMAT"] = "standard"
    return env


def _run(
    argv: list[str],
    *,
    allow_invalid_id: bool = False,
    secrets: Sequence[str] = (),
    keep: Sequence[str] = (),
) -> str:
    """Run one scheduler command; count it; raise on any failure, quoting SLURM's own message.

    ``secrets``: variables the command must not see (sbatch sends its whole environment to slurmctld,
    which keeps it on disk with the job: the mail password would be stored there). ``keep``: the
    command's own variables it may still read (``command_env``)."""
    command = argv[0]
    CALLS.record(command)
    env = command_env(command, os.environ, secrets, keep)
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=_COMMAND_TIMEOUT_S, check=False
        )
    except FileNotFoundError as exc:
        raise OrcaHpcError(f"{command} not found on PATH: is this a SLURM login node?") from exc
    except subprocess.TimeoutExpired as exc:
        raise SchedulerUnavailable(f"{command} did not answer within {_COMMAND_TIMEOUT_S:.0f} s") from exc
    if proc.returncode == 0 and not _is_unavailable(proc.stderr):
        return proc.stdout
    message = _error_line(command, proc.stderr, proc.stdout)
    if _is_unavailable(message):
        raise SchedulerUnavailable(f"SLURM did not answer: {message}")
    if allow_invalid_id and _INVALID_JOB_ID in message:
        return ""
    raise OrcaHpcError(f"{command} failed (exit {proc.returncode}): {message}")


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    if size < 1:
        raise ValueError(f"chunk must be >= 1, not {size}")
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _check_ids(job_ids: Sequence[str]) -> None:
    if isinstance(job_ids, str):
        raise TypeError("job_ids must be a sequence of ids, not one string")
    for jid in job_ids:
        if not isinstance(jid, str) or not _JOB_ID_RE.fullmatch(jid):
            raise ValueError(f"not a SLURM job id: {jid!r}")


def _squeue(selector: list[str]) -> list[JobRecord]:
    fmt = ",".join(f"{f}:|" for f in SQUEUE_FIELDS[:-1]) + f",{SQUEUE_FIELDS[-1]}:"
    # -t all: finished jobs stay in slurmctld for MinJobAge with their exit code, fresher than sacct
    text = _run(["squeue", "-h", "-r", "-t", "all", *selector, "-O", fmt], allow_invalid_id=True)
    return parse_squeue(text)


def _sacct(selector: list[str], *, steps: bool = False) -> list[JobRecord]:
    """``steps``: with the step rows, whose MaxRSS the job's usage needs (about twice the lines)."""
    allocations = [] if steps else ["-X"]
    return parse_sacct(_run(["sacct", *allocations, "-P", "-n", *selector, "-o", ",".join(SACCT_FIELDS)]))


def _merge(acct: list[JobRecord], live: list[JobRecord]) -> dict[str, JobRecord]:
    merged = {r.job_id: r for r in acct}
    for rec in live:  # slurmctld's view is the current one; what the job used is only in sacct
        if rec.finished:
            known = merged.get(rec.job_id)
            if known is not None and known.finished:
                rec.usage = known.usage
            else:
                rec.usage_pending = True
        merged[rec.job_id] = rec
    # Right after submission sacct can show an array as a plain job "123" (its task ids not recorded
    # yet); once any task of 123 is known, that row is stale and would look like an extra job.
    arrays = {r.array_job_id for r in merged.values() if r.array_job_id is not None}
    return {jid: r for jid, r in merged.items() if not (r.array_job_id is None and jid in arrays)}


# ---------------------------------------------------------------- public queries


def query_jobs(job_ids: Sequence[str], *, chunk: int = 1000) -> dict[str, JobRecord]:
    """What SLURM knows about these jobs, keyed by job id ("123_4" or "123").

    An array task id is queried through its array job; asking for an array job id ("123") returns all
    of its tasks. One squeue and at most one sacct call per ``chunk`` distinct job ids. Jobs SLURM
    does not know (yet) are absent.

    sacct is asked only about the jobs squeue does not show queued or running (finished, or purged
    from slurmctld's memory), with their step rows: their usage (MaxRSS) is only there, and step rows
    make sacct ~5x slower per job, which asking for every running job would pay on every reconcile.
    """
    _check_ids(job_ids)
    wanted = set(job_ids)
    by_base: dict[str, list[str]] = {}
    for job_id in job_ids:
        by_base.setdefault(job_id.split("_", 1)[0], []).append(job_id)
    found: dict[str, JobRecord] = {}
    for part in _chunks(list(by_base), chunk):
        live = _squeue(["-j", ",".join(part)])
        active = {r.job_id for r in live if not r.finished}
        settled: list[str] = []
        for base in part:
            rest = [j for j in by_base[base] if j not in active]
            # A whole array is one selector; a task apart from its running siblings is its own.
            settled.extend([base] if len(rest) == len(by_base[base]) and base not in active else rest)
        acct = _sacct(["-j", ",".join(dict.fromkeys(settled))], steps=True) if settled else []
        for rec in _merge(acct, live).values():
            if rec.job_id in wanted or rec.array_job_id in wanted:
                found[rec.job_id] = rec
        found.update(_removed_tasks([j for base in part for j in by_base[base]], found, live))
    return found


def _removed_tasks(
    asked: list[str], found: dict[str, JobRecord], live: list[JobRecord]
) -> dict[str, JobRecord]:
    """Array tasks that ``scancel 123_4`` removed while they were pending: SLURM keeps no record of
    them at all (squeue and sacct alike answer as if task 4 never was), while slurmctld still lists the
    array's other tasks. Without this, such a task looked lost and was run again. A task that ran is
    never taken for one: slurmctld lists it until MinJobAge, and by then sacct has it."""
    arrays: dict[str, JobRecord] = {}
    for rec in live:
        if rec.array_job_id is not None:
            arrays.setdefault(rec.array_job_id, rec)
    removed: dict[str, JobRecord] = {}
    for job_id in asked:
        base, _, task = job_id.partition("_")
        sibling = arrays.get(base)
        if task and job_id not in found and sibling is not None:
            removed[job_id] = JobRecord(
                job_id, base, int(task), sibling.name, "CANCELLED", None, None, None, None, None,
                REMOVED_REASON, "squeue", sibling.submit,
            )  # fmt: skip
    return removed


def find_by_names(
    names: Sequence[str], *, chunk: int = 500, since_days: int = 30
) -> dict[str, list[JobRecord]]:
    """Jobs by exact job name (submission tokens), from sacct (last ``since_days``) and squeue.

    Every requested name is a key; an empty list means neither sacct nor squeue knows such a job.
    """
    if isinstance(names, str):
        raise TypeError("names must be a sequence of names, not one string")
    for name in names:
        if not name or "," in name or name != name.strip():
            raise ValueError(f"job name unusable for a lookup: {name!r}")
    result: dict[str, list[JobRecord]] = {n: [] for n in names}
    for part in _chunks(list(result), chunk):
        selector = [f"--name={','.join(part)}"]
        live = _squeue(selector)
        # without -S, sacct covers only jobs since midnight
        acct = _sacct([*selector, "-S", f"now-{since_days}days"])
        for rec in _merge(acct, live).values():
            if rec.name in result:
                result[rec.name].append(rec)
    return result


def scancel(job_ids: Sequence[str], *, chunk: int = 1000) -> None:
    """Cancel jobs or array tasks; jobs that already ended are not an error."""
    _check_ids(job_ids)
    for part in _chunks(list(dict.fromkeys(job_ids)), chunk):
        try:
            _run(["scancel", *part], allow_invalid_id=True)
        except SchedulerUnavailable:
            raise
        except OrcaHpcError as exc:
            if "already completing or completed" not in str(exc):
                raise


# ---------------------------------------------------------------- submission


# The SBATCH_* variables sbatch may still read: where the job runs and who pays, which a cluster's
# login profile may set and which the script leaves out unless the site config names them.
SBATCH_KEPT = ("SBATCH_ACCOUNT", "SBATCH_PARTITION", "SBATCH_QOS", "SBATCH_RESERVATION")


def sbatch_kept(site: SiteConfig) -> tuple[str, ...]:
    """``SBATCH_KEPT`` without those the site config sets: its job script says them, and sbatch would
    let the variable override the script's line."""
    stated = {
        "SBATCH_ACCOUNT": site.account,
        "SBATCH_PARTITION": site.partition,
        "SBATCH_QOS": site.qos,
        "SBATCH_RESERVATION": any(ln.lstrip().startswith("--reservation") for ln in site.extra_sbatch),
    }
    return tuple(name for name in SBATCH_KEPT if not stated[name])


def sbatch(script: Path, *, secrets: Sequence[str] = (), keep: Sequence[str] = SBATCH_KEPT) -> str:
    """Submit a job script file; returns the SLURM job id (the array job id for an array).

    Plain ``sbatch --parsable``: the script is ours (rendered from the Jinja2 templates), and
    submitit's public API submits pickled Python callables, not ready-made scripts. ``secrets``: the
    variables that neither sbatch nor the job may see (the job script unsets them again too);
    ``keep``: the SBATCH_* variables sbatch may read (any other would override the script's lines).
    """
    try:
        out = _run(["sbatch", "--parsable", str(script)], secrets=secrets, keep=keep)
    except SchedulerUnavailable as exc:
        if any(p in str(exc) for p in _NOT_SENT_PATTERNS):
            raise  # it never reached slurmctld: nothing was queued
        # Sent, but no answer: slurmctld may well have queued the array (the caller keeps its token).
        raise SubmissionUnconfirmed(
            f"{exc}; the jobs wait as SUBMITTING: the next reconcile adopts the array if SLURM queued it, "
            "or sends it again if not"
        ) from exc
    except OrcaHpcError as exc:
        message = str(exc).split(": ", 1)[-1]  # SLURM's own words, without "sbatch failed (exit 1)"
        raise OrcaHpcError(f"sbatch refused the job: {message}") from exc
    job_id = out.strip().split(";", 1)[0]  # "123" or "123;cluster"
    if not job_id.isdigit():
        raise OrcaHpcError(f"sbatch gave no job id: {out.strip()[:200]!r}")
    return job_id


class SlurmScheduler(Scheduler):
    """Arrays through sbatch; state from one squeue + at most one sacct per chunk of ids."""

    kind = "slurm"
    query_waits = True  # squeue and sacct: ~0.4 s for the step rows of 1,000 finished jobs

    def __init__(self, site: SiteConfig, layout: ScriptLayout, *, chunk: int = 1000) -> None:
        super().__init__()
        self.calls = CALLS.counts  # one SLURM per process: every command counts, whoever ran it
        self.site = site
        self.layout = layout
        self.chunk = chunk
        self._last_submit = 0.0
        self._cluster_max_array: int | None = None  # MaxArraySize; 0: not stated

    def max_array_size(self) -> int | None:
        """The site's ``max_array_size``, within what the cluster takes: task ids run 0..size-1 and
        slurmctld refuses an index >= MaxArraySize ("Invalid job array specification"), so a site
        that promises more than its cluster would have every large submission refused. Read once per
        scheduler (one ``scontrol show config``); when slurmctld does not answer, the site's value
        stands (sbatch will say the same then)."""
        if self._cluster_max_array is None:
            try:
                self._cluster_max_array = parse_max_array_size(_run(["scontrol", "show", "config"])) or 0
            except OrcaHpcError:  # SchedulerUnavailable too: --dry-run needs no cluster
                return self.site.max_array_size
        if self._cluster_max_array > 0:
            return min(self.site.max_array_size, self._cluster_max_array)
        return self.site.max_array_size

    def partition(self) -> Partition | None:
        """The site's partition (the default one when none is set) and its nodes: two scontrol calls."""
        name = self.site.partition
        partitions = _run(["scontrol", "show", "partition", "-o", *([name] if name else [])])
        if parse_partition(partitions, name) is None:
            return None
        return partition_of(partitions, _run(["scontrol", "show", "node", "-o"]), name)

    def _context(self, request: ArrayRequest) -> JobScriptContext:
        return JobScriptContext(
            job_name=job_name(request.token),
            array_size=len(request.attempt_dirs),
            ntasks=request.nprocs,
            mem_mb=request.mem_mb,
            time_min=request.time_min,
            output_pattern=f"{slurm_filename(self.layout.log_dir)}/%A_%a.out",
            manifest=str(self.layout.manifest(request.token)),
            python=self.layout.python,
            campaign_dir=str(self.layout.campaign_dir),
            unset_env=self.layout.unset_env,
        )

    def render(self, request: ArrayRequest) -> str:
        return render_job_script(self.site, self._context(request))

    def test_only(self, request: ArrayRequest) -> str | None:
        """``sbatch --test-only`` of the script ``request`` would get: SLURM's refusal, or None."""
        with tempfile.NamedTemporaryFile("w", suffix=".sh", encoding="utf-8") as fh:
            fh.write(self.render(request))
            fh.flush()
            try:
                _run(
                    ["sbatch", "--test-only", fh.name],
                    secrets=self.layout.unset_env,
                    keep=sbatch_kept(self.site),
                )
            except SchedulerUnavailable:
                raise
            except OrcaHpcError as exc:
                return str(exc).split(": ", 1)[-1]
        return None

    def submit(self, request: ArrayRequest) -> list[str]:
        script = self.render(request)
        manifest = self.layout.manifest(request.token)
        write_lines(manifest, [str(d) for d in request.attempt_dirs])
        script_path = manifest.with_suffix(".sh")
        atomic_write_bytes(script_path, script.encode("utf-8"), FILE_MODE, durable=False)
        make_dir(self.layout.log_dir)
        wait = self._last_submit + self.site.submit_throttle_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # a site's courtesy to slurmctld between sbatch calls
        try:
            # Keywords only when needed: the call stays ``sbatch(path)`` for wrappers (bench).
            options: dict[str, Sequence[str]] = {}
            if self.layout.unset_env:
                options["secrets"] = self.layout.unset_env
            keep = sbatch_kept(self.site)
            if any(name not in keep for name in SBATCH_KEPT if name in os.environ):
                options["keep"] = keep  # the site states what such a variable would change
            array_id = sbatch(script_path, **options)
        finally:
            self._last_submit = time.monotonic()
        return [f"{array_id}_{i}" for i in range(len(request.attempt_dirs))]

    def query(self, job_ids: Sequence[str]) -> dict[str, JobRecord]:
        return query_jobs(job_ids, chunk=self.chunk) if job_ids else {}

    def find_by_tokens(self, tokens: Sequence[str]) -> dict[str, list[JobRecord]]:
        if not tokens:
            return {}
        found = find_by_names([job_name(t) for t in tokens])
        return {t: found.get(job_name(t), []) for t in tokens}

    def cancel(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            scancel(job_ids)
