"""The classifier on the ORCA emulator's outputs: each failure mode must come out as its outcome."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orca_hpc.orca.classify import classify_output
from orca_hpc.orca.outcomes import Outcome

# mode -> (outcome, extra simple-input keywords the mode needs to make sense)
EXPECTED: dict[str | None, tuple[Outcome, str]] = {
    None: (Outcome.SUCCESS, "Opt"),
    "scf_fail": (Outcome.SCF_NOT_CONVERGED, ""),
    "opt_maxcycles": (Outcome.OPT_NOT_CONVERGED, "Opt"),
    "oom": (Outcome.OUT_OF_MEMORY, ""),
    "input_error": (Outcome.INPUT_ERROR, ""),
    "too_many_processes": (Outcome.TOO_MANY_PROCESSES, "DLPNO-CCSD(T) cc-pVDZ/C"),
    "parallel_error": (Outcome.PARALLEL_ERROR, ""),
    "ccsd_not_converged": (Outcome.WAVEFUNCTION_NOT_CONVERGED, "CCSD"),
    "suspicious": (Outcome.SUSPICIOUS_RESULT, ""),
    # A crash or a kill leaves an output that just stops, like a walltime kill of real ORCA.
    "crash": (Outcome.TRUNCATED, ""),
    "killed": (Outcome.TRUNCATED, "Opt"),
    # Seen on stderr (read together with the output): the machine, not the chemistry.
    "mpi_error": (Outcome.ENVIRONMENT_ERROR, ""),
    "disk_full": (Outcome.ENVIRONMENT_ERROR, ""),
    "mdci_oom": (Outcome.OUT_OF_MEMORY, "DLPNO-CCSD(T) cc-pVDZ/C"),
    # A minimum (Opt Freq) with an imaginary mode: normal termination, chemically wrong.
    "imaginary": (Outcome.IMAGINARY_MODES, "Opt Freq"),
    # A band that runs out of iterations: normal termination without THE NEB OPTIMIZATION HAS CONVERGED.
    "neb_not_converged": (Outcome.OPT_NOT_CONVERGED, "NEB-CI"),
}


def _run(tmp_path: Path, mode: str | None, keywords: str) -> Path:
    directive = f"# emulate: {mode}\n" if mode else ""
    (tmp_path / "job.inp").write_text(
        f"! B3LYP def2-SVP {keywords}\n{directive}%pal nprocs 4 end\n%maxcore 500\n"
        "* xyz 0 1\nO 0.0 0.0 0.0\nH 0.0 0.0 0.96\nH 0.93 0.0 -0.24\n*\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ORCA_EMULATE"}
    code = "import sys; from orca_hpc.emulator.program import main; sys.exit(main())"
    out = tmp_path / "job.out"
    with out.open("wb") as fh, (tmp_path / "job.err").open("wb") as err:
        subprocess.run(
            [sys.executable, "-c", code, "job.inp"],
            cwd=tmp_path,
            stdout=fh,
            stderr=err,
            timeout=60,
            check=False,
            env=env,
        )
    return out


def test_every_emulated_failure_mode_is_covered() -> None:
    from orca_hpc.emulator.directives import FAILURE_MODES

    assert set(FAILURE_MODES) <= set(EXPECTED)


@pytest.mark.parametrize("mode", list(EXPECTED), ids=lambda m: m or "success")
def test_emulated_outputs(mode: str | None, tmp_path: Path) -> None:
    outcome, keywords = EXPECTED[mode]
    out = _run(tmp_path, mode, keywords)
    c = classify_output(out, stderr=(tmp_path / "job.err").read_text())
    assert c.outcome is outcome, (c.outcome, c.message)
    assert c.orca_version is not None and c.orca_version.startswith("6.")
    if outcome is Outcome.SUCCESS:
        assert c.energy is not None and c.energy_converged is True
    if outcome is Outcome.OUT_OF_MEMORY:
        assert c.memory_required_mb is not None and c.memory_required_mb > 500


def test_final_geometry_is_the_last_jobs_under_its_own_base(tmp_path: Path) -> None:
    """A two-job input whose second job has its own %base: ORCA writes job.xyz (the first job's
    geometry) and refined.xyz (the last): before, `results` named job.xyz as the final geometry."""
    (tmp_path / "job.inp").write_text(
        "! B3LYP def2-SVP Opt\n%pal nprocs 1 end\n%maxcore 500\n"
        "* xyz 0 1\nO 0.0 0.0 0.0\nH 0.0 0.0 0.96\nH 0.93 0.0 -0.24\n*\n"
        '$new_job\n! B3LYP def2-TZVP Opt\n%base "refined"\n'
        "* xyz 0 1\nO 0.0 0.0 0.0\nH 0.0 0.0 0.96\nH 0.93 0.0 -0.24\n*\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ORCA_EMULATE"}
    code = "import sys; from orca_hpc.emulator.program import main; sys.exit(main())"
    with (tmp_path / "job.out").open("wb") as fh:
        subprocess.run([sys.executable, "-c", code, "job.inp"], cwd=tmp_path, stdout=fh, timeout=60, env=env)
    assert (tmp_path / "job.xyz").is_file() and (tmp_path / "refined.xyz").is_file()
    result = classify_output(tmp_path / "job.out")
    assert result.outcome is Outcome.SUCCESS and result.final_xyz == "refined.xyz"
