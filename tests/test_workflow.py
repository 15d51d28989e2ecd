"""Workflows, fast: the campaign's steps are validated, and reconcile advances each molecule's chain
on the in-memory FakeScheduler (the same on the real cluster: test_workflow_slurm.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from e2e import cli

from orca_hpc.config.campaign import Campaign, init_campaign, load_campaign
from orca_hpc.controller import chain as chain_mod
from orca_hpc.controller.actions import cancel_selected, retry_selected
from orca_hpc.controller.by_molecule import molecule_tables, runs_of
from orca_hpc.controller.reconcile import reconcile
from orca_hpc.controller.select import Selector
from orca_hpc.controller.submit import submit
from orca_hpc.errors import UserError
from orca_hpc.ledger.records import Job
from orca_hpc.ledger.states import JobState
from orca_hpc.scheduler.fake import FakeScheduler

WATER = "3\ncharge=0 mult=1\nO 0 0 0.1178\nH 0 0.7555 -0.4712\nH 0 -0.7555 -0.4712\n"
STEPS = """
[workflow]
rmsd = 0.0  # keep every frame: these test conformers differ by less than real ones
[[workflow.steps]]
name = "opt"
method = "r2SCAN-3c Opt Freq"
gate = "no-imaginary"
hand_over = ["orbitals"]
max_retries = 0
[[workflow.steps]]
name = "sp"
method = "wB97M-V def2-TZVP"
nprocs = 2
walltime = "00:30:00"
"""


@pytest.fixture
def campaign(tmp_path: Path) -> Campaign:
    init_campaign(tmp_path / "camp", "local-slurm")
    config = tmp_path / "camp" / "orca-hpc.toml"
    config.write_text(config.read_text() + STEPS)
    return load_campaign(tmp_path / "camp")


def _molecules(campaign: Campaign) -> list[Path]:
    """water (one conformer) and ethanol-like 'two' (a two-frame xyz: two conformers)."""
    water = campaign.root / "water.xyz"
    water.write_text(WATER)
    two = campaign.root / "two.xyz"
    two.write_text(WATER + WATER.replace("0.1178", "0.1300"))
    return [water, two]


def _jobs(campaign: Campaign) -> list[Job]:
    return campaign.ledger().snapshot().all_jobs()


def _finish(
    campaign: Campaign, fake: FakeScheduler, job: Job, outcome: str = "success", n_imag: int = 0
) -> None:
    """What the runner leaves: result.json and, on success, ORCA's final geometry and orbitals."""
    att = job.latest
    folder = campaign.root / att.dir
    base = json.loads((folder / "spec.json").read_text())["input"][: -len(".inp")]
    classification: dict[str, Any] = {"n_imaginary": n_imag, "imaginary_freqs": [-50.0] * n_imag}
    body = {"result_version": 1, "job_id": job.id, "attempt": att.n, "outcome": outcome,
            "retryable": False, "energy": -76.0, "classification": classification}  # fmt: skip
    if outcome == "success":
        (folder / f"{base}.xyz").write_text(f"3\nfinal of {job.id}\nO 0 0 0.2222\n" + WATER.split("\n", 3)[3])
        (folder / f"{base}.gbw").write_bytes(b"orbitals of " + job.id.encode())
    (folder / "result.json").write_text(json.dumps(body))
    assert att.slurm_id is not None
    fake.finish(
        att.slurm_id, "COMPLETED" if outcome == "success" else "FAILED", 0 if outcome == "success" else 1
    )


def test_invalid_workflow_names_every_step_and_key_and_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "camp"
    cli(tmp_path, "init", str(root), "--site", "local-slurm")
    config = root / "orca-hpc.toml"
    config.write_text(
        config.read_text()
        + '\n[[workflow.steps]]\nname = "opt"\nmethod = "r2SCAN-3c Opt"\ngate = "no-imaginary"\n'
        + '[[workflow.steps]]\nname = "sp"\nmethod = "HF"\nnprocs = 0\nhand_over = ["orbitals"]\n'
    )
    before = (root / ".orca-hpc" / "ledger.json").read_bytes()
    (root / "w.xyz").write_text(WATER)
    result = cli(root, "submit", str(root / "w.xyz"), expect=1)
    lines = result.output.strip().splitlines()
    assert any("step 1 ('opt'): key 'gate'" in line for line in lines), result.output
    assert any("step 2 ('sp'): key 'nprocs'" in line for line in lines), result.output
    assert "Traceback" not in result.output
    assert (root / ".orca-hpc" / "ledger.json").read_bytes() == before


