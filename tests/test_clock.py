"""One time format everywhere: what SLURM, the runner and the outbox write is stored as UTC ``...Z``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from orca_hpc.clock import as_datetime, epoch, now_iso, utc_iso


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_slurm_local_time_becomes_utc(berlin: None) -> None:
    assert utc_iso("2026-11-29T18:55:36") == "2026-11-29T17:55:36Z"  # CET = UTC+1
    assert utc_iso("2026-07-01T12:00:00") == "2026-07-01T10:00:00Z"  # CEST = UTC+2


def test_offsets_and_the_one_format() -> None:
    assert utc_iso("2026-11-29T17:55:36+00:00") == "2026-11-29T17:55:36Z"
    assert utc_iso("2026-11-29T18:55:36+01:00") == "2026-11-29T17:55:36Z"
    assert utc_iso("2026-11-29T17:55:36Z") == "2026-11-29T17:55:36Z"
    assert utc_iso(None) is None and utc_iso("") is None
    assert utc_iso("Unknown") == "Unknown"  # not a time: kept, never lost


def test_now_round_trips() -> None:
    stamp = now_iso()
    assert stamp.endswith("Z") and utc_iso(stamp) == stamp
    seconds = epoch(stamp)
    assert seconds is not None and abs(seconds - time.time()) < 86400  # a real, current time
    assert as_datetime(stamp).timestamp() == seconds


def test_epoch_reads_what_strptime_reads() -> None:
    """The sliced fast path gives strptime's answer: the same seconds, or None where it refuses."""
    import calendar

    def by_strptime(text: str) -> float | None:
        try:
            return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
        except ValueError:
            return None

    assert epoch("1970-01-01T00:00:00Z") == 0.0
    for text in (
        *("2026-11-29T17:55:36Z", "2024-02-29T12:00:00Z", "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z"),
        *("2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z", "0000-01-01T00:00:00Z", "2026-12-31T23:59:60Z"),
        *("2026-01-01T00:00:00", "2026-01-01 00:00:00Z", "2026-1-01T00:00:00Z", "２０２６-01-01T00:00:00Z"),
        *("2026-01-01T00:60:00Z", "+026-01-01T00:00:00Z", "2026-00-10T00:00:00Z"),
    ):
        assert epoch(text) == by_strptime(text), text
