"""The compute-node runner, run directly (no SLURM): scratch, copy-back, result.json, signals, full disk."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_runner_support import make_attempt, write_fake_orca

from orca_hpc.attempt.folder import AttemptResult
from orca_hpc.attempt.scratch import make_private_dir, top_name, usable_root
from orca_hpc.controller.ending import decide_end
from orca_hpc.errors import InputFileError
from orca_hpc.orca.outcomes import Outcome
from orca_hpc.runner import run as runner

RESULT_FIELDS = {
    "result_version",
    "job_id",
    "attempt",
    "outcome",
    "reason",
    "retryable",
    "exit_code",
    "energy",
    "message",
    "classification",
    "started",
    "ended",
    "node",
    "slurm_job_id",
    "files",
    "scratch",
    "scratch_removed",
    "error",
}


@pytest.fixture
def orca(tmp_path: Path) -> Path:
    return write_fake_orca(tmp_path)


@pytest.fixture
def scratch_root(tmp_path: Path) -> Path:
    root = tmp_path / "scratch"
    root.mkdir()
    return root


def _result(attempt_dir: Path) -> dict:
    # Whatever the outcome, the runner's file passes the strict read reconcile applies.
    assert AttemptResult.read(attempt_dir) is not None
    return json.loads((attempt_dir / "result.json").read_text())


def _scratch_of(scratch_root: Path, attempt: int = 1) -> Path:
    return scratch_root / top_name() / "camp-j000001" / f"attempt-{attempt}"


def _start_runner(attempt_dir: Path) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "orca_hpc.runner",
        "--attempt-dir",
        str(attempt_dir),
        "--copy-interval",
        "0.3",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.05)


def test_success_keeps_results_and_removes_scratch(tmp_path: Path, orca: Path, scratch_root: Path) -> None:
    attempt_dir = make_attempt(
        tmp_path / "c", orca, scratch_root, extra_inputs={"guess.gbw": b"old orbitals"}
    )
    result = runner.run_attempt(attempt_dir)

    assert result == _result(attempt_dir)
    assert set(result) >= RESULT_FIELDS
    assert result["outcome"] == "success" and result["retryable"] is False and result["exit_code"] == 0
    assert result["reason"] is None and result["error"] is None
    assert result["scratch_removed"] is True and not _scratch_of(scratch_root).exists()
    assert result["scratch"] == str(_scratch_of(scratch_root))
    names = {p.name for p in attempt_dir.iterdir()}
    assert {"h2_sp.out", "h2_sp.gbw", "h2_sp.xyz", "h2_sp_trj.xyz", "h2_sp.err", "result.json"} <= names
    assert not [n for n in names if ".tmp" in n or "densities" in n or ".bas" in n or n.startswith(".")]
    assert set(result["files"]) == {"h2_sp.out", "h2_sp.gbw", "h2_sp.xyz", "h2_sp_trj.xyz", "h2_sp.err"}
    # The extra input reached ORCA's working dir, and (unchanged) was not copied back over itself.
    assert "guess.gbw" in (attempt_dir / "h2_sp.out").read_text().splitlines()[1]
    assert (attempt_dir / "guess.gbw").read_bytes() == b"old orbitals"
    assert runner.exit_code_for(result) == runner.EXIT_SUCCESS


@pytest.mark.parametrize("mode", ["scf_fail", "crash"])
def test_failing_run_keeps_output_and_removes_scratch(
    tmp_path: Path, orca: Path, scratch_root: Path, mode: str
) -> None:
    attempt_dir = make_attempt(tmp_path / "c", orca, scratch_root, directives=mode)
    result = runner.run_attempt(attempt_dir)

    assert result["outcome"] not in ("success",) and result["retryable"] is True
    assert result["exit_code"] == (1 if mode == "scf_fail" else -signal.SIGSEGV)
    assert (attempt_dir / "h2_sp.out").is_file() and _result(attempt_dir)["outcome"] == result["outcome"]
    assert not _scratch_of(scratch_root).exists() and result["scratch_removed"] is True
    assert runner.exit_code_for(result) == runner.EXIT_ORCA_FAILED


@pytest.mark.parametrize(
    ("sig", "reason", "code"),
    [
        (signal.SIGUSR1, "walltime", runner.EXIT_WALLTIME),
        (signal.SIGTERM, "cancelled", runner.EXIT_CANCELLED),
    ],
)
def test_signal_stops_orca_and_saves_restart_files(
    tmp_path: Path, orca: Path, scratch_root: Path, sig: int, reason: str, code: int
) -> None:
    attempt_dir = make_attempt(tmp_path / "c", orca, scratch_root, directives="sleep=60 hess")
    proc = _start_runner(attempt_dir)
    try:
        # The .out is mirrored while ORCA runs, so a person can follow it.
        _wait_for(attempt_dir / "h2_sp.out", 10)
        assert not (attempt_dir / "result.json").exists()
        proc.send_signal(sig)
        # ORCA would run 60 s: an answer well before that means the runner stopped it, not waited.
        _, stderr = proc.communicate(timeout=45)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, stderr
    result = _result(attempt_dir)
    assert (result["outcome"], result["reason"], result["retryable"]) == ("truncated", reason, True)
    # The restart files: orbitals, geometry and the Hessian (an OptTS or a frequency run goes on from it).
    assert {"h2_sp.out", "h2_sp.gbw", "h2_sp.xyz", "h2_sp_trj.xyz", "h2_sp.hess"} <= set(result["files"])
    assert "SCF ITERATIONS" in (attempt_dir / "h2_sp.out").read_text()
    assert (attempt_dir / "h2_sp.gbw").stat().st_size == 2000
    assert not _scratch_of(scratch_root).exists() and result["scratch_removed"] is True
    # ORCA (pid on the first line of its output) was stopped with the runner.
    orca_pid = int((attempt_dir / "h2_sp.out").read_text().split()[2])
    with pytest.raises(ProcessLookupError):
        os.kill(orca_pid, 0)


def test_signal_before_orca_starts_skips_it(
    tmp_path: Path, orca: Path, scratch_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_in = runner._Attempt.copy_in

    def copy_in_then_warned(self: runner._Attempt) -> str | None:
        problem = copy_in(self)
        self.stopper.request("walltime")
        return problem

    monkeypatch.setattr(runner._Attempt, "copy_in", copy_in_then_warned)
    attempt_dir = make_attempt(tmp_path / "c", orca, scratch_root)
    result = runner.run_attempt(attempt_dir)
    assert (result["outcome"], result["reason"], result["exit_code"]) == ("truncated", "walltime", None)
    assert not (attempt_dir / "h2_sp.gbw").exists() and not _scratch_of(scratch_root).exists()


def test_signal_after_orca_finished_keeps_its_verdict(
    tmp_path: Path, orca: Path, scratch_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_orca = runner._Attempt.run_orca

    def run_then_cancelled(self: runner._Attempt, path: Path) -> int:
        code = run_orca(self, path)
        self.stopper.request("cancelled")
        return code

    monkeypatch.setattr(runner._Attempt, "run_orca", run_then_cancelled)
    result = runner.run_attempt(make_attempt(tmp_path / "c", orca, scratch_root))
    assert (result["outcome"], result["reason"]) == ("success", None)
    assert "h2_sp.gbw" in result["files"] and runner.exit_code_for(result) == runner.EXIT_SUCCESS


def test_stale_scratch_of_earlier_attempt_is_removed(tmp_path: Path, orca: Path, scratch_root: Path) -> None:
    stale = _scratch_of(scratch_root, attempt=1)
    for folder in (stale.parent.parent, stale.parent, stale):
        make_private_dir(folder)
    (stale / "h2_sp.tmp").write_bytes(b"x" * 100)
    attempt_dir = make_attempt(tmp_path / "c", orca, scratch_root, attempt=2)
    result = runner.run_attempt(attempt_dir)

    assert result["outcome"] == "success"
    assert not stale.exists() and not _scratch_of(scratch_root, attempt=2).exists()
    assert any(str(stale) in note for note in result["notes"])
    assert not stale.parent.exists()  # no empty per-job folder is left behind


def test_unusable_scratch_root_falls_back_to_tmp(
    tmp_path: Path, orca: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORCA_HPC_TEST_UNSET", raising=False)
    campaign = f"camp{os.getpid()}"
    attempt_dir = make_attempt(tmp_path / "c", orca, "$ORCA_HPC_TEST_UNSET/x", campaign=campaign)
    try:
        result = runner.run_attempt(attempt_dir)
    finally:
        shutil.rmtree(Path("/tmp") / top_name() / f"{campaign}-j000001", ignore_errors=True)
    assert result["outcome"] == "success"
    assert result["scratch"].startswith(f"/tmp/{top_name()}") and result["scratch_removed"] is True
    assert any("ORCA_HPC_TEST_UNSET" in note for note in result["notes"])


def test_unusable_scratch_root_falls_back_to_the_sites_fallback(
    tmp_path: Path, orca: Path, scratch_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[scratch] fallback is where the runner goes when the root is unusable on the node (a small /tmp
    is no place for ORCA's files); an unusable fallback still ends in /tmp."""
    monkeypatch.delenv("ORCA_HPC_TEST_UNSET", raising=False)
    attempt_dir = make_attempt(tmp_path / "c", orca, "$ORCA_HPC_TEST_UNSET/x")
    spec = json.loads((attempt_dir / "spec.json").read_text())
    (attempt_dir / "spec.json").write_text(json.dumps({**spec, "scratch_fallback": str(scratch_root)}))
    result = runner.run_attempt(attempt_dir)
    assert result["outcome"] == "success" and result["scratch"] == str(_scratch_of(scratch_root))
    assert any("ORCA_HPC_TEST_UNSET" in note and str(scratch_root) in note for note in result["notes"])
    root, note = usable_root("$ORCA_HPC_TEST_UNSET/x", str(tmp_path / "missing"))
    assert root == Path("/tmp") and note is not None and note.endswith("using /tmp")


