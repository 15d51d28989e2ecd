"""The public, versioned form of what orca-hpc prints as JSON (``--json``), documented in
``docs/json.md``.

The ledger stores jobs with short keys (``st``, ``rc``, ``att``, ...: ``ledger/records.py``) to stay
small at 100,000 jobs; those are the ledger's business and may change with its schema. What a person
or a script reads goes through here instead: long names, every key always present (``null`` when
unknown, so a table of records has the same columns), paths absolute. A change that renames or
removes a key, or changes its meaning, raises ``SCHEMA``; new keys do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orca_hpc.ledger.records import Attempt, Job

#: The version of every ``--json`` document; ``docs/json.md`` says what each holds.
SCHEMA = 1


def document(kind: str, **body: Any) -> dict[str, Any]:
    """A top-level JSON document: ``{"schema": 1, "kind": KIND, ...body}``."""
    return {"schema": SCHEMA, "kind": kind, **body}


def _folder(root: Path, relative: str) -> str | None:
    return str(root / relative) if relative else None


def attempt_record(att: Attempt, root: Path) -> dict[str, Any]:
    """One attempt under public names (``root``: the campaign folder, for absolute paths)."""
    return {
        "number": att.n,
        "slurm_job_id": att.slurm_id,
        "slurm_state": att.slurm_state,
        "submitted": att.submitted,
        "started": att.started,
        "ended": att.ended,
        "exit_code": att.exit_code,
        "outcome": None if att.outcome is None else str(att.outcome),
        "reason": att.reason,
        "energy": att.energy,
        "message": att.message,
        "corrections": [
            {"handler": c.get("handler"), "change": c.get("change"), "why": c.get("why")}
            for c in att.corrections
        ],
        "counts_against_limit": att.counts_against_limit,
        "folder": _folder(root, att.dir),
        "submission_token": att.token or None,
    }


def job_record(job: Job, root: Path) -> dict[str, Any]:
    """One job and all its attempts under public names (what ``show --json`` prints per job)."""
    return {
        "id": job.id,
        "name": job.name,
        "state": job.state.value,
        "input": job.input_path,
        "input_sha256": job.input_sha,
        "site": job.site,
        "retries": job.retry_count,
        "max_retries": job.max_retries,
        "node_failures": job.nodefail_count,
        "created": job.created,
        "updated": job.updated,
        "folder": _folder(root, job.dir),
        "attempts": [attempt_record(att, root) for att in job.attempts],
        "extra": dict(job.extra),
    }
