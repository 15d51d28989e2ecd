"""Submission: validate inputs, record the intent, render the job script, sbatch arrays, exactly once.

The order is what makes it safe. Under the ledger lock, held for the whole submission:
  1. each attempt gets a token and its job goes SUBMITTING (saved before sbatch runs);
  2. sbatch runs with ``--job-name ohpc-<token>`` (sacct stores the name);
  3. the SLURM ids are saved and the jobs go PENDING.
If the process dies between 1 and 3, reconcile looks the token up in SLURM and adopts what it
finds instead of submitting again (``reconcile.adopt_unconfirmed``). If sbatch fails, the jobs go back
to CREATED, so the ledger never shows as submitted what SLURM does not have.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orca_hpc.atomic import atomic_write_bytes
from orca_hpc.attempt.folder import AttemptPlan, plan_of, safe_base, write_attempt
from orca_hpc.config.campaign import Campaign
from orca_hpc.config.site import resources_for
from orca_hpc.errors import InputFileError, OrcaHpcError, UserError
from orca_hpc.ledger.records import Job, now_iso
from orca_hpc.ledger.states import JobState
from orca_hpc.ledger.store import Ledger, LedgerView, Transaction
from orca_hpc.orca import inputs as orca_input
from orca_hpc.orca.presets import render_preset
from orca_hpc.orca.xyz import read_xyz
from orca_hpc.perms import FILE_MODE, make_dir
from orca_hpc.scheduler.script import JobScriptContext, render_job_script

TOKEN_PREFIX = "ohpc-"
log = logging.getLogger(__name__)


@dataclass
class NewJob:
    """A validated input, ready to become a job."""

    source: Path
    name: str
    sha: str
    plan: AttemptPlan


@dataclass
class SubmitReport:
    submitted: list[tuple[str, str, str]] = field(default_factory=list)  # (job id, name, slurm id)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, existing job id)
    scripts: list[str] = field(default_factory=list)  # dry run: what would be submitted
    sbatch_calls: int = 0


# ---------------------------------------------------------------- inputs


def _sha(text: str, extra: dict[str, Path]) -> str:
    digest = hashlib.sha256(text.encode("utf-8"))
    for name in sorted(extra):
        digest.update(b"\0" + name.encode() + b"\0")
        digest.update(extra[name].read_bytes())
    return digest.hexdigest()


def _plan(
    campaign: Campaign,
    text: str,
    name: str,
    nprocs: int | None,
    maxcore: int | None,
    extra: dict[str, Path],
    source: Path,
) -> AttemptPlan:
    site = campaign.site
    nprocs = nprocs or site.nprocs
    try:
        mem_mb, maxcore_mb = resources_for(site, nprocs, maxcore)
        text = orca_input.set_resources(text, nprocs, maxcore_mb)
    except UserError as err:
        raise InputFileError(source, str(err)) from None
    return AttemptPlan(
        input_name=f"{safe_base(name)}.inp",
        input_text=text,
        nprocs=nprocs,
        maxcore_mb=maxcore_mb,
        mem_mb=mem_mb,
        time_min=site.walltime_min,
        extra_files=extra,
    )


def _from_inp(campaign: Campaign, path: Path) -> NewJob:
    parsed = orca_input.parse_input(path)
    text = path.read_text(encoding="utf-8-sig")
    extra: dict[str, Path] = {}
    # Referenced files travel with the attempt; the runner copies them flat into scratch.
    for ref in parsed.files:
        ref_path = Path(ref.name) if Path(ref.name).is_absolute() else path.parent / ref.name
        if not ref_path.is_file():
            if ref.job == 0:
                raise InputFileError(path, f"{ref.kind} {ref.name!r} not found", ref.line)
            continue  # written by an earlier $new_job step
        flat = ref_path.name
        if flat in extra and extra[flat] != ref_path:
            raise InputFileError(path, f"two referenced files are both named {flat!r}", ref.line)
        extra[flat] = ref_path
        if ref.name != flat:
            if ref.kind == "xyzfile" and ref.job == 0:
                text = orca_input.set_xyzfile(text, flat)
            elif ref.kind == "moinp":
                text = orca_input.set_moread(text, flat)
    explicit = any(job.nprocs for job in parsed.jobs)
    plan = _plan(campaign, text, path.stem, parsed.nprocs if explicit else None, parsed.maxcore, extra, path)
    return NewJob(path, path.stem, _sha(plan.input_text, extra), plan)


def _from_xyz(
    campaign: Campaign, path: Path, method: str, charge: int, mult: int, template: str | None
) -> NewJob:
    molecule = read_xyz(path)
    site = campaign.site
    _mem, maxcore = resources_for(site, site.nprocs, None)
    try:
        text = render_preset(method, molecule, charge, mult, site.nprocs, maxcore, template)
    except UserError as err:
        raise InputFileError(path, str(err)) from None
    plan = _plan(campaign, text, path.stem, site.nprocs, maxcore, {}, path)
    return NewJob(path, path.stem, _sha(plan.input_text, {}), plan)


def prepare_inputs(
    campaign: Campaign, paths: Sequence[Path], *, method: str | None = None, charge: int = 0, mult: int = 1
) -> list[NewJob]:
    """Validate every input before anything is recorded: one bad file stops the whole call."""
    template = campaign.config.get("method_template")
    # A named preset of the campaign (`[presets] opt = "r2SCAN-3c Opt"`), else the method line itself.
    presets = campaign.config.get("presets") or {}
    if method and method in presets:
        method = presets[method]
    jobs: list[NewJob] = []
    errors: list[str] = []
    for path in paths:
        try:
            if path.is_dir():
                raise UserError(f"{path}: is a folder, not an ORCA input")
            if not path.exists():
                raise UserError(f"{path}: no such file")
            if path.suffix.lower() == ".xyz":
                if not method:
                    raise UserError(f"{path}: an .xyz file needs --method (e.g. --method 'r2SCAN-3c Opt')")
                jobs.append(_from_xyz(campaign, path, method, charge, mult, template))
            else:
                jobs.append(_from_inp(campaign, path))
        except OrcaHpcError as err:
            errors.append(str(err))
    if errors:
        more = f" (and {len(errors) - 1} more problem(s); nothing was submitted)" if len(errors) > 1 else ""
        raise UserError(errors[0] + more)
    return jobs


# ---------------------------------------------------------------- dispatch


def python_for_jobs() -> str:
    """The interpreter the job scripts use: this one, which has orca_hpc installed."""
    return str(Path(sys.executable).absolute())


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _load_plan(campaign: Campaign, job: Job) -> AttemptPlan:
    att = job.attempt
    assert att is not None
    return plan_of(campaign.root / att.dir)


class Dispatcher:
    """Submits the latest attempt of CREATED jobs, grouped into arrays by resources.

    The caller holds the ledger lock for the whole dispatch (``ledger.lock``).
    """

    def __init__(
        self,
        campaign: Campaign,
        ledger: Ledger,
        *,
        executor_factory: Callable[..., object] | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.campaign = campaign
        self.ledger = ledger
        self.echo = echo or (lambda _msg: None)
        self._executor_factory = executor_factory
        self._executor: object | None = None
        self.sbatch_calls = 0

    def _submit_script(self, text: str) -> str:
        if self._executor is None:
            if self._executor_factory is not None:
                self._executor = self._executor_factory()
            else:
                from orca_hpc.scheduler.slurm import OrcaSlurmExecutor

                self._executor = OrcaSlurmExecutor(
                    self.campaign.submitit_dir,
                    throttle_s=self.campaign.site.submit_throttle_s,
                    python=python_for_jobs(),
                )
        self.sbatch_calls += 1
        return self._executor.submit_script(text)  # type: ignore[attr-defined]

    def render(self, token: str, attempt_dirs: list[Path], plan: AttemptPlan) -> tuple[str, Path]:
        campaign = self.campaign
        manifest = campaign.arrays_dir / f"{token}.txt"
        ctx = JobScriptContext(
            job_name=f"{TOKEN_PREFIX}{token}",
            array_size=len(attempt_dirs),
            ntasks=plan.nprocs,
            mem_mb=plan.mem_mb,
            time_min=plan.time_min,
            output_pattern=str(campaign.state_dir / "slurm-logs" / "%A_%a.out"),
            manifest=str(manifest),
            python=python_for_jobs(),
            campaign_dir=str(campaign.root),
        )
        return render_job_script(campaign.site, ctx), manifest

    def dispatch(
        self, job_ids: Sequence[str], plans: dict[str, AttemptPlan] | None = None
    ) -> list[tuple[str, str, str]]:
        """sbatch every given CREATED job's latest attempt; returns (job id, name, slurm id).

        ``plans``: the attempts' plans where the caller has them (else read back from spec.json)."""
        if not job_ids:
            return []
        if self.campaign.site.scheduler == "local":
            return self._dispatch_local(list(job_ids))
        groups: dict[tuple[int, int, int], list[tuple[str, AttemptPlan]]] = {}
        snap = None
        for job_id in job_ids:
            plan = plans.get(job_id) if plans else None
            if plan is None:
                snap = snap or self.ledger.snapshot()  # the lock is held: this is the current state
                plan = _load_plan(self.campaign, snap.get(job_id))
            groups.setdefault(plan.resources_key, []).append((job_id, plan))
        size = self.campaign.site.max_array_size
        chunks = [
            (secrets.token_hex(8), chunk, members[0][1])
            for members in groups.values()
            for chunk in _chunks([m[0] for m in members], size)
        ]
        make_dir(self.campaign.state_dir / "slurm-logs")
        # 1. The intent of every chunk, saved before any sbatch runs.
        dirs: dict[str, Path] = {}
        with self.ledger.transaction() as txn:
            for token, chunk, _plan in chunks:
                for i, job_id in enumerate(chunk):
                    job = txn.get(job_id)
                    att = job.attempt
                    assert att is not None
                    att.token = f"{token}/{i}"
                    dirs[job_id] = self.campaign.root / att.dir
                    txn.set_state(job, JobState.SUBMITTING)
        # 2. sbatch, chunk by chunk, until one is refused.
        accepted: list[tuple[str, list[str], str]] = []
        refused: OrcaHpcError | None = None
        for token, chunk, plan in chunks:
            script, manifest = self.render(token, [dirs[j] for j in chunk], plan)
            _write_lines(manifest, [str(dirs[j]) for j in chunk])
            try:
                accepted.append((token, chunk, self._submit_script(script)))
            except OrcaHpcError as err:
                refused = err
                break
        # 3. The ids of what SLURM accepted; what it did not get waits as CREATED for the next run.
        submitted = now_iso()
        out: list[tuple[str, str, str]] = []
        with self.ledger.transaction() as txn:
            for _token, chunk, slurm_job in accepted:
                for i, job_id in enumerate(chunk):
                    job = txn.get(job_id)
                    att = job.attempt
                    assert att is not None
                    att.slurm_id = f"{slurm_job}_{i}"
                    att.submitted = submitted
                    txn.set_state(job, JobState.PENDING)
                    out.append((job_id, job.name, att.slurm_id))
            for _token, chunk, _plan in chunks[len(accepted) :]:
                for job_id in chunk:
                    job = txn.get(job_id)
                    job.attempt.token = ""  # type: ignore[union-attr]
                    txn.set_state(job, JobState.CREATED)
        for job_id, _name, slurm_id in out:
            log.info("%s: attempt submitted as SLURM %s", job_id, slurm_id)
        for _token, chunk, slurm_job in accepted:
            self.echo(f"submitted {len(chunk)} job(s) as SLURM array {slurm_job}")
        if refused is not None:
            raise refused
        return out

    def _dispatch_local(self, job_ids: list[str]) -> list[tuple[str, str, str]]:
        """No SLURM: start at most array_parallelism attempts at once; the rest wait as CREATED."""
        from orca_hpc.scheduler.local import submit_local

        snap = self.ledger.snapshot()
        running = len(snap.jobs_by_state(JobState.SUBMITTING, JobState.PENDING, JobState.RUNNING))
        cap = self.campaign.site.array_parallelism or os.cpu_count() or 1
        take = job_ids[: max(0, cap - running)]
        if not take:
            return []
        token = secrets.token_hex(8)
        with self.ledger.transaction() as txn:
            for i, job_id in enumerate(take):
                job = txn.get(job_id)
                job.attempt.token = f"{token}/{i}"  # type: ignore[union-attr]
                txn.set_state(job, JobState.SUBMITTING)
        out = []
        for job_id in take:
            att = snap.get(job_id).attempt
            assert att is not None
            plan = plan_of(self.campaign.root / att.dir)
            command = [
                python_for_jobs(),
                "-m",
                "orca_hpc.runner",
                "--attempt-dir",
                str(self.campaign.root / att.dir),
            ]
            local_id = submit_local(self.campaign.submitit_dir, command, plan.time_min)
            with self.ledger.transaction() as txn:
                job = txn.get(job_id)
                job.attempt.slurm_id = local_id  # type: ignore[union-attr]
                job.attempt.submitted = now_iso()  # type: ignore[union-attr]
                txn.set_state(job, JobState.PENDING)
                out.append((job_id, job.name, local_id))
        self.echo(f"started {len(out)} job(s) on this machine ({len(job_ids) - len(out)} waiting for a slot)")
        return out


