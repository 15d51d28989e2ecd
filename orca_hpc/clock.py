"""Times as orca-hpc writes them: UTC, to the second, ``2026-11-29T17:55:36Z`` (one format everywhere).

SLURM prints local times without a zone and Python's ``isoformat`` writes ``+00:00``; both are turned
into this one form before they are stored, so every time in the ledger, the result files and the
outbox compares and sorts as text.
"""

from __future__ import annotations

import time

# calendar and datetime are imported where they are used: the runner needs only now_iso, once per task.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from datetime import datetime

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now_iso() -> str:
    """The current UTC time, to the second."""
    return time.strftime(FORMAT, time.gmtime())


_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # Feb 29 is left to strptime


def _fields(text: str) -> tuple[int, int, int, int, int, int] | None:
    """Year to second of a time in the one format whose values are plainly in range, or None."""
    if len(text) != 20 or not text.isascii() or text[4::3] != "--T::Z":
        return None
    if not (text[0:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16] + text[17:19]).isdigit():
        return None
    year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
    hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    if not (year and 1 <= month <= 12 and 1 <= day <= _DAYS[month]):
        return None
    return (year, month, day, hour, minute, second) if hour < 24 and minute < 60 and second < 60 else None


def epoch(text: str | None) -> float | None:
    """Seconds since the epoch for a time in the one format; None if absent or not in it."""
    if not text:
        return None
    import calendar

    # Sliced, not strptime (~40 us, several times per finished job in a reconcile): a plain time in
    # range is read here; anything else (a leap second or day, another layout) goes to strptime.
    fields = _fields(text)
    if fields is not None:
        return float(calendar.timegm(fields))
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
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.astimezone()  # naive: local time
    return moment.astimezone(timezone.utc).strftime(FORMAT)


def as_datetime(text: str) -> datetime:
    """A time in the one format (or any ISO-8601 form) as an aware datetime."""
    from datetime import datetime

    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.astimezone()
