"""The chemist's loop through the real CLI strings: finding the campaign, selecting jobs, honest output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from e2e import cli, cli_proc, ledger_bytes, new_campaign, orca_input, status, write_inputs

from orca_hpc.cli import main
from orca_hpc.config.campaign import Campaign, init_campaign, load_campaign
from orca_hpc.controller.actions import cancel_selected, retry_selected
from orca_hpc.controller.select import Selector, select_jobs
from orca_hpc.controller.submit import Dispatcher, prepare_inputs, submit
from orca_hpc.errors import UserError
from orca_hpc.ledger.states import JobState
from orca_hpc.scheduler.fake import FakeScheduler


def _run(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == expect, f"exit {result.exit_code}: {result.output}"
    return result.output


def test_commands_find_the_campaign_from_a_sub_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = new_campaign(tmp_path)
    deep = camp / "inputs" / "batch1"
    deep.mkdir(parents=True)
    (deep / "h2.inp").write_text(orca_input())
    monkeypatch.chdir(deep)
    # No -C: the campaign is the nearest folder up with orca-hpc.toml; relative inputs stay relative
    # to where the command was typed.
    assert json.loads(_run("status", "--no-reconcile", "--json"))["jobs"] == []
    assert _run("render", "h2.inp").startswith("#!/bin/bash")
    # -C into a sub-folder works the same way.
    monkeypatch.chdir(tmp_path)
    assert json.loads(_run("-C", str(deep), "status", "--no-reconcile", "--json"))["jobs"] == []
    # Outside any campaign: one clear line, exit 1.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    message = _run("-C", str(outside), "status", "--no-reconcile", expect=1)
    assert "not an orca-hpc campaign" in message and "any parent folder" in message
    # init still makes a new campaign where it is told, even inside another one.
    _run("-C", str(deep), "init", "nested", "--site", "local-slurm")
    assert (deep / "nested" / "orca-hpc.toml").is_file()
    assert cli(camp, "status", "--no-reconcile").output.strip().endswith("no jobs")


# ---------------------------------------------------------------- one selector everywhere

INPUT = "! HF def2-SVP\n* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n"


def _fake_campaign(tmp_path: Path, names: list[str]) -> tuple[Campaign, FakeScheduler, list[str]]:
    """A campaign with one submitted job per name (on the fake scheduler, so nothing runs)."""
    campaign = init_campaign(tmp_path / "camp", "local-slurm")
    fake = FakeScheduler()
    paths = []
    for i, name in enumerate(names):
        folder = tmp_path / "in" / str(i)
        folder.mkdir(parents=True)
        (folder / f"{name}.inp").write_text(INPUT + f"# {i}\n")
        paths.append(folder / f"{name}.inp")
    report = submit(campaign, paths, scheduler=fake)
    return campaign, fake, [job_id for job_id, _n, _s in report.submitted]


def test_cancelling_50_pending_jobs_by_state_is_one_scheduler_call(tmp_path: Path) -> None:
    campaign, fake, ids = _fake_campaign(tmp_path, [f"conf{i}" for i in range(50)])
    # One job already finished: a filter skips it, it is not an error.
    done = ids[0]
    fake.start(fake_id(campaign, done))
    with campaign.ledger().transaction() as txn:
        job = txn.get(done)
        for state in (JobState.RUNNING, JobState.COMPLETED):
            txn.set_state(job, state)
    cancels_before = fake.calls["scancel"]
    report = cancel_selected(campaign, Selector(states=("PENDING",)), scheduler=fake)
    assert sorted(report.done) == sorted(ids[1:])
    assert fake.calls["scancel"] - cancels_before == 1  # one call for all 49
    assert len(fake.cancelled) == 49
    view = campaign.ledger().snapshot()
    assert all(view.get(i).state is JobState.CANCELLED for i in ids[1:])
    # --all: the finished job is skipped with its state; nothing left to cancel, no scheduler call.
    again = cancel_selected(campaign, Selector(everything=True), scheduler=fake)
    assert again.done == [] and (done, "COMPLETED") in again.skipped
    assert fake.calls["scancel"] - cancels_before == 1
    # Retry by glob: one transaction, one sbatch for all of them, the COMPLETED one skipped.
    sbatch_before = fake.calls["sbatch"]
    retried = retry_selected(campaign, Selector(name_glob="conf*"), scheduler=fake)
    assert len(retried.submitted) == 49 and retried.skipped == [(done, "COMPLETED")]
    assert fake.calls["sbatch"] - sbatch_before == 1


def fake_id(campaign: Campaign, job_id: str) -> str:
    sid = campaign.ledger().snapshot().get(job_id).latest.slurm_id
    assert sid is not None
    return sid


def test_selector_names_ids_ambiguity_and_did_you_mean(tmp_path: Path) -> None:
    campaign, fake, ids = _fake_campaign(tmp_path, ["water", "water", "benzene"])
    view = campaign.ledger().snapshot()
    # A name shared by two jobs: both for commands that show, an error listing them for actions.
    assert select_jobs(view, Selector(refs=("water",))).ids == ids[:2]
    with pytest.raises(UserError, match=rf"2 jobs are named 'water': {ids[0]} \(PENDING\), {ids[1]}"):
        select_jobs(view, Selector(refs=("water",)), many_per_name=False)
    assert select_jobs(view, Selector(refs=(ids[2], "benzene"))).ids == [ids[2]]  # each job once
    with pytest.raises(UserError, match=r"no job 'benzen' .*did you mean 'benzene'"):
        select_jobs(view, Selector(refs=("benzen",)))
    with pytest.raises(UserError, match="no job 'j000099'"):
        select_jobs(view, Selector(refs=("j000099",)))
    # Filters narrow references; --all with a glob.
    assert select_jobs(view, Selector(refs=("water",), states=("COMPLETED",))).ids == []
    assert select_jobs(view, Selector(everything=True, name_glob="b*")).ids == [ids[2]]
    assert select_jobs(view, Selector()).ids == []
    # A job named one by one in the wrong state is refused, each such job listed; nothing changes.
    cancel_selected(campaign, Selector(refs=(ids[2],)), scheduler=fake)
    before = (campaign.state_dir / "ledger.json").read_bytes()
    with pytest.raises(UserError, match=f"{ids[2]} is CANCELLED already"):
        cancel_selected(campaign, Selector(refs=(ids[0], ids[2])), scheduler=fake)
    assert (campaign.state_dir / "ledger.json").read_bytes() == before
    with pytest.raises(UserError, match=f"{ids[0]} is PENDING: only PERMANENT_FAILED or CANCELLED"):
        retry_selected(campaign, Selector(refs=(ids[0],)), scheduler=fake)


def test_selector_through_the_cli_on_the_local_site(tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[overrides.orca]\npath = "orca-emulator"\n')
    slow = orca_input(directive="sleep=300")
    paths = write_inputs(tmp_path / "a", {"slow.inp": slow})
    paths += write_inputs(tmp_path / "b", {"slow.inp": slow + "# b\n", "other.inp": slow + "# o\n"})
    cli(camp, "submit", *paths)  # array_parallelism 2: two start, one waits
    ids = [j["id"] for j in status(camp)["jobs"]]
    try:
        ambiguous = cli(camp, "cancel", "slow", expect=1).output
        assert f"2 jobs are named 'slow': {ids[0]}" in ambiguous and ids[1] in ambiguous
        assert "did you mean 'other'" in cli(camp, "cancel", "othr", expect=1).output
        assert "name the jobs" in cli(camp, "cancel", expect=2).output
        shown = json.loads(cli(camp, "show", "--no-reconcile", "--json", "slow").stdout)["jobs"]
        assert [j["id"] for j in shown] == ids[:2]
        assert cli(camp, "cancel", "--name", "sl*").output.strip().endswith("cancelled 2 job(s)")
        out = cli(camp, "cancel", "--all").output
        assert out.strip().endswith("cancelled 1 job(s), skipped 2 (2 CANCELLED)")
        reconciled = json.loads(cli(camp, "reconcile", "--json").stdout)
        assert (reconciled["schema"], reconciled["kind"]) == (1, "reconcile")
        after = status(camp, reconcile=True)
        assert after["counts"] == {"CANCELLED": 3}
        retried = cli(camp, "retry", "other").output
        assert "retrying 1 job(s): submitted 1 in 1 scheduler call(s)" in retried
        assert [j["id"] for j in status(camp)["jobs"] if j["state"] != "CANCELLED"] == [ids[2]]
        cancelled = json.loads(
            cli(camp, "results", "--json", "--no-reconcile", "--state", "CANCELLED").output
        )
        assert (cancelled["schema"], cancelled["kind"]) == (1, "results")
        assert [j["id"] for j in cancelled["jobs"]] == ids[:2]
    finally:
        cli(camp, "cancel", "--state", "PENDING", "--state", "RUNNING", "--state", "CREATED")
    assert status(camp)["counts"] == {"CANCELLED": 3}


# ---------------------------------------------------------------- honest output

H2 = "2\n{comment}\nH 0 0 0\nH 0 0 {d}\n"


def _presets_campaign(tmp_path: Path) -> Path:
    camp = new_campaign(tmp_path, overrides='\n[presets]\nopt = "r2SCAN-3c Opt"\n')
    return camp


def test_every_problem_of_a_submit_is_listed_on_one_line(tmp_path: Path) -> None:
    camp = _presets_campaign(tmp_path)
    before = ledger_bytes(camp)
    (tmp_path / "notorca.inp").write_text("hello world\n")
    (tmp_path / "ok.inp").write_text(orca_input())
    (tmp_path / "h2.xyz").write_text(H2.format(comment="h2", d=0.74))
    (tmp_path / "empty").mkdir()
    result = cli(
        camp,
        "submit",
        str(tmp_path / "missing.inp"),
        str(tmp_path / "ok.inp"),
        str(tmp_path / "notorca.inp"),
        str(tmp_path / "h2.xyz"),  # no --method
        str(tmp_path / "empty"),
        str(tmp_path / "nothing-*.inp"),
        expect=1,
    )
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("orca-hpc: error: 5 problems, nothing was submitted")
    for problem in ("missing.inp: no such file", "notorca.inp:", "h2.xyz: an .xyz file needs --method"):
        assert problem in lines[0]
    assert "empty: folder has no .inp or .xyz file" in lines[0]
    assert "nothing-*.inp: no file matches this pattern" in lines[0]
    assert "ok.inp" not in lines[0]
    assert ledger_bytes(camp) == before


def test_preset_typo_is_refused_with_did_you_mean_and_method_on_inp_warned(tmp_path: Path) -> None:
    camp = _presets_campaign(tmp_path)
    xyz = tmp_path / "h2.xyz"
    xyz.write_text(H2.format(comment="h2", d=0.74))
    (tmp_path / "water.inp").write_text(orca_input())
    typo = cli(camp, "render", "--method", "otp", str(xyz), expect=1).output
    assert "'otp' is not a preset" in typo and "did you mean 'opt'?" in typo
    assert len(typo.strip().splitlines()) == 1
    # The escape hatch: a one-word method line that happens to look like a preset's name.
    made = prepare_inputs(load_campaign(camp), [xyz], method="! OPT")[0].plan.input_text
    assert "! OPT" in made
    # A real method line and the campaign's presets pass untouched.
    assert prepare_inputs(load_campaign(camp), [xyz], method="B3LYP def2-SVP")[0].name == "h2"
    mixed = cli(camp, "render", "--method", "opt", str(xyz), str(tmp_path / "water.inp"))
    assert "--method applies to .xyz inputs only: 1 .inp file(s) keep their own method line" in mixed.stderr
    assert mixed.stdout.startswith("#!/bin/bash")


def test_multi_frame_xyz_is_one_job_per_frame(tmp_path: Path) -> None:
    camp = _presets_campaign(tmp_path)
    frames = tmp_path / "conf.xyz"
    frames.write_text("".join(H2.format(comment=f"c{i}", d=0.7 + 0.01 * i) for i in range(3)))
    jobs = prepare_inputs(load_campaign(camp), [frames], method="opt")
    assert [j.name for j in jobs] == ["conf-1", "conf-2", "conf-3"]
    assert len({j.sha for j in jobs}) == 3 and "0.72000000" in jobs[2].plan.input_text
    # A frame ORCA would refuse is named by its number.
    frames.write_text(H2.format(comment="ok", d=0.74) + "1\nodd\nH 0 0 0\n")
    bad = cli(camp, "render", "--method", "opt", str(frames), expect=1).output
    assert "conf.xyz: frame 2: H with charge 0, multiplicity 1" in bad


def test_folders_globs_and_from_file_on_the_local_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[overrides.orca]\npath = "orca-emulator"\n')
    inputs = tmp_path / "inputs"
    write_inputs(inputs, {"a.inp": orca_input(extra="# a\n"), "b.inp": orca_input(extra="# b\n")})
    (inputs / "notes.txt").write_text("not an input\n")
    more = tmp_path / "more"
    write_inputs(more, {"c.inp": orca_input(extra="# c\n"), "d.inp": orca_input(extra="# d\n")})
    listing = tmp_path / "list.txt"
    listing.write_text("# made by find\nmore/c.inp\n\n")
    monkeypatch.chdir(tmp_path)
    out = json.loads(cli(camp, "submit", "--json", "inputs", "more/d*.inp", "--from-file", "list.txt").stdout)
    assert (out["schema"], out["kind"]) == (1, "submit")
    assert len(out["submitted"]) + out["waiting"] == 4  # notes.txt is not an input
    assert sorted(j["name"] for j in status(camp)["jobs"]) == ["a", "b", "c", "d"]
    (tmp_path / "empty.txt").write_text("# nothing yet\n")
    assert "no input file" in cli(camp, "submit", "--from-file", "empty.txt", expect=1).output
    assert "cannot read the list" in cli(camp, "submit", "--from-file", "gone.txt", expect=1).output


def test_long_names_are_shortened_with_an_ellipsis(tmp_path: Path) -> None:
    campaign, _fake, _ids = _fake_campaign(tmp_path, ["a" * 40, "short"])
    table = cli(campaign.root, "status", "--no-reconcile").output
    assert "a" * 31 + "\u2026" in table and "a" * 32 not in table
    assert (
        json.loads(cli(campaign.root, "status", "--json", "--no-reconcile").stdout)["jobs"][0]["name"]
        == "a" * 40
    )


def test_ctrl_c_exits_130_saying_what_was_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    camp = new_campaign(tmp_path)
    paths = write_inputs(tmp_path / "in", {"a.inp": orca_input(extra="# a\n"), "b.inp": orca_input()})

    def interrupted(*_args: object, **_kw: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the jobs were recorded, before sbatch

    monkeypatch.setattr(Dispatcher, "dispatch", interrupted)
    result = cli(camp, "submit", *paths, expect=130)
    assert "interrupted; the ledger keeps every change saved before the interruption" in result.stderr
    assert "active jobs: CREATED 2" in result.stderr and "Traceback" not in result.output
    assert status(camp)["counts"] == {"CREATED": 2}


def test_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    campaign, _fake, _ids = _fake_campaign(tmp_path, [f"m{i}" for i in range(3)])
    proc = cli_proc(campaign.root, "status", "--no-reconcile")
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before orca-hpc writes a byte, like `| head -0`
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert stderr == ""


# ---------------------------------------------------------------- JSON with public names

LEDGER_KEYS = {"st", "rc", "nf", "max", "ct", "ut", "att", "inp", "sha", "x", "n", "tok", "sid", "sub"}
LEDGER_KEYS |= {"beg", "sst", "exit", "out", "en", "msg", "fix", "free"}  # "why" is a correction's


def _keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_show_json_has_public_names_and_every_document_a_schema(tmp_path: Path) -> None:
    campaign, fake, ids = _fake_campaign(tmp_path, ["water"])
    # A recovered attempt: its correction and a finished first attempt are in the record.
    fake.start(fake_id(campaign, ids[0]))
    cancel_selected(campaign, Selector(refs=(ids[0],)), scheduler=fake)
    retry_selected(campaign, Selector(refs=("water",)), scheduler=fake)
    camp = campaign.root
    shown = json.loads(cli(camp, "show", "--json", "--no-reconcile", "water").stdout)
    assert (shown["schema"], shown["kind"]) == (1, "show")
    assert not _keys(shown) & LEDGER_KEYS, _keys(shown) & LEDGER_KEYS
    [job] = shown["jobs"]
    assert (job["id"], job["name"], job["state"], job["retries"]) == (ids[0], "water", "PENDING", 0)
    first, second = job["attempts"]
    assert "why" not in first and "reason" in first
    assert (first["number"], first["reason"], first["outcome"]) == (1, "cancelled", "truncated")
    assert second["corrections"] == [{"handler": "manual", "change": "none", "why": "orca-hpc retry"}]
    assert Path(second["folder"]) == camp / "jobs" / ids[0] / "attempt-2" and Path(second["folder"]).is_dir()
    assert second["slurm_job_id"] == fake_id(campaign, ids[0])
    for args, kind in (
        (("status", "--json", "--no-reconcile"), "status"),
        (("results", "--json", "--no-reconcile"), "results"),
    ):
        document = json.loads(cli(camp, *args).stdout)
        assert (document["schema"], document["kind"]) == (1, kind)
        assert [j["id"] for j in document["jobs"]] == ids


def test_an_empty_selection_names_only_options_the_command_has(tmp_path: Path) -> None:
    camp = init_campaign(tmp_path / "camp", "local-slurm").root
    for command in ("show", "retry", "cancel"):
        lines = cli(camp, command, expect=2).output.splitlines()
        [said] = [line for line in lines if "name the jobs" in line]
        offered = {word.rstrip(",") for word in said.split() if word.startswith("--")}
        helped = cli(camp, command, "--help").output
        assert offered and all(option in helped for option in offered), (command, offered)
    assert "--molecule" in cli(camp, "cancel", expect=2).output  # where it is an option, it is offered


def test_every_json_option_says_where_its_document_is(tmp_path: Path) -> None:
    camp = init_campaign(tmp_path / "camp", "local-slurm").root
    for command in ("status", "show", "results", "usage", "inspect"):
        options = cli(camp, command, "--help").output.split("Options:", 1)[1]
        said = " ".join(options.split("--json", 1)[1].split("\n  -", 1)[0].split())
        assert "(docs/json.md)" in said, (command, said)
        assert "list" not in said  # every document is an object with schema and kind


def test_two_output_formats_are_a_usage_error(tmp_path: Path) -> None:
    """`results --csv --json` printed CSV, `status --json --summary` JSON: one silently lost."""
    camp = init_campaign(tmp_path / "camp", "local").root
    for args in (
        ("results", "--csv", "--json"),
        ("usage", "--json", "--csv"),
        ("status", "--json", "--summary"),
    ):
        result = cli(camp, *args, "--no-reconcile", expect=2)
        assert "choose one output format" in result.output, args
        assert f"{args[1]} and {args[2]}" in result.output
    for args in (("results", "--csv"), ("usage", "--json"), ("status", "--summary")):
        cli(camp, *args, "--no-reconcile")


def test_an_empty_path_is_refused_not_taken_for_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`submit "$INPUT"` with INPUT empty submitted every input of the current folder."""
    camp = init_campaign(tmp_path / "camp", "local").root
    write_inputs(tmp_path / "here", {"a.inp": orca_input(), "b.inp": orca_input("HF def2-SVP")})
    monkeypatch.chdir(tmp_path / "here")
    before = ledger_bytes(camp)
    result = cli(camp, "submit", "--no-check", "", expect=2)
    assert "an empty path ('') names no file" in result.output
    assert ledger_bytes(camp) == before


