"""Recovery handlers and the attempt-end decision: pure logic, no scheduler."""

from __future__ import annotations

from pathlib import Path

import pytest

from orca_hpc.attempt.folder import AttemptPlan, AttemptResult
from orca_hpc.controller.ending import decide_end
from orca_hpc.controller.recovery import Failure, Limits, plan_recovery
from orca_hpc.orca import inputs as orca_input
from orca_hpc.orca.outcomes import Outcome

INPUT = (
    "! B3LYP def2-SVP Opt\n%pal nprocs 4 end\n%maxcore 1000\n"
    "* xyz 0 1\nO 0 0 0\nH 0 0 0.96\nH 0.93 0 -0.24\n*\n"
)
LIMITS = Limits(max_mem_mb=16000, max_time_min=240)


def plan(**kw: object) -> AttemptPlan:
    base = dict(input_name="w.inp", input_text=INPUT, nprocs=4, maxcore_mb=1000, mem_mb=5000, time_min=30)
    base.update(kw)
    return AttemptPlan(**base)  # type: ignore[arg-type]


def failure(
    tmp_path: Path, outcome: Outcome, *, reason: str | None = None, history=None, **cls: object
) -> Failure:
    return Failure(outcome, reason, dict(cls), tmp_path, "w", history or [])


def keywords(text: str) -> frozenset[str]:
    return orca_input.parse_input(Path("x.inp"), text, check_files=False).keywords_lower


def test_scf_ladder_escalates_one_rung_per_attempt(tmp_path: Path) -> None:
    (tmp_path / "w.gbw").write_bytes(b"orbitals")
    history: list[list[dict[str, str]]] = [[]]
    p = plan()
    seen = []
    for _ in range(5):
        new, handler = plan_recovery(p, failure(tmp_path, Outcome.SCF_NOT_CONVERGED, history=history), LIMITS)
        assert new is not None and handler == "scf"
        seen.append([c["change"] for c in new.corrections])
        assert new.extra_files["previous.gbw"] == tmp_path / "w.gbw"
        assert "moread" in keywords(new.input_text)
        history.append(new.corrections)
        p = new
    assert seen[0][-1] == "%scf MaxIter 500"
    assert seen[1][-1] == "! SlowConv"
    assert seen[2][-1] == "! VerySlowConv" and "slowconv" not in keywords(p.input_text)
    assert seen[3][-1] == "! KDIIS SOSCF"
    assert "Shift" in seen[4][-1]
    # The ladder ends: the job fails permanently instead of repeating the same input.
    last, why = plan_recovery(p, failure(tmp_path, Outcome.SCF_NOT_CONVERGED, history=history), LIMITS)
    assert last is None and "exhausted" in why


def test_scf_without_gbw_does_not_moread(tmp_path: Path) -> None:
    new, _ = plan_recovery(plan(), failure(tmp_path, Outcome.SCF_NOT_CONVERGED), LIMITS)
    assert new is not None and "moread" not in keywords(new.input_text)
    assert [c["change"] for c in new.corrections] == ["%scf MaxIter 500"]


def test_opt_restarts_from_last_trajectory_frame(tmp_path: Path) -> None:
    frames = "".join(f"3\nframe {i}\nO 0 0 {i}\nH 0 0 1\nH 1 0 0\n" for i in range(3))
    (tmp_path / "w_trj.xyz").write_text(frames)
    new, _ = plan_recovery(plan(), failure(tmp_path, Outcome.OPT_NOT_CONVERGED, opt_cycles=50), LIMITS)
    assert new is not None
    restart = new.extra_files["restart.xyz"].read_text()
    assert "frame 2" in restart and "O 0 0 2" in restart
    parsed = orca_input.parse_input(Path("x.inp"), new.input_text, check_files=False)
    assert parsed.first.coord_kind == "xyzfile"
    assert parsed.first.option("geom", "MaxIter") == "100"


