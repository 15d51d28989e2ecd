"""Mail that matches reality: no stale digests, no waiting on a dead server, owed mail is said.

Fast tests on the `local` site's ledger (no jobs run); the digest itself goes through the real SMTP
test server on loopback.
"""

from __future__ import annotations

import socket
from pathlib import Path

from e2e import cli
from smtp_server import SmtpTestServer, closed_port

from orca_hpc.config.campaign import load_campaign
from orca_hpc.ledger.states import JobState
from orca_hpc.notify.config import MailConfig
from orca_hpc.notify.digest import build_failure_digest
from orca_hpc.notify.outbox import deliver_campaign_outbox
from orca_hpc.notify.smtp import _classify


def _campaign(tmp_path: Path, mail: str = "") -> Path:
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    if mail:
        (camp / "orca-hpc.toml").write_text((camp / "orca-hpc.toml").read_text() + mail)
    return camp


def _mail(port: int) -> str:
    return (
        f'\n[mail]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\nfrom = "o@localhost"\n'
        'to = ["c@localhost"]\nmax_attempts = 5\nbackoff_base = 30\ntimeout = 30\n'
    )


def _failed_jobs(camp: Path, names: list[str]) -> list[str]:
    """Jobs recorded and failed permanently, with their digest in the outbox (as reconcile leaves them)."""
    ledger = load_campaign(camp).ledger()
    rows = []
    with ledger.transaction() as txn:
        for i, name in enumerate(names):
            job = txn.add_job(name, f"/in/{name}.inp", f"{i:064x}", "local", 3)
            job.new_attempt(token="")
            for state in (JobState.SUBMITTING, JobState.FAILED, JobState.PERMANENT_FAILED):
                txn.set_state(job, state)
            rows.append({"id": job.id, "name": name, "attempts": 1, "outcome": "input_error", "message": "x"})
        txn.outbox.append(build_failure_digest(rows, "camp"))
    return [r["id"] for r in rows]


def test_a_digest_about_jobs_that_all_recovered_is_not_sent(tmp_path: Path) -> None:
    with SmtpTestServer() as server:
        camp = _campaign(tmp_path, _mail(server.port))
        ids = _failed_jobs(camp, ["a", "b"])
        ledger = load_campaign(camp).ledger()
        with ledger.transaction() as txn:  # a person retried both, and they are on their way again
            for job_id in ids:
                txn.set_state(txn.get(job_id), JobState.CREATED)
        report = deliver_campaign_outbox(load_campaign(camp))
        assert report is not None and report.sent == 0 and not server.messages
        [item] = ledger.snapshot().outbox
        assert item["status"] == "dropped" and "recovered" in item["last_error"]


def test_a_digest_names_the_jobs_that_recovered_since(tmp_path: Path) -> None:
    with SmtpTestServer() as server:
        camp = _campaign(tmp_path, _mail(server.port))
        ids = _failed_jobs(camp, ["a", "b"])
        ledger = load_campaign(camp).ledger()
        with ledger.transaction() as txn:
            txn.set_state(txn.get(ids[0]), JobState.CREATED)
        deliver_campaign_outbox(load_campaign(camp))
        [sent] = server.messages
        body = sent.message.get_content()
        assert body.startswith("Since this was written") and f"{ids[0]} (a): now CREATED" in body
        assert "b" in body  # the one still failed is still reported


def test_reconcile_tries_a_dead_server_once_and_keeps_the_mail(tmp_path: Path) -> None:
    camp = _campaign(tmp_path, _mail(closed_port()))  # 5 attempts with 30 s backoff, if it waited
    _failed_jobs(camp, ["a"])
    cli(camp, "reconcile", expect=0)  # mail trouble never fails a reconcile
    [item] = load_campaign(camp).ledger().snapshot().outbox
    assert (item["status"], item["attempts"]) == ("pending", 1)  # one quick try; the outbox keeps it
    assert "refused" in item["last_error"]


def test_an_unresolvable_host_is_a_settings_error() -> None:
    cfg = MailConfig(host="no-such-host.invalid", from_addr="o@x.org", to=("c@x.org",))
    transient, text = _classify(socket.gaierror(socket.EAI_NONAME, "Name or service not known"), cfg)
    assert transient is False and "check [mail] host" in text


def test_owed_mail_without_settings_is_said_once(tmp_path: Path) -> None:
    camp = _campaign(tmp_path)
    _failed_jobs(camp, ["a"])
    result = cli(camp, "status", expect=0)
    assert result.output.count("notification(s) are waiting in the outbox") == 1
    assert "no [mail] settings" in result.output


def test_a_waiting_digest_is_looked_at_again_at_every_delivery(tmp_path: Path) -> None:
    """The server is down while a is retried (the digest gets its note and waits), then b is retried
    too: the digest is about nothing any more and is not sent. It was looked at once: sent later
    saying 2 jobs failed for good and only a was taken up again."""
    with SmtpTestServer() as server:
        camp = _campaign(tmp_path, _mail(server.port))
        ids = _failed_jobs(camp, ["a", "b"])
        ledger = load_campaign(camp).ledger()
        down = MailConfig(
            host="127.0.0.1", port=closed_port(), security="none", from_addr="o@x.org", to=("c@x.org",),
            max_attempts=1, timeout=5,
        )  # fmt: skip
        with ledger.transaction() as txn:
            txn.set_state(txn.get(ids[0]), JobState.CREATED)
        report = deliver_campaign_outbox(load_campaign(camp), down)
        assert report is not None and report.pending == 1
        [item] = ledger.snapshot().outbox
        assert f"{ids[0]} (a): now CREATED" in item["body"] and item["body"].count("Since this was") == 1
        with ledger.transaction() as txn:
            txn.set_state(txn.get(ids[1]), JobState.CREATED)
        deliver_campaign_outbox(load_campaign(camp))
        assert not server.messages
        [item] = ledger.snapshot().outbox
        assert item["status"] == "dropped"
