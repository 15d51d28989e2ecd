"""Charge and multiplicity per molecule from an xyz comment line (`charge=-1 mult=2`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e import cli

from orca_hpc.config.campaign import load_campaign
from orca_hpc.controller.submit import prepare_inputs
from orca_hpc.errors import UserError
from orca_hpc.orca.xyz import read_xyz_frames

FRAMES = (
    "3\ncharge=-1 mult=2 conformer 1\nO 0 0 0\nH 0 0 0.96\nH 0.93 0 -0.24\n"
    "3\nenergy=-76.4 multiplicity=3\nO 0 0 0\nH 0 0 0.97\nH 0.93 0 -0.25\n"
    "3\nplain comment\nO 0 0 0\nH 0 0 0.95\nH 0.92 0 -0.24\n"
)


def test_comment_line_gives_charge_and_multiplicity(tmp_path: Path) -> None:
    path = tmp_path / "w.xyz"
    path.write_text(FRAMES)
    assert [m.charge_and_mult() for m in read_xyz_frames(path)] == [(-1, 2), (None, 3), (None, None)]


def test_each_frame_runs_with_its_own_charge_and_multiplicity(tmp_path: Path) -> None:
    cli(tmp_path, "init", str(tmp_path / "camp"), "--site", "local")
    campaign = load_campaign(tmp_path / "camp")
    path = tmp_path / "w.xyz"
    path.write_text(FRAMES)
    jobs = prepare_inputs(campaign, [path], method="HF def2-SVP", charge=0, mult=1)
    coords = [next(line for line in j.plan.input_text.splitlines() if line.startswith("* xyz")) for j in jobs]
    assert coords == ["* xyz -1 2", "* xyz 0 3", "* xyz 0 1"]  # the command line's values fill the gaps


def test_an_impossible_pair_names_its_frame(tmp_path: Path) -> None:
    cli(tmp_path, "init", str(tmp_path / "camp"), "--site", "local")
    path = tmp_path / "w.xyz"
    path.write_text(FRAMES.replace("multiplicity=3", "multiplicity=2"))  # 10 electrons, doublet
    with pytest.raises(UserError, match="frame 2"):
        prepare_inputs(load_campaign(tmp_path / "camp"), [path], method="HF def2-SVP")
