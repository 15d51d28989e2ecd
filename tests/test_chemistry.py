"""Issue 13: a COMPLETED job must be chemically right. Real ORCA outputs where they exist."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from orca_hpc.attempt.folder import AttemptPlan
from orca_hpc.config.site import load_site
from orca_hpc.controller.recovery import DISPLACED_XYZ, Failure, Limits, plan_recovery
from orca_hpc.orca import inputs as orca_input
from orca_hpc.orca.chemistry import read_frequencies, read_normal_mode
from orca_hpc.orca.classify import classify_output
from orca_hpc.orca.inputs import MINIMUM, REPORT, SADDLE, StepIntent, input_intents
from orca_hpc.orca.outcomes import Outcome
from orca_hpc.orca.read import read_output

FIXTURES = Path(__file__).parent / "fixtures" / "orca"
NEG_FREQ = FIXTURES / "truth" / "ReactionMechanismGenerator-ARC__orca_neg_freq_ts.out"  # ORCA 5.0.4 Freq
DVB_IR = {5: FIXTURES / "cclib__basicORCA5.0__dvb_ir.out", 6: FIXTURES / "cclib__basicORCA6.0__dvb_ir.out"}
DVB_GOPT = FIXTURES / "cclib__basicORCA5.0__dvb_gopt.out"
# A frequency step checking the minimum an earlier (here: absent) optimisation step reached.
CHECK_MINIMUM = [StepIntent(0, False, MINIMUM, True, False)]
CHECK_SADDLE = [StepIntent(0, False, SADDLE, True, False)]
XYZ = "* xyz 0 1\nO 0 0 0\nH 0 0 0.96\nH 0.93 0 -0.24\n*\n"


def intents(text: str) -> list[StepIntent]:
    return input_intents(Path("x.inp"), text)


# --- intent from the input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keywords", "target", "check"),
    [
        ("! B3LYP def2-SVP Opt Freq", MINIMUM, MINIMUM),
        ("! B3LYP def2-SVP TightOpt NumFreq", MINIMUM, MINIMUM),
        ("! B3LYP def2-SVP VeryTightOpt AnFreq", MINIMUM, MINIMUM),
        ("! B3LYP def2-SVP GDIIS-Opt Freq", MINIMUM, MINIMUM),
        ("! B3LYP def2-SVP COpt", MINIMUM, None),
        ("! B3LYP def2-SVP OptTS Freq", SADDLE, SADDLE),
        ("! B3LYP def2-SVP ScanTS", SADDLE, None),
        ("! B3LYP def2-SVP Freq", None, REPORT),
        ("! B3LYP def2-SVP", None, None),
        ("! B3LYP def2-SVP Freq\n%method RunTyp Opt end", MINIMUM, MINIMUM),
    ],
)
def test_intent_of_one_job(keywords: str, target: str | None, check: str | None) -> None:
    (step,) = intents(f"{keywords}\n{XYZ}")
    assert step.target == target
    assert step.frequency_check == check
    assert step.optimises == (target is not None)


def test_intent_of_each_new_job_step() -> None:
    steps = intents(f"! B3LYP def2-SVP Opt\n{XYZ}$new_job\n! B3LYP def2-TZVP Freq\n")
    assert [s.target for s in steps] == [MINIMUM, MINIMUM]
    assert [s.optimises for s in steps] == [True, False]
    # The Freq step inherits the optimised geometry: it checks the minimum, it does not just report.
    assert steps[1].frequency_check == MINIMUM
    # A Freq step with its own geometry only reports.
    steps = intents(f"! B3LYP def2-SVP Opt\n{XYZ}$new_job\n! B3LYP def2-TZVP Freq\n{XYZ}")
    assert steps[1].frequency_check == REPORT


COMPOUND_OPT_FREQ = (
    "! B3LYP def2-SVP\n%compound\n  New_Step\n    ! Opt\n  Step_End\n"
    "  New_Step\n    ! Freq  # on the optimised geometry\n  Step_End\nend\n" + XYZ
)


def test_intent_of_each_compound_step() -> None:
    # ORCA runs the New_Step bodies, not the job's own keyword line (passed on to every step).
    steps = intents(COMPOUND_OPT_FREQ)
    assert [(s.optimises, s.target, s.frequency_check) for s in steps] == [
        (True, MINIMUM, None),
        (False, MINIMUM, MINIMUM),
    ]
    (step,) = intents(f"! Opt\n%compound\n New_Step\n  ! AnFreq\n  {XYZ} Step_End\nend\n{XYZ}")
    assert (step.target, step.frequency_check) == (MINIMUM, MINIMUM)  # "! Opt" reaches the step
    (ts,) = intents(f'%compound\n New_Step\n  %method RunTyp "OptTS" end\n  ! Freq\n Step_End\nend\n{XYZ}')
    assert (ts.target, ts.frequency_check) == (SADDLE, SADDLE)  # the block form inside a step
    steps = intents(
        f"! PBE\n%compound\n New_Step\n ! Opt\n Step_End\n New_Step\n ! NumFreq\n {XYZ} Step_End\nend\n{XYZ}"
    )
    assert steps[1].frequency_check == REPORT  # its own geometry: reported, not judged


def test_intent_of_a_compound_script_file_beside_the_input(tmp_path: Path) -> None:
    # %compound "x.cmp" travels with the input: the runner reads its steps where ORCA ran.
    (tmp_path / "opt_freq.cmp").write_text(
        '# ORCA\'s own form\nVariable method = "B3LYP";\nNew_Step\n  ! &{method} Opt\nStep_End\n'
        "new_step\n  ! &{method} NumFreq\nstep_end\nEnd\n"
    )
    inp = tmp_path / "c.inp"
    inp.write_text(f'! def2-SVP\n%compound "opt_freq.cmp"\n{XYZ}')
    assert [(s.optimises, s.frequency_check) for s in input_intents(inp)] == [(True, None), (False, MINIMUM)]
    assert classify_output(DVB_GOPT, intents=input_intents(inp)).outcome is Outcome.NO_FREQUENCIES
    (tmp_path / "opt_freq.cmp").unlink()  # not there: the job's own keywords, as before
    assert [(s.optimises, s.freq) for s in input_intents(inp)] == [(False, False)]


def test_real_optimisation_judged_by_a_compound_opt_freq_script() -> None:
    # The real converged optimisation printed no frequencies: run as the compound script's Opt step,
    # the Freq step is missing (it was a success while compound steps were not read).
    c = classify_output(DVB_GOPT, intents=intents(COMPOUND_OPT_FREQ))
    assert c.calc_kind == "optimisation" and c.intent == MINIMUM
    assert c.outcome is Outcome.NO_FREQUENCIES
    # The real Freq run with an imaginary mode, as that script's Freq step: judged as a minimum.
    assert classify_output(NEG_FREQ, intents=intents(COMPOUND_OPT_FREQ)).intent == MINIMUM


def test_intent_of_neb_runs() -> None:
    (ci,) = intents(f'! XTB2 NEB-CI\n%neb neb_end_xyzfile "p.xyz" end\n{XYZ}')
    assert ci.optimises and ci.neb and ci.target is None and ci.frequency_check is None
    (ts,) = intents(f'! XTB2 NEB-TS Freq\n%neb neb_end_xyzfile "p.xyz" end\n{XYZ}')
    assert ts.neb and ts.target == SADDLE and ts.frequency_check == SADDLE


# --- real outputs ---------------------------------------------------------------------------


def test_real_freq_with_one_imaginary_mode_reports_only_for_plain_freq() -> None:
    c = classify_output(NEG_FREQ)  # the input echo says "!Freq": report only
    assert c.outcome is Outcome.SUCCESS
    assert c.intent == REPORT
    assert (c.n_imaginary, c.lowest_freq, c.imaginary_freqs) == (1, -1271.62, [-1271.62])
    assert (c.zpe, c.enthalpy, c.gibbs, c.temperature) == (0.05097952, -116.19891123, -116.23067837, 298.15)
    assert c.s2 == 0.759001
    assert c.orca_version == "5.0.4"
    assert c.energy == -116.255531490418


def test_real_imaginary_mode_fails_a_minimum_and_passes_a_saddle() -> None:
    c = classify_output(NEG_FREQ, intents=CHECK_MINIMUM)
    assert c.outcome is Outcome.IMAGINARY_MODES and c.retryable
    assert "1 imaginary mode" in c.message and "-1271.62" in c.message
    ts = classify_output(NEG_FREQ, intents=CHECK_SADDLE)
    assert ts.outcome is Outcome.SUCCESS and ts.n_imaginary == 1


def test_threshold_above_the_mode_makes_it_noise() -> None:
    c = classify_output(NEG_FREQ, intents=CHECK_MINIMUM, imag_threshold=1300.0)
    assert c.outcome is Outcome.SUCCESS
    assert c.n_imaginary == 0 and c.imag_noise == [-1271.62] and c.lowest_freq == -1271.62
    ts = classify_output(NEG_FREQ, intents=CHECK_SADDLE, imag_threshold=1300.0)
    assert ts.outcome is Outcome.TS_MODE_COUNT and "found 0" in ts.message


@pytest.mark.parametrize(
    ("version", "zpe", "enthalpy", "gibbs", "lowest", "banner"),
    [
        (5, 0.17701962, -381.86823907, -381.91112705, 45.66, "5.0.1"),
        (6, 0.17701463, -381.86823509, -381.91114546, 43.87, "6.0.1"),
    ],
)
def test_real_dvb_ir_minimum_has_no_imaginary_mode(
    version: int, zpe: float, enthalpy: float, gibbs: float, lowest: float, banner: str
) -> None:
    for given in (None, CHECK_MINIMUM):
        c = classify_output(DVB_IR[version], intents=given)
        assert c.outcome is Outcome.SUCCESS
        assert (c.n_imaginary, c.lowest_freq) == (0, lowest)
        assert (c.zpe, c.enthalpy, c.gibbs, c.temperature) == (zpe, enthalpy, gibbs, 298.15)
        assert c.orca_version == banner and c.s2 is None


def test_frequencies_found_outside_a_small_tail(tmp_path: Path) -> None:
    # The tail holds only the end of the thermochemistry: the frequency list is found by a backward scan.
    out = read_output(DVB_IR[6], head_bytes=4096, tail_bytes=8192)
    assert "VIBRATIONAL FREQUENCIES" not in out.tail
    freqs = read_frequencies(out.path, out.tail, out.size, out.whole)
    assert freqs is not None and len(freqs.values) == 60 and freqs.lowest == 43.87


def test_runtyp_opt_without_converged_banner_is_not_success(tmp_path: Path) -> None:
    # The real dvb_gopt run, its converged banner removed, its echoed input using the block form.
    text = DVB_GOPT.read_text(encoding="utf-8")
    assert "THE OPTIMIZATION HAS CONVERGED" in text
    echo = next(line for line in text.splitlines() if line.startswith("|  1> !"))
    text = text.replace(echo, "|  1> ! b3lyp sto-3g\n|  1> %method RunTyp Opt end")
    text = text.replace("THE OPTIMIZATION HAS CONVERGED", "")
    out = tmp_path / "gopt.out"
    out.write_text(text, encoding="utf-8")
    c = classify_output(out)
    assert c.calc_kind == "optimisation"
    assert c.outcome is Outcome.OPT_NOT_CONVERGED


def test_normal_end_without_final_energy_is_not_success(tmp_path: Path) -> None:
    text = DVB_IR[5].read_text(encoding="utf-8").replace("FINAL SINGLE POINT ENERGY", "FINAL ENERGY GONE")
    out = tmp_path / "ir.out"
    out.write_text(text, encoding="utf-8")
    c = classify_output(out)
    assert c.normal_termination and c.outcome is Outcome.NO_FINAL_ENERGY
    assert "FINAL SINGLE POINT ENERGY" in c.message


@pytest.mark.parametrize("freq", ["Freq", "NumFreq", "AnFreq"])
def test_frequencies_asked_for_but_not_printed_is_not_success(freq: str) -> None:
    # The real converged dvb optimisation printed no frequencies; had its input asked for them
    # (its own input plus Freq), a COMPLETED job would promise a minimum nobody checked.
    text = DVB_GOPT.with_suffix(".inp").read_text(encoding="utf-8").replace(" opt\n", f" opt {freq}\n", 1)
    c = classify_output(DVB_GOPT, intents=intents(text))
    assert c.intent == MINIMUM and c.n_imaginary is None
    assert c.outcome is Outcome.NO_FREQUENCIES and "VIBRATIONAL FREQUENCIES" in c.message
    # The same output judged by its own input (no Freq) stays a success.
    assert classify_output(DVB_GOPT, intents=intents(DVB_GOPT.with_suffix(".inp").read_text())).outcome is (
        Outcome.SUCCESS
    )


# --- the recovery handler -------------------------------------------------------------------


def _failed_attempt(tmp_path: Path, input_text: str) -> tuple[AttemptPlan, Failure]:
    shutil.copyfile(NEG_FREQ, tmp_path / "ts.out")
    # The real output holds the frequency part of the run: judged as the check of a minimum.
    c = classify_output(tmp_path / "ts.out", intents=CHECK_MINIMUM)
    plan = AttemptPlan("ts.inp", input_text, nprocs=1, maxcore_mb=1000, mem_mb=1300, time_min=30)
    return plan, Failure(c.outcome, None, c.to_dict(), tmp_path, "ts", [])


GEOMETRY = (
    "* xyz 0 2\nO 1.16532400 0.24521400 0.19044100\nH 1.45962000 -0.62715200 -0.10585700\n"
    "C -1.27302400 -0.21220800 -0.18668000\nH -1.26887000 -1.09491000 -0.82008800\n"
    "H -1.70923100 -0.39747500 0.79081300\nH -0.11382300 0.09674400 0.02920100\n"
    "H -1.69544300 0.65642500 -0.68441900\n*\n"
)


def test_handler_displaces_along_the_imaginary_mode_and_tightens(tmp_path: Path) -> None:
    plan, failure = _failed_attempt(tmp_path, f"! uKS wb97x-d3 def2-tzvp Opt Freq\n{GEOMETRY}")
    assert failure.outcome is Outcome.IMAGINARY_MODES
    new, handler = plan_recovery(plan, failure, Limits(16000, 240))
    assert handler == "imaginary_modes" and new is not None
    changes = [c["change"] for c in new.corrections]
    assert changes == [f"* xyzfile {DISPLACED_XYZ}", "! TightOpt", "! DefGrid3"]
    assert all(c["handler"] == "imaginary_modes" and c["why"] for c in new.corrections)
    assert "-1271.62" in new.corrections[0]["why"]
    kws = orca_input.parse_input(Path("x.inp"), new.input_text, check_files=False).keywords_lower
    assert {"tightopt", "defgrid3", "freq"} <= kws and "opt" not in kws
    # The new geometry is the old one moved along normal mode 6, the largest move 0.1 Angstrom.
    out = read_output(tmp_path / "ts.out")
    freqs = read_frequencies(out.path, out.tail, out.size, out.whole)
    assert freqs is not None
    mode = read_normal_mode(out.path, freqs.offset, 6)
    old = [[float(x) for x in line.split()[1:]] for line in GEOMETRY.splitlines()[1:-1]]
    lines = new.extra_files[DISPLACED_XYZ].read_text(encoding="utf-8").splitlines()
    assert lines[0] == "7" and "mode 6" in lines[1]
    moved = [[float(x) for x in line.split()[1:]] for line in lines[2:]]
    deltas = [[m - o for m, o in zip(mv, od, strict=True)] for mv, od in zip(moved, old, strict=True)]
    scale = 0.1 / max(math.dist((0, 0, 0), mode[3 * i : 3 * i + 3]) for i in range(7))
    for i, d in enumerate(deltas):
        for k in range(3):
            assert d[k] == pytest.approx(scale * mode[3 * i + k], abs=1e-7)
    assert max(math.dist((0, 0, 0), d) for d in deltas) == pytest.approx(0.1, abs=1e-7)


def test_handler_leaves_a_compound_script_to_a_person(tmp_path: Path) -> None:
    # Its steps have their own keywords: "! TightOpt" on the job's line would reach the Freq step too.
    script = "%compound\n New_Step\n  ! Opt\n Step_End\n New_Step\n  ! Freq\n Step_End\nend\n"
    plan, failure = _failed_attempt(tmp_path, f"! uKS wb97x-d3 def2-tzvp\n{script}{GEOMETRY}")
    new, why = plan_recovery(plan, failure, Limits(16000, 240))
    assert new is None and "%compound" in why


def test_handler_can_be_disabled_and_gives_up_after_two_tries(tmp_path: Path) -> None:
    plan, failure = _failed_attempt(tmp_path, f"! uKS wb97x-d3 def2-tzvp Opt Freq\n{GEOMETRY}")
    new, why = plan_recovery(plan, failure, Limits(16000, 240), disabled=("imaginary_modes",))
    assert new is None and why == "no recovery handler for imaginary_modes"
    failure.history = [[{"handler": "imaginary_modes"}], [{"handler": "imaginary_modes"}]]
    new, why = plan_recovery(plan, failure, Limits(16000, 240))
    assert new is None and "still wrong after 2" in why


def test_site_threshold_key(tmp_path: Path) -> None:
    site = tmp_path / "s.toml"
    site.write_text(
        'name = "s"\nscheduler = "local"\n[orca]\npath = "orca"\n[chemistry]\nimag_threshold_cm1 = 35\n'
    )
    assert load_site(str(site)).imag_threshold_cm1 == 35.0
    site.write_text(
        'name = "s"\nscheduler = "local"\n[orca]\npath = "orca"\n[chemistry]\nimag_threshold_cm1 = -1\n'
    )
    with pytest.raises(Exception, match="imag_threshold_cm1"):
        load_site(str(site))


def test_handler_displaces_the_last_jobs_geometry_not_an_earlier_jobs(tmp_path: Path) -> None:
    """The frequencies are the last job's; before, a multi-job input's <input>.xyz (the first job's
    geometry) was moved along them. The classifier names the last job's file (its %base)."""
    plan, failure = _failed_attempt(tmp_path, f"! uKS wb97x-d3 def2-tzvp Opt Freq\n{GEOMETRY}")
    atoms = GEOMETRY.splitlines()[1:-1]
    far = [f"{a.split()[0]} " + " ".join(f"{float(x) + 5:.8f}" for x in a.split()[1:]) for a in atoms]
    (tmp_path / "ts.xyz").write_text("7\nthe first job's\n" + "\n".join(far) + "\n")
    (tmp_path / "refined.xyz").write_text("7\nthe last job's\n" + "\n".join(atoms) + "\n")
    failure.classification["final_xyz"] = "refined.xyz"
    new, handler = plan_recovery(plan, failure, Limits(16000, 240))
    assert handler == "imaginary_modes" and new is not None
    lines = new.extra_files[DISPLACED_XYZ].read_text(encoding="utf-8").splitlines()[2:]
    for moved, start in zip(lines, atoms, strict=True):
        a, b = [float(x) for x in moved.split()[1:]], [float(x) for x in start.split()[1:]]
        assert math.dist(a, b) <= 0.1 + 1e-7, (moved, start)
