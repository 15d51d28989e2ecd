"""The classifier and the recovery handlers on more real ORCA 6.1 outputs (tests/fixtures/orca-public/,
see its PROVENANCE.md): input errors ORCA 6 prints without a banner, an optimisation that hit its
cycle limit before a Freq step, an optimised "minimum" with three imaginary modes, a converged OptTS
with its one imaginary mode, and a run killed during start-up. Each is what a real ORCA printed."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest

from orca_hpc.attempt.folder import AttemptPlan
from orca_hpc.controller.recovery import DISPLACED_XYZ, RESTART_XYZ, Failure, Limits, plan_recovery
from orca_hpc.orca.chemistry import last_geometry, read_frequencies, read_normal_mode
from orca_hpc.orca.classify import classify_output
from orca_hpc.orca.inputs import input_intents
from orca_hpc.orca.outcomes import Outcome
from orca_hpc.orca.read import read_output

PUBLIC = Path(__file__).parent / "fixtures" / "orca-public"
MAXCYCLES = PUBLIC / "GoodVibes__orca6__52_err_opt_not_converged_maxcycles.out"
SADDLE_2ND = PUBLIC / "GoodVibes__orca6__37_planar_cyclohexane_opt_freq_imaginary.out"
TS = PUBLIC / "GoodVibes__orca6__44_ts_sn2_identity_chloride.out"
TIMED_OUT = PUBLIC / "GoodVibes__orca6__56_err_timed_out.out"
LINKED = PUBLIC / "GoodVibes__orca6__03_acetone_linked_opt_freq.out"
NEB_TS = PUBLIC / "GoodVibes__orca6__46_ts_fast_neb_ts_claisen.out"
NORMAL_LINE = "****ORCA TERMINATED NORMALLY****"
LIMITS = Limits(256000, 1440)

# file -> (outcome, retryable, text in the message)
ENDINGS = {
    MAXCYCLES.name: (Outcome.OPT_NOT_CONVERGED, True, "maximum number of optimization cycles"),
    "GoodVibes__orca6__53_err_wrong_charge_multiplicity.out": (
        Outcome.INPUT_ERROR,
        False,
        "multiplicity (2) is even and number of electrons (10) is even",
    ),
    "GoodVibes__orca6__54_err_missing_basis_heavy_atom.out": (
        Outcome.INPUT_ERROR,
        False,
        "basis set was either not assigned or not available",
    ),
    TIMED_OUT.name: (Outcome.TRUNCATED, True, "STARTUP-calculation"),
    "GoodVibes__orca6__57_err_syntax_route_typo.out": (Outcome.INPUT_ERROR, False, "B3LPY          FEQ"),
    # ORCA 6 prints this with no banner and no termination line: an output that "just stops".
    "GoodVibes__orca6__60_err_missing_end_blank_line.out": (
        Outcome.INPUT_ERROR,
        False,
        "'END' expected in COORDS/XYZ",
    ),
    SADDLE_2ND.name: (Outcome.IMAGINARY_MODES, True, "-345.73, -242.14, -241.53"),
    TS.name: (Outcome.SUCCESS, False, ""),
    "GoodVibes__orca6__01a_water_hf_freq.out": (Outcome.SUCCESS, False, ""),
    LINKED.name: (Outcome.SUCCESS, False, ""),
    NEB_TS.name: (Outcome.SUCCESS, False, ""),
}


def _echoed_input(output: Path) -> str:
    """The input as ORCA echoed it: what the job ran."""
    text = output.read_text(encoding="utf-8")
    lines = [m.group(1) for m in re.finditer(r"^\|\s*\d+> ?(.*)$", text, re.MULTILINE)]
    return "\n".join(line for line in lines if "END OF INPUT" not in line) + "\n"


def _failure(output: Path, tmp_path: Path) -> tuple[AttemptPlan, Failure]:
    shutil.copyfile(output, tmp_path / "job.out")
    c = classify_output(tmp_path / "job.out")
    plan = AttemptPlan(
        "job.inp", _echoed_input(output), nprocs=16, maxcore_mb=6000, mem_mb=120000, time_min=60
    )
    return plan, Failure(c.outcome, None, c.to_dict(), tmp_path, "job", [])


def test_every_public_fixture_is_listed_with_its_provenance() -> None:
    provenance = (PUBLIC / "PROVENANCE.md").read_text(encoding="utf-8")
    outputs = sorted(p.name for p in PUBLIC.glob("*.out"))
    assert outputs == sorted(ENDINGS)
    files = [p.name for p in PUBLIC.iterdir() if p.name != "PROVENANCE.md"]
    assert all(f"`{name}`" in provenance for name in files)


@pytest.mark.parametrize("name", sorted(ENDINGS))
def test_real_orca6_endings(name: str) -> None:
    outcome, retryable, text = ENDINGS[name]
    c = classify_output(PUBLIC / name)
    assert c.outcome is outcome, c.message
    assert c.retryable is retryable
    assert text in c.message
    assert c.orca_version == "6.1.0"


@pytest.mark.parametrize("name", sorted(ENDINGS))
def test_small_windows_agree(name: str) -> None:
    # Read as a large output is (head and tail only, backward scans for the rest): the same verdict.
    whole = classify_output(PUBLIC / name)
    windowed = classify_output(PUBLIC / name, head_bytes=6 * 1024, tail_bytes=2 * 1024)
    assert (windowed.outcome, windowed.energy) == (whole.outcome, whole.energy)


def test_optimisation_cycle_limit_before_freq_is_read_from_orca6s_wrapped_error_box(tmp_path: Path) -> None:
    # ORCA 6.1 wraps "... reached the maximum \n number of optimization cycles." in an ERROR box and
    # still ends normally. The input's own comment quotes the message on one line: blank it, so only
    # ORCA's box can say it.
    text = MAXCYCLES.read_text(encoding="utf-8")
    box = "did not converge but reached the maximum \n       number of optimization cycles."
    assert box in text and NORMAL_LINE in text
    path = tmp_path / "opt.out"
    path.write_text(re.sub(r"\|  4> # ORCA error.*", "|  4> #", text), encoding="utf-8")
    for options in ({}, {"head_bytes": 6 * 1024, "tail_bytes": 1024}):
        c = classify_output(path, **options)  # type: ignore[arg-type]
        assert c.outcome is Outcome.OPT_NOT_CONVERGED
        assert "reached the maximum number of optimization cycles" in c.message
        assert c.energy == pytest.approx(-233.502615750967)
    assert classify_output(path).opt_cycles == 2


def test_an_earlier_step_at_its_orca6_cycle_limit_fails_a_two_step_run(tmp_path: Path) -> None:
    # ORCA goes on to the next $new_job after an optimisation stopped at its limit: the later
    # converged step (the real OptTS run) must not hide it, though ORCA 6 wraps the message.
    first = MAXCYCLES.read_text(encoding="utf-8")
    first = re.sub(r"\|  4> # ORCA error.*", "|  4> #", first)
    path = tmp_path / "two.out"
    path.write_text(first[: first.index(NORMAL_LINE)] + "\n$new_job\n" + TS.read_text(encoding="utf-8"))
    xyz = "* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n"
    steps = input_intents(tmp_path / "two.inp", f"! Opt\n{xyz}$new_job\n! Opt\n{xyz}")
    for options in ({}, {"head_bytes": 4096, "tail_bytes": 2048}):
        c = classify_output(path, intents=steps, **options)  # type: ignore[arg-type]
        assert c.normal_termination and c.outcome is Outcome.OPT_NOT_CONVERGED, c.message


def test_opt_handler_restarts_the_real_cycle_limit_run(tmp_path: Path) -> None:
    plan, failure = _failure(MAXCYCLES, tmp_path)
    # ORCA writes <base>.xyz every cycle: the next attempt starts from it.
    (tmp_path / "job.xyz").write_text("1\nlast\nH 0 0 0\n", encoding="utf-8")
    new, handler = plan_recovery(plan, failure, LIMITS)
    assert handler == "opt" and new is not None
    changes = [c["change"] for c in new.corrections]
    assert changes == [f"* xyzfile {RESTART_XYZ}", "%geom MaxIter 100"]
    assert "stopped after 2 cycles" in new.corrections[-1]["why"]
    assert "MaxIter 100" in new.input_text and "MaxIter 2\n" not in new.input_text


def test_input_comments_that_quote_orca_are_not_orcas_verdict(tmp_path: Path) -> None:
    # Real inputs quote ORCA's messages in comments (every GoodVibes error example does). The echo
    # is the user's text: a comment "THE OPTIMIZATION HAS CONVERGED" must not make an optimisation
    # that never printed the banner a success, whether the echo is in the tail or only found by the
    # backward scan of a large output.
    text = MAXCYCLES.read_text(encoding="utf-8")
    text = text.replace("|  4> # ORCA error", "|  4> # last time: THE OPTIMIZATION HAS CONVERGED")
    text = text.replace("Opt Freq pal16", "Opt pal16")
    start, end = (
        text.index("                                   ERROR !!!") - 81,
        text.index("Timings for individual"),
    )
    path = tmp_path / "opt.out"
    path.write_text(text[:start] + text[end:], encoding="utf-8")  # without ORCA's ERROR box
    for options in ({}, {"head_bytes": 6 * 1024, "tail_bytes": 1024}):
        c = classify_output(path, **options)  # type: ignore[arg-type]
        assert c.outcome is Outcome.OPT_NOT_CONVERGED, c.message
        assert "without 'THE OPTIMIZATION HAS CONVERGED'" in c.message
    # And a killed run whose input comment quotes a memory error is killed, not out of memory.
    killed = TIMED_OUT.read_text(encoding="utf-8").replace(
        "|  5> # Fix:",
        "|  5> # Error  (ORCA_SCF): Not enough memory available! Please increase MaxCore to more than: 9 MB",
    )
    path.write_text(killed, encoding="utf-8")
    c = classify_output(path)
    assert c.outcome is Outcome.TRUNCATED and c.memory_required_mb is None, c.message


def test_optimised_minimum_with_imaginary_modes_is_displaced_along_the_strongest(tmp_path: Path) -> None:
    # The real ORCA 6.1 Opt Freq of planar cyclohexane: the optimiser converged (HURRAY) on a
    # higher-order saddle, and the frequencies show three imaginary modes.
    plan, failure = _failure(SADDLE_2ND, tmp_path)
    c = failure.classification
    assert c["intent"] == "minimum" and c["n_imaginary"] == 3
    assert c["energy"] == pytest.approx(-235.660395413556)
    new, handler = plan_recovery(plan, failure, LIMITS)
    assert handler == "imaginary_modes" and new is not None
    assert [x["change"] for x in new.corrections] == [
        f"* xyzfile {DISPLACED_XYZ}",
        "! TightOpt",
        "! DefGrid3",
    ]
    assert "mode 6 (-345.73 cm**-1)" in new.corrections[0]["why"]
    # The displaced geometry is the final one moved along mode 6, its largest atom move 0.1 A.
    out = read_output(tmp_path / "job.out")
    freqs = read_frequencies(out.path, out.tail, out.size, out.whole)
    assert freqs is not None
    mode = read_normal_mode(out.path, freqs.offset, 6)
    final = last_geometry(out.tail)
    assert len(mode) == 54 and len(final) == 18
    lines = new.extra_files[DISPLACED_XYZ].read_text(encoding="utf-8").splitlines()
    moved = [[float(x) for x in line.split()[1:]] for line in lines[2:]]
    scale = 0.1 / max(math.dist((0, 0, 0), mode[3 * i : 3 * i + 3]) for i in range(18))
    for i, (_, x, y, z) in enumerate(final):
        for k, old in enumerate((x, y, z)):
            assert moved[i][k] - old == pytest.approx(scale * mode[3 * i + k], abs=1e-6)


def test_converged_ts_with_one_imaginary_mode_and_its_thermochemistry() -> None:
    c = classify_output(TS)
    assert (c.calc_kind, c.intent, c.n_imaginary) == ("transition_state", "saddle", 1)
    assert c.imaginary_freqs == [-343.71]
    assert c.energy == pytest.approx(-960.291216714078)  # the final evaluation, not the last cycle's
    assert (c.zpe, c.enthalpy, c.gibbs, c.temperature) == pytest.approx(
        (0.03682585, -960.24874107, -960.28182960, 298.15)
    )
    # A threshold above the real mode leaves no imaginary mode: not a transition state.
    strict = classify_output(TS, imag_threshold=400)
    assert strict.outcome is Outcome.TS_MODE_COUNT and strict.n_imaginary == 0


def test_orca61_property_txt_beside_its_output_gives_the_energy() -> None:
    # The real pair: ORCA 6.1 wrote <base>.property.txt ($Single_Point_Data &FinalEnergy, &Converged)
    # beside the output of a Freq run; it agrees with the output's energy, so its precision is used.
    c = classify_output(PUBLIC / "GoodVibes__orca6__01a_water_hf_freq.out")
    assert c.energy_source == "GoodVibes__orca6__01a_water_hf_freq.property.txt"
    assert c.energy == -76.009114306317088 and c.energy_converged is True
    assert (c.intent, c.n_imaginary, c.lowest_freq, c.zpe) == ("report", 0, 1860.04, 0.02234428)


def test_linked_opt_then_freq_on_the_written_geometry_checks_the_minimum(tmp_path: Path) -> None:
    # The real two-job run: Opt with %base "03_acetone_opt", then $new_job Freq reading
    # "* xyzfile 0 1 03_acetone_opt.xyz", the geometry the first job wrote. Its frequencies are the
    # check of that minimum, not a report on some given geometry.
    steps = input_intents(tmp_path / "03.inp", _echoed_input(LINKED))
    assert [s.frequency_check for s in steps] == [None, "minimum"]
    c = classify_output(LINKED)
    assert (c.outcome, c.intent, c.n_imaginary) == (Outcome.SUCCESS, "minimum", 0)
    assert c.energy == pytest.approx(-193.095528685390)  # the Freq job's, the last one
    # Had the lowest mode come out imaginary, the optimised "minimum" would not be one.
    text = LINKED.read_text(encoding="utf-8").replace(
        "     6:      29.32 cm**-1", "     6:     -29.32 cm**-1"
    )
    path = tmp_path / "03_acetone_linked_opt_freq.out"
    path.write_text(text, encoding="utf-8")
    assert classify_output(path).outcome is Outcome.IMAGINARY_MODES
    # A Freq job on a file no earlier job wrote only reports.
    other = _echoed_input(LINKED).replace("1 03_acetone_opt.xyz", "1 elsewhere.xyz")
    assert [s.frequency_check for s in input_intents(tmp_path / "03.inp", other)] == [None, "report"]


def test_fast_neb_ts_with_freq_is_a_saddle_with_one_imaginary_mode() -> None:
    # ORCA 6.1 "Fast-NEB-TS": the band, then a TS optimisation ("THE TS OPTIMIZATION HAS CONVERGED"
    # after the optimiser's own HURRAY), then the Freq of the TS. The final energy is the last
    # FINAL SINGLE POINT ENERGY (PBEh-3c: dispersion and gCP included), not the SCF's.
    c = classify_output(NEB_TS)
    assert (c.outcome, c.calc_kind, c.intent) == (Outcome.SUCCESS, "transition_state", "saddle")
    assert c.imaginary_freqs == [-585.73]
    assert c.energy == pytest.approx(-269.857089604691)
