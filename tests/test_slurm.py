"""orca_hpc.scheduler.slurm: parsing of captured sacct/squeue text, and the real local cluster."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from orca_hpc.config.site import load_site
from orca_hpc.errors import OrcaHpcError, SchedulerUnavailable
from orca_hpc.scheduler import slurm
from orca_hpc.scheduler.base import ArrayRequest
from orca_hpc.scheduler.script import ScriptLayout

T = TypeVar("T")

# Captured from SLURM 22.05.8 (sacct -P -n -o slurm.SACCT_FIELDS, without -X so step rows show); the
# usage columns (ElapsedRaw .. AllocCPUS) were added later in the form of tests/test_usage.py's captures.
SACCT_TEXT = """\
2_0|FAILED|3:0|2026-11-28T21:08:16|2026-11-28T21:08:16|2026-11-28T21:08:17|vm|1|30|00:00.412||2000M|1|wrap
2_0.batch|FAILED|3:0|2026-11-28T21:08:16|2026-11-28T21:08:16|2026-11-28T21:08:17|vm|1||00:00.412|1024K||1|batch
2_1|COMPLETED|0:0|2026-11-28T21:08:16|2026-11-28T21:08:16|2026-11-28T21:08:17|vm|1|30|00:00.398||2000M|1|wrap
2_[6-9%2]|PENDING|0:0|2026-11-28T21:08:16|Unknown|Unknown|None assigned|0|30|00:00:00||2000M|1|wrap
15|FAILED|0:11|2026-11-28T21:09:50|2026-11-28T21:09:51|2026-11-28T21:09:51|vm|0|UNLIMITED|00:00.020||2000M|1|seg|fault
15.batch|CANCELLED|0:11|2026-11-28T21:09:51|2026-11-28T21:09:51|2026-11-28T21:09:51|vm|0||00:00.020|0||1|batch
16|CANCELLED by 0|0:0|2026-11-28T21:09:50|2026-11-28T21:09:51|2026-11-28T21:09:53|vm|2|UNLIMITED|00:00:00||2000M|1|sleeper
17|RUNNING|0:0|2026-11-28T21:09:50|2026-11-28T21:09:51|Unknown|vm|5|30|00:00:00||2000M|1|ohpc-abc
"""  # noqa: E501

# Captured from squeue -h -r -t all -O with slurm.SQUEUE_FIELDS; exit_code is a raw wait status.
SQUEUE_TEXT = """\
2_7|RUNNING|0|None|vm|2026-11-28T21:08:16|2026-11-28T21:08:22|NONE|wrap
2_8|PENDING|0|JobArrayTaskLimit||2026-11-28T21:08:16|N/A|N/A|wrap
2_9|FAILED|768|NonZeroExitCode|vm|2026-11-28T21:08:16|2026-11-28T21:08:23|2026-11-28T21:08:24|wrap
16|CANCELLED|15|None|vm|2026-11-28T21:09:50|2026-11-28T21:09:51|2026-11-28T21:09:53|sleeper
"""


# ---------------------------------------------------------------- parsing (no cluster)


@pytest.mark.parametrize(
    ("text", "state"),
    [("CANCELLED by 0", "CANCELLED"), ("COMPLETED", "COMPLETED"), ("RUNNING+", "RUNNING"), ("", "UNKNOWN")],
)
def test_parse_state_keeps_first_word(text: str, state: str) -> None:
    assert slurm.parse_state(text) == state


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3:0", (3, 0)),
        ("0:11", (0, 11)),
        ("768", (3, 0)),
        ("11", (0, 11)),
        ("", (None, None)),
        ("x:y", (None, None)),
    ],
)
def test_parse_exit_code_sacct_and_raw_status(text: str, expected: tuple[int | None, int | None]) -> None:
    assert slurm.parse_exit_code(text) == expected


def test_expand_collapsed_array_range_with_throttle() -> None:
    ids = slurm.expand_job_id("123_[2-9%2]")
    assert [i[0] for i in ids] == [f"123_{t}" for t in range(2, 10)]
    assert {i[1] for i in ids} == {"123"}
    assert [i[2] for i in ids] == list(range(2, 10))


def test_expand_array_list_of_ranges() -> None:
    assert [i[2] for i in slurm.expand_job_id("123_[1,3,5-7]")] == [1, 3, 5, 6, 7]


def test_expand_plain_and_task_ids() -> None:
    assert slurm.expand_job_id("123") == [("123", None, None)]
    assert slurm.expand_job_id("123_4") == [("123_4", "123", 4)]


@pytest.mark.parametrize("bad", ["abc", "123_[", "123.batch", "123_[-4]", ""])
def test_expand_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        slurm.expand_job_id(bad)


def test_parse_sacct_rows() -> None:
    recs = {r.job_id: r for r in slurm.parse_sacct(SACCT_TEXT)}
    # step rows dropped; the collapsed pending row becomes four tasks
    assert sorted(recs) == sorted(["2_0", "2_1", "2_6", "2_7", "2_8", "2_9", "15", "16", "17"])
    assert (recs["2_0"].state, recs["2_0"].exit_code, recs["2_0"].signal) == ("FAILED", 3, 0)
    assert (recs["2_0"].array_job_id, recs["2_0"].array_task_id) == ("2", 0)
    assert (recs["15"].state, recs["15"].exit_code, recs["15"].signal) == ("FAILED", 0, 11)
    assert recs["15"].name == "seg|fault"  # the name is last, so a separator inside it survives
    assert recs["16"].state == "CANCELLED"
    pending = recs["2_8"]
    assert (pending.state, pending.start, pending.node, pending.exit_code) == ("PENDING", None, None, None)
    assert recs["17"].exit_code is None and recs["17"].end is None  # no exit code while running
    assert recs["2_1"].finished and not recs["17"].finished
    assert {r.source for r in recs.values()} == {"sacct"}
    assert recs["17"].submit == "2026-11-28T21:09:50"


def test_parse_squeue_rows() -> None:
    recs = {r.job_id: r for r in slurm.parse_squeue(SQUEUE_TEXT)}
    assert (recs["2_9"].state, recs["2_9"].exit_code, recs["2_9"].reason) == ("FAILED", 3, "NonZeroExitCode")
    assert (recs["2_8"].reason, recs["2_8"].node, recs["2_8"].start) == ("JobArrayTaskLimit", None, None)
    assert recs["2_7"].reason is None and recs["2_7"].exit_code is None
    assert recs["16"].signal == 15
    assert {r.source for r in recs.values()} == {"squeue"}


def test_merge_prefers_squeue() -> None:
    merged = slurm._merge(slurm.parse_sacct(SACCT_TEXT), slurm.parse_squeue(SQUEUE_TEXT))
    # sacct lags: it still shows 2_7 pending in the collapsed row, slurmctld already runs it
    assert merged["2_7"].state == "RUNNING" and merged["2_7"].source == "squeue"
    assert merged["2_0"].source == "sacct"


def test_merge_drops_stale_plain_row_of_an_array() -> None:
    stale = "2|PENDING|0:0|2026-11-28T21:08:16|Unknown|Unknown|None assigned|0|30|00:00:00||2000M|1|wrap\n"
    merged = slurm._merge(slurm.parse_sacct(stale), slurm.parse_squeue(SQUEUE_TEXT))
    assert "2" not in merged and "2_7" in merged
    # a plain job nobody lists as an array stays
    assert "2" in slurm._merge(slurm.parse_sacct(stale), [])


def test_unparseable_line_is_an_error_not_a_silent_skip() -> None:
    with pytest.raises(OrcaHpcError, match="cannot parse"):
        slurm.parse_sacct("123|COMPLETED\n")


@pytest.mark.parametrize("bad", [["12; rm -rf /"], ["12.batch"], ["-1"], ["12\n"], "123"])
def test_query_rejects_non_ids(bad: list[str]) -> None:
    with pytest.raises((ValueError, TypeError)):
        slurm.query_jobs(bad)
    with pytest.raises((ValueError, TypeError)):
        slurm.scancel(bad)


def test_query_dedupes_array_ids_and_filters_to_requested(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_run(argv: list[str], *, allow_invalid_id: bool = False) -> str:
        seen.append(argv)
        return SQUEUE_TEXT if argv[0] == "squeue" else SACCT_TEXT

    monkeypatch.setattr(slurm, "_run", fake_run)
    recs = slurm.query_jobs(["2_7", "2_8", "2_7", "16"])
    # each array asked once; sacct only about what squeue does not show queued or running (16 ended)
    assert [a[a.index("-j") + 1] for a in seen] == ["2,16", "16"]
    assert "-X" not in seen[1]  # with its step rows, for the usage
    assert sorted(recs) == ["16", "2_7", "2_8"]  # 2_0 etc. were not asked for
    assert recs["16"].source == "squeue"
    assert slurm.query_jobs([]) == {} and len(seen) == 2  # nothing asked, nothing run


def test_find_by_names_rejects_comma() -> None:
    with pytest.raises(ValueError):
        slurm.find_by_names(["a,b"])


def test_calls_counter() -> None:
    calls = slurm.SlurmCalls()
    calls.record("sacct")
    calls.record("sacct")
    calls.record("squeue")
    assert (calls["sacct"], calls["squeue"], calls["sbatch"], calls.total) == (2, 1, 0, 3)
    calls.reset()
    assert calls.total == 0


# ---------------------------------------------------------------- the real cluster


def poll(fn: Callable[[], T], ok: Callable[[T], bool], timeout: float = 60.0, what: str = "") -> T:
    """Call fn until ok(result); sacct lags squeue by up to ~5 s, so never sleep a fixed time."""
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if ok(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}: last {result!r}")
        time.sleep(0.2)


def _script(tmp_path: Path, name: str, body: str, *extra: str) -> str:
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --chdir={tmp_path}",
        f"#SBATCH --output={tmp_path}/%A_%a.out",
        "#SBATCH --time=5",
        "#SBATCH --mem=50M",
        *(f"#SBATCH {e}" for e in extra),
        body,
    ]
    return "\n".join(lines) + "\n"


def _sbatch(tmp_path: Path, text: str) -> str:
    script = tmp_path / f"script-{uuid.uuid4().hex}.sh"
    script.write_text(text)
    return slurm.sbatch(script)


def _bad_conf(tmp_path: Path, **overrides: str) -> Path:
    """A copy of the cluster's slurm.conf pointing at ports nobody listens on: real SLURM errors."""
    text = Path("/etc/slurm/slurm.conf").read_text()
    for key, value in overrides.items():
        text = re.sub(rf"^{key}=.*$", f"{key}={value}", text, flags=re.M)
    path = tmp_path / "unreachable.conf"
    path.write_text(text)
    return path