@pytest.mark.parametrize("table", ["[workflow]\nsteps = []\n", '[workflow]\npreset = "opt-freq"\nsteps = []'])
def test_a_workflow_without_steps_is_refused_in_one_line(tmp_path: Path, table: str) -> None:
    root = tmp_path / "camp"
    cli(tmp_path, "init", str(root), "--site", "local-slurm")
    config = root / "orca-hpc.toml"
    config.write_text(config.read_text() + "\n" + table)
    before = (root / ".orca-hpc" / "ledger.json").read_bytes()
    (root / "w.xyz").write_text(WATER)
    result = cli(root, "submit", str(root / "w.xyz"), expect=1)
    assert result.output.strip().splitlines() == [
        f"orca-hpc: error: {config}: workflow: no steps (add [[workflow.steps]] tables, or preset = NAME)"
    ]
    assert (root / ".orca-hpc" / "ledger.json").read_bytes() == before


def test_a_step_walltime_without_room_for_the_early_warning_is_refused(tmp_path: Path) -> None:
    # local-slurm warns 30 s before the end, and SLURM may warn up to 60 s earlier still: a 1-minute
    # step could be stopped as it starts. Every such step is named, in one line; the ledger is untouched.
    root = tmp_path / "camp"
    cli(tmp_path, "init", str(root), "--site", "local-slurm")
    config = root / "orca-hpc.toml"
    steps = ""
    for name, walltime in (("opt", "1"), ("freq", "00:01:00"), ("sp", "2")):
        steps += f'[[workflow.steps]]\nname = "{name}"\nmethod = "r2SCAN-3c"\nwalltime = "{walltime}"\n'
    config.write_text(config.read_text() + "\n" + steps)
    ledger = root / ".orca-hpc" / "ledger.json"
    before = ledger.read_bytes()
    said = cli(root, "status", expect=1).output.strip().splitlines()
    assert len(said) == 1 and str(config) in said[0], said
    assert "'opt' (walltime 1 min)" in said[0] and "'freq' (walltime 1 min)" in said[0], said
    assert "'sp'" not in said[0] and "60 s SLURM may send it early" in said[0]
    assert ledger.read_bytes() == before


def test_every_step_is_held_to_the_node_at_submit_and_fitted_only_by_the_site_rule(tmp_path: Path) -> None:
    # local-slurm: 8 cores, max_walltime 04:00:00. The second step asks for more; before, it was made
    # by reconcile hours later (and refused: every molecule stopped), and a step's own walltime was
    # never held to max_walltime; `submit --fit` was silently ignored for a workflow.
    root = tmp_path / "camp"
    cli(tmp_path, "init", str(root), "--site", "local-slurm")
    config = root / "orca-hpc.toml"
    steps = '[[workflow.steps]]\nname = "opt"\nmethod = "r2SCAN-3c Opt Freq"\nwalltime = "10:00:00"\n'
    steps += '[[workflow.steps]]\nname = "sp"\nmethod = "wB97M-V def2-TZVP"\nnprocs = 16\n'
    config.write_text(config.read_text() + "\n" + steps)
    ledger = root / ".orca-hpc" / "ledger.json"
    before = ledger.read_bytes()
    (root / "w.xyz").write_text(WATER)
    said = cli(root, "submit", "--dry-run", str(root / "w.xyz"), expect=1).output.strip().splitlines()
    assert len(said) == 1 and "2 problems: " in said[0], said  # one line, every problem
    refused = said[0].split("2 problems: ", 1)[1].split("; fit_to_node = true in [overrides.slurm] scales")
    assert "step 'opt'" in refused[0] and "step 'sp'" in refused[1], refused
    assert "walltime 10:00:00 is longer than the partition's limit 04:00:00" in refused[0]
    assert "16 processes (%pal) but a node has 8 cores" in refused[1]
    flag = cli(root, "submit", "--dry-run", "--fit", str(root / "w.xyz"), expect=1).output
    assert "set fit_to_node = true in [overrides.slurm]" in flag and len(flag.strip().splitlines()) == 1
    assert ledger.read_bytes() == before
    config.write_text(
        config.read_text().replace("\n[overrides]\n", "\n[overrides.slurm]\nfit_to_node = true\n")
    )
    fitted = load_campaign(root)
    [first] = chain_mod.workflow_inputs(fitted, [root / "w.xyz"])
    assert first.plan.time_min == 240 and "--time 600 -> 240 min" in first.plan.corrections[0]["change"]
    assert not first.maxcore_given  # the site's memory rule: right-sizing may set it
    config.write_text(config.read_text().replace('name = "opt"\n', 'name = "opt"\nmaxcore = 3000\n'))
    [own] = chain_mod.workflow_inputs(load_campaign(root), [root / "w.xyz"])
    assert own.maxcore_given and own.plan.maxcore_mb == 3000  # the step's own: never lowered


