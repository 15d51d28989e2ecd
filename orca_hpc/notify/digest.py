"""The e-mails people actually read: one failure digest per run, and a campaign summary.

Bodies are plain text with short lines (read on a phone); anything long or tabular goes into a
text attachment instead.
"""

from __future__ import annotations

import csv
import io
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from orca_hpc.notify.smtp import make_notification

WIDTH = 60  # phone-friendly; paths and output lines are not wrapped, only cut
TAIL_LINES = 8  # last output lines per job in the body
TAIL_LINE_CHARS = 100
MESSAGE_CHARS = 400
DETAILED_JOBS = 20  # jobs beyond this get one line in the body; everything is in the attachment


def _clean(text: str) -> str:
    # Output tails can hold terminal control codes or binary junk; keep them out of the mail.
    return "".join(c if c.isprintable() or c in "\n\t" else "?" for c in text).replace("\t", "    ")


def _one_line(text: str) -> str:
    # A job name (from a file name) may hold line breaks: they would forge lines of the digest.
    return _clean(text).replace("\n", "?")


def _tail(text: str, n: int) -> list[str]:
    lines = [ln.rstrip() for ln in _clean(text or "").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    out = []
    for ln in lines[-n:] if n else lines:
        out.append(ln if len(ln) <= TAIL_LINE_CHARS else ln[: TAIL_LINE_CHARS - 3] + "...")
    return out


def _wrap(label: str, value: str) -> list[str]:
    return textwrap.wrap(
        f"{label}{_clean(value)}", WIDTH, subsequent_indent="     ", break_long_words=False
    ) or [label.rstrip()]


def _job_block(i: int, job: Mapping[str, Any], tail_lines: int) -> list[str]:
    lines = [f"{i}. {_one_line(str(job.get('name', '?')))} ({job.get('id', '?')})"]
    lines.append(f"   attempts: {job.get('attempts', '?')}")
    lines.append(f"   outcome: {job.get('outcome') or 'unknown'}")
    if job.get("message"):
        message = str(job["message"])
        if len(message) > MESSAGE_CHARS:
            message = message[: MESSAGE_CHARS - 3] + "..."
        lines += _wrap("   message: ", message)
    if job.get("results"):
        # A campaign folder's name need not be UTF-8 (it reaches here with surrogate escapes, which no
        # mail can carry: the digest was refused as malformed, for good) and may hold a line break.
        lines.append(f"   results: {_one_line(str(job['results']))}")
    tail = _tail(str(job.get("tail") or ""), tail_lines)
    if tail:
        lines.append(f"   last {len(tail)} output lines:")
        lines += [f"   | {ln}" for ln in tail]
    return lines


def build_failure_digest(failed_jobs: Sequence[Mapping[str, Any]], campaign: str) -> dict[str, Any]:
    """ONE notification for every job that became PERMANENT_FAILED in a run.

    Each job dict: id, name, attempts (int), outcome, message, tail (str), results (path).
    """
    n = len(failed_jobs)
    if n == 0:
        raise ValueError("build_failure_digest needs at least one failed job")
    subject = f"[orca-hpc] {campaign}: {n} job{'s' if n != 1 else ''} failed permanently"
    by_outcome = Counter(str(job.get("outcome") or "unknown") for job in failed_jobs)
    body = [
        f"Campaign {campaign}: {n} job{'s' if n != 1 else ''} failed",
        "permanently and will not be retried.",
        "",
        "By outcome:",
        *(f"  {count:>4}  {outcome}" for outcome, count in by_outcome.most_common()),
        "",
    ]
    for i, job in enumerate(failed_jobs[:DETAILED_JOBS], 1):
        body += [*_job_block(i, job, TAIL_LINES), ""]
    if n > DETAILED_JOBS:
        body.append(f"... and {n - DETAILED_JOBS} more (all details in failed-jobs.txt):")
        for i, job in enumerate(failed_jobs[DETAILED_JOBS:], DETAILED_JOBS + 1):
            body.append(f"{i}. {_one_line(str(job.get('name', '?')))[:30]} ({job.get('id', '?')})")
            body.append(f"   {job.get('outcome') or 'unknown'}, {job.get('attempts', '?')} attempts")
        body.append("")
    body += [
        "To try a job again after fixing its input file:",
        "  orca-hpc retry JOB_ID",
        "(the edit is noticed; or give --input FIXED.inp)",
    ]
    attachments = []
    if n > DETAILED_JOBS:
        full: list[str] = []
        for i, job in enumerate(failed_jobs, 1):
            full += [*_job_block(i, job, 30), ""]
        attachments.append(("failed-jobs.txt", "text/plain", "\n".join(full)))
    item = make_notification("failure_digest", subject, "\n".join(body) + "\n", attachments=attachments)
    item["campaign"] = campaign
    item["job_ids"] = [str(job.get("id")) for job in failed_jobs]
    return item


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


SUMMARY_COLUMNS = ("id", "name", "state", "outcome", "energy", "attempts", "results")


def energies_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV of the rows: columns id, name, state, outcome, energy (Eh, full precision), attempts, results."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*SUMMARY_COLUMNS[:4], "energy_hartree", *SUMMARY_COLUMNS[5:]])
    for row in rows:
        energy = row.get("energy")
        # repr() is the shortest text that reads back to the same float: no precision lost.
        energy_text = repr(float(energy)) if energy is not None and _is_number(energy) else ""
        writer.writerow(
            [
                row.get("id", ""),
                row.get("name", ""),
                row.get("state", ""),
                row.get("outcome", "") or "",
                energy_text,
                row.get("attempts", ""),
                row.get("results", "") or "",
            ]
        )
    return buf.getvalue()


def build_campaign_summary(
    rows: Sequence[Mapping[str, Any]], campaign: str, counts: Mapping[str, int]
) -> dict[str, Any]:
    """A campaign summary with the energies as a CSV attachment (`<campaign>-energies.csv`).

    `rows`: one dict per job (keys as in SUMMARY_COLUMNS, missing ones left empty);
    `counts`: jobs per state, e.g. {"COMPLETED": 10, "PERMANENT_FAILED": 1}.
    """
    total = sum(counts.values())
    with_energy = sum(1 for r in rows if _is_number(r.get("energy")))
    done = counts.get("COMPLETED", 0)
    subject = f"[orca-hpc] {campaign}: {done}/{total} completed"
    if counts.get("PERMANENT_FAILED"):
        subject += f", {counts['PERMANENT_FAILED']} failed"
    body = [f"Campaign {campaign}: {total} jobs", "", "Jobs by state:"]
    body += [f"  {count:>5}  {state}" for state, count in sorted(counts.items(), key=lambda kv: -kv[1])]
    body += ["", f"{with_energy} final energies are in the attached CSV", "(Hartree, full precision)."]
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in campaign) or "campaign"
    item = make_notification(
        "campaign_summary",
        subject,
        "\n".join(body) + "\n",
        attachments=[(f"{slug}-energies.csv", "text/csv", energies_csv(rows))],
    )
    item["campaign"] = campaign
    return item


