"""Outbox delivery against a real SMTP server on loopback (aiosmtpd), with injected failures."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from smtp_server import SmtpTestServer, closed_port, make_cert, silent_port

from orca_hpc.errors import TemporaryFailure, UserError
from orca_hpc.notify.config import MailConfig
from orca_hpc.notify.digest import build_failure_digest
from orca_hpc.notify.smtp import (
    backoff_delay,
    deliver_outbox,
    make_notification,
    merge_delivery,
    requeue_failed,
    send_test,
)

PASSWORD = "s3cr3t-Pa55word!"
USER = "orca"


def config(port: int, *, auth: bool = False, password: str = PASSWORD, **extra: Any) -> MailConfig:
    table: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": "orca-hpc@cluster.example",
        "to": ["chemist@example.org"],
        "timeout": 2,
        **extra,
    }
    env = {}
    if auth:
        table.update(username=USER, password_env="ORCA_TEST_PW", allow_plaintext_auth=True)
        env["ORCA_TEST_PW"] = password
    return MailConfig.from_dict(table, "test.toml", environ=env)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as srv:
        yield srv


@pytest.fixture
def auth_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer(username=USER, password=PASSWORD) as srv:
        yield srv


def failed_job(i: int) -> dict[str, Any]:
    return {
        "id": f"j{i:06d}",
        "name": f"mol{i} opt",
        "attempts": 3,
        "outcome": "scf_not_converged",
        "message": "SCF not converged after 3 attempts (SlowConv, then VerySlowConv, then KDIIS)",
        "tail": "\n".join(f"line {k} of output" for k in range(40))
        + "\nORCA finished by error termination in SCF\n",
        "results": f"/scratch/c/jobs/j{i:06d}/attempt-3",
    }


def test_digest_delivered_with_right_content(server: SmtpTestServer) -> None:
    item = build_failure_digest([failed_job(1), failed_job(2)], "benzene-scan")
    outbox = [item]
    report = deliver_outbox(outbox, config(server.port), sleep=Sleeps())
    assert (report.sent, report.failed, report.pending) == (1, 0, 0)
    assert item["status"] == "sent" and item["sent_at"] and item["attempts"] == 1
    assert item["server_reply"].startswith("250")
    assert len(server.messages) == 1
    got = server.messages[0]
    assert got.mail_from == "orca-hpc@cluster.example"
    assert got.rcpt_tos == ["chemist@example.org"]
    msg = got.message
    assert msg["Subject"] == "[orca-hpc] benzene-scan: 2 jobs failed permanently"
    assert msg["Message-ID"] == item["message_id"]
    assert msg["To"] == "chemist@example.org"
    body = msg.get_body(("plain",)).get_content()
    lines = body.splitlines()
    assert "1. mol1 opt (j000001)" in lines
    assert "2. mol2 opt (j000002)" in lines
    assert "   attempts: 3" in lines
    assert "   outcome: scf_not_converged" in lines
    assert "   results: /scratch/c/jobs/j000001/attempt-3" in lines
    assert "   | ORCA finished by error termination in SCF" in lines
    assert "   | line 0 of output" not in lines  # only the last lines of the output
    assert all(len(line) <= 110 for line in lines)


def test_421_twice_then_accepted_after_growing_backoff(server: SmtpTestServer) -> None:
    server.fail("DATA", "421 4.3.2 Service not available, try again later", times=2)
    item = make_notification("test", "hello", "body\n")
    sleeps = Sleeps()
    report = deliver_outbox([item], config(server.port, backoff_base=2), sleep=sleeps, rng=lambda: 0.5)
    assert report.sent == 1 and report.attempts == 3
    assert item["status"] == "sent" and item["attempts"] == 3 and item["last_error"] is None
    assert len(server.messages) == 1  # delivered exactly once
    assert server.calls["DATA"] == 3
    assert sleeps == [2.5, 5.0]  # base*2^(n-1) * (1 + 0.5*rng)
    assert sleeps[1] == 2 * sleeps[0]


def test_backoff_grows_whatever_the_jitter_and_is_capped() -> None:
    cfg = config(25, backoff_base=1, backoff_max=20, max_attempts=10)
    for jitter in (0.0, 0.3, 0.999):
        delays = [backoff_delay(n, cfg, lambda j=jitter: j) for n in range(1, 8)]
        uncapped = [d for d in delays if d < 20]
        assert uncapped == sorted(uncapped) and len(set(uncapped)) == len(uncapped)
        assert max(delays) == 20


def test_server_down_stays_pending_then_later_run_delivers(server: SmtpTestServer) -> None:
    items = [make_notification("a", "first", "1\n"), make_notification("b", "second", "2\n")]
    sleeps = Sleeps()
    report = deliver_outbox(items, config(closed_port(), max_attempts=3), sleep=sleeps, rng=lambda: 0.0)
    assert (report.sent, report.failed, report.pending) == (1 - 1, 0, 2)
    assert [i["status"] for i in items] == ["pending", "pending"]
    assert "refused" in items[0]["last_error"]
    assert sleeps == [2.0, 4.0]
    # The second item is not tried once the server proved unreachable: no 2x the waiting.
    assert items[0]["attempts"] == 3 and items[1]["attempts"] == 0
    report = deliver_outbox(items, config(server.port), sleep=sleeps)
    assert report.sent == 2 and [i["status"] for i in items] == ["sent", "sent"]
    assert sorted(m.message["Subject"] for m in server.messages) == ["first", "second"]


def test_timeout_is_transient() -> None:
    item = make_notification("a", "s", "b\n")
    with silent_port() as port:
        report = deliver_outbox([item], config(port, timeout=0.3, max_attempts=2), sleep=Sleeps())
    assert report.pending == 1 and item["status"] == "pending"
    assert "no answer" in item["last_error"]


def test_auth_succeeds_with_right_password(auth_server: SmtpTestServer) -> None:
    item = make_notification("a", "s", "b\n")
    report = deliver_outbox([item], config(auth_server.port, auth=True), sleep=Sleeps())
    assert report.sent == 1 and auth_server.auth_attempts == [(USER, True)]
    assert len(auth_server.messages) == 1


def test_535_is_permanent_no_retry_and_password_never_leaks(
    auth_server: SmtpTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-" + PASSWORD
    item = make_notification("a", "s", "b\n")
    sleeps = Sleeps()
    cfg = config(auth_server.port, auth=True, password=wrong)
    report = deliver_outbox([item], cfg, sleep=sleeps)
    assert item["status"] == "failed_permanent" and report.failed == 1
    # One connection, no retry (smtplib itself tries PLAIN, then LOGIN, on that connection).
    assert item["attempts"] == 1 and sleeps == [] and len(auth_server.auth_connections) == 1
    assert "535" in item["last_error"] and "Authentication credentials invalid" in item["last_error"]
    assert any("535" in m for m in report.messages)
    with pytest.raises(UserError) as info:
        send_test(cfg)
    assert "535 5.7.8 Authentication credentials invalid" in str(info.value)
    assert "password_env" in str(info.value)  # says what to check
    dumped = json.dumps([item]) + repr(cfg) + str(cfg) + str(info.value) + repr(report)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("orca_hpc"))
    for form in (wrong, base64.b64encode(f"\0{USER}\0{wrong}".encode()).decode()):
        assert form not in dumped
        assert form not in ours
    assert ours  # something was logged, so the check above means something


def test_550_recipient_refused_is_permanent(server: SmtpTestServer) -> None:
    server.fail("RCPT", "550 5.1.1 <chemist@example.org>: Recipient address rejected")
    item = make_notification("a", "s", "b\n")
    sleeps = Sleeps()
    report = deliver_outbox([item], config(server.port), sleep=sleeps)
    assert item["status"] == "failed_permanent" and report.failed == 1
    assert sleeps == [] and server.calls["RCPT"] == 1 and server.messages == []
    assert "550 5.1.1" in item["last_error"] and "chemist@example.org" in item["last_error"]


def test_one_recipient_refused_others_get_it(server: SmtpTestServer) -> None:
    server.fail("RCPT", "550 5.1.1 no such user", times=1)
    item = make_notification("a", "s", "b\n")
    cfg = config(server.port, to=["gone@example.org", "chemist@example.org"])
    report = deliver_outbox([item], cfg, sleep=Sleeps())
    assert item["status"] == "sent" and report.sent == 1
    assert item["refused"] == {"gone@example.org": "550 5.1.1 no such user"}
    assert server.messages[0].rcpt_tos == ["chemist@example.org"]


def test_451_on_mail_from_is_retried_then_left_pending(server: SmtpTestServer) -> None:
    server.fail("MAIL", "451 4.3.0 Temporary local problem")
    item = make_notification("a", "s", "b\n")
    sleeps = Sleeps()
    report = deliver_outbox([item], config(server.port, max_attempts=4), sleep=sleeps, rng=lambda: 0.0)
    assert item["status"] == "pending" and report.pending == 1 and item["attempts"] == 4
    assert sleeps == [2.0, 4.0, 8.0]
    assert "451 4.3.0" in item["last_error"]


def test_no_starttls_offered_is_refused_not_downgraded(server: SmtpTestServer) -> None:
    item = make_notification("a", "s", "b\n")
    report = deliver_outbox([item], config(server.port, security="starttls"), sleep=Sleeps())
    assert item["status"] == "failed_permanent" and report.failed == 1
    assert "STARTTLS" in item["last_error"] and server.messages == []


def test_300_failed_jobs_make_exactly_one_email(server: SmtpTestServer) -> None:
    jobs = [failed_job(i) for i in range(300)]
    outbox = [build_failure_digest(jobs, "big")]
    report = deliver_outbox(outbox, config(server.port), sleep=Sleeps())
    assert report.sent == 1 and len(server.messages) == 1
    msg = server.messages[0].message
    assert msg["Subject"] == "[orca-hpc] big: 300 jobs failed permanently"
    body = msg.get_body(("plain",)).get_content()
    assert "j000299" in body  # every job is at least named
    attachment = next(msg.iter_attachments())
    assert attachment.get_filename() == "failed-jobs.txt"
    assert attachment.get_content().count("ORCA finished by error termination") == 300


def test_sent_items_are_not_resent_and_resend_keeps_message_id(server: SmtpTestServer) -> None:
    item = make_notification("a", "s", "b\n")
    deliver_outbox([item], config(server.port), sleep=Sleeps())
    deliver_outbox([item], config(server.port), sleep=Sleeps())
    assert len(server.messages) == 1
    # A crash after the server accepted but before the ledger saved "sent": same item again.
    item["status"] = "pending"
    deliver_outbox([item], config(server.port), sleep=Sleeps())
    ids = [m.message["Message-ID"] for m in server.messages]
    assert ids == [item["message_id"]] * 2
    first, second = server.messages
    assert first.data == second.data  # byte-for-byte the same message, Date included


def test_malformed_item_does_not_block_the_outbox(server: SmtpTestServer) -> None:
    bad = {"id": "x", "status": "pending", "attempts": 0}
    good = make_notification("a", "s", "b\n")
    report = deliver_outbox([bad, good], config(server.port), sleep=Sleeps())
    assert bad["status"] == "failed_permanent" and good["status"] == "sent" and report.sent == 1


def test_send_test_reports_server_reply(server: SmtpTestServer) -> None:
    assert send_test(config(server.port), campaign="c1") == "250 2.0.0 Message accepted for delivery"
    assert "c1" in server.messages[0].message["Subject"]


def test_send_test_unreachable_is_temporary() -> None:
    with pytest.raises(TemporaryFailure, match="refused"):
        send_test(config(closed_port()))


def test_requeue_and_merge_delivery() -> None:
    a, b = make_notification("a", "s", "b\n"), make_notification("b", "s", "b\n")
    a["status"] = "failed_permanent"
    assert requeue_failed([a, b]) == 1 and a["status"] == "pending"
    copy_b = json.loads(json.dumps(b))
    copy_b.update(status="sent", sent_at="2026-01-01T00:00:00+00:00", attempts=1)
    assert merge_delivery([a, b], [copy_b, {"id": "unknown"}]) == 1
    assert b["status"] == "sent" and b["attempts"] == 1 and a["status"] == "pending"


def test_notification_items_are_json_and_stable() -> None:
    a = make_notification("k", "two\r\nlines", "body", attachments=[("x.csv", "text/csv", "a,b\n")])
    b = make_notification("k", "s", "body")
    assert json.loads(json.dumps(a)) == a
    assert a["id"] != b["id"] and a["message_id"] == f"<{a['id']}@orca-hpc>"
    assert a["subject"] == "two lines"  # no header injection
    assert (a["status"], a["attempts"], a["last_error"], a["sent_at"]) == ("pending", 0, None, None)
    with pytest.raises(ValueError):
        make_notification("k", "s", "b", attachments=[("x", "csv", "")])


def test_non_ascii_password_fails_cleanly(auth_server: SmtpTestServer) -> None:
    item = make_notification("a", "s", "b\n")
    cfg = config(auth_server.port, auth=True, password="pässwörd-" + PASSWORD)
    report = deliver_outbox([item], cfg, sleep=Sleeps())
    assert item["status"] == "failed_permanent" and report.failed == 1
    assert "non-ASCII" in item["last_error"] and PASSWORD not in json.dumps(item)
    with pytest.raises(UserError, match="non-ASCII"):
        send_test(cfg)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    made = make_cert(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("openssl cannot make a test certificate here")
    return made


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_tls_with_auth(cert: tuple[Path, Path], tls: str) -> None:
    with SmtpTestServer(username=USER, password=PASSWORD, tls=tls, cert=cert) as srv:
        cfg = config(srv.port, auth=True, security=tls, ca_file=str(cert[0]), allow_plaintext_auth=False)
        item = make_notification("a", "over tls", "b\n")
        report = deliver_outbox([item], cfg, sleep=Sleeps())
        assert report.sent == 1, report.messages
        assert srv.auth_attempts == [(USER, True)]
        assert srv.messages[0].message["Subject"] == "over tls"


def test_untrusted_certificate_is_permanent(cert: tuple[Path, Path]) -> None:
    with SmtpTestServer(tls="starttls", cert=cert) as srv:
        item = make_notification("a", "s", "b\n")
        report = deliver_outbox([item], config(srv.port, security="starttls"), sleep=Sleeps())
        assert item["status"] == "failed_permanent" and report.failed == 1
        assert "certificate" in item["last_error"] and srv.messages == []


def test_ssl_to_plain_server_says_check_security(server: SmtpTestServer) -> None:
    item = make_notification("a", "s", "b\n")
    deliver_outbox([item], config(server.port, security="ssl"), sleep=Sleeps())
    assert item["status"] == "failed_permanent"
    assert 'is security = "ssl" right' in item["last_error"]