def test_another_molecule_under_a_name_the_campaign_has_is_refused(campaign: Campaign) -> None:
    fake = FakeScheduler()
    [water, _two] = _molecules(campaign)
    submit(campaign, [water], scheduler=fake)
    other = campaign.root / "batch2" / "water.xyz"  # a second batch: another geometry, the same name
    other.parent.mkdir()
    other.write_text(WATER.replace("0.1178", "0.3000"))
    before = (campaign.root / ".orca-hpc" / "ledger.json").read_bytes()
    with pytest.raises(UserError) as info:
        submit(campaign, [other], scheduler=fake)
    [line] = str(info.value).splitlines()
    assert line.startswith(f"{other}: molecule 'water' conformer 1 is in this campaign already (j000001")
    assert (campaign.root / ".orca-hpc" / "ledger.json").read_bytes() == before
    assert submit(campaign, [water], scheduler=fake).skipped  # the same molecule again: skipped
    submit(campaign, [other], scheduler=fake, force=True)  # on purpose
    assert [j.name for j in _jobs(campaign)] == ["water.c1.opt", "water.c1.opt"]


def test_init_with_an_unknown_workflow_preset_is_refused(tmp_path: Path) -> None:
    result = cli(
        tmp_path, "init", str(tmp_path / "c"), "--site", "local-slurm", "--workflow", "opt-frq", expect=1
    )
    assert "unknown preset 'opt-frq'" in result.output and not (tmp_path / "c").exists()
    assert "orca-hpc.toml" not in result.output  # no file of that name was made: the option is named
    assert result.output.startswith("orca-hpc: error: --workflow: unknown preset")
    cli(tmp_path, "init", str(tmp_path / "d"), "--site", "local-slurm", "--workflow", "opt-freq-sp")
    flow = load_campaign(tmp_path / "d").workflow
    assert flow is not None and [s.name for s in flow.steps] == ["opt", "sp"]


def test_chain_advances_once_per_step_in_arrays(campaign: Campaign) -> None:
    fake = FakeScheduler()
    report = submit(campaign, _molecules(campaign), scheduler=fake)
    assert len(report.submitted) == 3 and len(fake.requests) == 1  # 3 conformers, one array
    first = _jobs(campaign)
    assert sorted(j.name for j in first) == ["two.c1.opt", "two.c2.opt", "water.c1.opt"]
    assert all(j.chain and j.chain["after"] is None and j.max_retries == 0 for j in first)
    for job in first:
        _finish(campaign, fake, job)
    reconcile(campaign, scheduler=fake)
    jobs = {j.name: j for j in _jobs(campaign)}
    sp = jobs["two.c2.sp"]
    assert sp.chain == {"molecule": "two", "conformer": 2, "step": "sp", "after": jobs["two.c2.opt"].id}
    assert len(fake.requests) == 2 and len(fake.requests[1].attempt_dirs) == 3  # the sp steps: one array
    assert fake.requests[1].nprocs == 2 and fake.requests[1].time_min == 30
    folder = campaign.root / sp.latest.dir
    text = (folder / "two.c2.sp.inp").read_text()
    assert "0.22220000" in text and "charge=0 mult=1" in text  # the final geometry, the comment ...
    assert (
        "MORead" in text
        and (folder / "prev.gbw").read_bytes() == b"orbitals of " + jobs["two.c2.opt"].id.encode()
    )
    # ... and nothing is made twice, however often reconcile runs.
    reconcile(campaign, scheduler=fake)
    for job in [j for j in _jobs(campaign) if j.state is not JobState.COMPLETED]:
        _finish(campaign, fake, job)
    reconcile(campaign, scheduler=fake)
    reconcile(campaign, scheduler=fake)
    done = _jobs(campaign)
    assert len(done) == 6 and {j.state for j in done} == {JobState.COMPLETED}
    assert len({(j.chain["molecule"], j.chain["conformer"], j.chain["step"]) for j in done if j.chain}) == 6


