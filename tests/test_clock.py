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


# Zones whose clocks change: by an hour at 02:00 or 01:00 local, by 30 minutes (Lord Howe), and at a
# quarter hour (Chatham); every second of the hours around each change of 2026, a few minutes apart.
_CHANGES = {
    "Europe/Berlin": ("2026-03-29", "2026-10-25"),
    "America/New_York": ("2026-03-08", "2026-11-01"),
    "Australia/Lord_Howe": ("2026-04-05", "2026-10-04"),
    "Pacific/Chatham": ("2026-04-05", "2026-09-27"),
}


@pytest.mark.parametrize("zone", sorted(_CHANGES))
def test_local_times_around_clock_changes_match_datetime(monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    """SLURM's zone-less times take a quick path (an hour's offset worked out once, used only where it
    holds for the whole hour); around a clock change, missing and repeated hours included, it must
    give exactly what datetime gives."""
    from orca_hpc.clock import _utc_iso_datetime

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        for day in _CHANGES[zone]:
            for hour in range(5):
                for minute in range(0, 60, 7):
                    for second in (0, 29, 59):
                        text = f"{day}T{hour:02d}:{minute:02d}:{second:02d}"
                        assert utc_iso(text) == _utc_iso_datetime(text), (zone, text)
                        assert utc_iso(text) == _utc_iso_datetime(text), (zone, text)  # cached, again
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_zone_change_in_the_process_is_not_answered_from_the_old_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Both zones are called "CST" by the C library: eight hours apart.
    answers = []
    try:
        for zone in ("Asia/Shanghai", "America/Regina"):
            monkeypatch.setenv("TZ", zone)
            time.tzset()
            answers.append(utc_iso("2026-11-29T18:55:36"))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert answers == ["2026-11-29T10:55:36Z", "2026-11-30T00:55:36Z"]


def test_now_iso_follows_the_clock_through_its_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """The formatted second is kept until the clock moves on: each new second (and a clock set back)
    gives its own text, a repeated one the same text."""
    seconds = [1_800_000_000, 1_800_000_000, 1_800_000_001, 1_799_999_000, 1_800_000_001, 1_800_000_061]
    clock = iter(seconds)
    real_gmtime = time.gmtime
    monkeypatch.setattr(time, "gmtime", lambda *at: real_gmtime(*at) if at else real_gmtime(next(clock)))
    got = [now_iso() for _ in seconds]
    assert got == [time.strftime("%Y-%m-%dT%H:%M:%SZ", real_gmtime(s)) for s in seconds]
    assert got[0] == got[1] != got[2] != got[3] and got[4] != got[5]  # same second, another minute
