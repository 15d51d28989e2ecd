"""`orca-hpc inspect`: readable summary, --json, one-line errors for bad paths."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from orca_hpc.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "orca"
GOPT = str(FIXTURES / "cclib__basicORCA6.0__dvb_gopt.out")
OOM = str(FIXTURES / "ARC__orca_scf_memory_error.log")


def test_readable_summary() -> None:
    result = CliRunner().invoke(main, ["inspect", GOPT, OOM])
    assert result.exit_code == 0, result.output
    assert f"{GOPT}: success" in result.output
    assert "-382.0551333995 Eh" in result.output
    assert f"{OOM}: out_of_memory (retryable)" in result.output
    assert "memory asked: 289 MB" in result.output


def test_json_output() -> None:
    result = CliRunner().invoke(main, ["inspect", "--json", GOPT, OOM])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert (document["schema"], document["kind"]) == (1, "inspect")
    data = document["outputs"]
    assert [d["outcome"] for d in data] == ["success", "out_of_memory"]
    for entry in data:
        assert {"file", "outcome", "retryable", "energy", "orca_version", "message"} <= set(entry)
    assert data[0]["energy"] == -382.055133399486
    assert data[1]["retryable"] is True and data[1]["orca_version"] == "4.1.2"


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.out"
    result = CliRunner().invoke(main, ["inspect", GOPT, str(missing)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"orca-hpc: error: {missing}: no such file"]


def test_directory_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["inspect", "--json", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip() == f"orca-hpc: error: {tmp_path}: is a directory, not an ORCA output file"


def test_no_arguments_is_usage_error() -> None:
    result = CliRunner().invoke(main, ["inspect"])
    assert result.exit_code == 2


def test_every_bad_path_is_named_on_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.out"
    result = CliRunner().invoke(main, ["inspect", str(missing), GOPT, str(tmp_path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        f"orca-hpc: error: 2 problems: {missing}: no such file; "
        f"{tmp_path}: is a directory, not an ORCA output file"
    ]