def test_orbitals_are_shared_not_copied_and_a_planted_link_is_never_followed(campaign: Campaign) -> None:
    """The .gbw handed over is the predecessor's own file under a second name (a hard link: a large
    file is neither copied nor read to name the step), in the runner's mode; a symbolic link put in
    its place stops that molecule with a reason instead of handing over what it points at."""
    fake = FakeScheduler()
    submit(campaign, _molecules(campaign), scheduler=fake)
    first = {j.name: j for j in _jobs(campaign)}
    for job in first.values():
        _finish(campaign, fake, job)
        (campaign.root / job.latest.dir / f"{job.name}.gbw").chmod(0o640)  # as the runner leaves it
    secret = campaign.root / "secret.gbw"
    secret.write_bytes(b"not the step's orbitals")
    planted = campaign.root / first["two.c2.opt"].latest.dir / "two.c2.opt.gbw"
    planted.unlink()
    planted.symlink_to(secret)
    other = campaign.root / "other.xyz"  # and a final geometry that is a link to another molecule's
    other.write_text("1\nnot this molecule\nXe 0 0 0\n")
    final = campaign.root / first["two.c1.opt"].latest.dir / "two.c1.opt.xyz"
    final.unlink()
    final.symlink_to(other)
    reconcile(campaign, scheduler=fake)
    jobs = {j.name: j for j in _jobs(campaign)}
    src = campaign.root / first["water.c1.opt"].latest.dir / "water.c1.opt.gbw"
    handed = campaign.root / jobs["water.c1.sp"].latest.dir / "prev.gbw"
    assert handed.read_bytes() == src.read_bytes() and handed.stat().st_ino == src.stat().st_ino
    assert handed.stat().st_mode & 0o777 == 0o640
    assert "two.c2.sp" not in jobs and "is missing" in jobs["two.c2.opt"].extra["stop"]
    assert "two.c1.sp" not in jobs and "symbolic link" in jobs["two.c1.opt"].extra["stop"]
    assert all(b"not the step" not in f.read_bytes() for f in campaign.root.glob("jobs/*/attempt-*/prev.gbw"))


def test_gate_and_permanent_failure_stop_one_molecule_one_digest_line(campaign: Campaign) -> None:
    fake = FakeScheduler()
    submit(campaign, _molecules(campaign), scheduler=fake)
    jobs = {j.name: j for j in _jobs(campaign)}
    _finish(campaign, fake, jobs["water.c1.opt"])
    _finish(campaign, fake, jobs["two.c1.opt"], n_imag=1)  # the gate stops conformer 1 ...
    _finish(campaign, fake, jobs["two.c2.opt"], outcome="input_error")  # ... a failure conformer 2
    reconcile(campaign, scheduler=fake)
    jobs = {j.name: j for j in _jobs(campaign)}
    assert set(jobs) == {"water.c1.opt", "water.c1.sp", "two.c1.opt", "two.c2.opt"}
    assert "imaginary" in jobs["two.c1.opt"].extra["stop"]
    # Not COMPLETED: a step whose result its gate refuses is not a result anything may build on.
    assert jobs["two.c1.opt"].state is JobState.PERMANENT_FAILED
    assert jobs["two.c2.opt"].state is JobState.PERMANENT_FAILED
    [digest] = campaign.ledger().snapshot().outbox
    text = json.dumps(digest)
    assert text.count("molecule two") == 1 and "water" not in text  # one line for the molecule
    # `results --by molecule`: the gated conformer is failed for good (not "unfinished"), unweighed.
    _water, two = molecule_tables(runs_of(_jobs(campaign), campaign.root))
    gated, failed = two.conformers
    assert (gated.status, gated.boltzmann_weight) == ("failed", None)
    assert gated.note is not None and "imaginary" in gated.note and jobs["two.c1.opt"].id in gated.note
    assert failed.status == "failed" and two.best_conformer is None


def test_a_gate_stopped_step_is_retried_after_a_fix_and_the_chain_goes_on(campaign: Campaign) -> None:
    fake = FakeScheduler()
    submit(campaign, _molecules(campaign)[:1], scheduler=fake)
    [opt] = _jobs(campaign)
    _finish(campaign, fake, opt, n_imag=1)
    reconcile(campaign, scheduler=fake)
    [opt] = _jobs(campaign)
    assert opt.state is JobState.PERMANENT_FAILED and "gate no-imaginary" in opt.extra["stop"]
    [digest] = campaign.ledger().snapshot().outbox
    assert "outcome: gate" in digest["body"] and "success" not in digest["body"]  # never called a success
    # The chemist tightens the optimisation in orca-hpc.toml and retries the molecule.
    config = campaign.config_path
    config.write_text(config.read_text().replace("r2SCAN-3c Opt Freq", "r2SCAN-3c TightOpt Freq"))
    fixed = load_campaign(campaign.root)
    retried = retry_selected(fixed, Selector(molecule="water"), scheduler=fake)
    assert retried.done == [opt.id] and retried.edited == [opt.id]
    again = fixed.ledger().snapshot().get(opt.id)
    assert len(again.attempts) == 2 and "stop" not in again.extra  # the gate decides afresh
    assert "TightOpt" in (fixed.root / again.latest.dir / "water.c1.opt.inp").read_text()
    _finish(fixed, fake, again)
    reconcile(fixed, scheduler=fake)
    states = {j.name: j.state for j in _jobs(fixed)}
    assert states == {"water.c1.opt": JobState.COMPLETED, "water.c1.sp": JobState.PENDING}


