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


def epoch(text: str | None) -> float | None:
    """Seconds since the epoch for a time in the one format; None if absent or not in it."""
    if not text:
        return None
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
