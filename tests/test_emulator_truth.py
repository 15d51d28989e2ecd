"""The emulator tells the truth: ORCA 4/5/6 banners as the real outputs print them, and NEB runs that
end the way the classifier expects real ones to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orca_hpc.orca.classify import classify_output
from orca_hpc.orca.outcomes import Outcome

FIXTURES = Path(__file__).parent / "fixtures" / "orca"
WATER = "* xyz 0 1\nO 0.0 0.0 0.0\nH 0.0 0.0 0.96\nH 0.93 0.0 -0.24\n*\n"
# The real output each banner was copied from.
REAL_HEADERS = {
    "4.2.1": FIXTURES / "cclib__basicORCA4.2__dvb_sp.out",
    "5.0.4": FIXTURES / "truth" / "ReactionMechanismGenerator-ARC__orca_neg_freq_ts.out",
    "6.0.1": FIXTURES / "cclib__basicORCA6.0__dvb_ir.out",
}


def _emulate(tmp_path: Path, first_line: str, directive: str, env_directive: str = "") -> tuple[int, Path]:
    (tmp_path / "job.inp").write_text(f"{first_line}\n# emulate: {directive}\n{WATER}")
    env = {k: v for k, v in os.environ.items() if k != "ORCA_EMULATE"}
    if env_directive:
        env["ORCA_EMULATE"] = env_directive
    code = "import sys; from orca_hpc.emulator.program import main; sys.exit(main())"
    out = tmp_path / "job.out"
    with out.open("wb") as fh:
        done = subprocess.run([sys.executable, "-c", code, "job.inp"], cwd=tmp_path, stdout=fh, env=env)
    return done.returncode, out


def _banner(text: str) -> list[str]:
    """The header up to and including the Program Version line, trailing blanks dropped."""
    lines = text.splitlines()
    end = next(i for i, line in enumerate(lines) if "Program Version" in line)
    return [line.rstrip() for line in lines[: end + 1]]


@pytest.mark.parametrize("version", list(REAL_HEADERS))
def test_the_classifier_reads_each_emulated_version(tmp_path: Path, version: str) -> None:
    code, out = _emulate(tmp_path, "! B3LYP def2-SVP Opt", f"version={version}")
    assert code == 0
    found = classify_output(out)
    assert found.orca_version == version and found.outcome is Outcome.SUCCESS, found.message
    real = _banner(REAL_HEADERS[version].read_text(errors="replace"))
    emulated = _banner(out.read_text())
    # Same lines as the real banner; only the version number differs (6.x keeps the smaller art).
    if version != "6.0.1":
        assert emulated[:-1] == real[:-1]
    assert emulated[-1].split(version)[1] == real[-1].split(real[-1].split()[2])[1]


# The real frequency runs whose G line the emulator copies: ORCA 4 says "free enthalpy".
REAL_GIBBS = {
    "4.2.1": FIXTURES / "truth" / "cclib__basicORCA4.1__dvb_ir.excerpt.out",
    "5.0.4": FIXTURES / "truth" / "ReactionMechanismGenerator-ARC__orca_neg_freq_ts.out",
}


@pytest.mark.parametrize("version", list(REAL_GIBBS))
def test_emulated_thermochemistry_words_g_as_that_version_does(tmp_path: Path, version: str) -> None:
    code, out = _emulate(tmp_path, "! B3LYP def2-SVP Opt Freq", f"version={version}")
    assert code == 0
    real = next(line for line in REAL_GIBBS[version].read_text().splitlines() if "Final Gibbs" in line)
    emulated = next(line for line in out.read_text().splitlines() if "Final Gibbs" in line)
    assert emulated.split("...")[0] == real.split("...")[0]
    assert classify_output(out).gibbs == float(emulated.split()[-2])


def test_version_from_the_environment_and_refused_when_unknown(tmp_path: Path) -> None:
    code, out = _emulate(tmp_path, "! B3LYP def2-SVP", "", env_directive="version=4.2.1")
    assert code == 0 and classify_output(out).orca_version == "4.2.1"
    assert not (tmp_path / "job.property.txt").exists()  # ORCA 4 wrote no .property.txt
    code, _out = _emulate(tmp_path, "! B3LYP def2-SVP", "version=7.0.0")
    assert code == 2  # a typo must not pass a test


@pytest.mark.parametrize("keyword", ["NEB-CI", "NEB-TS"])
def test_a_converged_emulated_neb_is_success_and_an_unconverged_one_is_not(
    tmp_path: Path, keyword: str
) -> None:
    code, out = _emulate(tmp_path, f"! B3LYP def2-SVP {keyword}", "version=5.0.4")
    text = out.read_text()
    assert code == 0 and "THE NEB OPTIMIZATION HAS CONVERGED" in text
    assert ("THE TS OPTIMIZATION HAS CONVERGED" in text) == (keyword == "NEB-TS")
    found = classify_output(out)
    assert found.outcome is Outcome.SUCCESS and found.energy is not None, found.message

    (tmp_path / "stuck").mkdir()
    code, out = _emulate(tmp_path / "stuck", f"! B3LYP def2-SVP {keyword}", "neb_not_converged")
    assert code == 0 and "THE NEB OPTIMIZATION HAS CONVERGED" not in out.read_text()
    assert "ORCA TERMINATED NORMALLY" in out.read_text()  # normal end: not success all the same
    assert classify_output(out).outcome is Outcome.OPT_NOT_CONVERGED