def test_scratch_root_variables_are_expanded(
    tmp_path: Path, orca: Path, scratch_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCA_HPC_TEST_SCRATCH", str(scratch_root))
    attempt_dir = make_attempt(tmp_path / "c", orca, "$ORCA_HPC_TEST_SCRATCH")
    result = runner.run_attempt(attempt_dir)
    assert result["scratch"] == str(_scratch_of(scratch_root)) and result["notes"] == []


def test_missing_input_and_missing_orca_are_reported(tmp_path: Path, orca: Path, scratch_root: Path) -> None:
    attempt_dir = make_attempt(tmp_path / "c", orca, scratch_root, extra_inputs={"prev.gbw": b"g"})
    (attempt_dir / "prev.gbw").unlink()
    result = runner.run_attempt(attempt_dir)
    assert result["outcome"] == "input_error" and "prev.gbw" in result["error"]
    assert result["retryable"] is False and result["exit_code"] is None

    attempt_dir = make_attempt(tmp_path / "d", "no-such-orca-binary", scratch_root)
    result = runner.run_attempt(attempt_dir)
    assert "no-such-orca-binary" in result["error"] and result["exit_code"] is None
    # The machine, not the input: retried unchanged by the controller, never given up for it.
    assert result["outcome"] == "environment_error" and result["reason"] == "orca_missing"
    assert result["retryable"] is True
    assert not _scratch_of(scratch_root).exists()


def test_bad_spec_is_a_one_line_error(tmp_path: Path, orca: Path, scratch_root: Path) -> None:
    attempt_dir = make_attempt(tmp_path / "c", orca, scratch_root)
    spec = json.loads((attempt_dir / "spec.json").read_text())
    spec["input"] = "../evil.inp"
    (attempt_dir / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(InputFileError, match=r"spec\.json: 'input'"):
        runner.run_attempt(attempt_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "orca_hpc.runner", "--attempt-dir", str(attempt_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == runner.EXIT_BAD_SPEC
    assert proc.stderr.count("\n") == 1 and "not a safe name" in proc.stderr


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("campaign", "../up", "cannot name a scratch folder"),
        ("job_id", "j1/../x", "not a safe name"),
        ("attempt", "1", "'attempt' missing or not an integer"),
        ("keep", "*.out", "'keep' missing or not a list"),
    ],
)
def test_spec_values_are_checked(
    tmp_path: Path, orca: Path, scratch_root: Path, key: str, value: str, problem: str
) -> None:
    attempt_dir = make_attempt(tmp_path / "c", orca, scratch_root)
    spec = json.loads((attempt_dir / "spec.json").read_text())
    spec[key] = value
    (attempt_dir / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(InputFileError) as info:
        runner.run_attempt(attempt_dir)
    assert problem in str(info.value) and not (scratch_root / top_name()).exists()


def test_campaign_slug_with_any_letters(tmp_path: Path, orca: Path, scratch_root: Path) -> None:
    attempt_dir = make_attempt(tmp_path / "c", orca, scratch_root, campaign="Études_Cu-1a2b3c")
    result = runner.run_attempt(attempt_dir)
    assert result["outcome"] == "success"
    assert result["scratch"] == str(scratch_root / top_name() / "Études_Cu-1a2b3c-j000001" / "attempt-1")


def test_manifest_selects_the_line_for_the_array_index(
    tmp_path: Path, orca: Path, scratch_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_attempt(tmp_path / "c", orca, scratch_root, job_id="j000001")
    second = make_attempt(tmp_path / "c", orca, scratch_root, job_id="j000002")
    manifest = tmp_path / "manifest"
    manifest.write_text(f"{first}\n{second}\n")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")

    assert runner.main(["--manifest", str(manifest), "--index", "1"]) == runner.EXIT_SUCCESS
    assert not (first / "result.json").exists()
    assert _result(second)["slurm_job_id"] == "77_1" and _result(second)["job_id"] == "j000002"
    assert runner.main(["--manifest", str(manifest), "--index", "2"]) == runner.EXIT_BAD_SPEC


def test_fallback_classifier(tmp_path: Path) -> None:
    out = tmp_path / "x.out"
    assert runner.fallback_classify(out)["outcome"] == "unknown_error"
    out.write_text("SCF ITERATIONS\n")
    assert runner.fallback_classify(out)["outcome"] == "truncated"
    out.write_text("ORCA finished by error termination in SCF\n")
    assert runner.fallback_classify(out)["outcome"] == "unknown_error"
    out.write_text("x\n" * 50000 + "****ORCA TERMINATED NORMALLY****\nTOTAL RUN TIME: 1\n")
    verdict = runner.fallback_classify(out, "classify.py unusable")
    assert verdict["outcome"] == "unknown_error" and verdict["retryable"] is False  # unchecked: no success
    assert "classify.py unusable" in verdict["message"]


def test_classifier_failure_falls_back(
    tmp_path: Path, orca: Path, scratch_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    def broken(path: Path, **options: object) -> None:
        raise RuntimeError("classifier bug")

    monkeypatch.setitem(sys.modules, "orca_hpc.orca.classify", types.SimpleNamespace(classify_output=broken))
    result = runner.run_attempt(make_attempt(tmp_path / "c", orca, scratch_root))
    # ORCA ended normally, but nothing checked its energy or geometry: not a success, not retried.
    assert result["outcome"] == "unknown_error" and result["retryable"] is False
    assert result["classification"]["classifier"] == "runner-fallback"
    assert "terminated normally" in result["message"] and "classifier bug" in result["message"]
    assert any("classifier bug" in note for note in result["notes"])


# ----------------------------------------------------------------------------- full results disk


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_copy_back_failure_keeps_scratch_and_says_where(
    tmp_path: Path, orca: Path, scratch_root: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attempt_dir = make_attempt(small_disk, orca, scratch_root, directives="gbw_bytes=400000")
    code = runner.main(["--attempt-dir", str(attempt_dir)])

    assert code == runner.EXIT_RUNNER_ERROR
    scratch = _scratch_of(scratch_root)
    assert (scratch / "h2_sp.gbw").stat().st_size == 400000 and (scratch / "h2_sp.out").is_file()
    result = _result(attempt_dir)
    assert result["scratch_removed"] is False
    assert "h2_sp.gbw" in result["error"] and str(scratch) in result["error"]
    assert "h2_sp.gbw" not in result["files"] and not (attempt_dir / "h2_sp.gbw").exists()
    assert not [p for p in attempt_dir.iterdir() if p.name.startswith(".")], "temp files left behind"
    assert str(scratch) in capsys.readouterr().err
    # ORCA succeeded, but the orbitals are only in the node's scratch: not a COMPLETED job, a full disk.
    assert result["outcome"] == "success"
    end = decide_end("FAILED", code, 0, AttemptResult.from_dict(result))
    assert (end.outcome, end.reason, end.energy) == (Outcome.ENVIRONMENT_ERROR, "disk_full", None)
    assert end.classification["orca_outcome"] == "success" and str(scratch) in end.message


def test_result_write_failure_is_reported_on_stderr(
    tmp_path: Path, orca: Path, scratch_root: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attempt_dir = make_attempt(small_disk, orca, scratch_root)
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="No space left"):
            while True:
                os.write(fd, b"f" * 4096)
    finally:
        os.close(fd)
    code = runner.main(["--attempt-dir", str(attempt_dir)])

    assert code == runner.EXIT_RUNNER_ERROR
    err = capsys.readouterr().err
    scratch = _scratch_of(scratch_root)
    assert "result.json" in err and str(scratch) in err
    assert not (attempt_dir / "result.json").exists()
    assert (scratch / "h2_sp.out").is_file() and (scratch / "h2_sp.gbw").is_file()


def test_result_rewrite_failure_after_scratch_is_gone_is_no_error(
    tmp_path: Path,
    orca: Path,
    scratch_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # result.json is written, scratch removed, then written again to say so: if that second write
    # fails (the disk just filled up), the first one stands; the runner said "error: cannot write
    # result.json ...; all files are kept in scratch" about a scratch it had removed.
    write = runner.write_json_atomic
    calls: list[Path] = []

    def second_fails(path: Path, data: dict) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        write(path, data)

    monkeypatch.setattr(runner, "write_json_atomic", second_fails)
    attempt_dir = make_attempt(tmp_path / "c", orca, scratch_root)
    code = runner.main(["--attempt-dir", str(attempt_dir)])
    assert len(calls) == 2 and not _scratch_of(scratch_root).exists()
    assert code == runner.EXIT_SUCCESS
    assert "error" not in capsys.readouterr().err
    assert _result(attempt_dir)["outcome"] == "success"


# ----------------------------------------------------------------------------- with the project's emulator


@pytest.fixture
def emulator() -> Path:
    found = shutil.which("orca-emulator")
    if found is None or importlib.util.find_spec("orca_hpc.emulator") is None:
        pytest.skip("orca-emulator is not installed")
    return Path(found)


@pytest.mark.parametrize(
    ("directives", "outcome"),
    [("", "success"), ("scf_fail", "scf_not_converged"), ("crash", None)],
)
def test_emulated_runs_are_classified(
    tmp_path: Path, emulator: Path, scratch_root: Path, directives: str, outcome: str | None
) -> None:
    attempt_dir = make_attempt(tmp_path / "c", emulator, scratch_root, directives=directives)
    result = runner.run_attempt(attempt_dir)

    if outcome is None:  # a crash: anything but success, and worth retrying
        assert result["outcome"] != "success" and result["retryable"] is True
    else:
        assert result["outcome"] == outcome
    assert result["classification"]["outcome"] == result["outcome"]
    assert result["classification"].get("classifier") != "runner-fallback", result["notes"]
    if outcome == "success":
        assert isinstance(result["energy"], float) and "h2_sp.gbw" in result["files"]
    assert "h2_sp.out" in result["files"] and result["scratch_removed"] is True
    assert not [p for p in attempt_dir.iterdir() if ".tmp" in p.name or "densities" in p.name]
    assert not _scratch_of(scratch_root).exists()