def _write_lines(path: Path, lines: list[str]) -> None:
    make_dir(path.parent, parents=True)
    atomic_write_bytes(path, "".join(f"{line}\n" for line in lines).encode("utf-8"), FILE_MODE, durable=False)


def record_attempt(campaign: Campaign, txn: Transaction, job: Job, plan: AttemptPlan) -> None:
    """Add the next attempt to ``job`` and lay out its folder; the Dispatcher then submits it."""
    if plan.corrections:
        # A correction may have changed the resources: the input must say what SLURM is asked for.
        plan.input_text = orca_input.set_resources(plan.input_text, plan.nprocs, plan.maxcore_mb)
    att = job.new_attempt(token="")
    att.corrections = list(plan.corrections)
    site = campaign.site
    write_attempt(
        campaign.root / att.dir,
        plan,
        campaign=campaign.slug,
        job_id=job.id,
        job_name=job.name,
        attempt=att.n,
        orca=site.orca_path,
        scratch_root=site.scratch_root,
        keep=site.keep,
    )


def _not_yet_recorded(
    view: LedgerView, new_jobs: Sequence[NewJob], force: bool, report: SubmitReport
) -> list[NewJob]:
    """The inputs that the ledger ``view`` does not hold yet (all with ``force``); the rest go to
    ``report.skipped`` with the job that already has them."""
    fresh: list[NewJob] = []
    seen: set[str] = set()
    for nj in new_jobs:
        existing = view.find_by_hash(nj.sha)
        if (existing or nj.sha in seen) and not force:
            report.skipped.append((str(nj.source), existing[0].id if existing else "(same input twice)"))
            continue
        seen.add(nj.sha)
        fresh.append(nj)
    return fresh


