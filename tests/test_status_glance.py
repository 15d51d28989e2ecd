"""`status` at a glance: how long each job has been in its state, colour that NO_COLOR turns off,
`--summary`. On the `local` site's ledger (no job runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from e2e import cli
from hypothesis import given, settings
from hypothesis import strategies as st

from orca_hpc.cli import main
from orca_hpc.cli.status import age
from orca_hpc.clock import epoch
from orca_hpc.config.campaign import load_campaign
from orca_hpc.controller.public import as_text


def test_age_is_short_and_readable() -> None:
    now = epoch("2026-11-29T12:00:00Z")
    assert now is not None
    assert [
        age(s, now) for s in ("2026-11-29T11:59:15Z", "2026-11-29T11:48:00Z", "2026-11-29T09:00:00Z")
    ] == [
        "45s",
        "12m",
        "3h",
    ]
    assert age("2026-11-24T12:00:00Z", now) == "5d" and age(None, now) == "-"


@pytest.fixture
def camp(tmp_path: Path) -> Path:
    root = tmp_path / "camp"
    cli(tmp_path, "init", str(root), "--site", "local")
    with load_campaign(root).ledger().transaction() as txn:
        txn.add_job("water", "/in/water.inp", "0" * 64, "local", 3)
    return root


def test_table_has_an_age_and_summary_only_the_counts(camp: Path) -> None:
    table = cli(camp, "status", "--no-reconcile").output.splitlines()
    assert table[0].split() == ["ID", "NAME", "STATE", "AGE", "ATT", "SLURM", "OUTCOME", "ENERGY/Eh"]
    assert table[1].split()[3].endswith(("s", "m"))  # recorded just now
    assert cli(camp, "status", "--no-reconcile", "--summary").output.splitlines() == ["CREATED 1"]


def test_colour_on_a_terminal_and_never_with_no_color(camp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orca_hpc.ledger.states import JobState

    with load_campaign(camp).ledger().transaction() as txn:
        txn.set_state(txn.get("j000001"), JobState.CANCELLED)
    args = ["-C", str(camp), "status", "--no-reconcile", "--summary"]
    coloured = CliRunner().invoke(main, args, color=True).output
    assert "\x1b[35m" in coloured  # CANCELLED in magenta on a terminal
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in CliRunner().invoke(main, args, color=True).output


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_documents = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None)
@given(_documents)
def test_json_text_is_what_json_dumps_with_indent_writes(document: object) -> None:
    # `--json` of status/show/results comes from as_text: the same characters, only written faster.
    assert as_text(document) == json.dumps(document, indent=1)
