"""Environment failures (MPI start-up, ORCA missing, disk full) and corrections that go the right way.

Real ORCA outputs where they exist (tests/fixtures/orca/); the emulator for what no stored output
shows (Open MPI's stderr, a full disk, ORCA 4.1's too-many-processes wording, MDCI's increment).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from e2e import cli, orca_input, status, write_inputs

from orca_hpc.attempt.folder import AttemptPlan, AttemptResult
from orca_hpc.config.campaign import load_campaign
from orca_hpc.controller import environment
from orca_hpc.controller.ending import AttemptEnd, decide_end
from orca_hpc.controller.recovery import Failure, Limits, plan_recovery
from orca_hpc.ledger.store import Ledger
from orca_hpc.orca import inputs as orca_input_edit
from orca_hpc.orca.classify import classify_output
from orca_hpc.orca.environment import environment_cause
from orca_hpc.orca.outcomes import Outcome

FIXTURES = Path(__file__).parent / "fixtures" / "orca"
LIMITS = Limits(max_mem_mb=64000, max_time_min=240)
WATER = "* xyz 0 1\nO 0 0 0\nH 0 0 0.96\nH 0.93 0 -0.24\n*\n"


def emulate(tmp_path: Path, directive: str, keywords: str = "", extra: str = "") -> tuple[Path, str]:
    """Run the emulator like the runner does (stdout -> job.out, stderr -> job.err)."""
    (tmp_path / "job.inp").write_text(
        f"! B3LYP def2-SVP {keywords}\n# emulate: {directive}\n"
        f"%pal nprocs 4 end\n%maxcore 1000\n{extra}{WATER}"
    )
    env = {k: v for k, v in os.environ.items() if k != "ORCA_EMULATE"}
    code = "import sys; from orca_hpc.emulator.program import main; sys.exit(main())"
    with (tmp_path / "job.out").open("wb") as out, (tmp_path / "job.err").open("wb") as err:
        subprocess.run([sys.executable, "-c", code, "job.inp"], cwd=tmp_path, stdout=out, stderr=err, env=env)
    return tmp_path / "job.out", (tmp_path / "job.err").read_text()


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize("kind", ["slots", "launch", "orted", "libs"])
def test_mpi_failure_is_environment_only_with_stderr(tmp_path: Path, kind: str) -> None:
    out, err = emulate(tmp_path, f"mpi_error mpi={kind}")
    # The output alone only names the module: the old "parallel error" that shrank the job.
    alone = classify_output(out)
    assert alone.outcome is Outcome.PARALLEL_ERROR and "GTOInt" in alone.message
    both = classify_output(out, stderr=err)
    assert (both.outcome, both.reason, both.retryable) == (Outcome.ENVIRONMENT_ERROR, "mpi", True)


def test_full_disk_is_environment_not_parallel(tmp_path: Path) -> None:
    out, err = emulate(tmp_path, "disk_full")
    c = classify_output(out, stderr=err)
    assert (c.outcome, c.reason) == (Outcome.ENVIRONMENT_ERROR, "disk_full")
    assert "No space left on device" in c.message


def test_empty_output_with_mpi_stderr_is_environment(tmp_path: Path) -> None:
    (tmp_path / "x.out").write_text("")
    c = classify_output(tmp_path / "x.out", stderr="bash: orted: command not found\n")
    assert (c.outcome, c.reason) == (Outcome.ENVIRONMENT_ERROR, "mpi")


def test_environment_cause_prefers_disk_over_mpi() -> None:
    cause = environment_cause("It looks like orte_init failed\n", "open: No space left on device\n")
    assert cause is not None and cause.reason == "disk_full"
    assert environment_cause("SCF NOT CONVERGED AFTER 125 CYCLES") is None


def test_real_gtoint_crash_names_its_module() -> None:
    c = classify_output(FIXTURES / "ARC__orca_GTOInt_error.log")
    assert c.outcome is Outcome.PARALLEL_ERROR and c.error_module == "GTOInt"
    assert c.message == "ORCA finished by error termination in GTOInt (no cause printed)"


def test_real_scf_memory_request_is_a_target() -> None:
    c = classify_output(FIXTURES / "ARC__orca_scf_memory_error.log")
    assert (c.outcome, c.memory_required_mb, c.memory_request) == (Outcome.OUT_OF_MEMORY, 289.0, "target")


def test_mdci_memory_request_is_the_largest_increment(tmp_path: Path) -> None:
    out, _ = emulate(tmp_path, "mdci_oom more_mb=3000", "DLPNO-CCSD(T) cc-pVDZ/C")
    c = classify_output(out)
    assert (c.outcome, c.memory_request, c.memory_required_mb) == (Outcome.OUT_OF_MEMORY, "increment", 3000.0)


@pytest.mark.parametrize("wording", ["orca41", "orca42"])
def test_too_many_processes_in_both_wordings(tmp_path: Path, wording: str) -> None:
    out, _ = emulate(tmp_path, f"too_many_processes max_procs=2 wording={wording}", "DLPNO-CCSD(T) cc-pVDZ/C")
    c = classify_output(out)
    assert c.outcome is Outcome.TOO_MANY_PROCESSES, c.message
    assert ("(4)" in c.message) == (wording == "orca42")


def test_orca6_leanscf_wording_is_scf_not_converged(tmp_path: Path) -> None:
    out, _ = emulate(tmp_path, "scf_fail")
    c = classify_output(out)
    assert c.outcome is Outcome.SCF_NOT_CONVERGED and c.error_module == "LEANSCF"


def test_the_error_printed_last_decides(tmp_path: Path) -> None:
    # A memory complaint early on (a module that then managed) must not hide the SCF failure that
    # ended the run; the old fixed priority said out_of_memory here.
    out, _ = emulate(tmp_path, "scf_fail")
    text = out.read_text()
    head, sep, rest = text.partition("ORCA LEAN-SCF")
    assert sep  # the memory line goes before the SCF, not after it
    out.write_text(head + "Error (ORCA_SCF): Not enough memory available!\n" + sep + rest)
    assert classify_output(out).outcome is Outcome.SCF_NOT_CONVERGED


def test_unknown_module_error_is_quoted_not_called_causeless(tmp_path: Path) -> None:
    out = tmp_path / "m.out"
    real = (FIXTURES / "ARC__orca_GTOInt_error.log").read_text()
    marker = "ORCA finished by error termination in GTOInt"
    out.write_text(real.replace(marker, "Error (ORCA_GTOINT): cannot open integral file\n\n" + marker))
    c = classify_output(out)
    assert c.outcome is Outcome.PARALLEL_ERROR
    assert c.message == "ORCA finished by error termination in GTOInt: cannot open integral file"


# --------------------------------------------------------------------------- attempt end


def test_stderr_turns_a_failure_into_an_environment_failure_that_does_not_count() -> None:
    result = {"outcome": "parallel_error", "message": "ORCA finished by error termination in GTOInt"}
    stderr = "There are not enough slots available in the system to satisfy the 4\n"
    end = decide_end("FAILED", 1, 0, AttemptResult.from_dict(result), "", stderr)
    assert (end.outcome, end.reason, end.counts_against_limit) == (Outcome.ENVIRONMENT_ERROR, "mpi", False)
    assert end.classification["orca_outcome"] == "parallel_error"  # what ORCA's output said is kept
    no_result = decide_end("FAILED", 1, 0, None, "cp: error writing 'x': No space left on device\n")
    assert (no_result.outcome, no_result.reason) == (Outcome.ENVIRONMENT_ERROR, "disk_full")
    # ORCA succeeded but the runner could not copy its files back (exit 74, scratch kept): not COMPLETED.
    kept = {"outcome": "success", "energy": -1.0, "scratch_removed": False}
    error = "copy-back to /c/jobs/j1/attempt-1 failed (w.gbw: Stale file handle); files kept in scratch"
    end = decide_end("FAILED", 74, 0, AttemptResult.from_dict({**kept, "error": error}))
    assert (end.outcome, end.retryable, end.energy) == (Outcome.UNKNOWN_ERROR, True, None)
    assert "Stale file handle" in end.message
    copied = decide_end("COMPLETED", 0, 0, AttemptResult.from_dict({**kept, "scratch_removed": True}))
    assert copied.success and copied.energy == -1.0
    # ORCA ended normally: a machine line in stderr or the job log did not end the run, the chemistry did.
    opt = {"outcome": "opt_not_converged", "classification": {"normal_termination": True}}
    late = decide_end("COMPLETED", 0, 0, AttemptResult.from_dict(opt), "", stderr)
    assert (late.outcome, late.counts_against_limit) == (Outcome.OPT_NOT_CONVERGED, True)
    # A walltime end stays a walltime end whatever stderr says.
    timeout = decide_end("TIMEOUT", 0, 15, None, "", stderr)
    assert timeout.reason == "walltime"


# --------------------------------------------------------------------------- corrections


def plan(text: str, nprocs: int = 4, maxcore: int = 1000) -> AttemptPlan:
    return AttemptPlan("w.inp", text, nprocs, maxcore, math.ceil(nprocs * maxcore / 0.8), 60)


def failure(tmp_path: Path, outcome: Outcome, history=None, retries_left=None, **cls: object) -> Failure:
    return Failure(outcome, None, dict(cls), tmp_path, "w", history or [], retries_left)


def option(text: str, block: str, key: str) -> str | None:
    return orca_input_edit.parse_input(Path("x.inp"), text, check_files=False).first.option(block, key)


def test_scf_keeps_a_larger_user_maxiter(tmp_path: Path) -> None:
    new, _ = plan_recovery(
        plan(f"! B3LYP\n%scf MaxIter 1000 end\n{WATER}"), failure(tmp_path, Outcome.SCF_NOT_CONVERGED), LIMITS
    )
    assert new is not None and option(new.input_text, "scf", "MaxIter") == "1000"


def test_opt_keeps_a_larger_user_geom_maxiter(tmp_path: Path) -> None:
    text = f"! B3LYP Opt\n%geom MaxIter 300 end\n{WATER}"
    new, _ = plan_recovery(plan(text), failure(tmp_path, Outcome.OPT_NOT_CONVERGED, opt_cycles=40), LIMITS)
    assert new is not None and int(option(new.input_text, "geom", "MaxIter") or 0) >= 300


def test_mdci_increment_is_added_to_maxcore(tmp_path: Path) -> None:
    fail = failure(tmp_path, Outcome.OUT_OF_MEMORY, memory_required_mb=3000.0, memory_request="increment")
    new, _ = plan_recovery(plan(f"! DLPNO-CCSD(T)\n{WATER}", nprocs=2), fail, LIMITS)
    assert new is not None and new.maxcore_mb == math.ceil((1000 + 3000) * 1.3)
    target = failure(tmp_path, Outcome.OUT_OF_MEMORY, memory_required_mb=3000.0, memory_request="target")
    as_target, _ = plan_recovery(plan(f"! DLPNO-CCSD(T)\n{WATER}", nprocs=2), target, LIMITS)
    assert as_target is not None and as_target.maxcore_mb == math.ceil(3000 * 1.3)


def test_scf_ladder_reaches_its_strongest_rung_within_three_retries(tmp_path: Path) -> None:
    (tmp_path / "w.gbw").write_bytes(b"orbitals")
    p, history = plan(f"! B3LYP\n{WATER}"), [[]]
    for retries_left in (2, 1, 0):  # max_retries = 3: the third correction is the last allowed attempt
        p, handler = plan_recovery(
            p, failure(tmp_path, Outcome.SCF_NOT_CONVERGED, history, retries_left), LIMITS
        )
        assert p is not None and handler == "scf"
        history.append(p.corrections)
    words = orca_input_edit.parse_input(Path("x.inp"), p.input_text, check_files=False).keywords_lower
    assert "slowconv" not in words  # VerySlowConv replaced it
    assert {"veryslowconv", "kdiis", "soscf", "moread"} <= words
    assert "Shift" in (option(p.input_text, "scf", "Shift") or "")
    steps = [c.get("step") for c in history[-1] if c["handler"] == "scf" and "step" in c]
    assert steps == ["veryslowconv", "kdiis", "shift"]


def test_scf_failure_in_an_optimisation_restarts_from_the_last_geometry(tmp_path: Path) -> None:
    frames = "".join(f"3\nframe {i}\nO 0 0 {i}\nH 0 0 1\nH 1 0 0\n" for i in range(3))
    (tmp_path / "w_trj.xyz").write_text(frames)
    fail = failure(tmp_path, Outcome.SCF_NOT_CONVERGED, calc_kind="optimisation")
    new, _ = plan_recovery(plan(f"! B3LYP Opt\n{WATER}"), fail, LIMITS)
    assert new is not None and "frame 2" in new.extra_files["restart.xyz"].read_text()
    parsed = orca_input_edit.parse_input(Path("x.inp"), new.input_text, check_files=False)
    assert parsed.first.coord_kind == "xyzfile"


def test_parallel_error_on_the_last_attempt_gets_memory_and_fewer_processes(tmp_path: Path) -> None:
    new, _ = plan_recovery(
        plan(f"! B3LYP\n{WATER}"), failure(tmp_path, Outcome.PARALLEL_ERROR, retries_left=0), LIMITS
    )
    assert new is not None and new.maxcore_mb == 1500 and new.nprocs == 2


# --------------------------------------------------------------------------- the pause policy


def _campaign(tmp_path: Path, orca: Path, limit: int = 2) -> Path:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    config.write_text(
        config.read_text()
        + f'\n[overrides.orca]\npath = "{orca}"\n'
        + f"[overrides.retry]\npause_after_environment_failures = {limit}\n"
    )
    return camp


def test_pause_policy_counts_in_a_row_alerts_once_and_resumes(tmp_path: Path) -> None:
    orca = tmp_path / "bin" / "orca"
    camp = load_campaign(_campaign(tmp_path, orca))
    ledger = camp.ledger()
    env_end = AttemptEnd(Outcome.ENVIRONMENT_ERROR, "orca_missing", True, "environment (orca_missing): gone")
    said: list[str] = []
    with ledger.lock, ledger.transaction() as txn:
        for n in range(3):
            environment.note_end(txn, env_end, types.SimpleNamespace(id=f"j{n}"), camp, said.append)
        assert not environment.may_dispatch(txn, camp.site, False, said.append)
    view = Ledger(camp.state_dir).snapshot()
    pause = environment.paused(view.meta)
    assert pause is not None and pause["failures"] == 2 and pause["problems"]
    assert [m["kind"] for m in view.outbox].count("environment_pause") == 1  # one alert, not three
    assert "PAUSED" in (environment.pause_summary(view.meta) or "")
    # The cause goes away (ORCA is there again): the next dispatch decision resumes by itself.
    orca.parent.mkdir()
    orca.write_text("#!/bin/sh\nexit 0\n")
    orca.chmod(0o755)
    with ledger.lock, ledger.transaction() as txn:
        assert environment.may_dispatch(txn, camp.site, False, said.append)
    meta = Ledger(camp.state_dir).snapshot().meta
    assert environment.paused(meta) is None and meta["environment"]["pauses"][0]["how"].startswith("resumed")


def test_a_success_between_resets_the_count(tmp_path: Path) -> None:
    camp = load_campaign(_campaign(tmp_path, tmp_path / "nowhere"))
    ledger = camp.ledger()
    env_end = AttemptEnd(Outcome.ENVIRONMENT_ERROR, "mpi", True, "environment (mpi): slots")
    job = types.SimpleNamespace(id="j1")
    with ledger.lock, ledger.transaction() as txn:
        environment.note_end(txn, env_end, job, camp, print)
        environment.note_end(txn, AttemptEnd(Outcome.SUCCESS), job, camp, print)
        environment.note_end(txn, env_end, job, camp, print)
        assert environment.may_dispatch(txn, camp.site, False, print)
    # An MPI cause cannot be seen from the login node: only a person resumes such a pause.
    with ledger.lock, ledger.transaction() as txn:
        environment.note_end(txn, env_end, job, camp, print)
        assert not environment.may_dispatch(txn, camp.site, False, print)
        assert environment.may_dispatch(txn, camp.site, True, print)


def test_broken_orca_path_pauses_then_completes_once_fixed(tmp_path: Path) -> None:
    """The whole path on the local executor: runner -> result.json -> reconcile -> pause -> resume."""
    orca = tmp_path / "bin" / "orca"
    camp = _campaign(tmp_path, orca)
    paths = write_inputs(tmp_path / "in", {f"m{i}.inp": orca_input(extra=f"# {i}\n") for i in range(2)})
    cli(camp, "submit", "--no-check", *paths)  # the site check would refuse the missing ORCA outright
    deadline = time.monotonic() + 120
    while (state := status(camp, reconcile=True))["paused"] is None:
        assert time.monotonic() < deadline, state
        time.sleep(0.5)
    assert "PERMANENT_FAILED" not in state["counts"]
    assert cli(camp, "status", "--no-reconcile").output.count("PAUSED") == 1
    before = {j["id"]: j["attempts"] for j in status(camp)["jobs"]}
    cli(camp, "reconcile")
    assert {j["id"]: j["attempts"] for j in status(camp)["jobs"]} == before  # nothing new submitted
    orca.parent.mkdir()
    orca.symlink_to(Path(sys.executable).parent / "orca-emulator")
    while True:
        state = status(camp, reconcile=True)
        if all(j["state"] == "COMPLETED" for j in state["jobs"]):
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.5)
    outbox = Ledger(camp / ".orca-hpc").snapshot().outbox
    assert [m["kind"] for m in outbox].count("environment_pause") == 1
    assert state["paused"] is None


def test_a_normal_end_the_classifier_could_not_check_is_no_environment_failure(tmp_path: Path) -> None:
    """The runner's fallback (classify.py failed) says a normal end is unknown_error, not retried: ORCA
    would print the same. A machine line in stderr must not make it an environment failure either,
    retried unchanged and never counted, as for any run ORCA ended normally."""
    from orca_hpc.runner.run import TERMINATED_NORMALLY, fallback_classify

    out = tmp_path / "m.out"
    out.write_text(f"FINAL SINGLE POINT ENERGY      -1.0\n\n{TERMINATED_NORMALLY}\n")
    details = fallback_classify(out, "classify.py unusable: KeyError: 'x'")
    result = {"outcome": details["outcome"], "retryable": details["retryable"], "classification": details}
    stderr = "There are not enough slots available in the system to satisfy the 4\n"
    end = decide_end("COMPLETED", 0, 0, AttemptResult.from_dict(result), "", stderr)
    assert (end.outcome, end.retryable) == (Outcome.UNKNOWN_ERROR, False)
