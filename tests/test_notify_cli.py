"""`orca-hpc notify --test` against a real loopback SMTP server: reports what the server said."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from smtp_server import SmtpTestServer, closed_port

from orca_hpc.cli import main
from orca_hpc.errors import EXIT_ERROR, EXIT_TEMPFAIL
from orca_hpc.notify.digest import build_failure_digest
from orca_hpc.notify.smtp import make_notification

PASSWORD = "cli-Secret-42"


@pytest.fixture
def auth_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer(username="orca", password=PASSWORD) as srv:
        yield srv


def write_campaign(root: Path, port: int, extra: str = "") -> Path:
    root.mkdir(exist_ok=True)
    (root / "orca-hpc.toml").write_text(
        'name = "benzene"\nid = "abc123"\nsite = "local"\n\n'
        "[mail]\n"
        f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        'from = "orca@cluster.example"\nto = ["me@example.org"]\ntimeout = 2\n' + extra
    )
    return root


AUTH = 'username = "orca"\npassword_env = "ORCA_MAIL_PW"\nallow_plaintext_auth = true\n'


def run(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-C", str(root), "notify", *args], env=env, catch_exceptions=False)
    # `output` has stdout and stderr interleaved (click 8.1 mix_stderr default, and 8.2+).
    return result.exit_code, result.output


def test_notify_test_success_prints_server_reply(tmp_path: Path, auth_server: SmtpTestServer) -> None:
    root = write_campaign(tmp_path / "c", auth_server.port, AUTH)
    code, out = run(root, "--test", env={"ORCA_MAIL_PW": PASSWORD})
    assert code == 0, out
    assert "server said: 250 2.0.0 Message accepted for delivery" in out
    assert len(auth_server.messages) == 1
    assert "benzene" in auth_server.messages[0].message["Subject"]
    assert PASSWORD not in out


def test_notify_test_explains_535(tmp_path: Path, auth_server: SmtpTestServer) -> None:
    root = write_campaign(tmp_path / "c", auth_server.port, AUTH)
    code, out = run(root, "--test", env={"ORCA_MAIL_PW": "wrong-" + PASSWORD})
    assert code == EXIT_ERROR
    assert "535 5.7.8 Authentication credentials invalid" in out
    assert "check username" in out and "Traceback" not in out
    assert PASSWORD not in out and auth_server.messages == []


def test_notify_test_server_down_is_temporary(tmp_path: Path) -> None:
    root = write_campaign(tmp_path / "c", closed_port())
    code, out = run(root, "--test")
    assert code == EXIT_TEMPFAIL
    assert "refused" in out and "127.0.0.1" in out


def test_notify_test_with_config_file(tmp_path: Path, auth_server: SmtpTestServer) -> None:
    other = write_campaign(tmp_path / "elsewhere", auth_server.port, AUTH)
    code, out = run(
        tmp_path, "--test", "--config", str(other / "orca-hpc.toml"), env={"ORCA_MAIL_PW": PASSWORD}
    )
    assert code == 0, out
    assert len(auth_server.messages) == 1


def test_notify_bad_config_is_one_line(tmp_path: Path) -> None:
    root = write_campaign(tmp_path / "c", 25, 'password = "oops"\n')
    code, out = run(root, "--test")
    assert code == EXIT_ERROR
    assert "orca-hpc.toml: [mail] password:" in out and "oops" not in out
    assert len(out.strip().splitlines()) == 1


def test_notify_config_file_without_mail_table(tmp_path: Path) -> None:
    (tmp_path / "other.toml").write_text('name = "x"\n')
    code, out = run(tmp_path, "--test", "--config", str(tmp_path / "other.toml"))
    assert code == EXIT_ERROR and "other.toml: no [mail] table" in out


def make_campaign(root: Path, mail: str | None, site_mail: str | None = None) -> Path:
    """A real campaign (`orca-hpc init` layout); its site is a copy of `local` with `site_mail`."""
    from orca_hpc.config.campaign import init_campaign

    sites = root / "site_configs"
    sites.mkdir(parents=True)
    text = (Path(__file__).parents[1] / "site_configs" / "local.toml").read_text()
    (sites / "mysite.toml").write_text(text.replace('name = "local"', 'name = "mysite"') + (site_mail or ""))
    init_campaign(root, "mysite", name="benzene")
    if mail is not None:
        with (root / "orca-hpc.toml").open("a") as fh:
            fh.write("\n" + mail)
    return root


def mail_table(port: int, extra: str = "") -> str:
    return (
        f'[mail]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        f'from = "orca@cluster.example"\nto = "me@example.org"\ntimeout = 2\n{extra}'
    )


def add_to_outbox(root: Path, *items: dict[str, Any]) -> None:
    from orca_hpc.ledger.store import Ledger

    with Ledger(root / ".orca-hpc").transaction() as txn:
        txn.outbox.extend(items)


def outbox(root: Path) -> list[dict[str, Any]]:
    from orca_hpc.ledger.store import Ledger

    return Ledger(root / ".orca-hpc").snapshot().outbox


def test_notify_delivers_the_ledger_outbox(tmp_path: Path) -> None:
    with SmtpTestServer() as server:
        root = make_campaign(tmp_path / "c", mail_table(server.port))
        digest = build_failure_digest(
            [{"id": "j000001", "name": "w", "attempts": 2, "outcome": "input_error", "message": "bad"}],
            "benzene",
        )
        add_to_outbox(root, digest)
        code, out = run(root)
        assert code == 0, out
        assert "1 sent, 0 failed, 0 pending" in out
        [stored] = outbox(root)
        assert stored["status"] == "sent" and stored["sent_at"] and stored["attempts"] == 1
        assert [m.message["Message-ID"] for m in server.messages] == [digest["message_id"]]
        code, out = run(root)  # nothing is sent twice
        assert code == 0 and "nothing pending" in out and len(server.messages) == 1


def test_notify_outbox_server_down_keeps_it_pending(tmp_path: Path) -> None:
    root = make_campaign(tmp_path / "c", mail_table(closed_port(), "max_attempts = 1\n"))
    add_to_outbox(root, make_notification("k", "subject", "body\n"))
    code, out = run(root)
    assert code == EXIT_TEMPFAIL and "refused" in out
    [stored] = outbox(root)
    assert stored["status"] == "pending" and stored["attempts"] == 1 and "refused" in stored["last_error"]


def test_notify_requeue_failed(tmp_path: Path) -> None:
    with SmtpTestServer() as server:
        root = make_campaign(tmp_path / "c", mail_table(server.port))
        item = make_notification("k", "subject", "body\n")
        item["status"] = "failed_permanent"
        add_to_outbox(root, item)
        code, out = run(root)
        assert code == 0 and "nothing pending" in out and server.messages == []
        code, out = run(root, "--requeue-failed")
        assert code == 0, out
        assert outbox(root)[0]["status"] == "sent" and len(server.messages) == 1


def test_notify_uses_site_mail_when_campaign_has_none(tmp_path: Path) -> None:
    with SmtpTestServer() as server:
        root = make_campaign(tmp_path / "c", None, site_mail="\n" + mail_table(server.port))
        code, out = run(root, "--test")
        assert code == 0, out
        assert len(server.messages) == 1


def test_notify_no_mail_anywhere(tmp_path: Path) -> None:
    root = make_campaign(tmp_path / "c", None)
    code, out = run(root, "--test")
    assert code == EXIT_ERROR and "no [mail] table" in out and "mysite.toml" in out


def orca(root: Path, *args: str, password: str) -> str:
    """`orca-hpc -C ROOT ARGS` with the mail password in the environment; its output (exit 0 asserted)."""
    env = {"ORCA_TEST_MAIL_PW": password}
    result = CliRunner().invoke(main, ["-C", str(root), *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_digest_refused_for_a_wrong_password_is_not_forgotten(tmp_path: Path) -> None:
    """A wrong password fails the digest permanently (retrying the same login cannot help). It is
    kept, and every later reconcile says so and how to send it: the person fixes the password and
    the digest goes out. It was said once, in one cron run's output; the next runs said nothing,
    and with the password fixed it was never sent."""
    with SmtpTestServer(username="orca", password="right") as server:
        auth = 'username = "orca"\npassword_env = "ORCA_TEST_MAIL_PW"\nallow_plaintext_auth = true\n'
        root = make_campaign(tmp_path / "c", mail_table(server.port, auth))
        add_to_outbox(root, make_notification("failure_digest", "[orca-hpc] benzene: 1 job failed", "b\n"))
        for password in ("wrong", "wrong", "right"):
            out = orca(root, "reconcile", password=password)
            assert "1 notification(s) in the outbox could not be sent" in out, out
            assert "535" in out and "notify --requeue-failed" in out and password not in out
        assert server.messages == [] and outbox(root)[0]["status"] == "failed_permanent"
        out = orca(root, "notify", password="right")
        assert "nothing pending" in out and "notify --requeue-failed" in out
        orca(root, "notify", "--requeue-failed", password="right")
        assert len(server.messages) == 1 and outbox(root)[0]["status"] == "sent"
        assert "could not be sent" not in orca(root, "reconcile", password="right")
