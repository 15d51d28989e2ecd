"""The campaign ledger: every job, every attempt, every notification owed.

Files in ``CAMPAIGN/.orca-hpc/``:

``ledger.json``
    The hot ledger: active jobs, the notification outbox and campaign meta. Replaced
    atomically on every change (temp file + fsync + rename + fsync of the folder)::

        {"schema_version": 1, "generation": 42, "saved": "2026-11-28T21:10:03Z",
         "meta": {"next_id": 7, ...}, "outbox": [...],
         "jobs": {
        "j000001": {"name": "water opt", "inp": "inputs/water.inp", "sha": "...", "site": "local",
                    "st": "RUNNING", "max": 3, "ct": "...", "ut": "...", "dir": "jobs/j000001",
                    "att": [{"n": 1, "tok": "...", "sid": "123_0", ...}]},
        ...}}

    One job per line, so ``grep`` and a person can read it. The job keys are documented in
    ``orca_hpc.ledger.records``. ``generation`` counts saves; ``meta.next_id`` is the job-id
    counter (ids ``j000001``, ``j000002``, ... never reused); other ``meta`` keys belong to
    whoever sets them (``orca-hpc init`` stores the campaign name and site there).
``ledger.json.bak``
    The previous good generation (a hard link to the replaced file, or a copy where hard links
    are not supported). ``orca-hpc ledger restore`` puts it back.
``archive.jsonl`` / ``archive.index.json``
    Finished jobs (COMPLETED, PERMANENT_FAILED, CANCELLED), appended when a transaction that
    finished them is saved; see ``orca_hpc.ledger.archive``. A job in ``ledger.json`` always
    overrides archive lines for the same id (``Transaction.reactivate`` relies on that).
``ledger.lock`` (or ``ledger.softlock``) and ``<lock>.info``
    The lock and a note saying who holds it; see ``orca_hpc.ledger.lock``.

Reconcile at scale: ``txn.states()`` reads every active job's state without decoding the jobs;
decode (``txn.jobs[id]``) only those that SLURM says changed. Decoding all of 100,000 active
jobs costs ~3 s; reading their states ~0.1 s (see ``bench/README.md``).

Schema versions (``ledger/schema.py``): ``SCHEMA_VERSION`` is the version written. A file with
an older ``schema_version`` is migrated forward in memory when loaded and written in the new
version at the next save; archive lines are migrated line by line by the archive itself. A file
from a newer orca-hpc is refused.

Usage::

    ledger = Ledger(campaign / ".orca-hpc")
    with ledger.transaction() as txn:          # lock, load, ..., save if changed, unlock
        job = txn.add_job("water", "inputs/water.inp", sha, "local", max_retries=3)
        txn.set_state(job, JobState.SUBMITTING)
    view = ledger.snapshot()                     # read-only, no lock

Nothing here ever starts an empty ledger over a damaged one: a ledger that does not parse
raises ``LedgerCorrupt`` naming the file and its backup.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import os
import stat
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from orca_hpc.atomic import fsync_dir, remove_stale_temps, sync_filesystem, temp_name, write_new_file
from orca_hpc.clock import now_iso
from orca_hpc.errors import LedgerCorrupt, OrcaHpcError, UserError
from orca_hpc.ledger.archive import Archive
from orca_hpc.ledger.lock import DEFAULT_STALE_AFTER, LedgerLock
from orca_hpc.ledger.records import (
    ATTEMPT_KEY_ORDER,
    Attempt,
    Job,
    compact_json,
    format_job_id,
    job_id_number,
)
from orca_hpc.ledger.schema import SCHEMA_VERSION, migrate_doc
from orca_hpc.ledger.states import BY_VALUE, FINISHED, JobState, check_transition
from orca_hpc.ledger.validate import (
    counter_problem,
    head_problems,
    job_problems,
    plain_attempt_strings,
    plainly_sound,
    summarize,
)

__all__ = [
    "SCHEMA_VERSION",
    "Attempt",
    "Job",
    "Ledger",
    "LedgerView",
    "LedgerWriteError",
    "Transaction",
    "UnknownJob",
]

LEDGER_FILE = "ledger.json"
BACKUP_FILE = "ledger.json.bak"
_FINISHED_VALUES = frozenset(s.value for s in FINISHED)


class LedgerWriteError(OrcaHpcError):
    """The ledger could not be saved (disk full, permissions); the previous state is intact."""


class UnknownJob(UserError):
    """No job with that id in the campaign."""


_dumps = compact_json  # one encoder for every job, made once (see records.compact_json)
_ATTEMPT_KEYS_SET = frozenset(ATTEMPT_KEY_ORDER)
# (an attempt's keys, the keys a change sets) -> the keys of the changed attempt in the writer's order.
# Keys are ATTEMPT_KEY_ORDER's only, so this stays small.
_KEY_ORDERS: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]] = {}


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while decoding or encoding many jobs (or validating many inputs: submit).

    Building 100,000 small dicts triggers the collector hundreds of times for nothing (they hold
    no cycles); pausing it makes bulk decoding 2-4x faster.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_decode_str = json.JSONDecoder().raw_decode  # skips json.loads' type checks: it runs 100,000 times


# -- the read-only view and the transaction ----------------------------------------------------


class _ActiveJobs(Mapping[str, Job]):
    """``txn.jobs``: active jobs by id, decoded only when looked at."""

    def __init__(self, view: LedgerView) -> None:
        self._view = view

    def __getitem__(self, job_id: str) -> Job:
        if job_id not in self._view._ids:
            raise KeyError(job_id)
        return self._view._active(job_id)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._view._ids

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._view._ids))

    def __len__(self) -> int:
        return len(self._view._ids)


class LedgerView:
    """The ledger as loaded: queries only. ``Ledger.snapshot()`` returns one (changes are not saved).

    Records are decoded lazily, so a query that touches 100 of 100,000 jobs costs 100 decodes.
    """

    def __init__(self, state_dir: Path, doc: dict[str, Any], *, writable: bool) -> None:
        self.state_dir = state_dir
        self.generation: int = doc.get("generation", 0)
        self._meta: dict[str, Any] = doc["meta"]
        self._outbox: list[dict[str, Any]] = doc["outbox"]
        # Active jobs as their encoded JSON bytes: decoded on first use, written back untouched.
        self._raw: dict[str, bytes] = doc["jobs"]
        self._ids: dict[str, None] = dict.fromkeys(self._raw)  # active ids, in order
        self._jobs: dict[str, Job] = {}  # decoded active jobs (and new ones)
        self._decoded: dict[str, dict[str, Any]] = {}  # what they were decoded from, to spot changes
        self._archived: dict[str, Job] = {}  # decoded archived jobs still finished
        # Their encoding when read, to spot changes; only a transaction saves, so a read-only view
        # (`status --json` of 1,000 finished jobs) does not encode each archived job again.
        self._archived_orig: dict[str, str] = {}
        self._keeps_originals = writable
        self._by_sha: dict[str, list[str]] | None = None  # active-job indexes, built on first use
        self._by_name: dict[str, list[str]] | None = None
        self.archive = Archive(state_dir, writable=writable)
        self._where = state_dir / LEDGER_FILE

    # -- decoding -------------------------------------------------------------------------

    def _decode(self, job_id: str, d: dict[str, Any], where: Path) -> Job:
        try:
            return Job.from_dict(job_id, d)
        except (KeyError, ValueError, TypeError, AttributeError) as err:
            raise LedgerCorrupt(
                f"{where}: job {job_id} is damaged ({type(err).__name__}: {err}); run `orca-hpc ledger check`"
            ) from None

    def _active(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            try:
                d = _decode_str(self._raw[job_id].decode("utf-8"))[0]
            except (ValueError, RecursionError) as err:
                raise LedgerCorrupt(
                    f"{self._where}: job {job_id} is damaged ({err}); run `orca-hpc ledger check`"
                ) from None
            job = self._decode(job_id, d, self._where)
            self._jobs[job_id] = job
            self._decoded[job_id] = d
        return job

    def _from_archive(self, job_id: str) -> Job | None:
        job = self._archived.get(job_id)
        if job is not None:
            return job
        d = self.archive.get(job_id)
        if d is None:
            return None
        if self._keeps_originals:
            self._archived_orig[job_id] = _dumps(d)
        job = self._decode(job_id, d, self.archive.path)
        self._archived[job_id] = job
        return job

    def _sorted(self, ids: set[str] | list[str]) -> list[Job]:
        out = []
        for job_id in sorted(set(ids), key=job_id_number):
            job = self._lookup(job_id)
            if job is not None:
                out.append(job)
        return out

    def _lookup(self, job_id: str) -> Job | None:
        if job_id in self._ids:
            return self._active(job_id)
        return self._from_archive(job_id)

    def _sha_index(self) -> dict[str, list[str]]:
        # Asked once per input of a submit: the GC is paused only while the index is built.
        if self._by_sha is None:
            self._by_sha = self._build_sha_index()
        return self._by_sha

    @gc_paused()
    def _build_sha_index(self) -> dict[str, list[str]]:
        by_sha: dict[str, list[str]] = {}
        for job_id in self._ids:
            job = self._jobs.get(job_id)
            if job is None:
                sha = _peek(self._raw[job_id], b'"sha":"')
                if sha is None:
                    job = self._active(job_id)
            if job is not None:
                sha = job.input_sha
            by_sha.setdefault(sha, []).append(job_id)  # type: ignore[arg-type]
        return by_sha

    def _name_index(self) -> dict[str, list[str]]:
        if self._by_name is None:
            self._by_name = self._build_name_index()
        return self._by_name

    @gc_paused()
    def _build_name_index(self) -> dict[str, list[str]]:
        by_name: dict[str, list[str]] = {}
        for job_id in self._ids:  # names may hold escapes: decode the jobs (user commands only)
            by_name.setdefault(self._active(job_id).name, []).append(job_id)
        return by_name

    def _index_active(self, job: Job) -> None:
        if self._by_sha is not None:
            self._by_sha.setdefault(job.input_sha, []).append(job.id)
        if self._by_name is not None:
            self._by_name.setdefault(job.name, []).append(job.id)

    # -- queries --------------------------------------------------------------------------

    @property
    def jobs(self) -> Mapping[str, Job]:
        """Active jobs by id (jobs finished in this transaction stay here until it is saved)."""
        return _ActiveJobs(self)

    @property
    def meta(self) -> dict[str, Any]:
        """Campaign meta (a plain dict; ``next_id`` is the ledger's own counter: leave it alone)."""
        return self._meta

    @property
    def outbox(self) -> list[dict[str, Any]]:
        """Notifications owed, owned by ``orca_hpc.notify.smtp``: stored and returned as they are."""
        return self._outbox

    def get(self, job_id: str) -> Job:
        """The job ``job_id``, active or archived; ``UnknownJob`` (a UserError) if there is none."""
        job = self._lookup(job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id} in this campaign")
        return job

    def by_name(self, name: str) -> list[Job]:
        """All jobs (active and archived) called ``name``, oldest first."""
        return self._sorted(self._name_index().get(name, []) + self.archive.ids_by_name(name))

    def find_by_hash(self, sha: str) -> list[Job]:
        """All jobs (active and archived) whose input has sha256 ``sha``, oldest first (may be empty)."""
        return self._sorted(self._sha_index().get(sha, []) + self.archive.ids_by_sha(sha))

    @gc_paused()
    def jobs_by_state(self, *states: JobState) -> list[Job]:
        """Active jobs in any of ``states``, by id. Archived jobs are not searched (see ``all_jobs``)."""
        wanted = {JobState(s).value for s in states}
        out = []
        for job_id in self._ids:
            job = self._jobs.get(job_id)
            if job is not None:
                if job.state.value in wanted:
                    out.append(job)
            else:
                state = _peek(self._raw[job_id], b'"st":"')
                if state is None or state in wanted:  # None: not our canonical form, decode to see
                    job = self._active(job_id)
                    if job.state.value in wanted:
                        out.append(job)
        return out

    @gc_paused()
    def states(self) -> dict[str, JobState]:
        """The state of every active job by id, without decoding the jobs (cheap at any size)."""
        out = {}
        by_value = BY_VALUE
        for job_id in self._ids:
            job = self._jobs.get(job_id)
            state = job.state.value if job is not None else _peek(self._raw[job_id], b'"st":"')
            known = by_value.get(state) if state is not None else None
            out[job_id] = known if known is not None else self._active(job_id).state
        return out

    def state_counts(self) -> dict[str, int]:
        """How many jobs, active and archived, are in each state, by state; the archived ones from the
        archive's index, so a campaign of 100,000 finished jobs is counted without reading them."""
        states = {**self.archive.states(), **{i: j.state.value for i, j in self._archived.items()}}
        states.update((job_id, state.value) for job_id, state in self.states().items())
        return dict(sorted(Counter(states.values()).items()))

    def has_workflow_steps(self) -> bool:
        """Whether any job may be a workflow step (then counting per state is not all there is to show).
        May say True of a job that is not (a key of that name deeper in its record): never False of
        one that is."""
        if self.archive.has_workflow_steps():
            return True
        jobs = [*self._jobs.values(), *self._archived.values()]
        if any(job.chain is not None or "chain" in job.extra for job in jobs):
            return True
        raws = (self._raw[job_id] for job_id in self._ids if job_id not in self._jobs)
        return any(b'"ch":' in raw or b'"chain":' in raw for raw in raws)

    def latest_attempt_peek(self, job_id: str) -> dict[str, str | None] | None:
        """SLURM id, SLURM state, start and number (its folder is ``jobs/<id>/attempt-<n>``) of an
        active job's latest attempt, without decoding the job.

        For reconcile at scale: only jobs whose SLURM state moved need decoding. None when the job
        is decoded already or not in our canonical form (decode it then).
        """
        if job_id in self._jobs:
            return None
        raw = self._raw[job_id]
        # The attempts end where the job's chain or extras begin: no key before them, and none in an
        # attempt, is named so (a quote inside a string is escaped), and extras may hold anything.
        end = len(raw)
        for key in (b'"ch":', b'"x":'):
            at = raw.find(key)
            if 0 <= at < end:
                end = at
        start = raw.rfind(b'{"n":', 0, end)  # attempts open with "n"; the latest is the last one
        if start < 0:
            return None
        tail = raw[start:end]
        sid, sst, beg = _peek(tail, b'"sid":"'), _peek(tail, b'"sst":"'), _peek(tail, b'"beg":"')
        n = tail[5 : tail.find(b",")]  # {"n":3,"tok":...: the writer puts the number first
        return {"sid": sid, "sst": sst, "beg": beg, "n": n.decode() if n.isdigit() else None}

    @gc_paused()
    def all_jobs(self) -> list[Job]:
        """Every job of the campaign, active and archived, each id once, by id. Reads the whole archive;
        ``LedgerCorrupt`` naming its damaged lines, if any (a job must not silently go missing)."""
        scan = self.archive.scan()
        if scan.bad_lines:
            raise LedgerCorrupt(
                f"{self.archive.path}: damaged: {summarize(scan.problems)}; edit or remove "
                f"{'that line' if len(scan.bad_lines) == 1 else 'those lines'}, "
                "then run `orca-hpc ledger check`"
            )
        for job_id, d in scan.jobs.items():
            if job_id not in self._ids and job_id not in self._archived:
                if self._keeps_originals:
                    self._archived_orig[job_id] = _dumps(d)
                self._archived[job_id] = self._decode(job_id, d, self.archive.path)
        return self._sorted(list(self._ids) + list(scan.jobs) + list(self._archived))


class Transaction(LedgerView):
    """A locked, loaded ledger that may be changed; saved when the ``with`` block ends normally."""

    def __init__(self, state_dir: Path, doc: dict[str, Any], *, migrated: bool) -> None:
        super().__init__(state_dir, doc, writable=True)
        self.migrated = migrated
        self.arch: list[int] = doc["arch"]  # [size, highest id] of the archive, set by Ledger._load
        self._orig_meta = _dumps(self._meta)
        self._loaded_next_id: int = self._meta["next_id"]
        self._orig_outbox = _dumps(self._outbox)
        self._sync_first: set[str] = set()  # folders whose file systems are synced before this commit
        self._encoded: dict[str, dict[str, Any]] = {}  # set by _changes: the dicts changed jobs encode
        self._edited: set[str] = set()  # jobs whose latest attempt was re-encoded in place (_put_attempt)

    @LedgerView.meta.setter  # type: ignore[attr-defined]
    def meta(self, value: dict[str, Any]) -> None:
        self._meta = value

    @LedgerView.outbox.setter  # type: ignore[attr-defined]
    def outbox(self, value: list[dict[str, Any]]) -> None:
        self._outbox = value

    def add_job(
        self, name: str, input_path: str, input_sha: str, site: str, max_retries: int, **extra: Any
    ) -> Job:
        """Record a new job in state CREATED with the next id; ``extra`` goes to ``job.extra``."""
        number = int(self._meta.get("next_id", 1))
        job_id = format_job_id(number)
        # Never reuse an id, even after a restore. Loading refused a counter behind the archive, and
        # ``self.arch`` knows the archive's highest id without reading its index.
        number = max(number, self.arch[1] + 1)
        job_id = format_job_id(number)
        while job_id in self._ids or job_id in self._archived:
            number += 1
            job_id = format_job_id(number)
        self._meta["next_id"] = number + 1
        now = now_iso()
        job = Job(
            id=job_id,
            name=name,
            input_path=str(input_path),
            input_sha=input_sha,
            site=site,
            state=JobState.CREATED,
            max_retries=max_retries,
            created=now,
            updated=now,
            dir=f"jobs/{job_id}",
            extra=dict(extra),
        )
        self._ids[job_id] = None
        self._jobs[job_id] = job
        self._index_active(job)
        return job

    def set_state(self, job: Job | str, state: JobState) -> Job:
        """Move ``job`` to ``state`` (``IllegalTransition`` if the state machine forbids it).

        Stamps ``job.updated``. An archived job moved to an active state becomes active again.
        """
        if isinstance(job, str):
            job = self.get(job)
        if type(state) is not JobState:
            state = JobState(state)
        check_transition(job.state, state)
        job.state = state
        job.updated = now_iso()
        if not state.finished and job.id not in self._ids:
            self._archived.pop(job.id, None)
            self._ids[job.id] = None
            self._jobs[job.id] = job
            self._index_active(job)
        return job

    def reactivate(self, job_id: str) -> Job:
        """Bring a PERMANENT_FAILED or CANCELLED job back as CREATED (``orca-hpc retry``).

        The caller resets counters (``retry_count``) as it sees fit. COMPLETED jobs refuse.
        """
        job = self.get(job_id)
        if job.state is JobState.COMPLETED:
            raise UserError(f"job {job_id} is COMPLETED; only failed or cancelled jobs can be retried")
        if job.state.finished:
            self.set_state(job, JobState.CREATED)
        return job

    def _latest_attempt(self, job_id: str) -> tuple[str, int, int, dict[str, Any]] | None:
        """(the job's text, where its latest attempt's object starts and ends in it, that object) of an
        active job that was not decoded, in a file this writer wrote; None otherwise (decode it then)."""
        if job_id in self._jobs or job_id not in self._ids or self.migrated:
            return None
        text = self._raw[job_id].decode("utf-8")
        # In the writer's bytes the first '"att":[' is the job's own key: its keys before "att" are
        # plain values, and a quote inside a string is escaped.
        start = text.find('"att":[')
        if start < 0:
            return None
        start += 7
        try:
            while True:
                d, end = _decode_str(text, start)
                if text[end] != ",":
                    break
                start = end + 1
        except (ValueError, IndexError, RecursionError):
            return None
        if text[end] != "]" or type(d) is not dict:
            return None
        return text, start, end, d

    def move_latest_attempt(self, job_id: str, state: JobState, changes: Mapping[str, str]) -> bool:
        """The latest attempt's plain string fields set to ``changes`` (on-disk keys: ``tok``, ``sid``,
        ``sub``; ``put_attempt_strings``), and the job moved to an active ``state`` (``updated``
        stamped), all in the job's bytes: a submission's SUBMITTING and PENDING of 10,000 new jobs
        without decoding, encoding and checking each twice. ``IllegalTransition`` as ``set_state``
        raises it (nothing changed then); False when the caller must decode the job (``get``,
        ``set_state``).

        Only in the writer's bytes (``_latest_attempt``'s conditions): there ``"st"`` opens the
        job and its first ``,"ut":"`` is the job's own key (it precedes every nested value, and a quote
        inside a string is escaped), so both values are where this looks for them."""
        if state.finished or job_id in self._jobs or job_id not in self._ids or self.migrated:
            return False
        raw = self._raw[job_id]
        old = _peek(raw, b'"st":"') if raw.startswith(b'{"st":"') else None
        current = BY_VALUE.get(old) if old is not None else None
        if old is None or current is None or raw.find(b',"ut":"') < 0:
            return False
        check_transition(current, state)
        if not self.put_attempt_strings(job_id, changes):
            return False
        raw = self._raw[job_id]
        raw = b'{"st":"' + state.value.encode() + raw[7 + len(old.encode()) :]
        ut = raw.find(b',"ut":"') + 7
        self._raw[job_id] = raw[:ut] + now_iso().encode() + raw[raw.find(b'"', ut) :]
        return True

    def put_attempt_strings(self, job_id: str, changes: Mapping[str, str]) -> bool:
        """Set plain string fields of the latest attempt of an active job that was not decoded, by
        their on-disk keys (``{"tok": "abc/0"}``), in place in the job's bytes.

        Only the attempt's object is re-encoded (no ``Attempt``): it gets the values at their
        places in the writer's key order (``ATTEMPT_KEY_ORDER``), the same bytes its decode, change and
        encode would give, and they are checked by the rules of their keys (the rest of a sound job is
        unchanged). False (nothing changed) when the caller must decode the job: it is decoded already,
        not in the writer's bytes, or a value is not plainly what its key's rules accept."""
        found = self._latest_attempt(job_id)
        if found is None:
            return False
        return self._put_attempt(job_id, found, changes)

    def _put_attempt(
        self, job_id: str, found: tuple[str, int, int, dict[str, Any]], changes: Mapping[str, str]
    ) -> bool:
        text, start, end, d = found
        if not _ATTEMPT_KEYS_SET.issuperset(d) or not plain_attempt_strings(changes):
            return False
        layout = (tuple(d), tuple(changes))
        order = _KEY_ORDERS.get(layout)
        if order is None:  # a few layouts in a campaign: worked out once each
            order = _KEY_ORDERS[layout] = tuple(k for k in ATTEMPT_KEY_ORDER if k in d or k in changes)
        new = {key: changes[key] if key in changes else d[key] for key in order}
        self._raw[job_id] = (text[:start] + _dumps(new) + text[end:]).encode("utf-8")
        self._edited.add(job_id)
        return True

    def note_slurm_state(
        self, job_id: str, slurm_state: str, started: str | None, ours: Callable[[str], bool]
    ) -> bool:
        """Record SLURM's state of a queued or running job's latest attempt, and its start when the
        attempt has none yet: what reconcile records of 10,000 jobs whose SLURM state moved.

        ``put_attempt_strings`` of the two values. ``ours(token)`` says whether the attempt's submission
        token is the one SLURM's record names; False (not ours, or not told quickly): the caller decodes
        the job.
        """
        found = self._latest_attempt(job_id)
        if found is None:
            return False
        d = found[3]
        token = d.get("tok")
        if type(token) is not str or not ours(token):
            return False
        changes = {"sst": slurm_state}
        if started and not d.get("beg"):
            changes["beg"] = started
        return self._put_attempt(job_id, found, changes)

    def sync_before_commit(self, folder: Path | str) -> None:
        """Files written under ``folder`` during this transaction must be durable before the ledger
        that names them is: the commit syncs ``folder``'s file system once, however many files.

        Why this keeps a power cut safe, with one call per batch instead of an fsync per file: the
        ledger generation that records an attempt is written (fsync + rename + folder fsync) only
        after ``sync_filesystem`` returned, and that flushed every attempt file written before it, so
        no durable ledger can name an attempt whose input or ``spec.json`` is missing or empty. A
        crash before the commit leaves folders the ledger does not name; the next submission gets the
        same ids (``next_id`` was not saved) and lays them out again (``write_attempt``).
        """
        self._sync_first.add(os.fspath(folder))

    # -- saving ---------------------------------------------------------------------------

    @gc_paused()
    def _changes(self) -> tuple[bool, dict[str, bytes], list[dict[str, Any]]]:
        """(changed?, the new hot jobs encoded, records to append to the archive)."""
        changed = (
            self.migrated
            or _dumps(self._meta) != self._orig_meta
            or _dumps(self._outbox) != self._orig_outbox
        )
        changed = changed or bool(self._edited)
        hot: dict[str, bytes] = {}
        to_archive: list[dict[str, Any]] = []
        raw = self._raw
        self._encoded = {}
        for job_id in self._ids:
            job = self._jobs.get(job_id)
            if job is None and self.migrated and _peek(raw[job_id], b'"st":"') in _FINISHED_VALUES:
                job = self._active(job_id)  # an old or hand-edited file kept a finished job here
            if job is None:  # never decoded, so unchanged: copy its bytes
                hot[job_id] = raw[job_id]
                continue
            if job.state.finished:
                to_archive.append(job.to_dict(with_id=True))
                changed = True
                continue
            d = job.to_dict()
            if d == self._decoded.get(job_id):  # decoded but not changed: keep its bytes
                hot[job_id] = raw[job_id]
            else:
                hot[job_id] = _dumps(d).encode("utf-8")
                self._encoded[job_id] = d
                changed = True
        for job_id, job in self._archived.items():
            d = job.to_dict(with_id=True)
            if _dumps(d) != self._archived_orig[job_id]:
                to_archive.append(d)
                changed = True
        return changed, hot, to_archive


def _peek(raw: bytes, key: bytes) -> str | None:
    """The string value that follows ``key`` (e.g. ``b'"st":"'``) in an encoded job, without decoding it.

    Only for plain values (state, sha256): the first match is the top-level key because the
    writer puts those keys before any nested object, and a quote inside a JSON string is always
    escaped, so ``"st":"`` cannot match inside a value.
    """
    start = raw.find(key)
    if start < 0:
        return None
    start += len(key)
    end = raw.find(b'"', start)
    if end < 0:
        return None
    value = raw[start:end]
    return None if b"\\" in value else value.decode("utf-8")


def _body_sum(body: bytes, arch: Any) -> str:
    # CRC-32: it is there to notice hand edits and damage, not forgery, and it must cost little at
    # 60 MB (a cryptographic hash doubled the load time of 100,000 jobs).
    return f"{zlib.crc32(_dumps(arch).encode(), zlib.crc32(body)):08x}"


def _encode_doc(
    generation: int, meta: dict[str, Any], outbox: list[Any], jobs: dict[str, bytes], arch: list[int]
) -> bytes:
    """``arch``: [size of archive.jsonl, highest id number in it] when this generation was saved."""
    body = b",".join([b'\n"' + k.encode("ascii") + b'":' + v for k, v in jobs.items()])
    # "sum" proves on loading that the jobs are the bytes this writer produced from validated jobs,
    # so a load need not decode 100,000 jobs to know they are sound (a hand edit changes the sum);
    # "arch" lets a load check the id counter against the archive with one stat while the archive
    # has not grown since (instead of reading the archive's index).
    head = (
        f'{{"schema_version":{SCHEMA_VERSION},"generation":{generation},"saved":"{now_iso()}",'
        f'"sum":"{_body_sum(body, arch)}","arch":{_dumps(arch)},'
        f'"meta":{_dumps(meta)},"outbox":{_dumps(outbox)},"jobs":{{'
    ).encode()
    return head + body + b"\n}}\n"


def _split_doc(data: bytes) -> dict[str, Any] | None:
    """Fast load of a ledger.json in the layout ``_encode_doc`` writes; None if it is not in it.

    Each job stays as its encoded bytes (decoded on first use), so loading 100,000 jobs costs a
    split, not a parse. A file in any other layout (a person reformatted it, an old schema, a
    damaged file) returns None and goes through the full JSON parser instead.
    """
    if not data.startswith(b'{"schema_version":%d,' % SCHEMA_VERSION) or not data.endswith(b"\n}}\n"):
        return None
    lines = data.split(b"\n")
    try:
        head = json.loads(lines[0] + b"}}")
    except (ValueError, RecursionError):
        return None
    if not isinstance(head, dict) or head.get("jobs") != {}:
        return None
    jobs: dict[str, bytes] = {}
    for line in lines[1:-2]:
        if line.endswith(b","):
            line = line[:-1]
        q = line.find(b'":', 1)
        if q < 0 or line[:1] != b'"' or line[q + 2 : q + 3] != b"{" or line[-1:] != b"}":
            return None
        key = line[1:q]
        if b"\\" in key or b'"' in key or not key.isascii():
            return None
        jobs[key.decode("ascii")] = line[q + 2 :]
    head["jobs"] = jobs
    head["_trusted"] = head.get("sum") == _body_sum(data[len(lines[0]) : len(data) - 4], head.get("arch"))
    return head


# -- the ledger ---------------------------------------------------------------------------------


class Ledger:
    """A campaign's ledger in ``state_dir`` (``CAMPAIGN/.orca-hpc``).

    ``lock_kind``: ``"flock"`` (default) or ``"soft"`` for file systems without flock.
    ``lock_timeout``: seconds to wait for the lock before ``LedgerLocked`` (exit 75).
    ``stale_after``: a soft lock older than this many seconds is broken (None: never by age).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        lock_kind: str = "flock",
        lock_timeout: float = 10.0,
        stale_after: float | None = DEFAULT_STALE_AFTER,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LEDGER_FILE
        self.backup_path = self.state_dir / BACKUP_FILE
        self.lock = LedgerLock(self.state_dir, lock_kind, lock_timeout, stale_after)
        self._in_transaction = False

    @classmethod
    def create(
        cls,
        state_dir: Path,
        meta: dict[str, Any],
        *,
        lock_kind: str = "flock",
        lock_timeout: float = 10.0,
    ) -> Ledger:
        """Start a new, empty ledger (``orca-hpc init``). Refuses if one exists already."""
        state_dir = Path(state_dir)
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        ledger = cls(state_dir, lock_kind=lock_kind, lock_timeout=lock_timeout)
        ledger._check_state_dir()
        with ledger.lock:
            for existing in (ledger.path, ledger.backup_path):
                if os.path.lexists(existing):
                    raise UserError(
                        f"{existing} exists: this campaign has a ledger already; refusing to overwrite it"
                    )
            meta = dict(meta)
            meta.setdefault("next_id", 1)
            meta.setdefault("created", now_iso())
            arch = ledger._archive_mark(Archive(state_dir, writable=True))
            ledger._write(_encode_doc(1, meta, [], {}, arch), keep_backup=False)
        return ledger

    # -- checks and loading ---------------------------------------------------------------

    def _check_state_dir(self) -> None:
        try:
            st = os.stat(self.state_dir)
        except FileNotFoundError:
            raise UserError(
                f"no orca-hpc ledger in {self.state_dir.parent}: not a campaign folder (run `orca-hpc init`)"
            ) from None
        if not stat.S_ISDIR(st.st_mode):
            raise UserError(f"{self.state_dir} is not a folder")
        if st.st_mode & stat.S_IWOTH:
            raise UserError(f"{self.state_dir} is writable by everyone; run `chmod o-w {self.state_dir}`")

    def _corrupt(self, why: str) -> LedgerCorrupt:
        backup = "present" if self.backup_path.exists() else "missing"
        return LedgerCorrupt(
            f"ledger {self.path} is damaged ({why}); "
            f"the previous generation is {self.backup_path} ({backup}). "
            "Run `orca-hpc ledger check`, then `orca-hpc ledger restore` to go back to the backup"
        )

    def _load(self) -> tuple[dict[str, Any], bool]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            if self.backup_path.exists():
                raise self._corrupt("the file is missing") from None
            raise UserError(
                f"no orca-hpc ledger in {self.state_dir.parent}: not a campaign folder (run `orca-hpc init`)"
            ) from None
        doc, rewrite = self.parse(data)
        problem = self._counter_problem(doc, proven=not rewrite)
        if problem:
            raise self._corrupt(problem)
        return doc, rewrite

    def _archive_mark(self, archive: Archive) -> list[int]:
        """[size, highest id] of the archive now, from its index (which catches up if needed)."""
        highest = archive.highest_id()  # first: it may cut nothing, but reads up to the last newline
        try:
            size = os.stat(archive.path).st_size
        except FileNotFoundError:
            size = 0
        return [size, highest]

    def _counter_problem(self, doc: dict[str, Any], proven: bool = False) -> str | None:
        """Checks ``meta.next_id`` against every id; leaves ``doc["arch"]`` true for the archive now.

        ``proven``: the file's sum matched, so its writer checked the counter against its own jobs.
        """
        highest_active = 0 if proven else max((job_id_number(i) for i in doc["jobs"]), default=0)
        arch = doc.get("arch")
        size = self._archive_size()
        cut = self._archive_cut(arch, size)
        if cut:
            raise LedgerCorrupt(cut)
        if not (isinstance(arch, list) and len(arch) == 2 and arch[0] == size and isinstance(arch[1], int)):
            # The archive grew since this generation was saved (or the mark is not ours): ask its index.
            # A damaged archive line raises its own LedgerCorrupt, naming the archive and the line.
            doc["arch"] = arch = self._archive_mark(Archive(self.state_dir, writable=False))
        return counter_problem(doc["meta"]["next_id"], highest_active, arch[1])

    def _archive_size(self) -> int:
        try:
            return os.stat(self.state_dir / "archive.jsonl").st_size
        except FileNotFoundError:
            return 0

    def _archive_cut(self, arch: Any, size: int) -> str | None:
        """What is wrong when the archive is shorter than a generation whose sum matched says it was.

        The archive is appended before ``ledger.json`` is replaced and only an incomplete tail past
        the mark is ever cut, so a shorter archive lost finished jobs (a truncated file, a partial
        copy): taking it as an interrupted write would drop them without a word.
        """
        if not (isinstance(arch, list) and len(arch) == 2 and isinstance(arch[0], int)) or arch[0] <= size:
            return None
        archive = self.state_dir / "archive.jsonl"
        return (
            f"{archive}: {size} bytes, shorter than the {arch[0]} it had when {self.path.name} was saved: "
            "finished jobs at its end are lost; put archive.jsonl back from a copy of the campaign, "
            "or go on without them with `orca-hpc ledger restore` (one generation back)"
        )

    @gc_paused()
    def parse(self, data: bytes) -> tuple[dict[str, Any], bool]:
        """Parse ledger bytes -> (doc with jobs as encoded bytes, needs rewriting?).

        ``LedgerCorrupt`` if they are not a ledger. Older schemas are migrated and files not in
        the canonical layout are re-encoded; both report True so the next save rewrites them.
        """
        fast = _split_doc(data)
        if fast is not None:
            trusted = fast.pop("_trusted")
            if not trusted:
                fast.pop("arch", None)
            problems = head_problems(fast)
            if not problems and not trusted:  # edited by hand or written before the sum: prove every job
                problems = self._raw_job_problems(fast["jobs"])
            if problems:
                raise self._corrupt(summarize(problems))
            return fast, not trusted
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as err:
            raise self._corrupt(f"not valid JSON: {err}") from None
        if not isinstance(doc, dict):
            raise self._corrupt("not a JSON object")
        version = doc.get("schema_version", 0)
        if not isinstance(version, int) or version < 0:
            raise self._corrupt(f"bad schema_version {version!r}")
        if version > SCHEMA_VERSION:
            raise UserError(
                f"{self.path} was written by a newer orca-hpc (schema {version}, this one reads up to "
                f"{SCHEMA_VERSION}); upgrade orca-hpc"
            )
        try:
            doc, _ = migrate_doc(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise self._corrupt(f"cannot migrate from schema {version}: {err}") from None
        doc.pop("arch", None)  # only a file whose sum matches vouches for it
        problems = head_problems(doc)
        if not problems:
            for job_id, d in doc["jobs"].items():
                problems += job_problems(job_id, d)
        if problems:
            raise self._corrupt(summarize(problems))
        doc["jobs"] = {
            job_id: _dumps(Job.from_dict(job_id, d).to_dict()).encode("utf-8")
            for job_id, d in doc["jobs"].items()
        }
        return doc, True

    @staticmethod
    def _raw_job_problems(raw: dict[str, bytes]) -> list[str]:
        problems: list[str] = []
        for job_id, data in raw.items():
            try:
                text = data.decode("utf-8")
                d, end = _decode_str(text)
            except (ValueError, RecursionError) as err:
                problems.append(f"job {job_id}: not valid JSON ({err})")
                continue
            if end != len(text):
                problems.append(f"job {job_id}: text after the job's object")
                continue
            problems += job_problems(job_id, d)
        return problems

    # -- public entry points --------------------------------------------------------------

    def snapshot(self) -> LedgerView:
        """A read-only view, without the lock (writes are atomic renames, so it is consistent)."""
        self._check_state_dir()
        doc, _ = self._load()
        return LedgerView(self.state_dir, doc, writable=False)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Lock, load, yield a ``Transaction``, save if anything changed, unlock.

        If the block raises, nothing is written. Saving appends newly finished jobs to the
        archive first and then replaces ``ledger.json``, so a crash at any point leaves either
        the old or the new state. Save failures raise ``LedgerWriteError``.
        """
        if self._in_transaction:
            raise RuntimeError("nested ledger transaction")
        self._check_state_dir()
        self._in_transaction = True
        try:
            # A caller may hold the lock across several transactions (a submission saves its intent,
            # runs sbatch, then saves the ids): the lock is not taken twice.
            # The cyclic GC is paused for the whole transaction: decoding, changing and encoding
            # 10,000 jobs one by one (reconcile, submit) makes thousands of small objects and no cycles,
            # and the collector walking them again and again cost more than the work itself.
            with contextlib.nullcontext() if self.lock.held else self.lock, gc_paused():
                doc, migrated = self._load()
                txn = Transaction(self.state_dir, doc, migrated=migrated)
                yield txn
                self._commit(txn)
        finally:
            self._in_transaction = False

    # -- saving ---------------------------------------------------------------------------

    def _commit(self, txn: Transaction) -> bool:
        changed, hot, to_archive = txn._changes()
        if not changed:
            txn.archive.save_index()
            return False
        generation = txn.generation + 1
        self._refuse_unsound(txn, hot, to_archive)
        for folder in txn._sync_first:
            sync_filesystem(Path(folder))  # what the ledger is about to name is on disk first
        try:
            # Archive first: if we die before ledger.json is replaced, those jobs are still
            # active there and the active copy wins.
            size = txn.archive.append(to_archive)
        except OSError as err:
            raise self._write_error(txn.archive.path, err) from None
        arch = [
            txn.arch[0] if size is None else size,
            max([txn.arch[1], *(job_id_number(d["id"]) for d in to_archive)]),
        ]
        try:
            data = _encode_doc(generation, txn.meta, txn.outbox, hot, arch)
        except (ValueError, TypeError) as err:  # _refuse_unsound lets nothing through that fails here
            raise LedgerWriteError(f"refusing to save {self.path}: {err}; nothing was changed") from None
        self._write(data, keep_backup=True)
        txn.arch = arch
        txn.archive.save_index()
        txn.generation = generation
        return True

    def _refuse_unsound(
        self, txn: Transaction, hot: dict[str, bytes], to_archive: list[dict[str, Any]]
    ) -> None:
        """The save's own check: what it writes must pass the rules every load applies.

        Only what changed is decoded (the rest is bytes proven sound on loading), so a bug that put a
        wrong type into a job is refused here instead of being found by the next command.
        """
        problems = head_problems(
            {"generation": txn.generation + 1, "meta": txn.meta, "outbox": txn.outbox, "jobs": hot}
        )
        written = txn._encoded
        for job_id in hot:
            # A changed job: the dict just encoded, when it is plainly sound (then it is what a load
            # would read back); otherwise the full rules on the bytes about to be written.
            changed = job_id in txn._jobs and hot[job_id] is not txn._raw.get(job_id)
            if changed and not plainly_sound(job_id, written.get(job_id)):
                problems += job_problems(job_id, json.loads(hot[job_id]))
        for d in to_archive:
            problems += job_problems(d["id"], d, archived=True)
        # Jobs that were loaded are below the loaded counter (loading proved it); the counter only grows.
        touched = [*txn._jobs, *(d["id"] for d in to_archive)]
        highest = max([txn._loaded_next_id - 1, *(job_id_number(i) for i in touched)])
        if not problems and isinstance(txn.meta.get("next_id"), int):
            counter = counter_problem(txn.meta["next_id"], highest, txn.arch[1])
            problems += [counter] if counter else []
        if problems:
            raise LedgerWriteError(
                f"refusing to save {self.path}: {summarize(problems)}; nothing was changed, "
                "the ledger is as before"
            )

    def _write_error(self, path: Path, err: OSError) -> LedgerWriteError:
        why = err.strerror or str(err)
        if err.errno == errno.ENOSPC:
            why = "the disk is full"
        return LedgerWriteError(f"cannot write {path}: {why}; nothing was changed, the ledger is as before")

    def _write(self, data: bytes, *, keep_backup: bool) -> None:
        remove_stale_temps(self.path)
        remove_stale_temps(self.lock.info_path)
        remove_stale_temps(self.state_dir / "archive.index.json")
        remove_stale_temps(self.backup_path)
        tmp = temp_name(self.path)
        try:
            try:
                write_new_file(tmp, data, 0o600)
                if keep_backup:
                    self._keep_backup()
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            fsync_dir(self.state_dir)
        except OSError as err:
            raise self._write_error(self.path, err) from None

    def _keep_backup(self) -> None:
        """Make ``ledger.json.bak`` the current (about to be replaced) generation."""
        if not self.path.exists():
            return
        tmp = temp_name(self.backup_path)
        try:
            os.link(self.path, tmp, follow_symlinks=False)
        except OSError:
            # No hard links here (some network/FUSE file systems): copy instead.
            write_new_file(tmp, self.path.read_bytes(), 0o600)
        try:
            os.replace(tmp, self.backup_path)
        finally:
            # rename() of two links to one file does nothing (the backup already is this
            # generation, after a crash between here and the replace below): drop the temp.
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    # -- check / restore (``orca-hpc ledger``) --------------------------------------------

    @gc_paused()
    def check(self) -> CheckReport:
        """Validate ``ledger.json``, its backup and the archive without changing anything."""
        self._check_state_dir()
        report = CheckReport(self)
        # The same parse and counter rule as every load (``_load``), so what passes here loads.
        doc: dict[str, Any] | None = None
        migrated = False
        try:
            data: bytes | None = self.path.read_bytes()
        except FileNotFoundError:
            data = None
        try:
            if data is None:
                self._load()  # the missing-file messages: not a campaign, or restore the backup
            else:
                doc, migrated = self.parse(data)
        except LedgerCorrupt as err:
            report.problems.append(str(err))
        cut = None
        if doc is not None:
            cut = self._archive_cut(doc.get("arch"), self._archive_size())
            try:
                problem = None if cut else self._counter_problem(doc)
            except LedgerCorrupt:
                problem = None  # a damaged archive line: the scan below names every one
            if cut:
                report.problems.append(cut)
            if problem:
                report.problems.append(str(self._corrupt(problem)))
        report.ledger_ok = not report.problems
        if doc is not None:
            report.generation = doc.get("generation", 0)
            report.schema_migrated = migrated
            view = LedgerView(self.state_dir, doc, writable=False)
            for job_id in view._ids:
                state = view._active(job_id).state.value
                report.states[state] = report.states.get(state, 0) + 1
            report.active = len(view._ids)
            report.outbox = len(view.outbox)
        report.backup_ok = self._backup_ok()
        scan = Archive(self.state_dir, writable=False).scan()
        report.archived = sum(1 for job_id in scan.jobs if doc is None or job_id not in doc["jobs"])
        if scan.bad_lines:
            report.problems.append(f"{self.state_dir / 'archive.jsonl'}: damaged: {summarize(scan.problems)}")
        if scan.torn_tail and not cut:  # a cut archive ends anywhere: no interrupted write
            report.warnings.append(
                "archive.jsonl ends with an incomplete line (an interrupted write); it is ignored"
            )
        # (a damaged line is the problem to fix first: the index is rebuilt after it)
        stale = Archive(self.state_dir, writable=False).stale_states(scan) if not scan.bad_lines else 0
        if stale:
            report.warnings.append(
                f"{self.state_dir / 'archive.index.json'}: the states of {stale} job(s) differ from "
                "archive.jsonl (status --summary counts from it); remove it: the next command rebuilds it"
            )
        return report

    def _backup_ok(self) -> bool | None:
        try:
            data = self.backup_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            self.parse(data)
        except (LedgerCorrupt, UserError):
            return False
        return True

    def restore(self, *, force: bool = False) -> Path | None:
        """Put ``ledger.json.bak`` back as ``ledger.json``; returns where the old file was saved.

        The replaced file is kept as ``ledger.json.damaged-<UTC time>``. Refuses if the backup is
        damaged or missing, and (unless ``force``) if ``ledger.json`` is fine.
        """
        self._check_state_dir()
        with self.lock:
            try:
                backup = self.backup_path.read_bytes()
            except FileNotFoundError:
                raise UserError(f"no backup {self.backup_path} to restore from") from None
            try:
                bdoc, _ = self.parse(backup)
            except LedgerCorrupt:
                raise UserError(
                    f"the backup {self.backup_path} is damaged too; cannot restore from it"
                ) from None
            current: bytes | None
            try:
                current = self.path.read_bytes()
            except FileNotFoundError:
                current = None
            if current is not None and not force:
                try:
                    sound = self._counter_problem(self.parse(current)[0]) is None
                except LedgerCorrupt:
                    sound = False
                if sound:
                    raise UserError(
                        f"{self.path} is not damaged; use --force to replace it with the backup anyway"
                    )
            aside = None
            if current is not None:
                aside = (
                    self.state_dir / f"{LEDGER_FILE}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
                )
                try:
                    write_new_file(aside, current, 0o600)
                except OSError as err:
                    raise self._write_error(aside, err) from None
            # Ids handed out by the lost generation may already be in the archive: never reuse them.
            archive = Archive(self.state_dir, writable=True)
            meta = bdoc["meta"]
            highest_active = max((job_id_number(i) for i in bdoc["jobs"]), default=0)
            meta["next_id"] = max(meta["next_id"], highest_active + 1, archive.highest_id() + 1)
            arch = self._archive_mark(archive)
            data = _encode_doc(int(bdoc.get("generation", 0)) + 1, meta, bdoc["outbox"], bdoc["jobs"], arch)
            self._write(data, keep_backup=False)
            archive.save_index()
            return aside


class CheckReport:
    """What ``Ledger.check`` found. ``ok`` is False when something is damaged."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.generation = 0
        self.schema_migrated = False
        self.active = 0
        self.archived = 0
        self.outbox = 0
        self.states: dict[str, int] = {}
        self.backup_ok: bool | None = None
        self.ledger_ok = True  # ledger.json itself is sound (problems may be in the archive only)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        states = ", ".join(f"{n} {s}" for s, n in sorted(self.states.items())) or "none"
        backup = {True: "ok", False: "DAMAGED", None: "none yet"}[self.backup_ok]
        return (
            f"ledger {self.ledger.path}: generation {self.generation}, {self.active} active jobs ({states}), "
            f"{self.archived} archived, {self.outbox} notifications in the outbox; backup {backup}"
        )
