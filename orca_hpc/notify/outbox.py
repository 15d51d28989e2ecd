"""Delivering a campaign's outbox: copy what is owed, send without the ledger lock, merge back."""

from __future__ import annotations

import copy
import logging

from orca_hpc.config.campaign import Campaign
from orca_hpc.notify.config import MailConfig, campaign_mail
from orca_hpc.notify.smtp import DeliveryReport, deliver_outbox, merge_delivery, pending_items, requeue_failed

log = logging.getLogger(__name__)


def deliver_campaign_outbox(
    campaign: Campaign, cfg: MailConfig | None = None, *, requeue: bool = False
) -> DeliveryReport | None:
    """Send what the outbox owes. None when no mail is configured (the outbox keeps it for later).

    Two short transactions around the delivery: SMTP with backoff must not hold the ledger lock.
    """
    cfg = cfg or campaign_mail(campaign)
    if cfg is None:
        return None
    ledger = campaign.ledger()
    with ledger.transaction() as txn:
        if requeue:
            requeue_failed(txn.outbox)
        work = copy.deepcopy(pending_items(txn.outbox))
    if not work:
        return DeliveryReport()
    report = deliver_outbox(work, cfg, logger=log)
    with ledger.transaction() as txn:
        merge_delivery(txn.outbox, work)
    return report
