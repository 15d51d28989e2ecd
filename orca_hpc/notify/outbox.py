"""Delivering a campaign's outbox: copy what is owed, send without the ledger lock, merge back."""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import socket
import time
from typing import Any

from orca_hpc.config.campaign import Campaign
from orca_hpc.errors import OrcaHpcError
from orca_hpc.ledger.lock import pid_alive, process_start_ticks
from orca_hpc.ledger.states import JobState
from orca_hpc.ledger.store import Transaction
from orca_hpc.notify.config import MailConfig, campaign_mail
from orca_hpc.notify.smtp import DeliveryReport, deliver_outbox, merge_delivery, pending_items, requeue_failed

log = logging.getLogger(__name__)


# Inside reconcile (cron, every command) a mail server that is down must not hold things up: one
# short try, and the outbox keeps the message for the next run or `orca-hpc notify`.
QUICK_TIMEOUT_S = 5.0
DROPPED = "dropped"


def deliver_campaign_outbox(
    campaign: Campaign, cfg: MailConfig | None = None, *, requeue: bool = False, quick: bool = False
) -> DeliveryReport | None:
    """Send what the outbox owes. None when no mail is configured (the outbox keeps it for later).

    Two short transactions around the delivery: SMTP with backoff must not hold the ledger lock.
    ``quick``: one attempt with a short timeout (reconcile's way); later runs deliver what is left.
    """
    cfg = cfg or campaign_mail(campaign)
    if cfg is None:
        return None
    if quick:
        cfg = dataclasses.replace(cfg, timeout=min(cfg.timeout, QUICK_TIMEOUT_S), max_attempts=1)
    ledger = campaign.ledger()
    with ledger.transaction() as txn:
        if requeue:
            requeue_failed(txn.outbox)
        _update_failure_digests(txn)
        # Another delivery may be sending some of them right now (cron's reconcile and a person's
        # `notify`): each item this one sends is claimed first, or both would send it.
        mine = [item for item in pending_items(txn.outbox) if not claimed_by_another(item)]
        # The items are sent one after another: the last one's claim must outlast all of them.
        lease = len(mine) * item_lease(cfg)
        for item in mine:
            claim(item, lease_s=lease)
        work = copy.deepcopy(mine)
        if not work:
            report = DeliveryReport()
            report.note_given_up(txn.outbox)
            return report
    try:
        report = deliver_outbox(work, cfg, logger=log)
    finally:
        # Sent or not (even when interrupted), the claims go: what is still pending is anyone's again.
        ids = {item.get("id") for item in work}
        with ledger.transaction() as txn:
            merge_delivery(txn.outbox, work)
            for item in txn.outbox:
                if item.get("id") in ids:
                    item.pop(CLAIM, None)
            outbox_now = txn.outbox
    report.note_given_up(outbox_now)
    return report


def item_lease(cfg: MailConfig) -> float:
    """Seconds one item's delivery may take at most: every attempt, each of its SMTP round trips
    (connect, greeting, EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT per address, DATA, the data, QUIT) up to
    the timeout, and the backoff between attempts. A claim outlasts it: a live delivery keeps what it
    claimed, and a stuck or vanished one frees it after a bounded time (never held for ever)."""
    round_trips = 10 + len(cfg.to)
    backoff = (cfg.max_attempts - 1) * cfg.backoff_max
    return cfg.max_attempts * round_trips * cfg.timeout + backoff + 60.0


# An item a delivery is sending: {"host", "pid", "pst" (the process's start), "until" (epoch s)}.
CLAIM = "claim"


def claim(item: dict[str, Any], *, pid: int | None = None, lease_s: float = 600.0) -> None:
    """Mark ``item`` as being sent by this process (``pid``: by that one) until ``lease_s`` from now."""
    pid = os.getpid() if pid is None else pid
    item[CLAIM] = {
        "host": socket.gethostname(),
        "pid": pid,
        "pst": process_start_ticks(pid),
        "until": time.time() + lease_s,
    }


def claimed_by_another(item: dict[str, Any]) -> bool:
    """Whether another delivery that is still alive is sending ``item``. A claim whose process is gone
    (this host), or whose lease ran out (another host: it cannot be asked), is void: a killed delivery
    loses no message (it may be sent twice then, never not at all)."""
    held = item.get(CLAIM)
    if not isinstance(held, dict):
        return False
    pid, until = held.get("pid"), held.get("until")
    if not isinstance(until, (int, float)) or time.time() > until:
        return False
    if held.get("host") != socket.gethostname():
        return True
    if not isinstance(pid, int):
        return False
    pst = held.get("pst")
    return pid_alive(pid, pst if isinstance(pst, int) else None)


def _update_failure_digests(txn: Transaction) -> None:
    """Mail only what is still true: a failure digest whose jobs have all recovered since (a person's
    retry) is dropped; one where some have says so at its top."""
    for item in pending_items(txn.outbox):
        ids = item.get("job_ids")
        if item.get("kind") != "failure_digest" or not isinstance(ids, list):
            continue
        # Every delivery looks again (a digest waits while the server is down, and more jobs may be
        # retried meanwhile): the note is made anew over the body as reconcile wrote it.
        recovered = []
        for job_id in ids:
            try:
                job = txn.get(str(job_id))
            except OrcaHpcError:
                continue  # no longer in the ledger: nothing to say about it
            if job.state is not JobState.PERMANENT_FAILED:
                recovered.append(f"{job.id} ({job.name}): now {job.state.value}")
        if len(recovered) == len(ids):
            item["status"] = DROPPED
            item["last_error"] = "not sent: every job in it has recovered since"
            continue
        written = str(item.get(AS_WRITTEN, item["body"]))
        if recovered:
            item[AS_WRITTEN] = written
            item["recovered"] = recovered
            note = "Since this was written, these jobs were taken up again:\n"
            item["body"] = note + "".join(f"  {line}\n" for line in recovered) + "\n" + written
        elif AS_WRITTEN in item:  # taken up again, and failed for good again: as written it is true
            item["body"] = item.pop(AS_WRITTEN)
            item.pop("recovered", None)


AS_WRITTEN = "body_as_written"  # a failure digest's body before any note about jobs taken up again


def owed_without_mail(campaign: Campaign) -> int:
    """How many notifications wait in the outbox of a campaign that has no ``[mail]`` settings."""
    if campaign_mail(campaign) is not None:
        return 0
    return len(pending_items(campaign.ledger().snapshot().outbox))
