"""Job and Attempt records and their compact on-disk form.

On disk a job is one JSON object with short keys; ``None``, zero and empty values are left
out so 100,000 jobs stay small. The keys (documented here because a person may open the file):

Job (keys written in this order)
    ``id`` job id (archive lines only; in ``ledger.json`` the id is the key) · ``st`` state
    (``JobState`` value) · ``name`` · ``inp`` input file path · ``sha`` input sha256 ·
    ``site`` · ``rc`` retry count · ``nf`` node-failure count · ``max`` max retries ·
    ``ct`` created · ``ut`` updated (last state change) · ``dir`` job folder
    (relative to the campaign) · ``att`` attempts · ``ch`` workflow chain link (workflow
    jobs only): ``{"mol", "conf", "step", "after"}`` (``after`` left out when null) · ``x``
    extra fields (a dict, for fields added later without a schema change)

Attempt
    ``n`` number (1, 2, ...) · ``tok`` submission token (sbatch ``--job-name ohpc-<tok>``) ·
    ``sid`` SLURM id ``A_i`` · ``sub`` submitted · ``beg`` started · ``end`` ended ·
    ``sst`` SLURM state · ``exit`` exit code (``"0:11"`` or an int) · ``out`` outcome
    (``Outcome`` value) · ``why`` reason (walltime/cancelled/preempted) · ``en`` energy (Eh) ·
    ``msg`` message · ``fix`` corrections applied before this attempt, a list of
    ``{"handler", "change", "why"}`` · ``dir`` attempt folder · ``free`` true when the
    attempt does not count against the retry limit (node failure, preemption) · ``use`` what
    the finished attempt used (``USAGE_KEYS``; only what is known)

Usage (``use``, whole numbers)
    ``el`` elapsed s · ``tl`` time limit s · ``cpu`` CPU time s (user + system, all processes) ·
    ``rss`` max resident memory MB · ``mem`` memory requested MB · ``np`` CPUs allocated ·
    ``node`` the node (a string). On SLURM all come from sacct; on the local site only ``el`` (from
    ``result.json``) and ``node``.

Times are ISO-8601 UTC strings (``2026-11-28T21:10:03Z``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orca_hpc import jsontext
from orca_hpc.errors import LedgerCorrupt
from orca_hpc.ledger.states import BY_VALUE, JobState

# The ``use`` keys that hold whole numbers (``node`` is the one string).
USAGE_KEYS = ("el", "tl", "cpu", "rss", "mem", "np")


# ``value`` as the ledger writes JSON: no spaces, UTF-8 as is, plain JSON types only (TypeError), no
# NaN (ValueError): NaN is not JSON, and a ledger that no JSON reader can open is a lost ledger.
compact_json = jsontext.encoder(compact=True, ascii_only=False, allow_nan=False)


# An attempt's keys in the order ``Attempt.to_dict`` writes them (``Transaction.note_slurm_state`` puts
# a value in place in the written bytes: the same bytes as a decode, change and encode).
ATTEMPT_KEY_ORDER = (
    "n", "tok", "sid", "sub", "beg", "end", "sst", "exit", "out", "why", "en", "msg", "fix", "dir", "free",
    "use",
)  # fmt: skip


@dataclass(slots=True, eq=True)
class Attempt:
    """One submission of a job to SLURM (one array task)."""

    n: int
    token: str
    slurm_id: str | None = None
    submitted: str | None = None
    started: str | None = None
    ended: str | None = None
    slurm_state: str | None = None
    exit_code: str | int | None = None
    outcome: str | None = None
    reason: str | None = None
    energy: float | None = None
    message: str | None = None
    corrections: list[dict[str, Any]] = field(default_factory=list)
    dir: str = ""  # the attempt's folder, relative to the campaign
    counts_against_limit: bool = True
    usage: dict[str, Any] | None = None  # ``use``: what the finished attempt used

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"n": self.n, "tok": self.token}
        for key, value in (
            ("sid", self.slurm_id),
            ("sub", self.submitted),
            ("beg", self.started),
            ("end", self.ended),
            ("sst", self.slurm_state),
            ("exit", self.exit_code),
            ("out", None if self.outcome is None else str(self.outcome)),
            ("why", self.reason),
            ("en", self.energy),
            ("msg", self.message),
        ):
            if value is not None:
                d[key] = value
        if self.corrections:
            d["fix"] = self.corrections
        if self.dir:
            d["dir"] = self.dir
        if not self.counts_against_limit:
            d["free"] = True
        if self.usage:
            d["use"] = self.usage
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Attempt:
        g = d.get
        return cls(
            n=d["n"],
            token=d["tok"],
            slurm_id=g("sid"),
            submitted=g("sub"),
            started=g("beg"),
            ended=g("end"),
            slurm_state=g("sst"),
            exit_code=g("exit"),
            outcome=g("out"),
            reason=g("why"),
            energy=g("en"),
            message=g("msg"),
            corrections=_copy_json(g("fix")) if "fix" in d else [],
            dir=g("dir") or "",
            counts_against_limit=not g("free", False),
            usage=dict(d["use"]) if "use" in d else None,
        )


@dataclass(slots=True, eq=True)
class Job:
    """One ORCA calculation of the campaign and all its attempts.

    Change ``state`` only through ``Transaction.set_state`` (it checks the state machine and
    stamps ``updated``); other fields may be edited directly inside a transaction.
    """

    id: str
    name: str
    input_path: str
    input_sha: str
    site: str
    state: JobState
    max_retries: int
    created: str
    updated: str
    dir: str
    retry_count: int = 0
    nodefail_count: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # Workflow jobs only: {"molecule": str, "conformer": int (1-based), "step": str,
    # "after": predecessor step's job id or None}. None for plain jobs.
    chain: dict[str, Any] | None = None

    @property
    def attempt(self) -> Attempt | None:
        """The latest attempt, or None before the first submission."""
        return self.attempts[-1] if self.attempts else None

    @property
    def latest(self) -> Attempt:
        """The latest attempt of a job that has one (every job from its recording on)."""
        if not self.attempts:
            raise LedgerCorrupt(f"job {self.id} has no attempt")
        return self.attempts[-1]

    def new_attempt(self, token: str) -> Attempt:
        """Append attempt ``n+1`` with submission ``token``; its folder is ``<job dir>/attempt-<n>``."""
        n = len(self.attempts) + 1
        att = Attempt(n=n, token=token, dir=f"{self.dir}/attempt-{n}")
        self.attempts.append(att)
        return att

    def to_dict(self, with_id: bool = False) -> dict[str, Any]:
        # "st" first: the ledger reads a job's state without decoding the rest (ledger._peek).
        d: dict[str, Any] = {"id": self.id} if with_id else {}
        d["st"] = self.state.value
        d["name"] = self.name
        d["inp"] = self.input_path
        d["sha"] = self.input_sha
        d["site"] = self.site
        if self.retry_count:
            d["rc"] = self.retry_count
        if self.nodefail_count:
            d["nf"] = self.nodefail_count
        d["max"] = self.max_retries
        d["ct"] = self.created
        d["ut"] = self.updated
        d["dir"] = self.dir
        if self.attempts:
            d["att"] = [a.to_dict() for a in self.attempts]
        if self.chain is not None:
            d["ch"] = _chain_to_disk(self.chain)
        if self.extra:
            d["x"] = self.extra
        return d

    @classmethod
    def from_dict(cls, job_id: str, d: dict[str, Any]) -> Job:
        """Build from a decoded dict, which stays unchanged (nested values are copied)."""
        g = d.get
        return cls(
            id=job_id,
            name=d["name"],
            input_path=d["inp"],
            input_sha=d["sha"],
            site=d["site"],
            state=BY_VALUE.get(d["st"]) or JobState(d["st"]),
            max_retries=d["max"],
            created=d["ct"],
            updated=d["ut"],
            dir=d["dir"],
            retry_count=g("rc", 0),
            nodefail_count=g("nf", 0),
            attempts=[Attempt.from_dict(a) for a in g("att", ())],
            extra=_copy_json(g("x")) if "x" in d else {},
            chain=_chain_from_disk(d["ch"]) if "ch" in d else None,
        )


def _chain_to_disk(chain: dict[str, Any]) -> dict[str, Any]:
    d = {"mol": chain["molecule"], "conf": chain["conformer"], "step": chain["step"]}
    if chain.get("after") is not None:
        d["after"] = chain["after"]
    return d


def _chain_from_disk(d: dict[str, Any]) -> dict[str, Any]:
    return {"molecule": d["mol"], "conformer": d["conf"], "step": d["step"], "after": d.get("after")}


def _copy_json(value: Any) -> Any:
    """Copy a JSON value (faster than copy.deepcopy for plain dicts and lists)."""
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def job_id_number(job_id: str) -> int:
    """``"j000042"`` -> 42, for sorting ids past j999999 correctly."""
    return int(job_id[1:])


def format_job_id(number: int) -> str:
    return f"j{number:06d}"
