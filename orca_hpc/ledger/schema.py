"""The ledger's schema versions and how older files are brought forward, in memory, on reading.

``ledger.json`` carries ``schema_version`` (missing means 0) and is migrated whole by ``MIGRATIONS``;
each archive line carries its own version (``"v"``, default 1) and is migrated by ``LINE_MIGRATIONS``.
Used by the store and the archive alike, so neither hands the other a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SCHEMA_VERSION = 1

_V0_JOB_KEYS = {
    "name": "name",
    "input": "inp",
    "sha256": "sha",
    "site": "site",
    "state": "st",
    "retries": "rc",
    "max_retries": "max",
    "created": "ct",
    "updated": "ut",
    "dir": "dir",
}
_V0_ATTEMPT_KEYS = {"n": "n", "token": "tok", "slurm_id": "sid", "outcome": "out", "exit_code": "exit"}


def _migrate_job_v0(d: dict[str, Any]) -> dict[str, Any]:
    """Version 0 (the pre-release prototype) spelled keys out in full."""
    out: dict[str, Any] = {new: d[old] for old, new in _V0_JOB_KEYS.items() if d.get(old) is not None}
    if "id" in d:
        out = {"id": d["id"], **out}
    attempts = [
        {new: a[old] for old, new in _V0_ATTEMPT_KEYS.items() if a.get(old) is not None}
        for a in d.get("attempts", ())
    ]
    if attempts:
        out["att"] = attempts
    return out


def _migrate_doc_v0(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 0 kept jobs in a list and the id counter at the top level."""
    jobs = {}
    for j in doc.get("jobs", []):
        d = _migrate_job_v0(j)
        jobs[d.pop("id")] = d
    meta = dict(doc.get("meta", {}))
    meta["next_id"] = doc.get("counter", len(jobs) + 1)
    return {"schema_version": 1, "generation": 0, "meta": meta, "outbox": doc.get("outbox", []), "jobs": jobs}


# version N -> function taking a version-N document (or job line) to version N+1
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _migrate_doc_v0}
LINE_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _migrate_job_v0}


def migrate_doc(doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Bring a parsed ``ledger.json`` to ``SCHEMA_VERSION``; returns (doc, migrated?)."""
    version = doc.get("schema_version", 0)
    migrated = False
    while version < SCHEMA_VERSION:
        doc = MIGRATIONS[version](doc)
        version += 1
        doc["schema_version"] = version
        migrated = True
    return doc, migrated


def migrate_line(d: dict[str, Any]) -> dict[str, Any]:
    """Bring one archive line to the current job format (drops its ``v``)."""
    version = d.pop("v", 1)
    while version < SCHEMA_VERSION:
        d = LINE_MIGRATIONS[version](d)
        version += 1
    return d
