"""Two deliveries of one campaign's outbox at once (cron's reconcile and a person's `orca-hpc notify`)
send each message once. Delivery runs outside the ledger lock (SMTP with backoff can take a minute),
so what one delivery is sending must be claimed in the ledger, or the other sends it too."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from smtp_server import SmtpTestServer

from orca_hpc.config.campaign import Campaign, init_campaign, load_campaign
from orca_hpc.notify import outbox as outbox_mod
from orca_hpc.notify import smtp as smtp_mod
from orca_hpc.notify.smtp import make_notification


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    with SmtpTestServer() as smtp:
        yield smtp


def _campaign(tmp_path: Path, port: int) -> Campaign:
    init_campaign(tmp_path / "camp", "local-slurm")
    config = tmp_path / "camp" / "orca-hpc.toml"
    config.write_text(
        config.read_text() + f'\n[mail]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        'from = "orca-hpc@localhost"\nto = ["chemist@localhost"]\nmax_attempts = 1\ntimeout = 5\n'
    )
    return load_campaign(tmp_path / "camp")


def test_two_deliveries_at_once_send_each_message_once(
    tmp_path: Path, server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = _campaign(tmp_path, server.port)
    with campaign.ledger().transaction() as txn:
        txn.outbox.append(make_notification("failure_digest", "[orca-hpc] 1 job failed", "body\n"))
    real = outbox_mod.deliver_outbox
    inner: list[object] = []

    def deliver_while_another_delivers(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not inner:  # the first delivery has copied what is owed: the second starts now
            inner.append("started")
            inner.append(outbox_mod.deliver_campaign_outbox(campaign))
        return real(*args, **kwargs)

    monkeypatch.setattr(outbox_mod, "deliver_outbox", deliver_while_another_delivers)
    outbox_mod.deliver_campaign_outbox(campaign)
    assert len(server.messages) == 1
    [item] = campaign.ledger().snapshot().outbox
    assert item["status"] == "sent"


def test_a_claim_left_by_a_killed_delivery_is_taken_over(tmp_path: Path, server: SmtpTestServer) -> None:
    """A delivery killed while sending leaves its claim; the message is not lost: a claim whose
    process is gone (or, from another host, whose lease has run out) is taken over."""
    campaign = _campaign(tmp_path, server.port)
    with campaign.ledger().transaction() as txn:
        item = make_notification("failure_digest", "[orca-hpc] 1 job failed", "body\n")
        txn.outbox.append(item)
        outbox_mod.claim(item, pid=2**22 + 1)  # a pid above Linux's limit: no such process
    report = outbox_mod.deliver_campaign_outbox(campaign)
    assert report is not None and report.sent == 1 and len(server.messages) == 1


@pytest.mark.parametrize("second_host", ["this host", "another host"])
def test_a_slow_delivery_of_several_messages_keeps_its_claims_to_the_last(
    tmp_path: Path, server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch, second_host: str
) -> None:
    """Each message may take up to one item's worst case (a server answering at the last second of
    every timeout, backoff): the third message of a delivery is sent about two of them after it was
    claimed. Its claim must still hold then, for a second delivery on this host or another one: the
    lease was one item's for all of them, and the second delivery sent the last message again."""
    campaign = _campaign(tmp_path, server.port)
    with campaign.ledger().transaction() as txn:
        for i in range(3):
            txn.outbox.append(make_notification("failure_digest", f"[orca-hpc] digest {i}", "body\n"))
    cfg = outbox_mod.campaign_mail(campaign)
    assert cfg is not None
    slowest = outbox_mod.item_lease(cfg) - 1.0  # each send takes (almost) its worst case
    clock = [1_000_000.0]
    monkeypatch.setattr(outbox_mod, "time", SimpleNamespace(time=lambda: clock[0]))
    real_send = smtp_mod._send_one
    second: list[object] = []

    def slow_send(msg, cfg):  # type: ignore[no-untyped-def]
        clock[0] += slowest
        if len(server.messages) == 2 and not second:  # sending the third: a second delivery starts
            with pytest.MonkeyPatch.context() as elsewhere:
                if second_host == "another host":
                    elsewhere.setattr(outbox_mod.socket, "gethostname", lambda: "login2.example")
                second.append(outbox_mod.deliver_campaign_outbox(campaign))
        return real_send(msg, cfg)

    monkeypatch.setattr(smtp_mod, "_send_one", slow_send)
    outbox_mod.deliver_campaign_outbox(campaign)
    assert second, "the second delivery never ran"
    subjects = sorted(m.message["Subject"] for m in server.messages)
    assert subjects == [f"[orca-hpc] digest {i}" for i in range(3)]
    assert [item["status"] for item in campaign.ledger().snapshot().outbox] == ["sent"] * 3
