"""Shared test setup: tests marked ``slurm`` get the real local SLURM cluster (scripts/local-slurm.sh)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "local-slurm.sh"


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """Start (or confirm) the local cluster; returns its "SLURM CLUSTER READY ..." line.

    Fails rather than skips: a silently skipped scheduler test would hide exactly the bugs it is for.
    """
    # Parallel test workers (pytest-xdist) each confirm the cluster: one at a time, one install.
    lock = FileLock(Path(tempfile.gettempdir()) / "orca-hpc-tests-cluster.lock")
    try:
        with lock:
            proc = subprocess.run(
                ["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=900, check=False
            )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{SCRIPT} start did not finish within 900 s", pytrace=False)
    ready = [ln for ln in proc.stdout.splitlines() if ln.startswith("SLURM CLUSTER READY")]
    if proc.returncode != 0 or not ready:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        pytest.fail(f"{SCRIPT} start failed (exit {proc.returncode}):\n{tail}", pytrace=False)
    return ready[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`--dist loadgroup`, scripts/test.sh): the cluster's tests run one after
    another in one worker, as alone: the one-node cluster's slots are what they wait for, and two at
    once would make each wait for the other's jobs. Every test of the machine's second user runs in
    one worker too: the session that made the accounts removes them at its end, which must not be
    while another worker still uses them."""
    for item in items:
        if item.get_closest_marker("slurm") is not None:
            item.add_marker(pytest.mark.xdist_group("cluster"))
        elif "local_users" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("local_users"))


@pytest.fixture(autouse=True)
def _slurm_for_marked_tests(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("slurm") is not None:
        request.getfixturevalue("slurm_cluster")


@dataclass(frozen=True)
class LocalUser:
    """A real account on this machine, for tests where a second user is part of the story."""

    name: str
    uid: int
    gid: int

    def run(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as this user (no supplementary groups), output captured as text."""
        cmd = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--", *argv]
        # The package comes from this checkout: a venv under /root may be out of the user's reach.
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/", "PYTHONPATH": str(REPO)}
        kwargs.setdefault("env", env)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kwargs)


def python_for_others() -> str:
    """A Python >= 3.10 that other users can execute (this venv's may live under a private /root)."""
    for candidate in (sys.executable, "/usr/local/bin/python3", "/usr/bin/python3"):
        real = Path(os.path.realpath(candidate))
        if not real.is_file():
            continue
        reachable = all(p.stat().st_mode & 0o001 for p in real.parents) and real.stat().st_mode & 0o001
        version = subprocess.run(
            [str(real), "-c", "import sys; print(sys.version_info >= (3, 10))"],
            capture_output=True,
            text=True,
        )
        if reachable and version.stdout.strip() == "True":
            return str(real)
    pytest.fail("no Python >= 3.10 that other users may execute", pytrace=False)


# Test accounts: created when absent, removed at the end of the session only if this session made them.
TEST_USERS = ("orcahpc-owner", "orcahpc-intruder")


@pytest.fixture(scope="session")
def local_users() -> Iterator[dict[str, LocalUser]]:
    """``{"owner": ..., "intruder": ...}``: the campaign's owner and another user of the machine."""
    if os.geteuid() != 0:
        pytest.fail("tests with a second user need root (useradd, setpriv)", pytrace=False)
    created: list[str] = []
    users: dict[str, LocalUser] = {}
    try:
        for name in TEST_USERS:
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                subprocess.run(
                    [
                        "useradd",
                        "--system",
                        "--user-group",
                        "--no-create-home",
                        "--shell",
                        "/usr/sbin/nologin",
                        name,
                    ],
                    check=True,
                    capture_output=True,
                )
                created.append(name)
                entry = pwd.getpwnam(name)
            users[name.split("-", 1)[1]] = LocalUser(name, entry.pw_uid, entry.pw_gid)
        yield users
    finally:
        for name in created:
            subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder every user can enter (pytest's own tmp_path is private to root); removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="ohpc-shared-"))
    folder.chmod(0o755)
    # In-process CLI calls tighten this process's umask; what the test lays out must stay enterable.
    umask = os.umask(0o022)
    try:
        yield folder
    finally:
        os.umask(umask)
        shutil.rmtree(folder, ignore_errors=True)


# ../shared beside the repository (CI lays a copy there): real ORCA outputs the classifier is tested on.
def _main_checkout(repo: Path) -> Path:
    """The repository itself, or for a git worktree (.git is a file "gitdir: MAIN/.git/worktrees/X")
    the main checkout, beside which ../shared lies."""
    dot_git = repo / ".git"
    if dot_git.is_file():
        pointer = dot_git.read_text(encoding="utf-8").strip()
        if pointer.startswith("gitdir:"):
            return Path(pointer.split(":", 1)[1].strip()).parents[2]
    return repo


SHARED_ORCA = _main_checkout(Path(__file__).resolve().parents[1]).parent / "shared" / "fixtures" / "orca"


@pytest.fixture
def shared_orca() -> Path:
    """The shared real ORCA outputs; a test that needs them fails, never skips, when they are missing."""
    if not SHARED_ORCA.is_dir():
        pytest.fail(
            f"{SHARED_ORCA} is missing: the shared ORCA fixtures lie beside the repository", pytrace=False
        )
    return SHARED_ORCA