def test_crash_in_the_hook_loses_no_step_and_makes_none_twice(
    campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeScheduler()
    submit(campaign, _molecules(campaign)[:1], scheduler=fake)
    [opt] = _jobs(campaign)
    _finish(campaign, fake, opt)
    real = chain_mod.advance

    def crash_after_recording(*args: Any) -> Any:
        real(*args)  # the successor is made in the transaction ...
        raise KeyboardInterrupt  # ... which dies before it is saved

    monkeypatch.setattr(chain_mod, "advance", crash_after_recording)
    with pytest.raises(KeyboardInterrupt):
        reconcile(campaign, scheduler=fake)
    assert [j.state for j in _jobs(campaign)] == [JobState.PENDING]  # neither completion nor successor
    monkeypatch.setattr(chain_mod, "advance", real)
    reconcile(campaign, scheduler=fake)
    reconcile(campaign, scheduler=fake)
    jobs = _jobs(campaign)
    assert [(j.name, j.state) for j in jobs] == [
        ("water.c1.opt", JobState.COMPLETED),
        ("water.c1.sp", JobState.PENDING),
    ]


def test_cancel_one_molecule_and_retry_after_a_fixed_step(campaign: Campaign) -> None:
    fake = FakeScheduler()
    submit(campaign, _molecules(campaign), scheduler=fake)
    with pytest.raises(UserError, match="did you mean 'water'"):
        cancel_selected(campaign, Selector(molecule="watr"), scheduler=fake)
    report = cancel_selected(campaign, Selector(molecule="two"), scheduler=fake)
    assert len(report.done) == 2
    jobs = {j.name: j for j in _jobs(campaign)}
    assert jobs["two.c1.opt"].state is JobState.CANCELLED and jobs["water.c1.opt"].state is JobState.PENDING
    _finish(campaign, fake, jobs["water.c1.opt"], outcome="input_error")
    reconcile(campaign, scheduler=fake)
    # A person fixes the step in orca-hpc.toml; retry makes its input again from it.
    config = campaign.config_path
    config.write_text(config.read_text().replace("r2SCAN-3c Opt Freq", "r2SCAN-3c TightSCF Opt Freq"))
    fixed = load_campaign(campaign.root)
    retried = retry_selected(fixed, Selector(molecule="water"), scheduler=fake)
    assert retried.edited == [jobs["water.c1.opt"].id]
    job = fixed.ledger().snapshot().get(jobs["water.c1.opt"].id)
    assert "TightSCF" in (fixed.root / job.latest.dir / "water.c1.opt.inp").read_text()
    _finish(fixed, fake, job)
    reconcile(fixed, scheduler=fake)
    names = {j.name: j.state for j in _jobs(fixed)}
    assert names["water.c1.sp"] is JobState.PENDING and "two.c1.sp" not in names


def test_chain_is_stored_compactly_validated_and_optional() -> None:
    from orca_hpc.ledger.validate import job_problems

    job = Job("j000002", "w.c1.sp", "/w.xyz", "0" * 64, "s", JobState.CREATED, 3, "t", "t", "jobs/j000002")
    plain = job.to_dict()
    assert "ch" not in plain and Job.from_dict(job.id, plain).chain is None  # old ledgers stay valid
    job.chain = chain_mod.chain_of("w", 1, "sp", "j000001")
    stored = job.to_dict()
    assert stored["ch"] == {"mol": "w", "conf": 1, "step": "sp", "after": "j000001"}
    assert Job.from_dict(job.id, stored).chain == job.chain and job_problems(job.id, stored) == []
    first = {**stored, "ch": {"mol": "w", "conf": 1, "step": "opt"}}
    assert Job.from_dict(job.id, first).chain == {
        "molecule": "w",
        "conformer": 1,
        "step": "opt",
        "after": None,
    }
    bad = {**stored, "ch": {"mol": "w", "conf": 0, "step": "sp", "after": "../x", "extra": 1}}
    problems = " ".join(job_problems(job.id, bad))
    assert "ch.conf" in problems and "ch.after" in problems and "unknown key 'extra'" in problems


# A step whose template runs two jobs: the first optimises (ORCA writes <input>.xyz), the second
# re-optimises tighter under its own %base: its refined.xyz is the step's final geometry.
ATOMS = "{% for a in molecule.atoms %}{{ a.symbol }} {{ a.x }} {{ a.y }} {{ a.z }}\n{% endfor %}"
TWO_JOBS = (
    "# {{ comment }}\n! {{ method }}\n%pal nprocs {{ nprocs }} end\n%maxcore {{ maxcore }}\n"
    f"* xyz {{{{ charge }}}} {{{{ mult }}}}\n{ATOMS}*\n$new_job\n! {{{{ method }}}} TightOpt\n"
    f'%base "refined"\n* xyz {{{{ charge }}}} {{{{ mult }}}}\n{ATOMS}*\n'
)


def _with_template(tmp_path: Path, template: str) -> Path:
    init_campaign(tmp_path / "camp", "local-slurm")
    config = tmp_path / "camp" / "orca-hpc.toml"
    steps = STEPS.replace("max_retries = 0", f"max_retries = 0\ntemplate = '''\n{template}'''")
    config.write_text(config.read_text() + steps)
    return tmp_path / "camp"


def test_the_next_step_starts_from_the_last_jobs_files_under_its_base(tmp_path: Path) -> None:
    """Before, the next step read <input>.xyz and <input>.gbw whatever the step's template named its
    files: a multi-job step handed over its FIRST job's intermediate geometry and orbitals."""
    campaign = load_campaign(_with_template(tmp_path, TWO_JOBS))
    fake = FakeScheduler()
    submit(campaign, _molecules(campaign)[:1], scheduler=fake)
    [opt] = _jobs(campaign)
    folder = campaign.root / opt.latest.dir
    assert '%base "refined"' in (folder / "water.c1.opt.inp").read_text()
    _finish(campaign, fake, opt)  # water.c1.opt.xyz/.gbw: what the first job left
    (folder / "refined.xyz").write_text("3\nrefined\nO 0 0 0.3333\n" + WATER.split("\n", 3)[3])
    (folder / "refined.gbw").write_bytes(b"final orbitals")
    reconcile(campaign, scheduler=fake)
    jobs = {j.name: j for j in _jobs(campaign)}
    sp = campaign.root / jobs["water.c1.sp"].latest.dir
    text = (sp / "water.c1.sp.inp").read_text()
    assert "0.33330000" in text and "0.22220000" not in text, text
    assert (sp / "prev.gbw").read_bytes() == b"final orbitals"


def test_a_multi_job_step_whose_last_job_has_no_base_of_its_own_is_refused(tmp_path: Path) -> None:
    inherited = TWO_JOBS.replace('%base "refined"\n', "").replace("%pal", '%base "first"\n%pal', 1)
    assert '%base "first"' in inherited and "refined" not in inherited
    with pytest.raises(UserError, match=r"step 1 \('opt'\): key 'template': its last job"):
        load_campaign(_with_template(tmp_path, inherited))


def test_retry_of_a_first_step_remakes_the_same_conformer_with_the_workflows_settings(
    campaign: Campaign,
) -> None:
    """Before, `retry` remade a first step's conformers with the default settings, not the workflow's
    (rmsd, energy window): conformer 2 of a file whose frames those defaults merge was not found, and
    the fixed method line in orca-hpc.toml was silently not what ran (or another frame's geometry)."""
    fake = FakeScheduler()
    submit(campaign, _molecules(campaign), scheduler=fake)
    jobs = {j.name: j for j in _jobs(campaign)}
    second = jobs["two.c2.opt"]
    before = (campaign.root / second.latest.dir / "two.c2.opt.inp").read_text()
    assert "0.13000000" in before  # conformer 2: the second frame
    _finish(campaign, fake, second, outcome="input_error")
    reconcile(campaign, scheduler=fake)
    config = campaign.config_path
    config.write_text(config.read_text().replace("r2SCAN-3c Opt Freq", "r2SCAN-3c TightSCF Opt Freq"))
    fixed = load_campaign(campaign.root)
    retried = retry_selected(fixed, Selector(refs=(second.id,)), scheduler=fake)
    assert retried.edited == [second.id]
    again = fixed.ledger().snapshot().get(second.id)
    text = (fixed.root / again.latest.dir / "two.c2.opt.inp").read_text()
    assert "TightSCF" in text and "0.13000000" in text, text


def _water_past_its_first_step(
    tmp_path: Path, steps: str, config_edit: tuple[str, str] = ("", "")
) -> tuple[Campaign, FakeScheduler]:
    """A campaign with these workflow ``steps`` (its orca-hpc.toml edited by ``config_edit``: old, new)
    whose water molecule finished its first step, and the reconcile after it has run."""
    init_campaign(tmp_path / "camp", "local-slurm")
    config = tmp_path / "camp" / "orca-hpc.toml"
    config.write_text(config.read_text().replace(*config_edit) + steps)
    campaign = load_campaign(tmp_path / "camp")
    fake = FakeScheduler()
    submit(campaign, _molecules(campaign)[:1], scheduler=fake)
    [opt] = _jobs(campaign)
    _finish(campaign, fake, opt)
    reconcile(campaign, scheduler=fake)
    return campaign, fake


def test_orbitals_handed_to_a_step_that_says_moread_itself_give_one_moread(tmp_path: Path) -> None:
    """ORCA refuses a keyword given twice (UNRECOGNIZED OR DUPLICATED KEYWORD(S)): a step whose own
    method line says MORead, after a step that hands over orbitals, got `MORead MORead` before."""
    campaign = _water_past_its_first_step(
        tmp_path, STEPS.replace("wB97M-V def2-TZVP", "wB97M-V def2-TZVP moread")
    )[0]
    sp = next(j for j in _jobs(campaign) if j.name == "water.c1.sp")
    text = (campaign.root / sp.latest.dir / "water.c1.sp.inp").read_text()
    [keywords] = [line for line in text.splitlines() if line.startswith("!")]
    assert keywords.lower().split().count("moread") == 1, keywords
    assert '%moinp "prev.gbw"' in text


@pytest.mark.parametrize(
    ("first", "second", "said"),
    [
        ("XTB2 Opt", "r2SCAN-3c Opt Freq", "its semi-empirical orbitals (XTB2 Opt) are no guess for"),
        ("r2SCAN-3c Opt Freq", "GFN2-xTB", "the next step 'sp' is semi-empirical (GFN2-xTB)"),
    ],
)
def test_orbitals_to_or_from_a_semi_empirical_step_are_refused(
    tmp_path: Path, first: str, second: str, said: str
) -> None:
    """Before, an xTB step's .gbw was MORead into a DFT step (or a DFT .gbw into an xTB step) as if
    it were a guess: useless at best; now the workflow is refused when it loads, naming the step."""
    init_campaign(tmp_path / "camp", "local-slurm")
    config = tmp_path / "camp" / "orca-hpc.toml"
    steps = STEPS.replace("r2SCAN-3c Opt Freq", first).replace("wB97M-V def2-TZVP", second)
    config.write_text(config.read_text() + steps.replace('gate = "no-imaginary"\n', ""))
    with pytest.raises(UserError, match="step 'opt': key 'hand_over': 'orbitals'") as info:
        load_campaign(tmp_path / "camp")
    assert said in str(info.value) and len(str(info.value).splitlines()) == 1
    plain = steps.replace('hand_over = ["orbitals"]\n', "").replace('gate = "no-imaginary"\n', "")
    config.write_text(config.read_text().split("\n[workflow]")[0] + plain)
    assert load_campaign(tmp_path / "camp").workflow is not None  # without the hand-over: fine


def _stopped_by_a_rename(campaign: Campaign, fake: FakeScheduler, n_imag: int = 0) -> None:
    """Water's first step renamed in orca-hpc.toml while it ran, finished (with ``n_imag`` imaginary
    modes) and reconciled under the new name, then the edit undone: its chain stopped at COMPLETED."""
    submit(campaign, _molecules(campaign)[:1], scheduler=fake)
    [opt] = _jobs(campaign)
    original = campaign.config_path.read_text()
    campaign.config_path.write_text(original.replace('name = "opt"', 'name = "optimise"'))
    renamed = load_campaign(campaign.root)
    _finish(renamed, fake, opt, n_imag=n_imag)
    reconcile(renamed, scheduler=fake)
    campaign.config_path.write_text(original)


def test_a_chain_stopped_by_a_workflow_edit_goes_on_after_retry_and_only_once(campaign: Campaign) -> None:
    """A step renamed in orca-hpc.toml while its jobs ran stops their chains at COMPLETED. Before,
    nothing could resume them (`retry` takes failed and cancelled jobs only): the molecule stayed
    stopped after the edit was undone. Now `retry` makes the next step (the step is not run again)."""
    fake = FakeScheduler()
    _stopped_by_a_rename(campaign, fake)
    [opt] = _jobs(campaign)
    assert opt.state is JobState.COMPLETED and "no longer in the campaign's workflow" in opt.extra["stop"]
    fixed = load_campaign(campaign.root)  # the edit undone
    report = retry_selected(fixed, Selector(molecule="water"), scheduler=fake)
    jobs = {j.name: j for j in _jobs(fixed)}
    assert set(jobs) == {"water.c1.opt", "water.c1.sp"} and report.done == [jobs["water.c1.sp"].id]
    assert jobs["water.c1.sp"].state is JobState.PENDING and jobs["water.c1.sp"].chain["after"] == opt.id
    assert len(jobs["water.c1.opt"].attempts) == 1 and "stop" not in jobs["water.c1.opt"].extra  # not rerun
    assert "0.22220000" in (fixed.root / jobs["water.c1.sp"].latest.dir / "water.c1.sp.inp").read_text()
    again = retry_selected(fixed, Selector(molecule="water"), scheduler=fake)
    assert again.done == [] and len(_jobs(fixed)) == 2  # never twice


def test_a_stopped_chain_is_not_resumed_past_a_gate_it_never_passed(campaign: Campaign) -> None:
    """The step was renamed while it ran, so its no-imaginary gate was not checked at completion:
    `retry` checks it before it makes the next step, and builds nothing on a saddle point."""
    fake = FakeScheduler()
    _stopped_by_a_rename(campaign, fake, n_imag=1)
    [opt] = _jobs(campaign)
    fixed = load_campaign(campaign.root)
    with pytest.raises(UserError, match="gate no-imaginary: 1 imaginary mode"):
        retry_selected(fixed, Selector(refs=(opt.id,)), scheduler=fake)
    assert [j.name for j in _jobs(fixed)] == ["water.c1.opt"] and _jobs(fixed)[0].extra["stop"]


def test_a_later_step_over_the_node_is_fitted_not_stopped_under_fit_to_node(tmp_path: Path) -> None:
    """fit_to_node: the site scales every step to the node. Before, a later step with its own maxcore
    and more processes than a node has was refused by the memory rule before it was fitted (16 x 1000
    MB / 0.8 > max_mem_mb 16000): every molecule stopped at that step, hours after submit."""
    steps = STEPS.replace("nprocs = 2", "nprocs = 16\nmaxcore = 1000")
    fit = ("\n[overrides]\n", "\n[overrides.slurm]\nfit_to_node = true\n")
    campaign, fake = _water_past_its_first_step(tmp_path, steps, fit)
    jobs = {j.name: j for j in _jobs(campaign)}
    assert "stop" not in jobs["water.c1.opt"].extra, jobs["water.c1.opt"].extra
    assert fake.requests[-1].nprocs == 8  # fitted to the node's 8 cores


def test_retry_of_a_first_step_keeps_its_conformer_when_the_conformer_settings_changed(
    campaign: Campaign,
) -> None:
    """The conformer a first step ran is the one its first attempt recorded: after `rmsd` changed in
    orca-hpc.toml (which merges the two frames of two.xyz), `retry` still runs conformer 2's geometry,
    with the fixed method line (before: conformer 2 was not found, and the old input ran unchanged)."""
    fake = FakeScheduler()
    submit(campaign, _molecules(campaign), scheduler=fake)
    second = next(j for j in _jobs(campaign) if j.name == "two.c2.opt")
    _finish(campaign, fake, second, outcome="input_error")
    reconcile(campaign, scheduler=fake)
    config = campaign.config_path
    text = config.read_text().replace("r2SCAN-3c Opt Freq", "r2SCAN-3c TightSCF Opt Freq")
    config.write_text(text.replace("rmsd = 0.0", "rmsd = 0.5"))
    fixed = load_campaign(campaign.root)
    assert retry_selected(fixed, Selector(refs=(second.id,)), scheduler=fake).edited == [second.id]
    again = fixed.ledger().snapshot().get(second.id)
    retried = (fixed.root / again.latest.dir / "two.c2.opt.inp").read_text()
    first = (fixed.root / again.attempts[0].dir / "two.c2.opt.inp").read_text()
    assert "TightSCF" in retried and "0.13000000" in retried, retried
    assert retried.splitlines()[0] == first.splitlines()[0] and "* xyz 0 1" in retried  # comment, q, m


def test_retry_of_a_step_after_its_predecessor_was_given_an_input_runs_its_own_step(
    campaign: Campaign,
) -> None:
    """`retry --input fixed.inp` of a step made the step's input_path that .inp, and its successor
    inherited it: a later `retry` of the successor took the predecessor's .inp for its own edited
    input and ran the optimisation again under the single point's name."""
    fake = FakeScheduler()
    submit(campaign, _molecules(campaign)[:1], scheduler=fake)
    [opt] = _jobs(campaign)
    _finish(campaign, fake, opt, outcome="input_error")
    reconcile(campaign, scheduler=fake)
    fixed_inp = campaign.root / "fixed.inp"
    fixed_inp.write_text((campaign.root / opt.latest.dir / "water.c1.opt.inp").read_text())
    retry_selected(campaign, Selector(refs=(opt.id,)), scheduler=fake, replacement=fixed_inp)
    _finish(campaign, fake, campaign.ledger().snapshot().get(opt.id))
    reconcile(campaign, scheduler=fake)
    sp = next(j for j in _jobs(campaign) if j.name == "water.c1.sp")
    _finish(campaign, fake, sp, outcome="input_error")
    reconcile(campaign, scheduler=fake)
    retry_selected(campaign, Selector(refs=(sp.id,)), scheduler=fake)
    again = campaign.ledger().snapshot().get(sp.id)
    folder = campaign.root / again.latest.dir
    text = next(folder.glob("*.inp")).read_text()
    assert "wB97M-V" in text and "Opt" not in text, text
    assert (folder / "prev.gbw").is_file()