def build_pause_alert(campaign: str, pause: Mapping[str, Any]) -> dict[str, Any]:
    """ONE notification when reconcile stops submitting after environment failures in a row.

    `pause`: the record kept in the ledger meta (controller/environment.py): reason, failures,
    message, jobs, problems (what the login-node check found), since.
    """
    reason = str(pause.get("reason") or "unknown")
    failures = pause.get("failures", "?")
    subject = f"[orca-hpc] {campaign}: paused after {failures} environment failures ({reason})"
    body = [
        f"Campaign {campaign}: {failures} attempts in a row failed",
        "because of the machine, not the chemistry",
        f"({reason}). No new attempts are submitted",
        "until this is fixed; no job was given up.",
        "",
        *_wrap("Last error: ", str(pause.get("message") or "")),
    ]
    jobs = [str(j) for j in pause.get("jobs") or []]
    if jobs:
        body += _wrap("Jobs: ", ", ".join(jobs))
    problems = [str(p) for p in pause.get("problems") or []]
    body.append("")
    if problems:
        body.append("The login-node check finds:")
        body += [f"  - {_clean(p)}" for p in problems]
        body += ["", "Reconcile resumes by itself once", "this check passes."]
    else:
        body += ["The cause is not visible from the", "login node (e.g. MPI on the compute", "nodes)."]
    body += ["", "After fixing it, resume at once with:", "  orca-hpc reconcile --resume"]
    item = make_notification("environment_pause", subject, "\n".join(body) + "\n")
    item["campaign"] = campaign
    item["job_ids"] = jobs
    return item
