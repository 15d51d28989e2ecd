"""Reconcile: bring the ledger in line with SLURM and the result files, then decide what happens next.

Safe to run at any moment and from several places (cron, watch, every command): everything happens
under the ledger lock, the scheduler is asked about all watched jobs at once (never once per job), and
nothing is marked failed because it could not be asked (``SchedulerUnavailable`` -> exit 75, no change).
Killed at any point, the next run reaches the same final states: decisions are saved in one
transaction, and submissions go through the exactly-once path of ``submit.Dispatcher``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from orca_hpc.attempt.folder import RESULT_NAME, AttemptPlan, AttemptResult, FileKey, file_key, plan_of
from orca_hpc.clock import epoch, now_iso, utc_iso
from orca_hpc.config.campaign import Campaign
from orca_hpc.config.site import SiteConfig
from orca_hpc.controller import environment
from orca_hpc.controller.ending import AttemptEnd, decide_end
from orca_hpc.controller.usage import usage_of
from orca_hpc.controller.watched import TO_SEND, WATCHED
from orca_hpc.errors import InputFileError, OrcaHpcError
from orca_hpc.ledger.records import Attempt, Job
from orca_hpc.ledger.states import JobState
from orca_hpc.ledger.store import LedgerView, Transaction
from orca_hpc.orca.read import read_tail
from orca_hpc.scheduler.base import REMOVED_REASON, JobRecord, Scheduler, job_name, record_of

# Imported where they are needed, not here: the scheduler's module (a job to ask about), `submit`
# (attempts to send), `recovery` (a failure to correct) and `chain` with the workflow and molecule
# modules behind it (a workflow step that completed). A command whose reconcile has nothing to do
# (`watched.needs_reconcile`) does not load this module at all.

if TYPE_CHECKING:
    from orca_hpc.controller.submit import Ready

log = logging.getLogger(__name__)
T = TypeVar("T")

# A submission intent that SLURM does not know after this long was never submitted.
UNCONFIRMED_GRACE_S = 60.0
# sacct lags up to ~5 s and squeue forgets finished jobs after MinJobAge: wait this long before
# declaring a job that neither knows lost.
LOST_GRACE_S = 300.0
# A job slurmctld says has ended but sacct does not yet: wait this long for its usage (sacct lags ~5 s).
USAGE_GRACE_S = 30.0
# SLURM's answer to a question asked before the lock serves only if the ledger was loaded this soon after.
EARLY_ANSWER_S = 2.0
LOG_TAIL_BYTES = 4096


@dataclass
class ReconcileReport:
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (job id, old, new)
    submitted: list[tuple[str, str, str]] = field(default_factory=list)
    permanent_failed: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    scheduler_calls: int = 0
    notices: list[str] = field(default_factory=list)


def _unchanged(state: JobState, peek: dict[str, str | None], rec: JobRecord | None) -> bool:
    """True when SLURM says what the ledger already holds for a queued or running attempt."""
    if rec is None or rec.finished or rec.state != peek["sst"]:
        return False
    if rec.running != (state == JobState.RUNNING):
        return False
    return not (rec.start and not peek["beg"])


def _foreign(token: str, rec: JobRecord) -> str | None:
    """The name our job would have when ``rec`` is another job's: slurmctld lost ours and gave its id
    to another (seen after a crash); the submission token is the identity. None when it is ours."""
    expected = job_name(token.split("/")[0]) if token else None
    return expected if rec.name and expected and rec.name != expected else None


def _note_queued(att: Attempt, rec: JobRecord) -> None:
    """What a queued or running job's record tells of its attempt."""
    if rec.start and not att.started:
        att.started = utc_iso(rec.start)
    att.slurm_state = rec.state


def _ours(rec: JobRecord) -> Callable[[str], bool]:
    """Whether an attempt's submission token is the one ``rec`` names."""
    return lambda token: _foreign(token, rec) is None


class _Meanwhile(Generic[T]):
    """One call in a thread of its own, awaited by ``result``: the scheduler's answer, which is mostly
    waiting on SLURM (~0.4 s for the step rows of 1,000 finished jobs) while reconcile reads the
    result files it will need."""

    def __init__(self, call: Callable[[], T]) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], T]) -> None:
        try:
            self._value = call()
        except BaseException as err:  # raised again in the caller's thread, by result()
            self._error = err

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self) -> None:
        """Until the call has ended, whatever its outcome: no thread outlives the reconcile."""
        self._thread.join()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