@pytest.mark.slurm
def test_array_through_executor_then_query_and_find(tmp_path: Path) -> None:
    name = f"ohpc-test-{uuid.uuid4().hex}"
    text = _script(tmp_path, name, 'if [ "$SLURM_ARRAY_TASK_ID" = 1 ]; then exit 3; fi', "--array=0-2")
    job_id = _sbatch(tmp_path, text)
    assert job_id.isdigit()

    ids = [f"{job_id}_{t}" for t in range(3)]
    recs = poll(
        lambda: slurm.query_jobs(ids),
        lambda r: len(r) == 3 and all(x.finished for x in r.values()),
        what="3 array tasks finished",
    )
    assert [recs[i].state for i in ids] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert [recs[i].exit_code for i in ids] == [0, 3, 0]
    assert {r.name for r in recs.values()} == {name}
    # asking for the array job returns its tasks
    assert sorted(slurm.query_jobs([job_id])) == ids

    # sacct itself (what remains after squeue forgets the job) agrees once it catches up
    acct = poll(
        lambda: {r.job_id: r for r in slurm._sacct(["-j", job_id])},
        lambda r: len(r) == 3 and all(x.finished for x in r.values()),
        what="sacct rows",
    )
    assert [(acct[i].state, acct[i].exit_code) for i in ids] == [
        ("COMPLETED", 0),
        ("FAILED", 3),
        ("COMPLETED", 0),
    ]

    missing = f"ohpc-none-{uuid.uuid4().hex}"
    found = slurm.find_by_names([name, missing])
    assert sorted(r.job_id for r in found[name]) == ids
    assert found[missing] == []
    by_sacct = poll(
        lambda: slurm._sacct([f"--name={name}", "-S", "now-30days"]),
        lambda r: len(r) == 3,
        what="sacct --name",
    )
    assert {r.array_job_id for r in by_sacct} == {job_id}


