"""Times as orca-hpc writes them: UTC, to the second, ``2026-11-29T17:55:36Z`` (one format everywhere).

SLURM prints local times without a zone and Python's ``isoformat`` writes ``+00:00``; both are turned
into this one form before they are stored, so every time in the ledger, the result files and the
outbox compares and sorts as text.
"""

from __future__ import annotations

import re
import time

# calendar and datetime are imported where they are used: the runner needs only now_iso, once per task.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from datetime import datetime

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


# The time last formatted and its text: a submit stamps 10,000 jobs three times within a few seconds,
# and strftime cost twice what gmtime does. (gmtime's own clock, not time.time(): near a second's turn
# the two may differ by a few milliseconds.)
_LAST: tuple[time.struct_time | None, str] = (None, "")


def now_iso() -> str:
    """The current UTC time, to the second."""
    global _LAST
    now, last = time.gmtime(), _LAST  # one read of the cache: another thread may replace it
    if now != last[0]:
        last = _LAST = (now, time.strftime(FORMAT, now))
    return last[1]


_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # Feb 29 is left to strptime


# The one format, ASCII digits only (a regular expression: slicing and six int() calls cost twice as much).
_ONE_FORMAT = re.compile(r"(\d\d\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z", re.ASCII)


def _fields(text: str) -> tuple[int, ...] | None:
    """Year to second of a time in the one format whose values are plainly in range, or None."""
    match = _ONE_FORMAT.fullmatch(text)
    if match is None:
        return None
    f = tuple(map(int, match.groups()))
    plain = f[0] and 0 < f[1] <= 12 and 0 < f[2] <= _DAYS[f[1]] and f[3] < 24 and f[4] < 60 and f[5] < 60
    return f if plain else None


# Minutes seen ("YYYY-MM-DDTHH:MM" of a plain time) -> their first second since the epoch: a reconcile
# after a mass completion reads thousands of times that share a few minutes, so the rest of each is
# its seconds field alone. Cleared when large (a long `watch`).
_MINUTES: dict[str, int] = {}
_CACHE_LIMIT = 10_000


def _seconds_field(text: str, at: int) -> int | None:
    """The seconds field of a time at ``text[at:at + 2]`` when it is two ASCII digits below 60."""
    ss = text[at : at + 2]
    return int(ss) if ss.isascii() and ss.isdigit() and ss < "60" else None


def _plain_seconds(text: str) -> int | None:
    """Seconds since the epoch of a time in the one format whose values are plainly in range, or None."""
    if len(text) == 20 and text[16] == ":" and text[19] == "Z":
        base = _MINUTES.get(text[:16])
        if base is not None:
            ss = _seconds_field(text, 17)
            if ss is not None:
                return base + ss
    fields = _fields(text)
    if fields is None:
        return None
    import calendar

    base = calendar.timegm((*fields[:5], 0))
    if len(_MINUTES) > _CACHE_LIMIT:
        _MINUTES.clear()
    _MINUTES[text[:16]] = base
    return base + fields[5]


def is_plain_time(text: str) -> bool:
    """True for a time in the one format whose values are plainly in range (then ``epoch`` reads it)."""
    return _plain_seconds(text) is not None


def epoch(text: str | None) -> float | None:
    """Seconds since the epoch for a time in the one format; None if absent or not in it."""
    if not text:
        return None
    # Not strptime (~40 us, several times per finished job in a reconcile): a plain time in range is
    # read here; anything else (a leap second or day, another layout) goes to strptime.
    seconds = _plain_seconds(text)
    if seconds is not None:
        return float(seconds)
    import calendar

    try:
        return float(calendar.timegm(time.strptime(text, FORMAT)))
    except ValueError:
        return None


def utc_iso(text: str | None) -> str | None:
    """Any ISO-8601 time in the one format; a time without a zone is this machine's local time
    (as SLURM prints it). None stays None; text that is no time at all is kept as it is."""
    if not text:
        return None
    if text.endswith("Z") and epoch(text) is not None:  # SLURM's zone-less times skip strptime's exception
        return text
    quick = _local_quickly(text)
    if quick is not None:
        return quick
    return _utc_iso_datetime(text)


def _utc_iso_datetime(text: str) -> str:
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.astimezone()  # naive: local time
    return moment.astimezone(timezone.utc).strftime(FORMAT)


# Local hour ("YYYY-MM-DDTHH", and the zone it was worked out in) -> the UTC offset of its every second,
# None when the offset changes within the hour (a daylight-saving change: each time goes through datetime).
_HOUR_OFFSETS: dict[tuple[str, tuple[object, ...]], int | None] = {}


# Local minutes seen ("YYYY-MM-DDTHH:MM", and the zone) -> the same minute in UTC, for hours whose
# offset is whole minutes (every zone today): then a time's seconds field carries over unchanged.
_LOCAL_MINUTES: dict[tuple[str, tuple[object, ...]], str] = {}


def _zone() -> tuple[object, ...]:
    """The local zone as the C library has it (after ``time.tzset``): names alone are not enough
    (Asia/Shanghai and America/Regina are both "CST")."""
    return (time.timezone, time.altzone, time.daylight, time.tzname)


def _local_quickly(text: str) -> str | None:
    """A zone-less local time (SLURM's ``2026-11-29T18:55:36``) in the one format without a datetime
    per call (~10 us; two per finished job): the hour's UTC offset is worked out once, through
    datetime, at the hour's first and last second, and used only when the two agree. None: not
    that form (the caller goes through datetime)."""
    if len(text) != 19:
        return None
    zone = _zone()
    minute = _LOCAL_MINUTES.get((text[:16], zone))
    if minute is not None and text[16] == ":":
        ss = _seconds_field(text, 17)
        if ss is not None:
            return f"{minute}:{text[17:19]}Z"
    seconds = _plain_seconds(text + "Z")
    if seconds is None:
        return None
    key = (text[:13], zone)
    if key not in _HOUR_OFFSETS:
        if len(_HOUR_OFFSETS) > _CACHE_LIMIT:  # a long `watch` sees an hour at a time: never grows far
            _HOUR_OFFSETS.clear()
        try:
            offsets = {
                _seconds(f"{text[:13]}:{mmss}Z") - _seconds(_utc_iso_datetime(f"{text[:13]}:{mmss}"))
                for mmss in ("00:00", "59:59")
            }
        except (ValueError, OverflowError):  # the edges of the calendar: datetime answers, or raises
            offsets = set()
        _HOUR_OFFSETS[key] = offsets.pop() if len(offsets) == 1 else None
    offset = _HOUR_OFFSETS[key]
    if offset is None:
        return None
    utc = time.strftime(FORMAT, time.gmtime(seconds - offset))
    if offset % 60 == 0:
        if len(_LOCAL_MINUTES) > _CACHE_LIMIT:
            _LOCAL_MINUTES.clear()
        _LOCAL_MINUTES[(text[:16], zone)] = utc[:16]
    return utc


def _seconds(text: str) -> int:
    import calendar

    seconds = _plain_seconds(text)
    return seconds if seconds is not None else calendar.timegm(time.strptime(text, FORMAT))


def as_datetime(text: str) -> datetime:
    """A time in the one format (or any ISO-8601 form) as an aware datetime."""
    from datetime import datetime

    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.astimezone()