def test_out_of_memory_raises_maxcore_above_what_orca_asked(tmp_path: Path) -> None:
    new, _ = plan_recovery(plan(), failure(tmp_path, Outcome.OUT_OF_MEMORY, memory_required_mb=2000), LIMITS)
    assert new is not None
    assert new.maxcore_mb == 2600 and new.nprocs == 4
    assert new.maxcore_mb * new.nprocs <= 0.8 * new.mem_mb <= new.maxcore_mb * new.nprocs + 1


def test_out_of_memory_uses_fewer_processes_when_the_partition_is_full(tmp_path: Path) -> None:
    new, _ = plan_recovery(
        plan(),
        failure(tmp_path, Outcome.OUT_OF_MEMORY, memory_required_mb=3000),
        Limits(max_mem_mb=12000, max_time_min=60),
    )
    assert new is not None and new.maxcore_mb == 3900
    assert new.nprocs == 2 and new.mem_mb <= 12000
    assert any("nprocs 4 -> 2" in c["change"] for c in new.corrections)


def test_memory_limit_kill_raises_slurm_memory_only(tmp_path: Path) -> None:
    new, _ = plan_recovery(plan(), failure(tmp_path, Outcome.OUT_OF_MEMORY, reason="memory_limit"), LIMITS)
    assert new is not None and new.mem_mb == 7500 and new.maxcore_mb == 1000


def test_too_many_processes_uses_the_count_orca_names(tmp_path: Path) -> None:
    msg = "Number of processes (4) in parallel calculation exceeds number of pairs (3)"
    new, _ = plan_recovery(plan(), failure(tmp_path, Outcome.TOO_MANY_PROCESSES, message=msg), LIMITS)
    assert new is not None and new.nprocs == 3


def test_walltime_doubles_time_up_to_the_partition_limit(tmp_path: Path) -> None:
    (tmp_path / "w.gbw").write_bytes(b"x")
    (tmp_path / "w.xyz").write_text("3\nlast\nO 0 0 0\nH 0 0 1\nH 1 0 0\n")
    new, _ = plan_recovery(
        plan(), failure(tmp_path, Outcome.TRUNCATED, reason="walltime", calc_kind="optimisation"), LIMITS
    )
    assert new is not None and new.time_min == 60
    assert set(new.extra_files) == {"previous.gbw", "restart.xyz"}
    capped, why = plan_recovery(
        plan(time_min=240), failure(tmp_path, Outcome.TRUNCATED, reason="walltime"), LIMITS
    )
    assert capped is None and "time limit" in why


def test_parallel_error_tries_memory_then_fewer_processes(tmp_path: Path) -> None:
    first, _ = plan_recovery(plan(), failure(tmp_path, Outcome.PARALLEL_ERROR), LIMITS)
    assert first is not None and first.maxcore_mb == 1500 and first.nprocs == 4
    second, _ = plan_recovery(
        first, failure(tmp_path, Outcome.PARALLEL_ERROR, history=[[], first.corrections]), LIMITS
    )
    assert second is not None and second.nprocs == 2


def test_disabled_handler_is_skipped(tmp_path: Path) -> None:
    new, why = plan_recovery(plan(), failure(tmp_path, Outcome.SCF_NOT_CONVERGED), LIMITS, disabled=("scf",))
    assert new is None and "no recovery handler" in why


def test_input_files_travel_to_the_next_attempt(tmp_path: Path) -> None:
    geom = tmp_path / "mol.xyz"
    geom.write_text("1\n\nO 0 0 0\n")
    new, _ = plan_recovery(
        plan(extra_files={"mol.xyz": geom}), failure(tmp_path, Outcome.UNKNOWN_ERROR), LIMITS
    )
    assert new is not None and new.extra_files["mol.xyz"] == geom