def test_a_list_from_a_pipe_works_and_an_endless_device_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from orca_hpc.controller import gather

    read, write = os.pipe()  # as `--from-file <(find ...)` gives it
    os.write(write, b"a.inp\n# comment\n/abs/b.inp\n")
    os.close(write)
    paths, problems = gather.read_list_file(Path(f"/dev/fd/{read}"), tmp_path)
    os.close(read)
    assert (paths, problems) == ([tmp_path / "a.inp", Path("/abs/b.inp")], [])
    monkeypatch.setattr(gather, "LIST_MAX_BYTES", 1 << 20)  # the limit, small: /dev/zero never ends
    paths, problems = gather.read_list_file(Path("/dev/zero"), tmp_path)
    assert paths == [] and problems == ["/dev/zero: the list is larger than 1 MiB; split it"]


def test_a_dry_run_says_which_inputs_it_would_skip(tmp_path: Path) -> None:
    campaign, _fake, [job] = _fake_campaign(tmp_path, ["water"])
    source = tmp_path / "in" / "0" / "water.inp"
    result = cli(campaign.root, "submit", "--dry-run", str(source))
    assert f"would skip {source}: already in this campaign as {job}" in result.stderr
    assert "would skip" not in result.stdout  # stdout stays the scripts (here: none)


def test_show_says_when_its_filters_leave_no_job(tmp_path: Path) -> None:
    campaign, _fake, [job] = _fake_campaign(tmp_path, ["water"])
    said = cli(campaign.root, "show", "--no-reconcile", job, "--state", "completed").output
    assert said.strip() == "no jobs"  # the job is PENDING: the filter leaves nothing, and that is said
