"""Outbox items and their SMTP delivery.

The outbox is a plain ``list[dict]`` that the ledger stores as-is (``txn.outbox``); reconcile appends
items (``make_notification``, ``digest.build_failure_digest``) in the same transaction that changes
job states, and delivers them after (``deliver_outbox``). An item is marked ``sent`` only after the
server accepted the DATA; a crash in between resends it with the same Message-ID, so a duplicate is
recognisable. Mail problems never raise out of ``deliver_outbox``: reconcile must not fail because
the mail server is down.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import logging
import random
import smtplib
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from orca_hpc.clock import as_datetime, now_iso
from orca_hpc.errors import TemporaryFailure, UserError
from orca_hpc.notify.config import MailConfig

__all__ = [
    "DeliveryReport",
    "MailConfig",
    "backoff_delay",
    "build_message",
    "deliver_outbox",
    "make_notification",
    "merge_delivery",
    "pending_items",
    "requeue_failed",
    "send_test",
]

_log = logging.getLogger("orca_hpc.notify.smtp")

PENDING, SENT, FAILED_PERMANENT = "pending", "sent", "failed_permanent"
_MAX_ERROR_CHARS = 400


def _one_line(text: str) -> str:
    # Header values with CR/LF would be a header injection; the email package refuses them anyway.
    return " ".join(text.split())


def make_notification(
    kind: str,
    subject: str,
    body: str,
    *,
    attachments: Iterable[tuple[str, str, str]] = (),
) -> dict[str, Any]:
    """A new pending outbox item. `attachments` are ``(file name, mime type, text)``.

    The id and Message-ID are fixed here, once, so every resend of the item is the same message.
    """
    ident = uuid.uuid4().hex
    atts = []
    for name, mime, text in attachments:
        if "/" not in mime:
            raise ValueError(f"attachment {name!r}: mime type must be 'type/subtype', not {mime!r}")
        atts.append({"name": _one_line(name), "mime": mime, "text": text})
    return {
        "id": ident,
        "kind": kind,
        "message_id": f"<{ident}@orca-hpc>",
        "subject": _one_line(subject),
        "body": body,
        "attachments": atts,
        "status": PENDING,
        "attempts": 0,
        "last_error": None,
        "created": now_iso(),
        "sent_at": None,
    }


def pending_items(outbox: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in outbox if item.get("status") == PENDING]


def requeue_failed(outbox: Sequence[dict[str, Any]]) -> int:
    """Make permanently failed items pending again (after the user fixed the mail settings)."""
    n = 0
    for item in outbox:
        if item.get("status") == FAILED_PERMANENT:
            item["status"] = PENDING
            n += 1
    return n


def build_message(item: dict[str, Any], cfg: MailConfig) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = cfg.from_addr
    msg["To"] = ", ".join(cfg.to)
    msg["Subject"] = item["subject"]
    msg["Message-ID"] = item["message_id"]
    # The creation time, not the send time: a resend is byte-for-byte the same message.
    msg["Date"] = format_datetime(as_datetime(item["created"]))
    msg["X-Orca-Hpc-Kind"] = _one_line(str(item.get("kind", "")))
    msg.set_content(item["body"])
    for att in item.get("attachments", ()):
        maintype, subtype = att["mime"].split("/", 1)
        if maintype == "text":
            msg.add_attachment(att["text"], subtype=subtype, filename=att["name"])
        else:
            msg.add_attachment(
                att["text"].encode("utf-8"), maintype=maintype, subtype=subtype, filename=att["name"]
            )
    return msg


# ---------------------------------------------------------------------------------------------
# SMTP


class _Refused(Exception):
    """Raised by us (not smtplib) for a problem that retrying cannot fix."""


@functools.cache
def _local_hostname() -> str:
    # smtplib would call getfqdn() on every connection; that can take seconds on a login node.
    return socket.getfqdn()


def _reply_text(code: int, resp: bytes | str) -> str:
    text = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    return f"{code} {_one_line(text)}".strip()


def _open(cfg: MailConfig) -> smtplib.SMTP:
    context = ssl.create_default_context(cafile=cfg.ca_file)
    smtp: smtplib.SMTP
    if cfg.security == "ssl":
        smtp = smtplib.SMTP_SSL(
            cfg.host, cfg.port, local_hostname=_local_hostname(), timeout=cfg.timeout, context=context
        )
    else:
        smtp = smtplib.SMTP(cfg.host, cfg.port, local_hostname=_local_hostname(), timeout=cfg.timeout)
    try:
        smtp.ehlo()
        if cfg.security == "starttls":
            # Never fall back to plaintext: a server (or attacker) hiding STARTTLS is an error.
            if not smtp.has_extn("starttls"):
                raise _Refused(f'{cfg.host}:{cfg.port} does not offer STARTTLS (security = "starttls")')
            smtp.starttls(context=context)
            smtp.ehlo()
        if cfg.password is not None:
            if not cfg.uses_tls and not cfg.allow_plaintext_auth:
                raise _Refused("refusing to send the password without TLS (allow_plaintext_auth is false)")
            smtp.login(cfg.username or "", cfg.password.reveal())
    except BaseException:
        smtp.close()
        raise
    return smtp


def _transact(smtp: smtplib.SMTP, msg: EmailMessage, cfg: MailConfig) -> tuple[str, dict[str, str]]:
    """MAIL/RCPT/DATA by hand (not sendmail) to keep the server's final reply for the user."""
    data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    code, resp = smtp.mail(cfg.from_addr)
    if code != 250:
        _rset(smtp)
        raise smtplib.SMTPSenderRefused(code, resp, cfg.from_addr)
    refused: dict[str, tuple[int, bytes]] = {}
    for rcpt in cfg.to:
        code, resp = smtp.rcpt(rcpt)
        if code not in (250, 251):
            refused[rcpt] = (code, resp)
    if len(refused) == len(cfg.to):
        _rset(smtp)
        raise smtplib.SMTPRecipientsRefused(refused)
    code, resp = smtp.data(data)
    if code != 250:
        _rset(smtp)
        raise smtplib.SMTPDataError(code, resp)
    return _reply_text(code, resp), {a: _reply_text(c, r) for a, (c, r) in refused.items()}


