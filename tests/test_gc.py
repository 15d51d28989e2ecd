"""Scratch garbage collection: stale dirs of killed runners, never a running attempt's scratch."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from orca_hpc.attempt.scratch import job_id_of, make_private_dir, top_name
from orca_hpc.attempt.stale import find_stale_scratch, remove_paths


def _make(root: Path, name: str, *attempts: int) -> Path:
    root.mkdir(exist_ok=True)
    make_private_dir(root / top_name())
    job_dir = root / top_name() / name
    for n in attempts:
        (job_dir / f"attempt-{n}").mkdir(parents=True)
        (job_dir / f"attempt-{n}" / "x.tmp").write_bytes(b"t" * 10)
    return job_dir


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "scratch"
    _make(root, "camp-j000001", 1, 2)  # active at attempt 2: attempt-1 is stale
    _make(root, "camp-j000002", 1)  # finished: the whole job dir is stale
    _make(root, "camp-j000003", 3)  # active at attempt 3: nothing stale
    _make(root, "camp-other-j000004", 1)  # campaign "camp-other", not ours
    _make(root, "elsewhere-j000001", 1)
    (root / top_name() / "camp-j000003" / "notes.txt").write_text("not an attempt dir")
    return root


def test_find_stale_scratch(root: Path) -> None:
    stale = find_stale_scratch(root, "camp", {"j000001": 2, "j000003": 3})
    top = root / top_name()
    assert stale == [top / "camp-j000001" / "attempt-1", top / "camp-j000002"]


def test_other_campaign_with_dashed_name(root: Path) -> None:
    assert find_stale_scratch(root, "camp-other", {}) == [root / top_name() / "camp-other-j000004"]
    assert job_id_of("camp-other-j000004", "camp") is None
    assert job_id_of("camp-j000004", "camp") == "j000004"


def test_missing_root_is_empty(tmp_path: Path) -> None:
    assert find_stale_scratch(tmp_path / "nope", "camp", {}) == []


def test_dry_run_lists_only_then_removal_removes(root: Path) -> None:
    stale = find_stale_scratch(root, "camp", {"j000001": 2, "j000003": 3})
    assert remove_paths(stale, dry_run=True) == [f"would remove {p}" for p in stale]
    assert all(p.exists() for p in stale)

    assert remove_paths(stale, dry_run=False) == [f"removed {p}" for p in stale]
    assert not any(p.exists() for p in stale)
    assert (root / top_name() / "camp-j000001" / "attempt-2" / "x.tmp").exists()
    assert (root / top_name() / "camp-j000003" / "attempt-3").exists()
    assert find_stale_scratch(root, "camp", {"j000001": 2, "j000003": 3}) == []


def test_remove_refuses_paths_outside_scratch(tmp_path: Path) -> None:
    precious = tmp_path / "home" / "thesis"
    precious.mkdir(parents=True)
    [line] = remove_paths([precious], dry_run=False)
    assert line.startswith("could not remove") and precious.exists()


def test_only_private_tops_of_this_user_are_searched(tmp_path: Path) -> None:
    root = tmp_path / "scratch"
    _make(root, "camp-j000009", 1)
    (root / top_name()).chmod(0o755)  # not private: someone may have planted things in it
    assert find_stale_scratch(root, "camp", {}) == []
    fallback = root / f"{top_name()}-x1y2"  # a runner's mkdtemp fallback top is searched
    make_private_dir(fallback)
    (fallback / "camp-j000009" / "attempt-1").mkdir(parents=True)
    assert find_stale_scratch(root, "camp", {}) == [fallback / "camp-j000009"]


def test_empty_fallback_top_goes_once_it_is_old(tmp_path: Path) -> None:
    root = tmp_path / "scratch"
    root.mkdir()
    fallback = root / f"{top_name()}-x1y2"
    make_private_dir(fallback)
    assert find_stale_scratch(root, "camp", {}) == []  # may be a runner that is about to fill it
    hours_ago = time.time() - 2 * 3600
    os.utime(fallback, (hours_ago, hours_ago))
    assert find_stale_scratch(root, "camp", {}) == [fallback]
    assert remove_paths([fallback], dry_run=False) == [f"removed {fallback}"] and not fallback.exists()


def test_removing_the_last_stale_attempt_removes_its_job_folder(tmp_path: Path) -> None:
    job_dir = _make(tmp_path / "scratch", "camp-j000005", 1)
    stale = find_stale_scratch(tmp_path / "scratch", "camp", {"j000005": 2})
    assert stale == [job_dir / "attempt-1"]
    remove_paths(stale, dry_run=False)
    assert not job_dir.exists()
