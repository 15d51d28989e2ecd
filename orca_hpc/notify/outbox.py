"""Delivering a campaign's outbox: copy what is owed, send without the ledger lock, merge back."""

from __future__ import annotations

import copy
import dataclasses
import logging

from orca_hpc.config.campaign import Campaign
from orca_hpc.errors import OrcaHpcError
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
        work = copy.deepcopy(pending_items(txn.outbox))
    if not work:
        return DeliveryReport()
    report = deliver_outbox(work, cfg, logger=log)
    with ledger.transaction() as txn:
        merge_delivery(txn.outbox, work)
    return report


def _update_failure_digests(txn: Transaction) -> None:
    """Mail only what is still true: a failure digest whose jobs have all recovered since (a person's
    retry) is dropped; one where some have says so at its top."""
    for item in pending_items(txn.outbox):
        ids = item.get("job_ids")
        if item.get("kind") != "failure_digest" or not isinstance(ids, list) or item.get("recovered"):
            continue
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
        elif recovered:
            item["recovered"] = recovered
            note = "Since this was written, these jobs were taken up again:\n"
            item["body"] = note + "".join(f"  {line}\n" for line in recovered) + "\n" + str(item["body"])


def owed_without_mail(campaign: Campaign) -> int:
    """How many notifications wait in the outbox of a campaign that has no ``[mail]`` settings."""
    if campaign_mail(campaign) is not None:
        return 0
    return len(pending_items(campaign.ledger().snapshot().outbox))