@dataclass
class _Watched:
    """What a reconcile asks SLURM about, from one reading of the ledger."""

    states: dict[str, JobState]  # the jobs that may change (WATCHED), by id
    ids: dict[str, str]  # job id -> SLURM id, peeked without decoding where possible
    peeked: dict[str, dict[str, str | None]]
    unconfirmed: list[Job]  # submitted, but no SLURM id recorded: found by token

    @classmethod
    def of(cls, view: LedgerView) -> _Watched:
        watched = cls({job_id: s for job_id, s in view.states().items() if s in WATCHED}, {}, {}, [])
        for job_id in watched.states:
            peek = view.latest_attempt_peek(job_id)
            if peek is not None and peek["sid"]:
                watched.ids[job_id] = peek["sid"]
                watched.peeked[job_id] = peek
                continue
            job = view.get(job_id)
            if job.attempt is not None and job.attempt.slurm_id:
                watched.ids[job_id] = job.attempt.slurm_id
            elif job.attempt is not None:
                watched.unconfirmed.append(job)
        return watched


@dataclass
class _Early:
    """SLURM asked before the lock, about the jobs of a lockless view: the lock and the ledger's
    loading (~0.1 s for 1,000 jobs) then overlap SLURM's answer."""

    generation: int  # of the view
    answer: _Meanwhile[dict[str, JobRecord]]
    started: float = field(default_factory=time.monotonic)

    def serves(self, txn: Transaction) -> bool:
        """The ledger is the one the question came from (no other command saved since: the same jobs,
        and nothing newer recorded that the answer could overwrite), and not long ago (a lock held by
        another command for seconds would make the answer stale)."""
        return txn.generation == self.generation and time.monotonic() - self.started < EARLY_ANSWER_S