def _sbatch_held(n: int, name: str, tmp_path: Path) -> list[str]:
    ids = []
    for _ in range(n):
        out = subprocess.run(
            [
                "sbatch",
                "--parsable",
                "--hold",
                "-J",
                name,
                "-o",
                "/dev/null",
                "-D",
                str(tmp_path),
                "--wrap",
                "true",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        ids.append(out.stdout.strip().split(";")[0])
    return ids


@pytest.mark.slurm
def test_batching_costs_one_call_per_chunk_and_scancel(tmp_path: Path) -> None:
    name = f"ohpc-batch-{uuid.uuid4().hex}"
    ids = _sbatch_held(250, name, tmp_path)
    try:
        slurm.CALLS.reset()
        recs = slurm.query_jobs(ids)
        assert (slurm.CALLS["squeue"], slurm.CALLS["sacct"]) == (1, 0)  # all queued: no sacct needed
        assert sorted(recs) == sorted(ids)
        assert {r.state for r in recs.values()} == {"PENDING"}
        assert {r.reason for r in recs.values()} == {"JobHeldUser"}

        slurm.CALLS.reset()
        assert sorted(slurm.query_jobs(ids, chunk=100)) == sorted(ids)
        assert (slurm.CALLS["squeue"], slurm.CALLS["sacct"]) == (3, 0)
    finally:
        slurm.CALLS.reset()
        slurm.scancel(ids)
        assert slurm.CALLS["scancel"] == 1
    recs = poll(
        lambda: slurm.query_jobs(ids),
        lambda r: len(r) == 250 and all(x.state == "CANCELLED" for x in r.values()),
        what="250 jobs cancelled",
    )
    assert all(r.finished for r in recs.values())
    slurm.scancel(ids[:3])  # cancelling finished jobs again is not an error


@pytest.mark.slurm
def test_scancel_running_job(tmp_path: Path) -> None:
    job_id = _sbatch(tmp_path, _script(tmp_path, f"ohpc-sleep-{uuid.uuid4().hex}", "sleep 300"))
    poll(
        lambda: slurm.query_jobs([job_id]),
        lambda r: job_id in r and r[job_id].state == "RUNNING",
        what="RUNNING",
    )
    slurm.scancel([job_id])
    poll(
        lambda: slurm._sacct(["-j", job_id]),
        lambda r: len(r) == 1 and r[0].state == "CANCELLED",
        what="CANCELLED in sacct",
    )
    assert slurm.query_jobs([job_id])[job_id].state == "CANCELLED"


def test_throttle_between_submissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A lower bound only: a slow machine makes the gap longer, never shorter.
    site = dataclasses.replace(load_site("local-slurm"), submit_throttle_s=0.5)
    layout = ScriptLayout(tmp_path, tmp_path / "arrays", tmp_path / "logs", "/usr/bin/python3")
    scheduler = slurm.SlurmScheduler(site, layout)
    seen: list[float] = []
    monkeypatch.setattr(slurm, "sbatch", lambda script: seen.append(time.monotonic()) or str(len(seen)))
    for token in ("a", "b"):
        request = ArrayRequest(token, (tmp_path / token,), 1, 100, 5)
        assert scheduler.submit(request) == [f"{len(seen)}_0"]
        assert (tmp_path / "arrays" / f"{token}.txt").read_text() == f"{tmp_path / token}\n"
    assert seen[1] - seen[0] >= 0.5


@pytest.mark.slurm
def test_sbatch_rejection_is_orca_error_with_sbatch_message(tmp_path: Path) -> None:
    with pytest.raises(OrcaHpcError, match=r"sbatch refused the job: .*batch script") as info:
        _sbatch(tmp_path, "echo no shebang\n")
    assert not isinstance(info.value, SchedulerUnavailable)
    assert "\n" not in str(info.value)


@pytest.mark.slurm
def test_database_down_raises_scheduler_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_CONF", str(_bad_conf(tmp_path, AccountingStoragePort="1")))
    with pytest.raises(SchedulerUnavailable, match="Problem talking to the database") as info:
        slurm.query_jobs(["1"])
    assert "\n" not in str(info.value)
    with pytest.raises(SchedulerUnavailable):
        slurm.find_by_names(["ohpc-x"])


@pytest.mark.slurm
def test_controller_down_raises_scheduler_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MessageTimeout=2 keeps the clients' wait short; the error text is what a dead slurmctld gives
    conf = _bad_conf(tmp_path, SlurmctldPort="2", MessageTimeout="2")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    pattern = "Unable to contact slurm controller"
    with pytest.raises(SchedulerUnavailable, match=pattern):
        slurm.query_jobs(["1"])
    with pytest.raises(SchedulerUnavailable, match=pattern):
        slurm.scancel(["1"])
    with pytest.raises(SchedulerUnavailable, match=pattern):
        _sbatch(tmp_path, _script(tmp_path, "ohpc-never", "true"))


def test_sbatch_never_sees_the_mail_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sbatch sends its environment to slurmctld, which keeps it on disk with the job (its state
    folder's ``job.N/environment``): the controller's secrets are taken out before sbatch runs, not
    only unset by the job script once the job starts."""
    monkeypatch.setenv("MAIL_PW_FOR_TEST", "hunter2-in-env")
    layout = ScriptLayout(
        tmp_path, tmp_path / "arrays", tmp_path / "logs", "/usr/bin/python3", ("MAIL_PW_FOR_TEST",)
    )
    scheduler = slurm.SlurmScheduler(load_site("local-slurm"), layout)
    seen: list[dict[str, str]] = []

    def fake_run(argv, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs["env"])
        out = "123\n" if "--parsable" in argv else ""
        return subprocess.CompletedProcess(argv, 0, out, "")

    monkeypatch.setattr(slurm.subprocess, "run", fake_run)
    assert scheduler.submit(ArrayRequest("tok", (tmp_path / "a",), 1, 100, 5)) == ["123_0"]
    assert scheduler.test_only(ArrayRequest("tok", (tmp_path / "a",), 1, 100, 5)) is None
    assert len(seen) == 2
    assert all("hunter2-in-env" not in env.values() for env in seen)


@pytest.mark.parametrize(
    ("stderr", "unconfirmed"),
    [
        ("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation", True),
        ("sbatch: error: Batch job submission failed: Zero Bytes were transmitted or received", True),
        (
            "sbatch: error: Batch job submission failed: "
            "Unable to contact slurm controller (connect failure)",
            False,
        ),
    ],
)
def test_sbatch_without_an_answer_is_unconfirmed_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stderr: str, unconfirmed: bool
) -> None:
    """A request that reached slurmctld but got no answer may have been queued (the caller keeps its
    token and reconcile adopts it); one that never connected was not."""
    from orca_hpc.errors import SubmissionUnconfirmed

    monkeypatch.setattr(
        slurm.subprocess, "run", lambda argv, **kw: subprocess.CompletedProcess(argv, 1, "", stderr)
    )
    with pytest.raises(SchedulerUnavailable) as info:
        slurm.sbatch(tmp_path / "job.sh")
    assert isinstance(info.value, SubmissionUnconfirmed) is unconfirmed
    assert ("the next reconcile adopts" in str(info.value)) is unconfirmed  # says what happens now
