"""The classifier against real ORCA outputs (4.x, 5.x, 6.x), cut and spliced copies, and odd files."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from orca_hpc.errors import UserError
from orca_hpc.orca.classify import Classification, classify_output, energy_is_suspicious
from orca_hpc.orca.inputs import input_intents
from orca_hpc.orca.outcomes import Outcome

FIXTURES = Path(__file__).parent / "fixtures" / "orca"
# The project's shared folder sits beside the repository (CI lays a copy there too).
# ../shared beside the repository (CI lays a copy there too)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "orca"
needs_shared = pytest.mark.usefixtures("shared_orca")  # fails, never skips, when ../shared is missing

# file -> (outcome, ORCA version, calc kind, final energy or None)
SUCCESSES: dict[str, tuple[str, str, float]] = {
    "cclib__basicORCA4.1__dvb_sp_un.out": ("4.1.1", "single_point", -381.827630562179),
    "cclib__basicORCA4.2__dvb_sp.out": ("4.2.0", "single_point", -382.050758039646),
    "cclib__basicORCA4.2__dvb_gopt.out": ("4.2.0", "optimisation", -382.050786152348),
    "cclib__basicORCA5.0__dvb_sp.out": ("5.0.0", "single_point", -382.055108614123),
    "cclib__basicORCA5.0__dvb_gopt.out": ("5.0.1", "optimisation", -382.055133372796),
    "cclib__basicORCA5.0__dvb_ir.out": ("5.0.1", "frequencies", -382.055108614160),
    "cclib__basicORCA5.0__dvb_td.out": ("5.0.0", "tddft", -381.858426608871),
    "cclib__basicORCA6.0__dvb_sp_hf.out": ("6.0.1", "single_point", -379.768962914202),
    "cclib__basicORCA6.0__dvb_sp_dft.out": ("6.0.0", "single_point", -382.055108392562),
    "cclib__basicORCA6.0__dvb_sp_un_dft.out": ("6.0.0", "single_point", -381.831980903245),
    "cclib__basicORCA6.0__dvb_gopt.out": ("6.0.0", "optimisation", -382.055133399486),
    "cclib__basicORCA6.0__dvb_ir.out": ("6.0.1", "frequencies", -382.055107107616),
    "cclib__basicORCA6.0__dvb_td.out": ("6.0.0", "tddft", -381.858419046289),
    "cclib__basicORCA6.0__water_ccsd.out": ("6.0.1", "coupled_cluster", -75.013487814067),
}

FAILURES: dict[str, tuple[Outcome, bool, str]] = {
    # file -> (outcome, retryable, text the message must contain)
    "ARC__orca_GTOInt_error.log": (Outcome.PARALLEL_ERROR, True, "error termination in GTOInt"),
    "ARC__orca_mdci_error_2.log": (Outcome.PARALLEL_ERROR, True, "error termination in MDCI"),
    "ARC__orca_input_error.log": (Outcome.INPUT_ERROR, False, "XTB1"),
    "ARC__orca_scf_memory_error.log": (Outcome.OUT_OF_MEMORY, True, "289 MB"),
    "ARC__orca_wavefunction_not_converge_error.log": (
        Outcome.WAVEFUNCTION_NOT_CONVERGED,
        True,
        "NOT FULLY CONVERGED",
    ),
}

SHARED_FAILURES: dict[str, tuple[Outcome, bool, str]] = {
    # aiida-orca is MIT, but its licence text was not at hand to ship beside a copy: read it from shared/.
    "aiida-orca__unrestricted__aiida.out": (Outcome.OPT_NOT_CONVERGED, True, "did not converge"),
    "cclib-data__ORCA4.0__IrCl6_sp.out": (Outcome.SCF_NOT_CONVERGED, True, "NOT FULLY CONVERGED"),
    "cclib-data__ORCA3.0__dvb_gopt_unconverged.out": (Outcome.OPT_NOT_CONVERGED, True, "did not converge"),
    "cclib-data__ORCA3.0__stopiter_orca_scf_compact.out": (Outcome.TRUNCATED, True, "no termination line"),
}

NORMAL_LINE = "****ORCA TERMINATED NORMALLY****"


def _copy(name: str, tmp_path: Path, new_name: str | None = None) -> Path:
    dest = tmp_path / (new_name or name)
    shutil.copyfile(FIXTURES / name, dest)
    return dest


def _rewrite(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"splice point {old!r} not in {path.name}"
    path.write_text(text.replace(old, new, count) if count else text.replace(old, new))


# --- real outputs -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SUCCESSES))
def test_successful_runs(name: str) -> None:
    version, kind, energy = SUCCESSES[name]
    c = classify_output(FIXTURES / name)
    assert c.outcome is Outcome.SUCCESS, c.message
    assert c.retryable is False
    assert c.normal_termination is True
    assert c.orca_version == version
    assert c.calc_kind == kind
    assert c.energy == pytest.approx(energy, abs=1e-9)
    assert c.energy_converged is True
    assert c.energy_source == "output"
    assert c.run_time_s is not None and c.run_time_s > 0
    assert c.scf_cycles is not None and c.scf_cycles > 0
    assert c.message == ""


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_failed_runs(name: str) -> None:
    outcome, retryable, text = FAILURES[name]
    c = classify_output(FIXTURES / name)
    assert c.outcome is outcome, c.message
    assert c.retryable is retryable
    assert text in c.message
    assert c.outcome is Outcome.OPT_NOT_CONVERGED or c.normal_termination is False


@needs_shared
@pytest.mark.parametrize("name", sorted(SHARED_FAILURES))
def test_shared_failed_runs(name: str) -> None:
    outcome, retryable, text = SHARED_FAILURES[name]
    c = classify_output(SHARED / "failures" / name)
    assert c.outcome is outcome, c.message
    assert c.retryable is retryable
    assert text in c.message


def test_details_of_specific_failures() -> None:
    mem = classify_output(FIXTURES / "ARC__orca_scf_memory_error.log")
    assert mem.memory_required_mb == 289.0
    assert mem.nprocs_used == 20  # from "mpirun -np 20"
    assert mem.orca_version == "4.1.2"
    assert any("Not enough memory" in line for line in mem.error_lines)

    gto = classify_output(FIXTURES / "ARC__orca_GTOInt_error.log")
    assert gto.nprocs_used == 40
    assert gto.energy is None and gto.run_time_s is None

    wf = classify_output(FIXTURES / "ARC__orca_wavefunction_not_converge_error.log")
    assert wf.energy == pytest.approx(-609.155669143400)
    assert wf.energy_converged is False


@needs_shared
def test_unconverged_optimisation_with_normal_termination() -> None:
    opt = classify_output(SHARED / "failures" / "aiida-orca__unrestricted__aiida.out")
    assert opt.normal_termination is True
    assert opt.opt_cycles == 2
    assert opt.energy == pytest.approx(-39.497696442138)


@needs_shared
@pytest.mark.parametrize("tail_bytes", [None, 16 * 1024])
def test_an_earlier_optimisation_at_its_cycle_limit_fails_a_two_step_run(
    tail_bytes: int | None, tmp_path: Path
) -> None:
    # Two $new_job optimisations in one output: the real ORCA 5 run that stopped at its cycle limit
    # (ORCA goes on to the next job), then the real ORCA 5 run that converged.
    first = (SHARED / "failures" / "aiida-orca__unrestricted__aiida.out").read_text()
    second = (FIXTURES / "cclib__basicORCA5.0__dvb_gopt.out").read_text()
    path = tmp_path / "two.out"
    path.write_text(first[: first.index(NORMAL_LINE)] + "\n$new_job\n" + second)
    xyz = "* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n"
    steps = input_intents(tmp_path / "two.inp", f"! Opt\n{xyz}$new_job\n! Opt\n{xyz}")
    options = {} if tail_bytes is None else {"head_bytes": 4096, "tail_bytes": tail_bytes}
    c = classify_output(path, intents=steps, **options)
    assert c.normal_termination and c.outcome is Outcome.OPT_NOT_CONVERGED, c.message
    # Judged as one optimising step, the last verdict is that step's, and it converged.
    assert classify_output(path, intents=steps[1:], **options).outcome is not Outcome.OPT_NOT_CONVERGED


@needs_shared
def test_orca4_scf_failure_without_error_termination_line() -> None:
    c = classify_output(SHARED / "failures" / "cclib-data__ORCA4.0__IrCl6_sp.out")
    assert c.scf_cycles == 125
    assert c.energy_converged is False
    assert c.run_time_s is None


def test_to_dict_is_json_safe() -> None:
    c = classify_output(FIXTURES / "cclib__basicORCA6.0__dvb_gopt.out")
    data = json.loads(json.dumps(c.to_dict()))
    assert data["outcome"] == "success"
    assert data["opt_cycles"] == 3
    for key in ("file", "outcome", "retryable", "energy", "orca_version", "message", "error_lines"):
        assert key in data
    bad = Classification(file="x", outcome=Outcome.SUSPICIOUS_RESULT, retryable=False, energy=math.nan)
    assert json.loads(json.dumps(bad.to_dict(), allow_nan=False))["energy"] is None


# --- the large-file path: small head/tail windows must give the same answers ------------------


@pytest.mark.parametrize("name", sorted(SUCCESSES) + sorted(FAILURES))
def test_small_windows_agree_with_whole_file(name: str) -> None:
    whole = classify_output(FIXTURES / name)
    windowed = classify_output(FIXTURES / name, head_bytes=48 * 1024, tail_bytes=16 * 1024)
    assert windowed.outcome is whole.outcome
    assert windowed.energy == whole.energy
    assert windowed.orca_version == whole.orca_version
    assert windowed.calc_kind == whole.calc_kind


def test_opt_banner_found_by_backward_scan_beyond_tail() -> None:
    # In this file the HURRAY banner is ~100 KB before the end: outside a 16 KB tail.
    name = "cclib__basicORCA4.2__dvb_gopt.out"
    text = (FIXTURES / name).read_text()
    assert len(text) - text.index("THE OPTIMIZATION HAS CONVERGED") > 16 * 1024
    c = classify_output(FIXTURES / name, head_bytes=4096, tail_bytes=16 * 1024)
    assert c.outcome is Outcome.SUCCESS


# --- cut and spliced copies -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SUCCESSES))
def test_truncated_copies_are_never_success(name: str, tmp_path: Path) -> None:
    data = (FIXTURES / name).read_bytes()
    normal_at = data.index(NORMAL_LINE.encode())
    cuts = [int(len(data) * f) for f in (0.1, 0.3, 0.5, 0.7, 0.9)] + [normal_at, normal_at + 10]
    for cut in cuts:
        path = tmp_path / f"cut_{cut}.out"
        path.write_bytes(data[:cut])
        c = classify_output(path)
        assert c.outcome is Outcome.TRUNCATED, (cut, c.outcome, c.message)
        assert c.retryable is True
        assert c.normal_termination is False


def test_optimisation_without_converged_banner_is_not_success(tmp_path: Path) -> None:
    path = _copy("cclib__basicORCA6.0__dvb_gopt.out", tmp_path)
    _rewrite(path, "THE OPTIMIZATION HAS CONVERGED", "THE OPTIMIZATION HAS ENDED")
    c = classify_output(path)
    assert c.normal_termination is True
    assert c.outcome is Outcome.OPT_NOT_CONVERGED
    assert c.retryable is True


@pytest.mark.parametrize(
    ("energy", "outcome"),
    [
        ("-20000000.000000000000", Outcome.SUSPICIOUS_RESULT),  # |E| > 1e5 Eh
        ("-450.000000000000", Outcome.SUSPICIOUS_RESULT),  # 68 Eh below the first SCF iteration
        ("nan", Outcome.SUSPICIOUS_RESULT),
        ("-383.000000000000", Outcome.SUCCESS),  # 1 Eh lower: plausible, not flagged
    ],
)
def test_absurd_final_energy_after_normal_end(energy: str, outcome: Outcome, tmp_path: Path) -> None:
    path = _copy("cclib__basicORCA6.0__dvb_sp_dft.out", tmp_path)
    _rewrite(path, "-382.055108392562", energy, count=0)
    c = classify_output(path)
    assert c.outcome is outcome, c.message
    if outcome is Outcome.SUSPICIOUS_RESULT:
        assert c.retryable is False
        assert "final energy" in c.message
    json.dumps(c.to_dict(), allow_nan=False)


def test_energy_sanity_rule() -> None:
    assert energy_is_suspicious(-1076.1, -1075.0) is None
    assert energy_is_suspicious(-2.0e7, -1076.0) is not None
    assert energy_is_suspicious(-2.0e5, None) is not None
    assert energy_is_suspicious(-1200.0, -1076.0) is not None  # 124 Eh > 5 % of 1076 Eh
    assert energy_is_suspicious(-1.5, -1.2) is None  # small systems: at least 10 Eh allowed


def test_unconverged_final_energy_after_normal_end(tmp_path: Path) -> None:
    path = _copy("cclib__basicORCA5.0__dvb_sp.out", tmp_path)
    _rewrite(path, "-382.055108614123", "-382.055108614123   (SCF not fully converged!)")
    c = classify_output(path)
    assert c.energy_converged is False
    assert c.outcome is Outcome.SCF_NOT_CONVERGED


def _early_failure(tmp_path: Path, tail: str, base: str = "cclib__basicORCA6.0__dvb_sp_dft.out") -> Path:
    """A real output cut after its SCF setup, with an ending that has no real fixture."""
    text = (FIXTURES / base).read_text()
    cut = text.index("D-I-I-S")
    path = tmp_path / "job.out"
    path.write_text(text[:cut] + tail)
    return path


@pytest.mark.parametrize(
    ("tail", "outcome", "retryable", "message"),
    [
        (
            "\nError (ORCA_LEANSCF): unfortunately, the SCF has not converged.\n\n"
            "ORCA finished by error termination in LEANSCF\n",
            Outcome.SCF_NOT_CONVERGED,
            True,
            "the SCF has not converged",
        ),
        (
            "\n  Error (ORCA_MDCI): Number of processes (16) in parallel calculation exceeds number of "
            "pairs (10)\nORCA finished by error termination in MDCI\n",
            Outcome.TOO_MANY_PROCESSES,
            True,
            "exceeds number of pairs",
        ),
        (
            "\nError (ORCA_MDCI): not enough memory to treat a single 4ext-batch\n"
            "Please increase MaxCore - by at least ( 6735.6 MB)\n"
            "ORCA finished by error termination in MDCI\n",
            Outcome.OUT_OF_MEMORY,
            True,
            "6735.6 MB",
        ),
        (
            "\nFor parallel runs ORCA has to be called with full pathname\n",
            Outcome.PARALLEL_ERROR,
            False,
            "full pathname",
        ),
        (
            "\n Zero distance encountered between atoms 1 and 2\n"
            "ORCA finished by error termination in Startup\n",
            Outcome.INPUT_ERROR,
            False,
            "Zero distance",
        ),
        (
            "\nError : multiplicity (2) is even and number of electrons (152) is even -> impossible\n",
            Outcome.INPUT_ERROR,
            False,
            "multiplicity (2)",
        ),
        (
            "\nThe basis set was either not assigned or not available for this element - Aborting the run\n",
            Outcome.INPUT_ERROR,
            False,
            "basis set",
        ),
        ("\nUnknown identifier in the %scf block: MaxIterations\n", Outcome.INPUT_ERROR, False, "Unknown"),
        ("\n  ... aborting the run\n", Outcome.UNKNOWN_ERROR, True, "aborting the run"),
    ],
)
def test_endings_known_only_from_documentation(
    tmp_path: Path, tail: str, outcome: Outcome, retryable: bool, message: str
) -> None:
    c = classify_output(_early_failure(tmp_path, tail))
    assert c.outcome is outcome, c.message
    assert c.retryable is retryable
    assert message in c.message


def test_oom_increment_is_reported(tmp_path: Path) -> None:
    tail = (
        "\nError (ORCA_MDCI): not enough memory to treat a single 4ext-batch\n"
        "Please increase MaxCore - by at least ( 6735.6 MB)\nORCA finished by error termination in MDCI\n"
    )
    assert classify_output(_early_failure(tmp_path, tail)).memory_required_mb == 6735.6


# --- property files ---------------------------------------------------------------------------


def test_property_txt_energy_is_preferred(tmp_path: Path) -> None:
    out = _copy("cclib__basicORCA6.0__dvb_sp_dft.out", tmp_path, "job.out")
    (tmp_path / "job.property.txt").write_text(
        '$Single_Point_Data\n   &FinalEnergy [&Type "Double"]      -3.8205510839256234e+02  '
        '"Final single point energy"\n   &Converged [&Type "Boolean"] true\n$End\n'
    )
    c = classify_output(out)
    assert c.outcome is Outcome.SUCCESS
    assert c.energy_source == "job.property.txt"
    assert c.energy == pytest.approx(-382.05510839256234, abs=1e-12)


def test_property_txt_not_converged_overrides(tmp_path: Path) -> None:
    out = _copy("cclib__basicORCA6.0__dvb_sp_dft.out", tmp_path, "job.out")
    (tmp_path / "job.property.txt").write_text(
        '$Single_Point_Data\n   &FINALENERGY [&Type "Double", &Units "Eh"]  -3.8205510839256e+02\n'
        '   &Converged [&Type "Boolean"] false\n$End\n'
    )
    c = classify_output(out)
    assert c.energy_converged is False
    assert c.outcome is Outcome.SCF_NOT_CONVERGED


def test_property_file_ignored_when_output_is_truncated(tmp_path: Path) -> None:
    data = (FIXTURES / "cclib__basicORCA6.0__dvb_sp_dft.out").read_bytes()
    (tmp_path / "job.out").write_bytes(data[: len(data) // 2])
    (tmp_path / "job.property.txt").write_text('&FinalEnergy [&Type "Double"] -1.0e+02\n')
    c = classify_output(tmp_path / "job.out")
    assert c.outcome is Outcome.TRUNCATED
    assert c.energy_source != "job.property.txt"


def test_property_file_of_another_step_does_not_replace_the_final_energy(tmp_path: Path) -> None:
    # A later $new_job step with its own %base writes its own property file: the one named after the
    # output holds an earlier step's energy (and flag), not a more precise copy of the last one.
    out = _copy("cclib__basicORCA6.0__dvb_sp_dft.out", tmp_path, "job.out")
    (tmp_path / "job.property.txt").write_text(
        '$Single_Point_Data\n   &FinalEnergy [&Type "Double"]      -3.8105510839256234e+02\n'
        '   &Converged [&Type "Boolean"] false\n$End\n'
    )
    c = classify_output(out)
    assert (c.outcome, c.energy, c.energy_source) == (Outcome.SUCCESS, -382.055108392562, "output")


def test_garbage_property_files_fall_back_to_output(tmp_path: Path) -> None:
    out = _copy("cclib__basicORCA6.0__dvb_sp_dft.out", tmp_path, "job.out")
    (tmp_path / "job.property.json").write_bytes(b"\xff\x00{not json")
    (tmp_path / "job.property.txt").write_text("$Single_Point_Data\n   &FinalEnergy garbage\n")
    c = classify_output(out)
    assert c.outcome is Outcome.SUCCESS
    assert c.energy_source == "output"


def test_orca4_property_txt_is_only_a_fallback(tmp_path: Path) -> None:
    out = _copy("cclib__basicORCA4.2__dvb_sp.out", tmp_path, "job.out")
    prop = "$ SCF_Energy\n   description: The SCF energy\n   geom. index: 1\n   prop. index: 1\n"
    (tmp_path / "job_property.txt").write_text(prop + "        SCF Energy:     -382.0507580396\n")
    assert classify_output(out).energy_source == "output"
    _rewrite(out, "FINAL SINGLE POINT ENERGY", "FINAL ENERGY (edited)")
    c = classify_output(out)
    assert c.energy_source == "job_property.txt"
    assert c.energy == pytest.approx(-382.0507580396)


@needs_shared
@pytest.mark.parametrize("kind", ["scf", "opt", "freq"])
def test_orca61_property_json(kind: str, tmp_path: Path) -> None:
    src = SHARED / "property_json" / f"opi__{kind}.property.json"
    expected = json.loads(src.read_text())["Geometries"][-1]["Single_Point_Data"]["FinalEnergy"]
    out = _copy("cclib__basicORCA6.0__dvb_sp_dft.out", tmp_path, "job.out")
    shutil.copyfile(src, tmp_path / "job.property.json")
    # opi ships the JSON without its output: the output's final energy made the JSON's, as printed.
    final = "FINAL SINGLE POINT ENERGY      "
    _rewrite(out, f"{final}-382.055108392562", f"{final}{expected:.12f}")
    c = classify_output(out)
    assert c.energy == expected
    assert c.energy_source == "job.property.json"
    assert c.energy_converged is True


# --- odd files --------------------------------------------------------------------------------


def test_empty_file_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "empty.out"
    path.write_bytes(b"")
    c = classify_output(path)
    assert c.outcome is Outcome.TRUNCATED
    assert "empty" in c.message


def test_binary_file_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "job.gbw"
    path.write_bytes(bytes(range(256)) * 64)
    c = classify_output(path)
    assert c.outcome is Outcome.UNKNOWN_ERROR
    assert "not an ORCA output" in c.message


def test_non_utf8_bytes_do_not_change_the_verdict(tmp_path: Path) -> None:
    data = (FIXTURES / "cclib__basicORCA5.0__dvb_sp.out").read_bytes()
    path = tmp_path / "latin.out"
    path.write_bytes(data[:5000] + "Gr\xfc\xdfe \xe9\xe8".encode("latin-1") + data[5000:])
    assert classify_output(path).outcome is Outcome.SUCCESS


def test_missing_file_and_directory_raise_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file") as err:
        classify_output(tmp_path / "nope.out")
    assert str(tmp_path / "nope.out") in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="is a directory"):
        classify_output(tmp_path)


def test_unconverged_scf_without_abort_then_killed_is_truncated(tmp_path: Path) -> None:
    # ORCA 5/6 carry on after a nearly converged SCF; if the job is then killed, that is the story.
    box = "\n               *           SCF NOT CONVERGED AFTER 125 CYCLES      *\n"
    c = classify_output(_early_failure(tmp_path, box + "   1   -382.0  more iterations...\n"))
    assert c.outcome is Outcome.TRUNCATED
    c = classify_output(_early_failure(tmp_path, box + "ORCA finished by error termination in SCF\n"))
    assert c.outcome is Outcome.SCF_NOT_CONVERGED


def test_multi_step_inputs_skip_the_first_scf_reference(tmp_path: Path) -> None:
    path = _copy("cclib__basicORCA6.0__dvb_sp_dft.out", tmp_path)
    _rewrite(path, "****END OF INPUT****", "$new_job\n| 99>                          ****END OF INPUT****")
    _rewrite(path, "-382.055108392562", "-450.000000000000", count=0)
    c = classify_output(path)
    assert c.first_scf_energy is None
    assert c.outcome is Outcome.SUCCESS