@pytest.mark.parametrize(
    ("state", "exit_code", "signal", "result", "log", "expected"),
    [
        ("COMPLETED", 0, 0, {"outcome": "success", "energy": -1.0}, "", (Outcome.SUCCESS, None, True)),
        (
            "COMPLETED",
            0,
            0,
            {"outcome": "scf_not_converged", "retryable": True},
            "",
            (Outcome.SCF_NOT_CONVERGED, None, True),
        ),
        (
            "FAILED",
            0,
            9,
            None,
            "slurmstepd: error: Job 5 exceeded memory limit (900 > 500), being killed",
            (Outcome.OUT_OF_MEMORY, "memory_limit", True),
        ),
        ("OUT_OF_MEMORY", 0, 0, None, "", (Outcome.OUT_OF_MEMORY, "memory_limit", True)),
        ("TIMEOUT", 0, 0, None, "", (Outcome.TRUNCATED, "walltime", True)),
        (
            "FAILED",
            124,
            0,
            {"outcome": "truncated", "reason": "walltime"},
            "",
            (Outcome.TRUNCATED, "walltime", True),
        ),
        ("NODE_FAIL", 0, 0, None, "", (Outcome.TRUNCATED, "node_fail", False)),
        (
            "PREEMPTED",
            0,
            0,
            {"outcome": "truncated", "reason": "cancelled"},
            "",
            (Outcome.TRUNCATED, "preempted", False),
        ),
        ("CANCELLED", 0, 0, None, "", (Outcome.TRUNCATED, "cancelled", True)),
        (None, None, None, None, "", (Outcome.TRUNCATED, "lost", False)),
        ("FAILED", 1, 0, None, "", (Outcome.UNKNOWN_ERROR, None, True)),
        (
            "COMPLETED",
            0,
            0,
            {"outcome": "input_error", "retryable": False},
            "",
            (Outcome.INPUT_ERROR, None, True),
        ),
    ],
)
def test_attempt_end(state, exit_code, signal, result, log, expected) -> None:  # type: ignore[no-untyped-def]
    end = decide_end(state, exit_code, signal, AttemptResult.from_dict(result) if result else None, log)
    assert (end.outcome, end.reason, end.counts_against_limit) == expected
    if result and result.get("outcome") == "input_error":
        assert not end.retryable


def test_scf_rungs_the_input_already_has_are_skipped_not_spent(tmp_path: Path) -> None:
    # The user's own SlowConv, MaxIter 1000 and a stronger level shift: a retry that "adds" them runs
    # the same SCF again; each retry must change the input, and the user's larger shift stays.
    user = INPUT.replace(
        "! B3LYP def2-SVP Opt\n",
        "! B3LYP def2-SVP SlowConv\n%scf\n  MaxIter 1000\n  Shift Shift 0.3 ErrOff 0.2 end\nend\n",
    )
    p, history, texts = plan(input_text=user), [[]], [user]
    while True:
        new, why = plan_recovery(p, failure(tmp_path, Outcome.SCF_NOT_CONVERGED, history=history), LIMITS)
        if new is None:
            break
        assert new.input_text not in texts, new.corrections  # a changed SCF, not a repeat
        texts.append(new.input_text)
        history.append(new.corrections)
        p = new
    assert "exhausted" in why
    assert len(texts) - 1 == 2  # VerySlowConv, then KDIIS SOSCF: the other rungs were the user's
    assert {"veryslowconv", "kdiis", "soscf"} <= keywords(p.input_text)
    parsed = orca_input.parse_input(Path("x.inp"), p.input_text, check_files=False)
    assert parsed.first.option("scf", "Shift") == "Shift 0.3 ErrOff 0.2 end"
    assert parsed.first.option("scf", "MaxIter") == "1000"


def test_the_kdiis_rung_keeps_the_users_nososcf(tmp_path: Path) -> None:
    """`! NoSOSCF` and an added `SOSCF` would contradict each other on one keyword line."""
    user = INPUT.replace(
        "! B3LYP def2-SVP Opt\n", "! B3LYP def2-SVP VerySlowConv NoSOSCF\n%scf MaxIter 900 end\n"
    )
    new, _why = plan_recovery(plan(input_text=user), failure(tmp_path, Outcome.SCF_NOT_CONVERGED), LIMITS)
    assert new is not None and "kdiis" in keywords(new.input_text)
    assert "soscf" not in keywords(new.input_text) and "nososcf" in keywords(new.input_text)


