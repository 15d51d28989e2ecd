"""The public, versioned form of what orca-hpc prints as JSON (``--json``), documented in
``docs/json.md``.

The ledger stores jobs with short keys (``st``, ``rc``, ``att``, ...: ``ledger/records.py``) to stay
small at 100,000 jobs; those are the ledger's business and may change with its schema. What a person
or a script reads goes through here instead: long names, every key always present (``null`` when
unknown, so a table of records has the same columns), paths absolute. A change that renames or
removes a key, or changes its meaning, raises ``SCHEMA``; new keys do not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orca_hpc.ledger.records import Attempt, Job

#: The version of every ``--json`` document; ``docs/json.md`` says what each holds.
SCHEMA = 1


def document(kind: str, **body: Any) -> dict[str, Any]:
    """A top-level JSON document: ``{"schema": 1, "kind": KIND, ...body}``."""
    return {"schema": SCHEMA, "kind": kind, **body}


def as_text(value: Any) -> str:
    """``json.dumps(value, indent=1)``, character for character, at a fraction of its cost.

    With an indent the json module encodes in Python, a call per value (17 ms for `status --json` of
    1,000 jobs); here each object or list of plain values (a job's row) is one call of the C encoder,
    whose separators carry the line breaks and the indent."""
    return _indented(value, 0, {})


def _plain(values: Any) -> bool:
    return all(v is None or isinstance(v, (str, int, float)) for v in values)


def _indented(value: Any, level: int, encoders: dict[int, json.JSONEncoder]) -> str:
    pad = "\n" + " " * (level + 1)
    if isinstance(value, (dict, list, tuple)) and value:
        opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
        if _plain(value.values() if isinstance(value, dict) else value):
            encoder = encoders.get(level)
            if encoder is None:
                encoder = encoders[level] = json.JSONEncoder(separators=("," + pad, ": "))
            return opening + pad + encoder.encode(value)[1:-1] + pad[:-1] + closing
        if isinstance(value, dict):
            items = [f"{json.dumps(_key(k))}: {_indented(v, level + 1, encoders)}" for k, v in value.items()]
        else:
            items = [_indented(v, level + 1, encoders) for v in value]
        return opening + pad + ("," + pad).join(items) + pad[:-1] + closing
    return json.dumps(value)


def _key(key: Any) -> Any:
    """A key as json writes it: str, int and float keys as strings, True/False/None as JSON words."""
    if isinstance(key, str):
        return key
    return json.dumps(key)


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
        "usage": usage_record(att.usage),
    }


def usage_record(use: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a finished attempt used (the ledger's ``use``) under public names; null if not known."""
    if not use:
        return None
    return {
        "elapsed_s": use.get("el"),
        "time_limit_s": use.get("tl"),
        "cpu_time_s": use.get("cpu"),
        "max_rss_mb": use.get("rss"),
        "requested_mem_mb": use.get("mem"),
        "cpus": use.get("np"),
        "node": use.get("node"),
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
        "chain": dict(job.chain) if job.chain is not None else None,
    }


def result_columns() -> list[str]:
    """The keys of a `results` row with chemistry, in order: the CSV header, also when no job is chosen."""
    from orca_hpc.attempt.summary import CHEMISTRY_COLUMNS

    base = ["id", "name", "state", "attempts", "energy", "outcome", "results", "energy_Eh"]
    return [*base, *(column for column, _key in CHEMISTRY_COLUMNS), "final_xyz"]


def result_row(root: Path, job: Job, *, chemistry: bool) -> dict[str, Any]:
    """One `results` row: the job and its latest attempt; with ``chemistry`` also what the attempt's
    result.json holds (ZPE, H, G with T, imaginary modes, lowest frequency, <S**2>, ORCA version,
    final geometry), read now so the ledger stays small."""
    from orca_hpc.attempt.folder import read_result
    from orca_hpc.attempt.summary import chemistry_columns

    att = job.attempt
    folder = root / att.dir if att and att.dir else None
    row: dict[str, Any] = {
        "id": job.id,
        "name": job.name,
        "state": job.state.value,
        "attempts": len(job.attempts),
        "energy": att.energy if att else None,
        "outcome": att.outcome if att else None,
        "results": str(folder) if folder is not None else "",
        "energy_Eh": att.energy if att else None,  # `energy` is kept for existing spreadsheets
    }
    if chemistry:
        found = read_result(folder) if folder is not None else None
        row.update(chemistry_columns(folder or root, found))
    return row


def submit_document(report: Any) -> dict[str, Any]:
    """What `submit --json` prints, from a ``controller.submit.SubmitReport``."""
    sids = {i: s for i, _n, s in report.submitted}
    return document(
        "submit",
        # Every job recorded, those waiting for a slot or held by a pause too (they have no id yet).
        jobs=[{"id": i, "name": n, "state": st, "slurm_job_id": sids.get(i)} for i, n, st in report.recorded],
        submitted=[{"id": i, "name": n, "slurm_job_id": s} for i, n, s in report.submitted],
        skipped=[{"file": f, "existing": e} for f, e in report.skipped],
        sbatch_calls=report.sbatch_calls,
        waiting=report.waiting,
        held=report.held,
        paused=report.paused,
    )


def dry_run_document(report: Any) -> dict[str, Any]:
    """What `submit --dry-run --json` prints: the job scripts that would be submitted, nothing else done."""
    return document(
        "submit_dry_run",
        scripts=list(report.scripts),
        skipped=[{"file": f, "existing": e} for f, e in report.skipped],
    )


def reconcile_document(report: Any) -> dict[str, Any]:
    """What `reconcile --json` prints, from a ``controller.reconcile.ReconcileReport``."""
    return document(
        "reconcile",
        changes=[{"id": i, "from": a, "to": b} for i, a, b in report.changes],
        submitted=[{"id": i, "name": n, "slurm_job_id": s} for i, n, s in report.submitted],
        permanent_failed=report.permanent_failed,
        adopted=report.adopted,
        scheduler_calls=report.scheduler_calls,
        notices=report.notices,
    )
