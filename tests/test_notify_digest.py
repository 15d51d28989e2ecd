"""Failure digest and campaign summary: content, phone-readable lines, CSV attachment."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from orca_hpc.notify.config import MailConfig
from orca_hpc.notify.digest import DETAILED_JOBS, TAIL_LINES, build_campaign_summary, build_failure_digest
from orca_hpc.notify.smtp import build_message

CFG = MailConfig.from_dict({"host": "h", "from": "a@b.org", "to": "c@d.org"}, "t.toml")


def job(i: int, **kw: Any) -> dict[str, Any]:
    return {
        "id": f"j{i:06d}",
        "name": f"job {i}",
        "attempts": 2,
        "outcome": "out_of_memory",
        "message": "ORCA ran out of memory; %maxcore was raised twice and the job still did not fit " * 2,
        "tail": "\n".join(f"out {k}" for k in range(50)),
        "results": f"/c/jobs/j{i:06d}/attempt-2",
        **kw,
    }


def test_digest_body_is_short_lines_with_every_field() -> None:
    item = build_failure_digest([job(1), job(2, outcome="input_error", attempts=1)], "camp")
    assert item["kind"] == "failure_digest" and item["status"] == "pending"
    assert item["job_ids"] == ["j000001", "j000002"]
    lines = item["body"].splitlines()
    # Paths and output lines are not wrapped; everything else fits a phone screen.
    prose = [ln for ln in lines if not ln.lstrip().startswith(("|", "results:"))]
    assert max(len(ln) for ln in prose) <= 60
    assert "1. job 1 (j000001)" in lines and "2. job 2 (j000002)" in lines
    assert "   attempts: 1" in lines and "   outcome: input_error" in lines
    assert "   results: /c/jobs/j000002/attempt-2" in lines
    tail = [ln for ln in lines if ln.startswith("   | ")]
    assert tail[:TAIL_LINES] == [f"   | out {k}" for k in range(50 - TAIL_LINES, 50)]
    assert "     1  out_of_memory" in lines and "     1  input_error" in lines
    message_lines = "\n".join(lines)
    assert "%maxcore was raised" in message_lines and item["attachments"] == []


def test_digest_cleans_control_characters_and_long_lines() -> None:
    item = build_failure_digest([job(1, tail="ok\n\x1b[31mred\x1b[0m\n" + "x" * 500)], "c")
    assert "\x1b" not in item["body"]
    assert all(len(ln) <= 110 for ln in item["body"].splitlines())


def test_many_jobs_one_message_with_attachment() -> None:
    jobs = [job(i) for i in range(DETAILED_JOBS + 5)]
    item = build_failure_digest(jobs, "c")
    assert f"j{DETAILED_JOBS + 4:06d}" in item["body"]
    [att] = item["attachments"]
    assert att["name"] == "failed-jobs.txt" and att["text"].count("results: ") == DETAILED_JOBS + 5
    msg = build_message(item, CFG)
    assert [a.get_filename() for a in msg.iter_attachments()] == ["failed-jobs.txt"]


def test_digest_needs_jobs() -> None:
    with pytest.raises(ValueError):
        build_failure_digest([], "c")


def test_campaign_summary_with_energies_csv() -> None:
    rows = [
        {"id": "j1", "name": "water, opt", "state": "COMPLETED", "energy": -76.02665366188, "attempts": 1},
        {"id": "j2", "name": "h2", "state": "PERMANENT_FAILED", "energy": None, "attempts": 3},
        {"id": "j3", "name": "flag", "state": "COMPLETED", "energy": True},
    ]
    counts = {"COMPLETED": 2, "PERMANENT_FAILED": 1}
    item = build_campaign_summary(rows, "my camp", counts)
    assert item["subject"] == "[orca-hpc] my camp: 2/3 completed, 1 failed"
    assert "1 final energies" in item["body"]
    [att] = item["attachments"]
    assert att["name"] == "my_camp-energies.csv" and att["mime"] == "text/csv"
    parsed = list(csv.DictReader(io.StringIO(att["text"])))
    assert parsed[0]["name"] == "water, opt"
    assert float(parsed[0]["energy_hartree"]) == -76.02665366188  # full precision round-trips
    assert parsed[1]["energy_hartree"] == "" and parsed[2]["energy_hartree"] == ""
    msg = build_message(item, CFG)
    [part] = list(msg.iter_attachments())
    assert part.get_content_type() == "text/csv" and "water, opt" in part.get_content()


def test_digest_of_a_campaign_in_a_folder_whose_name_is_not_utf8_can_be_sent() -> None:
    """os.fsdecode gives such a name with surrogate escapes; the digest was refused as a malformed
    message on every delivery (never sent). A line break in the path forged a line."""
    item = build_failure_digest([job(1, results="/scratch/caf\udce9\nBcc: x/jobs/j000001/attempt-2")], "c")
    body = build_message(item, CFG).get_body()
    assert body is not None
    text = body.get_content()
    assert "   results: /scratch/caf??Bcc: x/jobs/j000001/attempt-2" in text.splitlines()
