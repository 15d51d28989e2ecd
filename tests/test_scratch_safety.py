"""Scratch on a shared root (like /tmp) with a real second user: nothing of theirs is used or followed.

The attacks reproduce issue 18: another user creates the scratch folder first (every job failed
with PermissionError), or plants links named like the next job's scratch folder (the runner's
clean-up then deleted the folder the link pointed to: here the job's earlier attempt).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from conftest import LocalUser, python_for_others
from test_runner_support import make_attempt, write_fake_orca

from orca_hpc.attempt.scratch import make_private_dir, private_dir_problem, private_top, remove_tree, top_name


def _shared_scratch(shared_tmp: Path) -> Path:
    scratch = shared_tmp / "scratch"
    scratch.mkdir()
    scratch.chmod(0o1777)  # like /tmp: everybody may create, nobody may remove what is not theirs
    return scratch


def _give(path: Path, user: LocalUser) -> None:
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(path)], check=True)


def _run_as(user: LocalUser, attempt_dir: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = user.run(
        [python_for_others(), "-m", "orca_hpc.runner", "--attempt-dir", str(attempt_dir)], cwd=attempt_dir
    )
    assert (attempt_dir / "result.json").is_file(), proc.stderr
    return proc, json.loads((attempt_dir / "result.json").read_text())


def test_scratch_folders_made_by_another_user_are_refused(
    local_users: dict[str, LocalUser], shared_tmp: Path
) -> None:
    owner, intruder = local_users["owner"], local_users["intruder"]
    scratch = _shared_scratch(shared_tmp)
    attempt_dir = make_attempt(shared_tmp / "camp", write_fake_orca(shared_tmp, python_for_others()), scratch)
    _give(shared_tmp / "camp", owner)
    theirs = [scratch / "orca-hpc", scratch / top_name(owner.uid)]
    for folder in theirs:
        assert intruder.run(["mkdir", "-m", "755", str(folder)]).returncode == 0

    proc, result = _run_as(owner, attempt_dir)

    assert proc.returncode == 0, proc.stderr
    assert result["outcome"] == "success" and result["scratch_removed"] is True
    assert any(f"belongs to uid {intruder.uid}" in note for note in result["notes"])
    assert Path(result["scratch"]).parents[1].name.startswith(top_name(owner.uid) + "-")
    # Our fresh folder went with the job; theirs are untouched and hold nothing of ours.
    assert sorted(scratch.iterdir()) == sorted(theirs)
    assert all(f.stat().st_uid == intruder.uid and not any(f.iterdir()) for f in theirs)


def test_planted_links_never_lead_the_runner_into_other_folders(
    local_users: dict[str, LocalUser], shared_tmp: Path
) -> None:
    owner, intruder = local_users["owner"], local_users["intruder"]
    scratch = _shared_scratch(shared_tmp)
    orca = write_fake_orca(shared_tmp, python_for_others())
    camp = shared_tmp / "camp"
    first = make_attempt(camp, orca, scratch, attempt=1)
    (first / "h2_sp.out").write_text("evidence of attempt 1\n")
    second = make_attempt(camp, orca, scratch, attempt=2)
    _give(camp, owner)
    job_folder = camp / "jobs" / "j000001"
    # The next job's scratch names are predictable: the intruder links them to the job's own folder,
    # both under the old shared top and through a link in place of the owner's private top.
    lure = scratch / "lure"
    steps = (
        f"mkdir -m 1777 {scratch}/orca-hpc {lure}"
        f" && ln -s {job_folder} {scratch}/orca-hpc/camp-j000001"
        f" && ln -s {job_folder} {lure}/camp-j000001"
        f" && ln -s {lure} {scratch}/{top_name(owner.uid)}"
    )
    assert intruder.run(["sh", "-c", steps]).returncode == 0

    proc, result = _run_as(owner, second)

    assert (first / "h2_sp.out").read_text() == "evidence of attempt 1\n"
    assert (second / "spec.json").is_file() and (second / "h2_sp.inp").is_file()
    assert proc.returncode == 0, proc.stderr
    assert result["outcome"] == "success" and result["scratch_removed"] is True
    assert any("not a real directory" in note for note in result["notes"])
    assert (scratch / top_name(owner.uid)).is_symlink() and (lure / "camp-j000001").is_symlink()
    assert not [p for p in scratch.iterdir() if p.name.startswith(top_name(owner.uid) + "-")]


def test_own_folder_with_group_or_other_access_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / top_name()
    loose.mkdir()
    loose.chmod(0o755)
    assert "not private" in (private_dir_problem(loose) or "")
    top, note = private_top(tmp_path)
    assert top != loose and top.parent == tmp_path and private_dir_problem(top) is None
    assert note is not None and str(loose) in note and "not private" in note


def test_private_folder_is_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o777)  # even a umask that takes the owner's own bits away
    try:
        make_private_dir(tmp_path / "top")
    finally:
        os.umask(old)
    assert (tmp_path / "top").stat().st_mode & 0o777 == 0o700


def test_remove_tree_removes_a_link_not_its_target(tmp_path: Path) -> None:
    assert shutil.rmtree.avoids_symlink_attacks  # remove_tree relies on it (Linux: dir_fd support)
    target = tmp_path / "precious"
    target.mkdir()
    (target / "data").write_text("keep")
    link = tmp_path / "attempt-1"
    link.symlink_to(target)
    remove_tree(link)
    assert not os.path.lexists(link) and (target / "data").read_text() == "keep"
