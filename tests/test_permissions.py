"""Campaign files are never group/world-writable (whatever the umask), and the runner refuses to run
from an attempt that another user could have changed (issue 18: rewriting a spec made the runner
start the other user's program as the campaign's owner)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import LocalUser, python_for_others
from e2e import cli, cli_proc, orca_input, write_inputs
from test_runner_support import make_attempt, write_fake_orca

from orca_hpc.attempt.folder import AttemptPlan, write_attempt
from orca_hpc.config.campaign import init_campaign


def _writable_by_others(root: Path) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            st = os.lstat(Path(folder, name))
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o022:
                found.append(f"{Path(folder, name)} {stat.S_IMODE(st.st_mode):04o}")
    return found


def test_campaign_and_attempt_folders_are_private_under_umask_000(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        campaign = init_campaign(tmp_path / "camp", "local")
        source = tmp_path / "guess.gbw"
        source.write_bytes(b"orbitals")
        plan = AttemptPlan("w.inp", orca_input(), 1, 1000, 1000, 10, extra_files={"guess.gbw": source})
        write_attempt(
            campaign.jobs_dir / "j000001" / "attempt-1",
            plan,
            campaign="camp",
            job_id="j000001",
            job_name="w",
            attempt=1,
            orca="orca",
            scratch_root="/tmp",
            keep=["*.out"],
        )
    finally:
        os.umask(old)
    assert (campaign.jobs_dir / "j000001" / "attempt-1" / "guess.gbw").read_bytes() == b"orbitals"
    assert _writable_by_others(tmp_path / "camp") == []


def test_commands_and_jobs_started_with_umask_000_leave_nothing_writable_by_others(tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text() + '\n[overrides.orca]\npath = "orca-emulator"\n')
    [path] = write_inputs(tmp_path / "in", {"w.inp": orca_input()})
    proc = cli_proc(camp, "submit", path, umask=0)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = camp / "jobs" / "j000001" / "attempt-1" / "result.json"
    deadline = time.monotonic() + 120
    while not result.exists():  # the job (runner + emulated ORCA) writes it last
        assert time.monotonic() < deadline, "the local job wrote no result.json"
        time.sleep(0.1)
    assert json.loads(result.read_text())["outcome"] == "success"
    assert _writable_by_others(camp) == []


def _run_as(user: LocalUser, attempt_dir: Path) -> subprocess.CompletedProcess[str]:
    argv = [python_for_others(), "-m", "orca_hpc.runner", "--attempt-dir", str(attempt_dir)]
    return user.run(argv, cwd=attempt_dir.parent)


def test_runner_refuses_an_attempt_another_user_could_change(
    local_users: dict[str, LocalUser], shared_tmp: Path
) -> None:
    owner, intruder = local_users["owner"], local_users["intruder"]
    scratch = shared_tmp / "scratch"
    scratch.mkdir(mode=0o1777)
    scratch.chmod(0o1777)
    attempt_dir = make_attempt(shared_tmp / "camp", write_fake_orca(shared_tmp, python_for_others()), scratch)
    subprocess.run(["chown", "-R", f"{owner.uid}:{owner.gid}", str(shared_tmp / "camp")], check=True)
    # What an older controller under umask 000 made: everybody may write the folder and the spec.
    spec = attempt_dir / "spec.json"
    attempt_dir.chmod(0o777)
    spec.chmod(0o666)
    marker = shared_tmp / "ran-as-owner"
    evil = shared_tmp / "evil"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\n")
    evil.chmod(0o755)
    rewritten = json.loads(spec.read_text()) | {"orca": str(evil)}
    assert intruder.run(["sh", "-c", f"cat > {spec}"], input=json.dumps(rewritten)).returncode == 0

    proc = _run_as(owner, attempt_dir)
    assert proc.returncode == 2 and f"{attempt_dir}: is writable by others" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr

    attempt_dir.chmod(0o750)  # the folder is safe now, the spec someone rewrote is not
    proc = _run_as(owner, attempt_dir)
    assert proc.returncode == 2 and f"{spec}: is writable by others" in proc.stderr

    spec.chmod(0o640)  # a file planted by the other user (owned by them) is refused too
    subprocess.run(["chown", f"{intruder.uid}:{intruder.gid}", str(attempt_dir / "h2_sp.inp")], check=True)
    proc = _run_as(owner, attempt_dir)
    assert proc.returncode == 2
    assert f"h2_sp.inp: belongs to uid {intruder.uid}, not to this user (uid {owner.uid})" in proc.stderr

    assert not marker.exists() and not (attempt_dir / "result.json").exists()


def test_make_dir_never_changes_a_linked_folder(tmp_path: Path) -> None:
    """A link where a folder of ours goes is not followed: its target keeps its mode (a folder of ours
    that the group may write loses that write, as before)."""
    from orca_hpc.perms import make_dir

    target = tmp_path / "elsewhere"
    target.mkdir()
    target.chmod(0o775)
    link = tmp_path / "slurm-logs"
    link.symlink_to(target)
    make_dir(link)
    assert stat.S_IMODE(target.stat().st_mode) == 0o775 and link.is_symlink()
    own = tmp_path / "own"
    own.mkdir()
    own.chmod(0o775)
    make_dir(own)
    assert stat.S_IMODE(own.stat().st_mode) == 0o755


def test_make_dir_needs_no_chmod_without_following_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """glibc < 2.32 (RHEL 8) has no chmod that leaves links alone: Python raises NotImplementedError
    for os.chmod(..., follow_symlinks=False), which made every existing group-writable folder of a
    campaign a traceback. The folder is opened without following a link and changed by descriptor."""
    from orca_hpc.perms import make_dir

    chmod = os.chmod

    def old_glibc_chmod(path, mode, *, dir_fd=None, follow_symlinks=True):  # type: ignore[no-untyped-def]
        if not follow_symlinks:
            raise NotImplementedError("chmod: follow_symlinks unavailable on this platform")
        return chmod(path, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "chmod", old_glibc_chmod)
    own = tmp_path / "own"
    own.mkdir()
    own.chmod(0o775)
    make_dir(own)
    assert stat.S_IMODE(own.stat().st_mode) == 0o755
