"""Results carry the chemistry: `results --csv/--json` and `show` read each attempt's result.json.

The columns are checked on result files made from real ORCA outputs (tests/fixtures/orca/), and the
whole path (runner -> result.json -> CLI strings) on the local site with the emulator.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import time
from pathlib import Path

from e2e import cli, orca_input, show, status, write_inputs

from orca_hpc.atomic import atomic_write_bytes
from orca_hpc.attempt.folder import RESULT_NAME, AttemptResult, read_result
from orca_hpc.attempt.summary import attempt_summary, chemistry_columns, frequency_verdict
from orca_hpc.orca.chemistry import read_chemistry
from orca_hpc.orca.classify import classify_output
from orca_hpc.orca.inputs import input_intents

FIXTURES = Path(__file__).parent / "fixtures" / "orca"
TS_OUTPUT = FIXTURES / "truth" / "ReactionMechanismGenerator-ARC__orca_neg_freq_ts.out"  # ORCA 5.0.4


def _attempt_from(tmp_path: Path, output: Path, **classify: object) -> Path:
    """An attempt folder holding a real output and the result.json the runner would write for it."""
    folder = tmp_path / "attempt-1"
    folder.mkdir()
    shutil.copy(output, folder / "job.out")
    found = classify_output(folder / "job.out", **classify)  # type: ignore[arg-type]
    result = AttemptResult(outcome=found.outcome.value, energy=found.energy, classification=found.to_dict())
    atomic_write_bytes(folder / RESULT_NAME, json.dumps(result.to_dict()).encode(), 0o600)
    return folder


def test_columns_from_a_real_orca5_frequency_run(tmp_path: Path) -> None:
    folder = _attempt_from(tmp_path, FIXTURES / "cclib__basicORCA5.0__dvb_ir.out")
    (folder / "job.xyz").write_text("1\n\nH 0 0 0\n")  # the geometry the runner copied back
    result = read_result(folder)
    assert result is not None
    result.classification["final_xyz"] = "job.xyz"
    row = chemistry_columns(folder, result)
    assert row == {
        "zpe_Eh": 0.17701962,
        "enthalpy_Eh": -381.86823907,
        "gibbs_Eh": -381.91112705,
        "temperature_K": 298.15,
        "n_imaginary": 0,
        "lowest_freq_cm1": 45.66,
        "s2": None,
        "orca_version": "5.0.1",
        "final_xyz": str(folder / "job.xyz"),
    }


def test_orca4_gibbs_free_enthalpy_is_read(tmp_path: Path) -> None:
    """ORCA 4 prints G as "Final Gibbs free enthalpy" (ORCA 5/6: "... free energy"); it was left null.

    The excerpt's own numbers agree: G = H - T*S = -381.86389179 - 0.04288952 = -381.90678131 Eh, and
    G - E(el) = -381.90678131 - (-382.05075804) = 0.14397673 Eh, the G-E(el) line ORCA printed."""
    folder = _attempt_from(tmp_path, FIXTURES / "truth" / "cclib__basicORCA4.1__dvb_ir.excerpt.out")
    row = chemistry_columns(folder, read_result(folder))
    assert row["orca_version"] == "4.1.1" and row["temperature_K"] == 298.15
    assert (row["zpe_Eh"], row["enthalpy_Eh"], row["gibbs_Eh"]) == (0.1770149, -381.86389179, -381.90678131)
    assert row["n_imaginary"] == 0 and row["lowest_freq_cm1"] == 45.75


def test_several_temperatures_give_the_last_block_whole() -> None:
    """`%FREQ TEMP 77, 298, 330, 450 END` (ORCA 6.1): one THERMOCHEMISTRY block per temperature, in
    that order. T, E(el), ZPE, H and G all come from the last (450 K) block, never a mix: G(450 K) =
    -79.70936467 - 0.04324502 = -79.75260969 Eh, G - E(el) = 0.03891415 Eh as ORCA printed."""
    path = FIXTURES / "truth" / "patonlab-GoodVibes__orca6__02_ethane_opt_freq_thermo.excerpt.out"
    text = path.read_text()
    thermo = read_chemistry(path, text, text, len(text.encode()), True).thermo
    assert (thermo.temperature, thermo.electronic, thermo.zpe) == (450.0, -79.79152384, 0.07424074)
    assert (thermo.enthalpy, thermo.gibbs) == (-79.70936467, -79.75260969)


def test_an_atom_has_thermochemistry_and_no_vibration() -> None:
    """A neon atom with Freq (ORCA 6.1): three 0.00 modes, no vibration; ORCA still prints H and G
    (translation only: G = -128.53091234 - 0.01660446 = -128.54751680 Eh). ZPE is a real 0, not a
    missing value; there is no lowest vibration (None) and no imaginary mode."""
    path = FIXTURES / "truth" / "patonlab-GoodVibes__orca6__07_neon_atom_with_freq.excerpt.out"
    text = path.read_text()
    chem = read_chemistry(path, text, text, len(text.encode()), True)
    assert chem.freqs is not None and chem.freqs.values == [0.0, 0.0, 0.0]
    assert chem.freqs.lowest is None and chem.freqs.imaginary(10.0) == []
    assert (chem.thermo.zpe, chem.thermo.enthalpy, chem.thermo.gibbs) == (0.0, -128.53091234, -128.5475168)


def test_a_geometry_that_did_not_come_back_is_not_listed(tmp_path: Path) -> None:
    folder = _attempt_from(tmp_path, FIXTURES / "cclib__basicORCA5.0__dvb_ir.out")
    result = read_result(folder)
    assert result is not None
    result.classification["final_xyz"] = "job.xyz"  # named, but no such file in the folder
    assert chemistry_columns(folder, result)["final_xyz"] is None


def test_verdict_on_a_real_ts_output_follows_what_was_asked(tmp_path: Path) -> None:
    # Asked for frequencies only (the echo in the output), the mode is reported.
    folder = _attempt_from(tmp_path, TS_OUTPUT)
    summary = attempt_summary(folder, "success", None)
    assert summary["frequencies"].startswith("frequencies only")
    assert summary["imaginary_freqs_cm1"] == [-1271.62] and summary["s2"] == 0.759001
    assert summary["orca_version"] == "5.0.4" and summary["gibbs_Eh"] == -116.23067837
    # Asked for a transition state, the same output is what the chemist expects.
    intents = input_intents(tmp_path / "ts.inp", "! OptTS Freq\n* xyz 0 2\nH 0 0 0\n*\n")
    ts = classify_output(TS_OUTPUT, intents=intents).to_dict()
    assert frequency_verdict(ts) == "transition state: exactly 1 imaginary mode (as asked): -1271.62 cm**-1"
    # Asked for a minimum, it is not.
    intents = input_intents(tmp_path / "min.inp", "! Opt Freq\n* xyz 0 2\nH 0 0 0\n*\n")
    minimum = classify_output(TS_OUTPUT, intents=intents).to_dict()
    assert frequency_verdict(minimum) == "minimum asked for, 1 imaginary mode(s): -1271.62 cm**-1"


def test_environment_failures_name_their_cause(tmp_path: Path) -> None:
    folder = tmp_path / "attempt-1"
    folder.mkdir()
    result = AttemptResult(outcome="environment_error", reason="disk_full")
    atomic_write_bytes(folder / RESULT_NAME, json.dumps(result.to_dict()).encode(), 0o600)
    assert attempt_summary(folder, "environment_error", None)["environment"] == "disk_full"
    assert "environment" not in attempt_summary(folder, "scf_not_converged", None)
    assert attempt_summary(tmp_path / "nowhere", "success", None) == {}


def test_results_and_show_carry_the_chemistry_through_the_cli(tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    emulator = Path(sys.executable).parent / "orca-emulator"
    config.write_text(config.read_text() + f'\n[overrides.orca]\npath = "{emulator}"\n')
    inputs = {"w_freq.inp": orca_input("B3LYP def2-SVP Opt Freq"), "w_sp.inp": orca_input()}
    cli(camp, "submit", *write_inputs(tmp_path / "in", inputs))
    deadline = time.monotonic() + 120
    while not all(j["state"] == "COMPLETED" for j in status(camp, reconcile=True)["jobs"]):
        assert time.monotonic() < deadline
        time.sleep(0.5)

    rows = list(csv.DictReader(io.StringIO(cli(camp, "results", "--csv", "--no-reconcile").output)))
    records = json.loads(cli(camp, "results", "--json", "--no-reconcile").stdout)["jobs"]
    assert [r["name"] for r in rows] == [r["name"] for r in records] == ["w_freq", "w_sp"]
    # The plain table has the columns its help names: attempts and outcome too.
    header, *plain = cli(camp, "results", "--no-reconcile").output.splitlines()
    assert header.split() == ["ID", "NAME", "STATE", "ATT", "OUTCOME", "ENERGY/Eh", "RESULTS"]
    assert [line.split()[:5] for line in plain] == [
        [r["id"], r["name"], r["state"], str(r["attempts"]), r["outcome"]] for r in records
    ]
    # No job chosen: the same header, so a script reading the columns still finds them.
    empty = cli(camp, "results", "--csv", "--no-reconcile", "--state", "cancelled").output
    assert empty.splitlines() == [",".join(rows[0])] == [",".join(records[0])]
    freq, single = rows
    for column in ("energy", "outcome", "results", "energy_Eh", "zpe_Eh", "gibbs_Eh", "orca_version"):
        assert column in freq  # old columns kept, new ones named with their units
    folder = Path(freq["results"])
    found = read_result(folder)
    assert found is not None
    assert float(freq["energy_Eh"]) == float(freq["energy"]) == records[0]["energy_Eh"]
    assert float(freq["zpe_Eh"]) == found.classification["zpe"] == records[0]["zpe_Eh"]
    assert float(freq["enthalpy_Eh"]) == found.classification["enthalpy"]
    assert float(freq["gibbs_Eh"]) == found.classification["gibbs"] == records[0]["gibbs_Eh"]
    assert float(freq["temperature_K"]) == 298.15 and int(freq["n_imaginary"]) == 0
    assert float(freq["lowest_freq_cm1"]) > 0 and freq["orca_version"] == "6.0.1"
    assert Path(freq["final_xyz"]).is_file() and Path(freq["final_xyz"]).parent == folder
    # A single point has no thermochemistry: empty cells in the CSV, null in the JSON.
    assert single["gibbs_Eh"] == single["n_imaginary"] == "" and records[1]["gibbs_Eh"] is None
    assert single["orca_version"] == "6.0.1"

    job = records[0]["id"]
    text = cli(camp, "show", "--no-reconcile", job).output
    assert "frequencies: minimum: no imaginary mode (as asked)" in text
    assert f"thermochemistry at 298.15 K: ZPE {float(freq['zpe_Eh']):.8f} Eh" in text
    attempt = show(camp, job)["attempts"][-1]
    # The local site keeps no times: the attempt's are the runner's, from result.json.
    assert (attempt["started"], attempt["ended"]) == (found.started, found.ended)
    summary = attempt["summary"]
    assert summary["gibbs_Eh"] == records[0]["gibbs_Eh"] and summary["n_imaginary"] == 0
    assert summary["frequencies"] == "minimum: no imaginary mode (as asked)"