def submit(
    campaign: Campaign,
    paths: Sequence[Path],
    *,
    method: str | None = None,
    charge: int = 0,
    mult: int = 1,
    force: bool = False,
    dry_run: bool = False,
    max_retries: int | None = None,
    echo: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> SubmitReport:
    echo = echo or (lambda _msg: None)
    new_jobs = prepare_inputs(campaign, paths, method=method, charge=charge, mult=mult)
    report = SubmitReport()
    ledger = campaign.ledger()
    if dry_run:
        fresh = _not_yet_recorded(ledger.snapshot(), new_jobs, force, report)
        dispatcher = Dispatcher(campaign, ledger)
        groups: dict[tuple[int, int, int], list[NewJob]] = {}
        for nj in fresh:
            groups.setdefault(nj.plan.resources_key, []).append(nj)
        for members in groups.values():
            for start in range(0, len(members), campaign.site.max_array_size):
                chunk = members[start : start + campaign.site.max_array_size]
                dirs = [campaign.jobs_dir / "<job>" / "attempt-1" for _ in chunk]
                script, _ = dispatcher.render("dry-run", dirs, chunk[0].plan)
                report.scripts.append(script)
        return report
    max_retries = campaign.site.max_retries if max_retries is None else max_retries
    with ledger.lock:
        with ledger.transaction() as txn:
            # Checked under the same lock as the insert: another submit of the same input may be
            # running right now, and whichever locks second must see the first one's jobs.
            fresh = _not_yet_recorded(txn, new_jobs, force, report)
            ids = []
            plans = {}
            for count, nj in enumerate(fresh, 1):
                job = txn.add_job(
                    nj.name, str(nj.source.absolute()), nj.sha, campaign.site.name, max_retries=max_retries
                )
                record_attempt(campaign, txn, job, nj.plan)
                ids.append(job.id)
                plans[job.id] = nj.plan
                if progress and count % 100 == 0:
                    progress(100)
        dispatcher = Dispatcher(campaign, ledger, echo=echo)
        report.submitted = dispatcher.dispatch(ids, plans)
        report.sbatch_calls = dispatcher.sbatch_calls
    return report