def _rset(smtp: smtplib.SMTP) -> None:
    # The connection is closed right after anyway.
    with contextlib.suppress(smtplib.SMTPException, OSError):
        smtp.rset()


def _send_one(msg: EmailMessage, cfg: MailConfig) -> tuple[str, dict[str, str]]:
    smtp = _open(cfg)
    try:
        result = _transact(smtp, msg, cfg)
    except BaseException:
        smtp.close()
        raise
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()  # the message is already accepted; a rude goodbye does not matter
    return result


def _secret_variants(cfg: MailConfig) -> list[str]:
    """Every form in which the password could travel on the wire (AUTH PLAIN / LOGIN)."""
    if cfg.password is None:
        return []
    pw = cfg.password.reveal()
    user = cfg.username or ""
    forms = [pw, f"\0{user}\0{pw}", f"{user}\0{user}\0{pw}"]
    out = [pw]
    for form in forms:
        out.append(base64.b64encode(form.encode("utf-8")).decode("ascii"))
    return sorted({s for s in out if s}, key=len, reverse=True)


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    text = _one_line(text)
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS - 3] + "..."
    return text


def _classify(exc: BaseException, cfg: MailConfig) -> tuple[bool, str]:
    """(transient?, what happened). Transient: worth trying again later."""
    where = f"{cfg.host}:{cfg.port}"
    if isinstance(exc, _Refused):
        return False, str(exc)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        parts = [f"{addr}: {_reply_text(code, resp)}" for addr, (code, resp) in exc.recipients.items()]
        codes = [code for code, _ in exc.recipients.values()]
        transient = all(400 <= c < 500 for c in codes)
        return transient, "all recipients refused: " + "; ".join(parts)
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        text = _reply_text(code, exc.smtp_error)
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            text = f"authentication failed: {text}"
        elif isinstance(exc, smtplib.SMTPSenderRefused):
            text = f"sender {cfg.from_addr} refused: {text}"
        # 4xx (421 busy, 450/451 try later, 454 temporary auth failure) and no-code replies: retry.
        return not 500 <= code < 600, text
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        if isinstance(exc.__context__, TimeoutError):  # smtplib wraps a read timeout this way
            return True, f"no answer from {where} within {cfg.timeout:g} s"
        return True, f"{where} closed the connection: {exc}"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return False, f"{where}: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False, f"{where}: TLS certificate check failed: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return False, (
            f'{where}: TLS handshake failed ({exc.reason or exc}); is security = "{cfg.security}" '
            f"right for port {cfg.port}? (465 is usually ssl, 587 starttls)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return True, f"connection to {where} refused (server down or wrong port?)"
    if isinstance(exc, TimeoutError):
        return True, f"no answer from {where} within {cfg.timeout:g} s"
    if isinstance(exc, socket.gaierror):
        # A host name that does not resolve is a settings problem: trying again will not fix it.
        return False, f"cannot resolve host {cfg.host!r}: {exc.strerror} (check [mail] host)"
    if isinstance(exc, OSError):
        return True, f"network error talking to {where}: {exc.strerror or exc}"
    if isinstance(exc, smtplib.SMTPException):
        return False, f"{where}: {exc}"
    if isinstance(exc, UnicodeError):
        # smtplib sends AUTH as ASCII only. Never show the exception: its .object is the secret.
        return False, "the username or password has non-ASCII characters, which SMTP AUTH cannot send"
    return False, f"{type(exc).__name__}: {exc}"


def backoff_delay(attempt: int, cfg: MailConfig, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): exponential, up to +50% jitter.

    The jitter never overlaps the next step (base*2^n*1.5 < base*2^(n+1)), so delays always grow
    until they hit `backoff_max`.
    """
    raw = cfg.backoff_base * 2 ** (attempt - 1)
    return min(cfg.backoff_max, raw * (1.0 + 0.5 * rng()))


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # newly failed permanently in this run
    pending: int = 0  # still pending after this run (transient trouble, or not tried)
    attempts: int = 0  # SMTP attempts made in this run
    messages: list[str] = field(default_factory=list)
    # Failed permanently, in this run or before, and kept in the outbox: nothing sends them again
    # until a person requeues them, so every delivery says so (a digest must not end there unseen).
    given_up: int = 0
    given_up_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.pending == 0

    def summary(self) -> str:
        return f"mail: {self.sent} sent, {self.failed} failed, {self.pending} pending"

    def given_up_line(self) -> str:
        """The reminder for ``given_up``, with the last error and the way to send them again."""
        why = f" (last error: {self.given_up_error})" if self.given_up_error else ""
        return (
            f"{self.given_up} notification(s) in the outbox could not be sent{why}; "
            "after fixing [mail], send them with `orca-hpc notify --requeue-failed`"
        )

    def note_given_up(self, outbox: Sequence[dict[str, Any]]) -> None:
        failed = [item for item in outbox if item.get("status") == FAILED_PERMANENT]
        self.given_up = len(failed)
        self.given_up_error = str(failed[-1].get("last_error") or "") or None if failed else None


def deliver_outbox(
    outbox: list[dict[str, Any]],
    cfg: MailConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> DeliveryReport:
    """Send every pending item, updating the dicts in place. Never raises for mail problems.

    A transient error is retried up to ``cfg.max_attempts`` times with backoff; after that the item
    stays pending for the next run, and the remaining items are not tried in this run (the server is
    not taking mail now). A permanent error marks the item ``failed_permanent`` without a retry.
    """
    log = logger if logger is not None else _log
    secrets = _secret_variants(cfg)
    report = DeliveryReport()
    server_unavailable: str | None = None

    def note(level: int, text: str) -> None:
        text = _scrub(text, secrets)
        report.messages.append(text)
        log.log(level, "%s", text)

    for item in outbox:
        if item.get("status") != PENDING:
            continue
        label = f"mail {item.get('id', '?')} ({_one_line(str(item.get('subject', '')))[:60]!r})"
        if server_unavailable is not None:
            report.pending += 1
            continue
        try:
            msg = build_message(item, cfg)
        except (KeyError, TypeError, ValueError) as exc:
            # A malformed item would otherwise block the outbox for ever.
            item["status"] = FAILED_PERMANENT
            item["last_error"] = _scrub(f"malformed outbox item: {type(exc).__name__}: {exc}", secrets)
            report.failed += 1
            note(logging.ERROR, f"{label}: {item['last_error']}")
            continue
        for n in range(1, cfg.max_attempts + 1):
            item["attempts"] = int(item.get("attempts", 0)) + 1
            item["last_attempt"] = now_iso()
            report.attempts += 1
            try:
                reply, refused = _send_one(msg, cfg)
            except (smtplib.SMTPException, OSError, UnicodeError, _Refused) as exc:
                transient, text = _classify(exc, cfg)
                text = _scrub(text, secrets)
                item["last_error"] = text
                if not transient:
                    item["status"] = FAILED_PERMANENT
                    report.failed += 1
                    note(logging.ERROR, f"{label}: not sent, permanent error: {text}")
                    break
                if n < cfg.max_attempts:
                    delay = backoff_delay(n, cfg, rng)
                    log.warning("%s: attempt %d failed (%s); retrying in %.1f s", label, n, text, delay)
                    sleep(delay)
                    continue
                report.pending += 1
                server_unavailable = text
                note(logging.WARNING, f"{label}: still pending after {n} attempts: {text}")
            else:
                item["status"] = SENT
                item["sent_at"] = now_iso()
                item["last_error"] = None
                item["server_reply"] = _scrub(reply, secrets)
                report.sent += 1
                if refused:
                    item["refused"] = {a: _scrub(r, secrets) for a, r in refused.items()}
                    note(logging.WARNING, f"{label}: sent, but some recipients refused: {item['refused']}")
                else:
                    note(logging.INFO, f"{label}: sent to {', '.join(cfg.to)}: {item['server_reply']}")
            break
    if server_unavailable is not None and report.pending > 1:
        note(logging.WARNING, f"{report.pending} messages left pending for the next run")
    return report


def send_test(cfg: MailConfig, *, campaign: str | None = None) -> str:
    """Send one test message, once (no retries), and return the server's reply (``"250 OK"``).

    Raises UserError (settings or server refuse it) or TemporaryFailure (server unreachable or busy),
    with the server's words and a hint; never the password.
    """
    where = f" for campaign {campaign}" if campaign else ""
    item = make_notification(
        "test",
        f"[orca-hpc] test message{where}",
        f"This is a test message from orca-hpc{where}.\n\n"
        f"Server: {cfg.describe()}\nSettings from: {cfg.source}\n\n"
        "If you can read this, notifications will arrive.\n",
    )
    secrets = _secret_variants(cfg)
    try:
        reply, refused = _send_one(build_message(item, cfg), cfg)
    except (smtplib.SMTPException, OSError, UnicodeError, _Refused) as exc:
        transient, text = _classify(exc, cfg)
        text = _scrub(text, secrets) + _hint(exc)
        if transient:
            raise TemporaryFailure(f"mail test via {cfg.describe()} failed: {text}") from None
        raise UserError(
            f"mail test via {cfg.describe()} failed: {text} (settings from {cfg.source})"
        ) from None
    reply = _scrub(reply, secrets)
    if refused:
        reply += "; refused: " + "; ".join(f"{a}: {_scrub(r, secrets)}" for a, r in refused.items())
    return reply


def _hint(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "; check username and the password in password_env/password_file"
    if isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code == 530:
        return '; the server wants TLS or a login first: try security = "starttls" and a username'
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; check the `to` addresses (and whether this server relays for them)"
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return "; check the `from` address (many servers only accept your own address)"
    return ""


_DELIVERY_FIELDS = ("status", "attempts", "last_error", "last_attempt", "sent_at", "server_reply", "refused")


def merge_delivery(outbox: list[dict[str, Any]], delivered: Iterable[dict[str, Any]]) -> int:
    """Copy delivery results (by id) from `delivered` copies back into the ledger's `outbox`.

    Lets the caller deliver outside the ledger lock (SMTP with backoff can take a minute):
    copy the pending items in one transaction, `deliver_outbox` the copies, merge in a second.
    Returns how many items were updated.
    """
    by_id = {item["id"]: item for item in outbox if "id" in item}
    n = 0
    for done in delivered:
        target = by_id.get(done.get("id"))
        if target is None:
            continue
        for key in _DELIVERY_FIELDS:
            if key in done:
                target[key] = done[key]
        n += 1
    return n
