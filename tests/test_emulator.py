"""The ORCA emulator behaves like ORCA from the outside: output text, files, exit codes, failure modes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orca_hpc.emulator.directives import DirectiveError, condition_holds, fails, parse_directives
from orca_hpc.emulator.inputs import EmulatedInputError, parse_input

WATER = """\
! B3LYP def2-SVP {extra}
{blocks}
* xyz 0 1
O   0.000000   0.000000   0.000000
H   0.000000   0.757000   0.587000
H   0.000000  -0.757000   0.587000
*
"""
NORMAL = "****ORCA TERMINATED NORMALLY****"
TMP_SUFFIXES = (".tmp", ".int.tmp", ".en.tmp")


def _command() -> list[str]:
    script = shutil.which("orca-emulator")
    return [script] if script else [sys.executable, "-m", "orca_hpc.emulator"]


def _env(emulate: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ORCA_EMULATE"}
    if emulate is not None:
        env["ORCA_EMULATE"] = emulate
    return env


def run_orca(workdir: Path, inp: str, name: str = "job", emulate: str | None = None) -> tuple[int, str, str]:
    (workdir / f"{name}.inp").write_text(inp)
    with (workdir / f"{name}.out").open("w") as out:
        proc = subprocess.run(
            [*_command(), f"{name}.inp"],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(emulate),
            timeout=60,
        )
    return proc.returncode, (workdir / f"{name}.out").read_text(), proc.stderr


def water(extra: str = "", blocks: str = "") -> str:
    return WATER.format(extra=extra, blocks=blocks)


def final_energies(out: str) -> list[float]:
    return [float(m) for m in re.findall(r"^FINAL SINGLE POINT ENERGY\s+(-?\d+\.\d+)", out, re.M)]


def tmp_files(workdir: Path, base: str = "job") -> list[str]:
    return sorted(p.name for p in workdir.iterdir() if p.name.startswith(base) and p.name.endswith(".tmp"))


# --- normal runs -------------------------------------------------------------------------------


def test_single_point_writes_orca_output_and_files(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, water())
    assert rc == 0
    assert "Program Version 6.0.1" in out
    assert "|  1> ! B3LYP def2-SVP" in out and "****END OF INPUT****" in out
    assert re.search(r"\*\s+SUCCESS\s+\*", out)
    assert "SCF CONVERGED AFTER  10 CYCLES" in out
    assert out.rstrip().splitlines()[-2].strip() == NORMAL
    assert re.search(r"^TOTAL RUN TIME: 0 days 0 hours 0 minutes \d+ seconds \d+ msec$", out, re.M)
    energies = final_energies(out)
    assert len(energies) == 1 and -80 < energies[0] < -70
    for suffix in (".gbw", ".xyz", ".property.txt", ".densities"):
        assert (tmp_path / f"job{suffix}").is_file(), suffix
    assert tmp_files(tmp_path) == []  # scratch removed on normal termination
    assert "NORMAL TERMINATION" in (tmp_path / "job.property.txt").read_text()
    assert (tmp_path / "job.xyz").read_text().splitlines()[0] == "3"
    # deterministic: a second run gives the same energy to the last digit
    rc2, out2, _ = run_orca(tmp_path, water(), name="again")
    assert rc2 == 0 and final_energies(out2) == energies


def test_optimisation_converges_with_trajectory(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, water("Opt"))
    assert rc == 0
    assert out.count("GEOMETRY OPTIMIZATION CYCLE") == 3
    assert "THE OPTIMIZATION HAS CONVERGED" in out and "HURRAY" in out
    assert "*** OPTIMIZATION RUN DONE ***" in out and NORMAL in out
    energies = final_energies(out)
    assert energies[0] > energies[1] > energies[2]  # each cycle lowers the energy a little
    frames = (tmp_path / "job_trj.xyz").read_text().splitlines()
    assert len(frames) == 3 * 5
    last_frame = frames[10:]
    assert (tmp_path / "job.xyz").read_text().splitlines()[2:] == last_frame[2:]
    assert frames[2] != frames[12]  # the atoms moved


def test_pal_and_maxcore_are_echoed(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, water(blocks="%pal nprocs 4 end\n%maxcore 2000"))
    assert rc == 0
    assert "Program running with 4 parallel MPI-processes" in out
    assert re.search(r"^Number of processes\s+\.\.\.\s+4$", out, re.M)
    assert "NOTE: MaxCore=2000 MB" in out and re.search(r"Max core memory\s+\.\.\.\s+2000 MB", out)
    rc, out, _ = run_orca(tmp_path, water("PAL8"), name="pal8")
    assert rc == 0 and re.search(r"^Number of processes\s+\.\.\.\s+8$", out, re.M)


def test_xyzfile_coordinates_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "start.xyz").write_text("2\nH2\nH 0 0 0\nH 0 0 0.74\n")
    rc, out, _ = run_orca(tmp_path, "! HF def2-SVP\n* xyzfile 0 1 start.xyz\n")
    assert rc == 0 and NORMAL in out and "Number of atoms                             ...       2" in out
    rc, out, _ = run_orca(tmp_path, "! HF def2-SVP\n* xyzfile 0 1 missing.xyz\n", name="bad")
    assert rc != 0
    assert "INPUT ERROR" in out and "missing.xyz" in out and NORMAL not in out


def test_new_job_runs_each_job_in_turn(tmp_path: Path) -> None:
    inp = water("Opt PAL2") + '$new_job\n! B3LYP MORead Freq\n%moinp "job.gbw"\n%maxcore 3000\n'
    inp += "* xyzfile 0 1 job.xyz\n"
    rc, out, _ = run_orca(tmp_path, inp)
    assert rc == 0
    assert "JOB NUMBER  2" in out and "VIBRATIONAL FREQUENCIES" in out
    assert out.count(NORMAL) == 1 and out.index("HURRAY") < out.index("JOB NUMBER  2")
    assert (tmp_path / "job.hess").is_file()
    assert re.search(r"MaxCore\)\s+\.\.\.\s+3000 MB", out)  # second job's %maxcore


def test_coords_block_internal_coordinates_and_blocks_after_coordinates(tmp_path: Path) -> None:
    coords = (
        "! HF\n%coords\n CTyp xyz\n Charge 0\n Mult 1\n coords\n  He 0 0 0\n end\nend\n%scf maxiter 5 end\n"
    )
    rc, out, _ = run_orca(tmp_path, coords)
    assert rc == 0 and NORMAL in out
    rc, out, _ = run_orca(tmp_path, "! HF\n* int 0 1\n H 0 0 0 0 0 0\n H 1 0 0 0.74 0 0\n*\n", name="int")
    assert rc == 0 and NORMAL in out


def test_impossible_multiplicity_is_an_input_error(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, water().replace("xyz 0 1", "xyz 0 2"))
    assert rc != 0 and "-> impossible" in out and "INPUT FILE" not in out


# --- failure modes -----------------------------------------------------------------------------


def test_scf_fail_is_a_6x_error_termination(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, "# emulate: scf_fail\n" + water())
    assert rc != 0
    assert "SCF NOT CONVERGED AFTER 125 CYCLES" in out
    assert "Error (ORCA_LEANSCF): unfortunately, the SCF has not converged." in out
    assert "ORCA finished by error termination in LEANSCF" in out
    assert NORMAL not in out and "TOTAL RUN TIME" not in out and "SUCCESS" not in out
    assert (tmp_path / "job.gbw").is_file()  # the unconverged orbitals, for a MORead restart


def test_scf_fail_until_corrected(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, water(), emulate="scf_fail_unless=SlowConv")
    assert rc != 0 and "SCF NOT CONVERGED" in out
    rc, out, _ = run_orca(tmp_path, water("slowconv"), emulate="scf_fail_unless=SlowConv")
    assert rc == 0 and "SCF CONVERGED AFTER" in out
    rc, out, _ = run_orca(
        tmp_path, water(blocks="%scf maxiter 500 end"), emulate="scf_fail_unless=MaxIter500"
    )
    assert rc == 0
    rc, out, _ = run_orca(
        tmp_path, water(blocks="%scf MaxIter 200 end"), emulate="scf_fail_unless=MaxIter500"
    )
    assert rc != 0 and "SCF NOT CONVERGED AFTER 200 CYCLES" in out


def test_scf_fail_unless_moread_needs_the_file(tmp_path: Path) -> None:
    inp = water("MORead", '%moinp "old.gbw"')
    rc, _, _ = run_orca(tmp_path, inp, emulate="scf_fail_unless=MORead")
    assert rc != 0
    (tmp_path / "old.gbw").write_bytes(b"orbitals")
    rc, out, _ = run_orca(tmp_path, inp, emulate="scf_fail_unless=MORead")
    assert rc == 0 and NORMAL in out


def test_opt_maxcycles_terminates_normally(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, "# emulate: opt_maxcycles\n" + water("Opt", "%geom maxiter 5 end"))
    assert rc == 0 and NORMAL in out
    assert "The optimization did not converge but reached the maximum number of optimization cycles." in out
    assert "THE OPTIMIZATION HAS CONVERGED" not in out and "OPTIMIZATION RUN DONE" not in out
    assert out.count("GEOMETRY OPTIMIZATION CYCLE") == 5
    assert len((tmp_path / "job_trj.xyz").read_text().splitlines()) == 5 * 5
    # a small %geom maxiter alone also runs out of cycles (3 are needed)
    rc, out, _ = run_orca(tmp_path, water("Opt", "%geom maxiter 2 end"), name="short")
    assert rc == 0 and "reached the maximum number of optimization cycles" in out


def test_opt_maxcycles_unless_restart(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, water("Opt"), emulate="opt_maxcycles_unless_restart")
    assert rc == 0 and "reached the maximum number" in out
    restart = "! B3LYP def2-SVP Opt\n* xyzfile 0 1 job.xyz\n"
    rc, out, _ = run_orca(tmp_path, restart, name="restart", emulate="opt_maxcycles_unless_restart")
    assert rc == 0 and "THE OPTIMIZATION HAS CONVERGED" in out


def test_oom_until_maxcore_is_raised(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, "# emulate: oom\n" + water(blocks="%maxcore 500"))
    assert rc != 0
    assert "Error  (ORCA_SCF): Not enough memory available!" in out
    assert re.search(r"Please increase MaxCore to more than:\s+1000 MB", out)
    assert "ORCA finished by error termination in SCF" in out and NORMAL not in out
    rc, out, _ = run_orca(tmp_path, water(blocks="%maxcore 2000"), emulate="oom need_mb=3000")
    assert rc != 0 and re.search(r"Please increase MaxCore to more than:\s+3000 MB", out)
    rc, out, _ = run_orca(tmp_path, water(blocks="%maxcore 3000"), emulate="need_mb=3000")
    assert rc == 0 and NORMAL in out


def test_alloc_mb_really_uses_memory(tmp_path: Path) -> None:
    (tmp_path / "job.inp").write_text(water())
    with (tmp_path / "job.out").open("w") as out:
        proc = subprocess.Popen([*_command(), "job.inp"], cwd=tmp_path, stdout=out, env=_env("alloc_mb=200"))
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    assert usage.ru_maxrss * 1024 >= 200 * 1024 * 1024  # ru_maxrss is in KiB on Linux


def test_input_error_box(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, water("XTB1"), emulate="input_error")
    assert rc != 0
    assert "INPUT ERROR" in out and "UNRECOGNIZED OR DUPLICATED KEYWORD(S) IN SIMPLE INPUT LINE" in out
    assert "XTB1" in out and "INPUT FILE" not in out and NORMAL not in out
    rc, out, _ = run_orca(tmp_path, water(), emulate="input_error keyword=Foo", name="kw")
    assert rc != 0 and " Foo " in out
    rc, out, _ = run_orca(tmp_path, "! HF\nthis is not orca\n", name="garbage")
    assert rc != 0 and "ERROR: expect a '$', '!', '%', '*' or '[' in the input" in out


def test_too_many_processes(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, water("PAL4"), emulate="too_many_processes max_procs=2")
    assert rc != 0
    assert "Number of processes (4) in parallel calculation exceeds number of pairs (2)" in out
    assert "ORCA finished by error termination in MDCI" in out
    rc, out, _ = run_orca(tmp_path, water("PAL2"), emulate="too_many_processes,max_procs=2", name="ok")
    assert rc == 0 and NORMAL in out


def test_parallel_error_with_unless(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, water("PAL4"), emulate="parallel_error")
    assert rc != 0
    assert "ORCA finished by error termination in GTOInt" in out
    assert re.search(r"^Calling Command: mpirun -np 4 ", out, re.M)
    assert "Not enough memory" not in out and NORMAL not in out
    rc, out, _ = run_orca(
        tmp_path, water("PAL4", "%maxcore 4000"), emulate="parallel_error_unless=MaxCore4000"
    )
    assert rc == 0
    rc, out, _ = run_orca(tmp_path, water("PAL2"), emulate="parallel_error_unless=MaxCore4000|NProcs2")
    assert rc == 0


def test_ccsd_not_converged(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, "# emulate: ccsd_not_converged\n" + water().replace("B3LYP", "CCSD"))
    assert rc != 0
    assert "The CCSD iterations have NOT converged" in out
    assert "(Wavefunction not fully converged!)" in out and NORMAL not in out
    rc, out, _ = run_orca(tmp_path, water().replace("B3LYP", "CCSD"), name="ok")
    assert rc == 0 and "The Coupled-Cluster iterations have converged" in out


def test_suspicious_energy_terminates_normally(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, water(), emulate="suspicious")
    assert rc == 0 and NORMAL in out
    assert final_energies(out)[-1] < -1e5


def test_crash_segfaults_mid_scf(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, water(), emulate="crash")
    assert rc == -signal.SIGSEGV
    assert "D-I-I-S" in out and "SUCCESS" not in out and "TOTAL RUN TIME" not in out
    assert tmp_files(tmp_path) == sorted(f"job{s}" for s in TMP_SUFFIXES)
    assert not list(tmp_path.glob("core*"))


def test_killed_stops_mid_run(tmp_path: Path) -> None:
    rc, out, _ = run_orca(tmp_path, water("Opt"), emulate="killed")
    assert rc == -signal.SIGKILL
    assert "GEOMETRY OPTIMIZATION CYCLE   1" in out and NORMAL not in out and "error termination" not in out
    assert tmp_files(tmp_path) == sorted(f"job{s}" for s in TMP_SUFFIXES)
    assert (tmp_path / "job.xyz").is_file()  # the last geometry survives for a restart


def test_sleep_runs_that_long(tmp_path: Path) -> None:
    start = time.monotonic()
    rc, out, _ = run_orca(tmp_path, water(), emulate="sleep=0.8")
    assert rc == 0 and NORMAL in out
    assert time.monotonic() - start >= 0.8


def test_sigterm_during_sleep_leaves_tmp_files(tmp_path: Path) -> None:
    (tmp_path / "job.inp").write_text("# emulate: sleep=30\n" + water("Opt"))
    out_path = tmp_path / "job.out"
    with out_path.open("w") as out:
        proc = subprocess.Popen([*_command(), "job.inp"], cwd=tmp_path, stdout=out, env=_env(None))
        try:
            deadline = time.monotonic() + 10
            while "D-I-I-S" not in out_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)  # wait for the output to grow: it is written progressively
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = out_path.read_text()
    assert rc == -signal.SIGTERM
    assert "GEOMETRY OPTIMIZATION CYCLE" in text and NORMAL not in text and "TOTAL RUN TIME" not in text
    assert tmp_files(tmp_path) == sorted(f"job{s}" for s in TMP_SUFFIXES)


def test_unknown_directive_is_refused(tmp_path: Path) -> None:
    rc, _, err = run_orca(tmp_path, water(), emulate="scf_fial")
    assert rc == 2 and "unknown emulate mode 'scf_fial'" in err
    rc, _, err = run_orca(tmp_path, "# emulate: scf_fail, wibble=3\n" + water(), name="opt")
    assert rc == 2 and "wibble" in err


def test_no_argument_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(_command(), cwd=tmp_path, capture_output=True, text=True, env=_env(None))
    assert proc.returncode == 2 and "usage" in proc.stderr


def test_missing_input_file_is_an_error_termination(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*_command(), "nope.inp"], cwd=tmp_path, capture_output=True, text=True, env=_env(None)
    )
    assert proc.returncode == 1 and "nope.inp" in proc.stdout and NORMAL not in proc.stdout


# --- the small parsers (in process, fast) ------------------------------------------------------


def test_parse_directives_modes_options_and_unless() -> None:
    d = parse_directives(" scf_fail, oom need_mb=3000  sleep=2 parallel_error_unless=MaxCore4000|NProcs8 ")
    assert d.modes == {"scf_fail", "oom", "parallel_error"}
    assert d.options == {"need_mb": "3000", "sleep": "2"}
    assert d.unless == {"oom": ["MaxCore3000"], "parallel_error": ["MaxCore4000", "NProcs8"]}
    assert parse_directives("opt_maxcycles_unless_restart").unless == {"opt_maxcycles": ["Restart"]}
    with pytest.raises(DirectiveError):
        parse_directives("nonsense")
    with pytest.raises(DirectiveError):
        parse_directives("sleep=abc").number("sleep", 0)


def test_parse_input_blocks_keywords_and_jobs(tmp_path: Path) -> None:
    text = (
        "! Opt B3LYP   # a comment\n! TightSCF PAL6\n"
        "%scf Shift Shift 0.1 ErrOff 0.1 end\n MaxIter 300\nend\n"
        "* xyz -1 2\n C 0 0 0 # carbon\n*\n"
        "%geom Constraints {B 0 1 C} end\n maxiter 7 end\n"
        '%maxcore 1500\n%moinp "prev.gbw"\n# emulate: scf_fail\n'
        "$new_job\n! SP\n"
    )
    first, second = parse_input(text)
    assert first.keywords == ["Opt", "B3LYP", "TightSCF", "PAL6"] and first.is_opt
    assert (first.nprocs, first.scf_maxiter, first.geom_maxiter, first.maxcore) == (6, 300, 7, 1500)
    assert (first.charge, first.mult, first.moinp) == (-1, 2, "prev.gbw")
    assert first.directives == ["scf_fail"] and second.keywords == ["SP"] and not second.is_opt
    with pytest.raises(EmulatedInputError):
        parse_input("! HF\n%scf maxiter 5\n")  # block never closed
    with pytest.raises(EmulatedInputError):
        parse_input("! HF\n%pal nprocs four end\n")


def test_conditions(tmp_path: Path) -> None:
    (job,) = parse_input(
        '! KDIIS MORead\n%moinp "a.gbw"\n%maxcore 800\n%pal nprocs 4 end\n* xyzfile 0 1 a.xyz\n'
    )
    assert condition_holds("kdiis", job, tmp_path) and condition_holds("Restart", job, tmp_path)
    assert not condition_holds("MORead", job, tmp_path)  # a.gbw does not exist
    (tmp_path / "a.gbw").write_bytes(b"x")
    assert condition_holds("MORead", job, tmp_path)
    assert condition_holds("MaxCore800", job, tmp_path) and not condition_holds("MaxCore801", job, tmp_path)
    assert condition_holds("NProcs4", job, tmp_path) and not condition_holds("NProcs3", job, tmp_path)
    assert not fails("scf_fail", parse_directives("scf_fail_unless=SlowConv|KDIIS"), job, tmp_path)
    assert fails("scf_fail", parse_directives("scf_fail_unless=SlowConv"), job, tmp_path)