class Reconciler:
    def __init__(
        self,
        campaign: Campaign,
        scheduler: Scheduler | None = None,
        *,
        now: Callable[[], float] = time.time,
        echo: Callable[[str], None] | None = None,
        resume: bool = False,
    ) -> None:
        self.campaign = campaign
        # Paths as strings: a Path join per finished job costs more than the reads they name.
        self._root = str(campaign.root)
        self._job_logs = f"{campaign.state_dir}/slurm-logs"
        self.resume = resume  # end an environment pause now (reconcile --resume)
        self._scheduler = scheduler
        self.ledger = campaign.ledger()
        self.now = now
        self.echo = echo or (lambda _msg: None)
        self.report = ReconcileReport()
        self._permanent: list[dict[str, Any]] = []
        self._ready: dict[str, Ready] = {}  # next steps made in this run, handed to the dispatch
        self._steps_done: list[tuple[Job, AttemptEnd, AttemptResult | None]] = []
        # Result files read while SLURM was being asked, by folder, with the key of the file read.
        self._early: dict[str, tuple[AttemptResult, FileKey]] = {}
        self._known_site: SiteConfig | None = None  # the site with the partition's facts (_max_walltime)

    @property
    def scheduler(self) -> Scheduler:
        """The campaign's scheduler, made (and its module imported) when first asked for."""
        if self._scheduler is None:
            from orca_hpc.scheduler import scheduler_for

            self._scheduler = scheduler_for(self.campaign)
        return self._scheduler

    def _max_walltime(self) -> int | None:
        """The site's max_walltime, else the partition's MaxTime (``fit.with_node_facts``, which submit
        uses too): a retry with more time must stay within it, or sbatch refuses it. Asked once per
        reconcile, only when a retry needs it."""
        if self._known_site is None:
            from orca_hpc.controller.fit import with_node_facts

            self._known_site = with_node_facts(self.campaign, self.scheduler).site
        return self._known_site.max_walltime_min

    def _calls(self) -> int:
        return self._scheduler.call_count if self._scheduler is not None else 0

    # ------------------------------------------------------------ the run

    def run(self, view: LedgerView | None = None) -> ReconcileReport:
        """``view``: the ledger as just read without the lock (``auto_reconcile`` has one): SLURM is
        asked about its jobs before the lock is taken, and the answer serves if no other command has
        saved the ledger since (``_Early.serves``)."""
        calls_before = self._calls()
        early = self._ask_early(view) if view is not None else None
        try:
            self._run(early)
        finally:
            if early is not None:
                early.answer.wait()  # unused (the ledger changed) or interrupted: no thread outlives us
        self.report.scheduler_calls = self._calls() - calls_before
        return self.report

    def _run(self, early: _Early | None) -> None:
        with self.ledger.lock:
            # One transaction: each job is decoded once. Should SLURM not answer, the exception leaves
            # the ledger exactly as it was (a transaction that raises writes nothing).
            with self.ledger.transaction() as txn:
                watched = _Watched.of(txn)
                ids, peeked, unconfirmed = watched.ids, watched.peeked, watched.unconfirmed
                tokens = sorted({j.latest.token.split("/")[0] for j in unconfirmed if j.latest.token})
                by_token = self.scheduler.find_by_tokens(tokens) if tokens else {}
                records = self._ask(watched, early if early is not None and early.serves(txn) else None)
                for job in unconfirmed:
                    self._adopt(txn, job, by_token)
                for job_id, slurm_id in ids.items():
                    rec = records.get(slurm_id)
                    if job_id in peeked:
                        if _unchanged(watched.states[job_id], peeked[job_id], rec):
                            continue  # nothing to record: no need to decode the job
                        if (
                            rec is not None
                            and not rec.finished
                            and rec.running == (watched.states[job_id] is JobState.RUNNING)
                            and txn.note_slurm_state(
                                job_id,
                                rec.state,
                                utc_iso(rec.start) if rec.start else None,
                                _ours(rec),
                            )
                        ):
                            continue  # only SLURM's state (or start) moved: recorded without a decode
                    self._update(txn, txn.get(job_id), rec)
                # The next steps of the workflow steps that completed, together, in this transaction
                # (one loop of the same work, as submit makes its jobs, runs faster than interleaving).
                if self._steps_done:
                    self._advance(txn)
                if self._permanent:
                    self._queue_digest(txn)
                to_submit = [j.id for j in txn.jobs_by_state(*TO_SEND)]
                if not environment.may_dispatch(txn, self.campaign.site, self.resume, self._notice):
                    to_submit = []  # paused after environment failures: the jobs wait, nothing is lost
            if to_submit:
                from orca_hpc.controller.submit import Dispatcher

                dispatcher = Dispatcher(self.campaign, self.ledger, self.scheduler, echo=self.echo)
                self.report.submitted = dispatcher.dispatch(to_submit, ready=self._ready)

    def _notice(self, message: str) -> None:
        self.report.notices.append(message)
        self.echo(message)

    def _set(self, txn: Transaction, job: Job, state: JobState) -> None:
        if job.state != state:
            self.report.changes.append((job.id, job.state.value, state.value))
            txn.set_state(job, state)

    # ------------------------------------------------------------ unconfirmed submissions

    def _adopt(self, txn: Transaction, job: Job, by_token: dict[str, list[JobRecord]]) -> None:
        """A submission whose outcome was never recorded: find it by token, never submit twice."""
        att = job.latest
        rec = record_of(by_token, att.token)
        if rec is not None:
            att.slurm_id = self.scheduler.task_id(rec)
            att.submitted = att.submitted or now_iso()
            self.report.adopted.append(job.id)
            self.echo(f"{job.id}: adopted SLURM job {att.slurm_id} (submitted by an interrupted run)")
            self._set(txn, job, JobState.PENDING)
            self._update(txn, job, rec)
            return
        since = epoch(job.updated) or 0.0
        if self.now() - since > UNCONFIRMED_GRACE_S:
            self.echo(f"{job.id}: submission {att.token} never reached the scheduler; submitting it again")
            att.token = ""
            self._set(txn, job, JobState.CREATED)

    # ------------------------------------------------------------ submitted attempts

    def _update(self, txn: Transaction, job: Job, rec: JobRecord | None) -> None:
        att = job.attempt
        assert att is not None
        expected = _foreign(att.token, rec) if rec is not None else None
        if rec is not None and expected is not None:
            log.warning(
                "%s: SLURM id %s now belongs to job %r, not %s", job.id, att.slurm_id, rec.name, expected
            )
            rec = None
        if rec is not None and rec.reason == REMOVED_REASON and self._ran(att):
            # The task ran (its job log or result file is there): SLURM forgot it (slurmctld after
            # MinJobAge, before sacct learned of it), which is no cancel: judged as not known.
            rec = None
        if rec is None:
            result, problem = self._result(job, f"{self._root}/{att.dir}")
            submitted = epoch(att.submitted) or epoch(job.updated) or 0.0
            if result is None and self.now() - submitted < LOST_GRACE_S:
                return  # sacct has not caught up yet: "not known" is not "lost"
            self._finish(txn, job, None, result, problem)
            return
        if not rec.finished:
            _note_queued(att, rec)
            self._set(txn, job, JobState.RUNNING if rec.running else JobState.PENDING)
            return
        if rec.start and not att.started:
            att.started = utc_iso(rec.start)
        if rec.usage_pending and self.now() - (epoch(utc_iso(rec.end)) or 0.0) < USAGE_GRACE_S:
            return  # what it used is on its way to sacct: finish it on the next run, with its usage
        self._finish(txn, job, rec, *self._result(job, f"{self._root}/{att.dir}"))

    def _ask_early(self, view: LedgerView) -> _Early | None:
        if not self.scheduler.query_waits:
            return None
        ids = _Watched.of(view).ids
        if not ids:
            return None
        scheduler, asked = self.scheduler, list(dict.fromkeys(ids.values()))
        return _Early(view.generation, _Meanwhile(lambda: scheduler.query(asked)))

    def _ask(self, watched: _Watched, early: _Early | None) -> dict[str, JobRecord]:
        """SLURM's records of the watched jobs; the result files are read while it answers."""
        if not watched.ids:
            return {}
        wanted = list(dict.fromkeys(watched.ids.values()))
        if not self.scheduler.query_waits:
            return self.scheduler.query(wanted)
        if early is not None:  # it serves: asked about exactly these jobs
            answer = early.answer
        else:
            scheduler = self.scheduler
            answer = _Meanwhile(lambda: scheduler.query(wanted))
        try:
            self._read_early(watched.peeked, answer.done)
        finally:
            answer.wait()
        return answer.result()

    def _read_early(self, peeked: dict[str, dict[str, str | None]], answered: Callable[[], bool]) -> None:
        """The result files that exist now (a runner writes its file as the attempt ends), read while
        the scheduler answers, and only until it has (a scheduler that answers at once costs nothing
        here). Running jobs first, the longest running first: the likeliest to have ended. Only a
        hint: ``_result`` uses one only if the file is still the same, and reads anything missing,
        damaged or changed again itself."""
        order = sorted(peeked, key=lambda j: (peeked[j]["sst"] != "RUNNING", peeked[j]["beg"] or "~"))
        for job_id in order:
            if answered():
                return
            n = peeked[job_id]["n"]
            if n is None:
                continue
            # The form every attempt folder has (ledger/validate.py); _result is told the recorded one.
            folder = f"{self._root}/jobs/{job_id}/attempt-{n}"
            try:
                result, key = AttemptResult.read_keyed(folder)
            except InputFileError:
                continue
            if result is not None and key is not None:
                self._early[folder] = (result, key)

    def _result(self, job: Job, folder: str) -> tuple[AttemptResult | None, str | None]:
        """The attempt's result file and, when it is damaged or another attempt's, why: a bad file
        ends this attempt with that reason and never stops the reconcile of the others."""
        early = self._early.pop(folder, None)
        try:
            if early is not None and file_key(f"{folder}/{RESULT_NAME}") == early[1]:
                result: AttemptResult | None = early[0]
            else:
                result = AttemptResult.read(folder)
        except InputFileError as err:
            return None, str(err)
        att = job.attempt
        assert att is not None
        if result is not None and result.job_id and (result.job_id, result.attempt) != (job.id, att.n):
            where = f"{folder}/{RESULT_NAME}"
            return (
                None,
                f"{where}: the result of {result.job_id} attempt {result.attempt}, not this attempt's",
            )
        return result, None

    def _ran(self, att: Attempt) -> bool:
        """Whether the attempt's job started: SLURM opened its log, or the runner left its result."""
        return os.path.lexists(f"{self._job_logs}/{att.slurm_id}.out") or os.path.lexists(
            f"{self._root}/{att.dir}/{RESULT_NAME}"
        )

    def _job_log(self, slurm_id: str | None) -> str:
        if not slurm_id:
            return ""
        return read_tail(f"{self._job_logs}/{slurm_id}.out", LOG_TAIL_BYTES)

    def _finish(
        self,
        txn: Transaction,
        job: Job,
        rec: JobRecord | None,
        result: AttemptResult | None,
        result_problem: str | None = None,
    ) -> None:
        att = job.attempt
        assert att is not None
        ending = (
            rec.state if rec else None,
            rec.exit_code if rec else None,
            rec.signal if rec else None,
            result,
            self._job_log(att.slurm_id),
        )
        end = decide_end(*ending, result_problem=result_problem)
        if not end.success:  # ORCA's stderr can only turn a failure into an environment failure
            stderr = environment.attempt_stderr(self.campaign.root / att.dir)
            end = decide_end(*ending, stderr, result_problem=result_problem)
        att.slurm_state = rec.state if rec else att.slurm_state
        # The scheduler's times first; the runner's where it has none (the local site keeps no start or
        # end), and only then the time of this reconcile.
        ran_ended = utc_iso(result.ended) if result is not None else None
        if rec is not None:
            att.exit_code = f"{rec.exit_code or 0}:{rec.signal or 0}"
            att.ended = utc_iso(rec.end) or ran_ended or now_iso()
        elif result is not None:
            att.ended = ran_ended or now_iso()
        if not att.started and result is not None:
            att.started = utc_iso(result.started)
        att.outcome = end.outcome.value
        att.reason = end.reason
        att.energy = end.energy
        att.message = (end.message or "")[:500] or None
        att.counts_against_limit = end.counts_against_limit
        att.usage = usage_of(rec, result)
        environment.note_end(txn, end, job, self.campaign, self._notice)
        gate = None
        if end.success and job.chain is not None:
            from orca_hpc.controller import chain

            gate = chain.gate_of(self.campaign, job, result)
        if gate is not None:  # ORCA succeeded, but the workflow cannot go on from this result
            self._gate_stop(txn, job, end, gate)
            return
        if end.success:
            self._set(txn, job, JobState.COMPLETED)
            self.echo(
                f"{job.id} {job.name}: COMPLETED" + (f", E = {end.energy:.8f} Eh" if end.energy else "")
            )
            if job.chain is not None:
                self._steps_done.append((job, end, result))  # their next steps: after every update
            return
        if end.cancelled:
            self._set(txn, job, JobState.CANCELLED)
            return
        self._set(txn, job, JobState.FAILED)
        self._retry_or_give_up(txn, job, end)

    def _gate_stop(self, txn: Transaction, job: Job, end: AttemptEnd, why: str) -> None:
        """A workflow step whose result fails its gate (an imaginary mode: not a minimum) ends for good:
        not COMPLETED (nothing builds on it), its molecule stops, one digest line; `retry` after a fix
        of the step in orca-hpc.toml runs it again."""
        job.extra["stop"] = why[:500]
        self._set(txn, job, JobState.FAILED)
        row = self._digest_row(job, end, why)
        row["outcome"] = "gate"  # ORCA's run succeeded; the workflow refused what it found
        self._give_up(txn, job, row, why)

    def _give_up(self, txn: Transaction, job: Job, row: dict[str, Any], why: str) -> None:
        """A FAILED job that will not be retried: PERMANENT_FAILED, and its line in the digest."""
        self._set(txn, job, JobState.PERMANENT_FAILED)
        self.report.permanent_failed.append(job.id)
        self._permanent.append(row)
        self.echo(f"{job.id} {job.name}: PERMANENT_FAILED ({why})")

    def _retry_or_give_up(self, txn: Transaction, job: Job, end: AttemptEnd) -> None:
        from orca_hpc.controller.recovery import Failure, Limits, plan_recovery
        from orca_hpc.controller.submit import record_attempt

        site = self.campaign.site
        att = job.attempt
        assert att is not None
        if end.environment and environment.retry_unchanged(self.campaign, txn, job, end):
            self.echo(f"{job.id} {job.name}: {end.message}; attempt {job.latest.n} will run unchanged")
            return
        why: str | None = None
        if not end.retryable:
            why = "retrying cannot help"  # _give_up's line and the digest row name the outcome
        elif not end.counts_against_limit:
            job.nodefail_count += 1
            if job.nodefail_count > site.max_nodefail_retries:
                why = f"{end.reason} {job.nodefail_count} times (limit {site.max_nodefail_retries})"
        elif job.retry_count >= job.max_retries:
            why = f"failed {job.retry_count + 1} times (max_retries {job.max_retries})"
        plan = None
        attempt_dir = self.campaign.root / att.dir
        previous = None
        if why is None:
            try:
                previous = plan_of(attempt_dir)
            except (OSError, InputFileError) as err:
                # One job's damaged folder must not stall the whole campaign's reconcile.
                why = f"cannot read the attempt's plan in {attempt_dir}: {err}"
        if previous is not None:
            failure = Failure(
                outcome=end.outcome,
                reason=end.reason,
                classification=end.classification,
                attempt_dir=attempt_dir,
                base=_files_base(previous),
                history=[a.corrections for a in job.attempts],
                # A counted failure uses one retry now: what is left decides how far the ladder climbs.
                retries_left=job.max_retries - job.retry_count - (1 if end.counts_against_limit else 0),
            )
            limits = Limits(
                max_mem_mb=site.max_mem_mb or max(previous.mem_mb * 4, 16000),
                max_time_min=self._max_walltime() or previous.time_min * 4,
            )
            try:
                plan, handler = plan_recovery(previous, failure, limits, site.disabled_handlers)
                if plan is not None:
                    record_attempt(self.campaign, txn, job, plan)
            except OrcaHpcError as err:  # a correction the input cannot take: this job only
                plan, handler = None, f"correction failed: {err}"
            if plan is None:
                why = handler
        if plan is None:
            self._give_up(txn, job, self._digest_row(job, end, why or ""), f"{end.outcome}: {why}")
            return
        if end.counts_against_limit:
            job.retry_count += 1
        fixes = "; ".join(c["change"] for c in plan.corrections)
        self.echo(f"{job.id} {job.name}: {end.outcome}, retrying as attempt {job.latest.n} ({fixes})")

    def _advance(self, txn: Transaction) -> None:
        """Workflow steps completed: their successors are recorded in this same transaction."""
        from orca_hpc.controller import chain

        done = self._steps_done
        made = chain.advance(self.campaign, txn, [(job, result) for job, _end, result in done], self._ready)
        for (job, end, _result), next_job in zip(done, made, strict=True):
            if isinstance(next_job, str):  # the molecule's chain stops here: one digest line
                self.echo(f"{job.id} {job.name}: chain stops: {next_job}")
                self._permanent.append(self._digest_row(job, end, next_job))
            elif next_job is not None:
                self.echo(f"{job.id} {job.name}: next step {next_job.id} {next_job.name}")

    # ------------------------------------------------------------ notifications

    def _digest_row(self, job: Job, end: AttemptEnd, why: str) -> dict[str, Any]:
        att = job.attempt
        assert att is not None
        attempt_dir = self.campaign.root / att.dir
        outputs = sorted(attempt_dir.glob("*.out"))
        return {
            "id": job.id,
            "name": job.name,
            "attempts": len(job.attempts),
            "outcome": str(end.outcome),
            "message": f"{end.message} [{why}]" if why else end.message,
            "tail": read_tail(outputs[0], 2048) if outputs else self._job_log(att.slurm_id),
            "results": str(attempt_dir),
        }

    def _queue_digest(self, txn: Transaction) -> None:
        from orca_hpc.notify.digest import build_failure_digest

        rows = self._permanent
        if self.campaign.workflow is not None:
            from orca_hpc.controller import chain

            # one line per molecule, not per step or conformer
            rows = chain.by_molecule(rows, {r["id"]: txn.get(r["id"]) for r in rows})
        txn.outbox.append(build_failure_digest(rows, self.campaign.name))
        self.report.notices.append(f"{len(rows)} job(s) failed permanently; one digest queued")


def _files_base(plan: AttemptPlan) -> str:
    """The name ORCA gave the attempt's files (.gbw, .xyz, .hess, _trj.xyz) that a correction starts
    from: the input's, unless its (last) job's ``%base`` names them; never a path."""
    from orca_hpc.orca.inputs import final_base

    try:
        return final_base(Path(plan.input_name), plan.input_text)
    except OrcaHpcError:  # a %base naming another folder: ORCA's files are not in the attempt's
        return Path(plan.input_name).stem


def reconcile(
    campaign: Campaign,
    *,
    echo: Callable[[str], None] | None = None,
    now: Callable[[], float] = time.time,
    scheduler: Scheduler | None = None,
    resume: bool = False,
    view: LedgerView | None = None,
) -> ReconcileReport:
    """One reconcile (``Reconciler.run``); ``view``: the ledger as just read without the lock."""
    return Reconciler(campaign, scheduler, echo=echo, now=now, resume=resume).run(view)