REAL_OPT = Path(__file__).parent / "fixtures" / "orca" / "cclib__basicORCA6.0__dvb_gopt.out"


@pytest.mark.parametrize(("reason", "handler"), [("node_fail", "restart"), ("walltime", "walltime")])
def test_stopped_optimisation_restarts_from_the_last_complete_geometry_of_its_output(
    tmp_path: Path, reason: str, handler: str
) -> None:
    # A node failure (or a runner killed before its copy-back) leaves only the output mirrored during
    # the run: no .xyz, no _trj.xyz. A real ORCA 6.0 optimisation, cut while printing its 3rd geometry.
    lines = REAL_OPT.read_text().splitlines(keepends=True)
    starts = [i for i, ln in enumerate(lines) if "CARTESIAN COORDINATES (ANGSTROEM)" in ln]
    (tmp_path / "w.out").write_text("".join(lines[: starts[2] + 8]))
    second = []
    for ln in lines[starts[1] + 2 :]:
        if not ln.strip():
            break
        second.append([ln.split()[0], *map(float, ln.split()[1:4])])
    new, used = plan_recovery(plan(), failure(tmp_path, Outcome.TRUNCATED, reason=reason), LIMITS)
    assert new is not None and used == handler
    assert (
        orca_input.parse_input(Path("x.inp"), new.input_text, check_files=False).first.coord_kind == "xyzfile"
    )
    rows = [ln.split() for ln in new.extra_files["restart.xyz"].read_text().splitlines()]
    assert int(rows[0][0]) == len(second)
    assert [[r[0], *map(float, r[1:4])] for r in rows[2:]] == second


def test_preempted_optimisation_restarts_from_its_trajectory(tmp_path: Path) -> None:
    frames = "".join(f"3\nframe {i}\nO 0 0 {i}\nH 0 0 1\nH 1 0 0\n" for i in range(3))
    (tmp_path / "w_trj.xyz").write_text(frames)
    (tmp_path / "w.gbw").write_bytes(b"orbitals")
    new, _ = plan_recovery(plan(), failure(tmp_path, Outcome.TRUNCATED, reason="preempted"), LIMITS)
    assert new is not None and set(new.extra_files) == {"previous.gbw", "restart.xyz"}
    assert "frame 2" in new.extra_files["restart.xyz"].read_text()
    # A single point has no geometry to go on from: orbitals only.
    sp = plan(input_text=INPUT.replace(" Opt", ""))
    (tmp_path / "w_trj.xyz").unlink()
    again, _ = plan_recovery(sp, failure(tmp_path, Outcome.TRUNCATED, reason="preempted"), LIMITS)
    assert again is not None and set(again.extra_files) == {"previous.gbw"}


def test_restarts_of_an_input_that_reads_an_xyz_file_name_one_file(tmp_path: Path) -> None:
    # "* xyzfile 0 1 start.xyz": each restart kept the old name after the new one, so the 3rd attempt
    # read "* xyzfile 0 1 restart.xyz restart.xyz start.xyz".
    (tmp_path / "w_trj.xyz").write_text("3\nlast\nO 0 0 0\nH 0 0 1\nH 1 0 0\n")
    p = plan(input_text="! B3LYP def2-SVP Opt\n* xyzfile 0 1 start.xyz\n")
    history: list[list[dict[str, str]]] = [[]]
    for _ in range(3):
        new, _ = plan_recovery(
            p, failure(tmp_path, Outcome.OPT_NOT_CONVERGED, history=history, opt_cycles=5), LIMITS
        )
        assert new is not None
        history.append(new.corrections)
        p = new
        coords = [ln for ln in p.input_text.splitlines() if ln.lstrip().startswith("*")]
        assert coords == ["* xyzfile 0 1 restart.xyz"]
        files = orca_input.parse_input(Path("x.inp"), p.input_text, check_files=False).files
        assert [f.name for f in files] == ["restart.xyz"]
