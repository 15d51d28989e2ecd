"""Files an input reads from a sub-folder travel flat with the attempt, and the input follows (issue 18).

The runner copies every referenced file flat into scratch; an input that still said ``sub/q.pc``
made ORCA stop with "file not found" in every attempt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e import cli, new_campaign

from orca_hpc.config.campaign import load_campaign
from orca_hpc.controller.submit import prepare_inputs
from orca_hpc.errors import UserError
from orca_hpc.orca.inputs import FileRef, parse_input, set_file_ref

TWO_STEPS = """\
! B3LYP def2-SVP Opt
%pointcharges "sub/q.pc"
%geom
  InHessName "sub/start.hess"
end
* xyzfile 0 1 sub/w.xyz

$new_job
! B3LYP def2-TZVP
%moinp "sub/guess.gbw"
* xyzfile 0 1 sub/later.xyz
"""


def _folder(tmp_path: Path) -> Path:
    sub = tmp_path / "in" / "sub"
    sub.mkdir(parents=True)
    (sub / "q.pc").write_text("1\n0.5 0 0 5\n")
    (sub / "start.hess").write_text("$orca_hessian_file\n")
    (sub / "w.xyz").write_text("3\nwater\nO 0 0 0.1178\nH 0 0.7555 -0.4712\nH 0 -0.7555 -0.4712\n")
    (sub / "later.xyz").write_text((sub / "w.xyz").read_text())
    (sub / "guess.gbw").write_bytes(b"\0gbw")
    path = tmp_path / "in" / "w.inp"
    path.write_text(TWO_STEPS)
    return path


def test_every_reference_to_a_subfolder_names_the_flat_copy(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    path = _folder(tmp_path)
    (job,) = prepare_inputs(load_campaign(camp), [path])
    text = job.plan.input_text
    assert set(job.plan.extra_files) == {"q.pc", "start.hess", "w.xyz", "guess.gbw", "later.xyz"}
    assert "sub/" not in text
    for line in ('%pointcharges "q.pc"', 'InHessName "start.hess"', "* xyzfile 0 1 w.xyz"):
        assert line in text
    assert '%moinp "guess.gbw"' in text and "* xyzfile 0 1 later.xyz" in text
    # The rewritten input parses, and names exactly the files that travel with it.
    names = {ref.name for ref in parse_input(tmp_path / "x.inp", text, check_files=False).files}
    assert names == set(job.plan.extra_files)
    # What sbatch would get for it, end to end through the CLI.
    assert cli(camp, "submit", "--dry-run", str(path)).output.startswith("#!/bin/bash")


def test_a_compound_script_file_travels_with_the_input(tmp_path: Path) -> None:
    # %compound "x.cmp" was no file reference: the script stayed behind and ORCA, in scratch, had none.
    camp = new_campaign(tmp_path)
    sub = tmp_path / "in" / "sub"
    sub.mkdir(parents=True)
    (sub / "opt_freq.cmp").write_text("New_Step\n  ! Opt\nStep_End\nNew_Step\n  ! Freq\nStep_End\nEnd\n")
    path = tmp_path / "in" / "c.inp"
    path.write_text('! B3LYP def2-SVP\n%compound "sub/opt_freq.cmp"\n* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n')
    (job,) = prepare_inputs(load_campaign(camp), [path])
    assert set(job.plan.extra_files) == {"opt_freq.cmp"}
    assert '%compound "opt_freq.cmp"' in job.plan.input_text
    (sub / "opt_freq.cmp").unlink()
    with pytest.raises(UserError, match=r"c\.inp:2: .*compound 'sub/opt_freq\.cmp' not found"):
        prepare_inputs(load_campaign(camp), [path])


def test_a_file_a_later_step_writes_keeps_its_name(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    path = _folder(tmp_path)
    (tmp_path / "in" / "sub" / "later.xyz").unlink()  # not there: an earlier step writes it
    (job,) = prepare_inputs(load_campaign(camp), [path])
    assert "* xyzfile 0 1 sub/later.xyz" in job.plan.input_text and "later.xyz" not in job.plan.extra_files


def test_set_file_ref_replaces_only_the_whole_name() -> None:
    text = '! HF\n%pointcharges "a/q.pc"\n* xyzfile 0 1 a/q.pc.xyz\n'
    assert set_file_ref(text, FileRef("pointcharges", "a/q.pc", 2, 0), "q.pc").splitlines()[1:] == [
        '%pointcharges "q.pc"',
        "* xyzfile 0 1 a/q.pc.xyz",
    ]
    with pytest.raises(UserError, match="must not contain spaces"):
        set_file_ref(text, FileRef("xyzfile", "a/q.pc.xyz", 3, 0), "q x.xyz")


def test_validation_pauses_the_gc_and_resumes_it_whatever_the_inputs(tmp_path: Path) -> None:
    """Inputs are validated with the cyclic GC paused (speed) and it runs again afterwards, also when
    inputs are refused; a refused input leaves no cycle behind that only the GC could free (the pause
    would hold it, and a failed read or parse holds the file's text)."""
    import gc

    camp = load_campaign(new_campaign(tmp_path))
    good = tmp_path / "good.inp"
    good.write_text("! HF def2-SVP\n* xyz 0 1\nO 0 0 0\nH 0 0 1\nH 0 1 0\n*\n")
    bad = tmp_path / "bad.inp"
    bad.write_bytes(b"! HF\n* xyz 0 1\nH 0 0 0\xff\n*\n")
    seen = []
    assert gc.isenabled()
    prepare_inputs(camp, [good], progress=lambda _n: seen.append(gc.isenabled()))
    assert seen == [False] and gc.isenabled()
    with pytest.raises(UserError, match=r"bad.inp:3: not UTF-8 text \(byte 0xff\)"):
        prepare_inputs(camp, [bad, good])
    assert gc.isenabled()
    gc.collect()
    gc.disable()  # as if a caller had paused it: left paused, and what is unreachable stays to be counted
    try:
        unknown = tmp_path / "unknown.inp"
        unknown.write_text("! HF\n* xyz 0 1\nXx 0 0 0\n*\n")
        with pytest.raises(UserError, match=r"2 problems.*not UTF-8 text.*unknown element 'Xx'"):
            prepare_inputs(camp, [bad, unknown, tmp_path])
        assert not gc.isenabled() and gc.collect() == 0  # nothing of the refused input left to collect
    finally:
        gc.enable()


def test_an_input_that_reads_fine_is_stat_once_and_a_missing_one_said_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each input is looked at once before it is read (when its folders and globs are expanded); a path
    that cannot be read is then asked why: missing (also a path no file can have) or a folder, in the
    words every input gets."""
    import os

    camp = load_campaign(new_campaign(tmp_path))
    good = tmp_path / "good.inp"
    good.write_text("! HF def2-SVP\n* xyz 0 1\nO 0 0 0\nH 0 0 1\nH 0 1 0\n*\n")
    real_stat = os.stat
    looked: list[str] = []

    def counting_stat(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> os.stat_result:
        looked.append(os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    prepare_inputs(camp, [good])
    assert looked.count(str(good)) == 1
    missing, impossible = tmp_path / "missing.inp", tmp_path / "nul\0.inp"
    with pytest.raises(UserError) as err:
        prepare_inputs(camp, [missing, good, impossible])
    assert str(err.value) == (
        f"2 problems, nothing was submitted: {missing}: no such file; {impossible}: no such file"
    )
