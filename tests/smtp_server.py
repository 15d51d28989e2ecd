"""A real SMTP server on loopback for tests (aiosmtpd), with failure injection.

    with SmtpTestServer(username="u", password="p") as server:
        server.fail("DATA", "421 4.3.2 try again later", times=2)
        ... deliver to 127.0.0.1:server.port ...
        msg = server.messages[0].message   # parsed email.message.EmailMessage

Stages: "MAIL", "RCPT", "DATA". `closed_port()` gives a port nobody listens on ("server down");
`silent_port()` a port that accepts connections but never says anything (timeouts).
"""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

STAGES = ("MAIL", "RCPT", "DATA")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A loopback port with no listener: connecting is refused at once."""
    return free_port()


@contextmanager
def silent_port() -> Iterator[int]:
    """A listener that never accepts: the kernel completes the handshake, no greeting ever comes."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def make_cert(folder: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate for 127.0.0.1 (cert, key), or None without the openssl tool."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    cmd = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
           "-addext", "subjectAltName=IP:127.0.0.1"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    return (cert, key) if done.returncode == 0 else None


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class _Failure:
    reply: str
    times: int | None  # None: for ever
    used: int = 0


@dataclass
class _Handler:
    owner: SmtpTestServer
    failures: dict[str, list[_Failure]] = field(default_factory=dict)

    def _injected(self, stage: str) -> str | None:
        with self.owner.lock:
            self.owner.calls[stage] = self.owner.calls.get(stage, 0) + 1
            for failure in self.failures.get(stage, []):
                if failure.times is None or failure.used < failure.times:
                    failure.used += 1
                    return failure.reply
        return None

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        reply = self._injected("MAIL")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self._injected("RCPT")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self._injected("DATA")
        if reply:
            return reply
        with self.owner.lock:
            self.owner.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
            )
        return "250 2.0.0 Message accepted for delivery"


class SmtpTestServer:
    """aiosmtpd on 127.0.0.1 in a thread. With `username`/`password`, AUTH is offered without TLS
    (tests only) and checked; a wrong login gets aiosmtpd's "535 5.7.8 Authentication credentials
    invalid"."""

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: str | None = None,
        cert: tuple[Path, Path] | None = None,
    ) -> None:
        """`tls`: None (plain), "starttls" (offered, AUTH only after it) or "ssl" (implicit TLS)."""
        if tls is not None and cert is None:
            raise ValueError("tls needs cert=(certfile, keyfile)")
        self._tls = tls
        self._cert = cert
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        self.calls: dict[str, int] = {}
        self.auth_attempts: list[tuple[str, bool]] = []  # (login, succeeded); never the password
        self.auth_connections: set[Any] = set()  # client peers that tried AUTH: one per connection
        self._username = username
        self._password = password
        self._handler = _Handler(self)
        self.port = 0
        self._controller: Controller | None = None

    def fail(self, stage: str, reply: str, times: int | None = None) -> None:
        """Answer `stage` with `reply` the next `times` times (None: always)."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}")
        self._handler.failures.setdefault(stage, []).append(_Failure(reply, times))

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self._username
            and auth_data.password.decode() == self._password
        )
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?"
        with self.lock:
            self.auth_attempts.append((login, ok))
            self.auth_connections.add(session.peer)
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpTestServer:
        kwargs: dict[str, Any] = {}
        if self._username is not None:
            # With STARTTLS offered, keep aiosmtpd's default: no AUTH before TLS.
            kwargs.update(authenticator=self._authenticate, auth_require_tls=self._tls == "starttls")
        if self._tls is not None and self._cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self._cert[0]), str(self._cert[1]))
            kwargs["tls_context" if self._tls == "starttls" else "ssl_context"] = context
        self.port = free_port()
        self._controller = Controller(
            self._handler, hostname="127.0.0.1", port=self.port, ready_timeout=10, **kwargs
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
