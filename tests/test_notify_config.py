"""`[mail]` validation: every error names the source and the key; the password stays hidden."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from orca_hpc.errors import UserError
from orca_hpc.notify.config import MailConfig, Secret

SECRET = "hunter2-very-secret"


def table(**extra: Any) -> dict[str, Any]:
    return {"host": "smtp.example.org", "from": "me@example.org", "to": "you@example.org", **extra}


def load(d: dict[str, Any], **kw: Any) -> MailConfig:
    return MailConfig.from_dict(d, "/camp/orca-hpc.toml", **kw)


def test_defaults() -> None:
    cfg = load(table())
    assert (cfg.security, cfg.port, cfg.max_attempts, cfg.backoff_base) == ("starttls", 587, 5, 2.0)
    assert cfg.to == ("you@example.org",) and cfg.password is None and not cfg.allow_plaintext_auth
    assert load(table(security="ssl")).port == 465
    assert load(table(to=["a@x.org", "b@x.org"])).to == ("a@x.org", "b@x.org")


@pytest.mark.parametrize(
    ("d", "key", "words"),
    [
        ({"from": "a@b", "to": "c@d"}, "host", "missing"),
        (table(port=0), "port", "1-65535"),
        (table(port="25"), "port", "integer"),
        (table(security="tls"), "security", "ssl, starttls, none"),
        (table(to=[]), "to", "non-empty"),
        (table(to="not an address"), "to", "not an e-mail address"),
        (table(to="a@b\r\nRCPT TO:<evil@x>"), "to", "not an e-mail address"),
        (table(**{"from": 3}), "from", "non-empty string"),
        # Taken at load, not at the send (where it failed for ever as "the password is non-ASCII").
        (table(**{"from": "jörg@example.org"}), "from", "non-ASCII"),
        (table(to=["you@example.org", "zoë@example.org"]), "to", "non-ASCII"),
        (table(timeout=0), "timeout", "positive"),
        (table(max_attempts=0), "max_attempts", "1-20"),
        (table(backoff_base=10, backoff_max=5), "backoff_max", ">= backoff_base"),
        (table(allow_plaintext_auth="yes"), "allow_plaintext_auth", "true or false"),
        (table(hots="x"), "hots", "unknown key"),
        (table(password=SECRET), "password", "password_env"),
        (table(username="u"), "username", "neither password_env nor password_file"),
        (table(password_env="X"), "password_env", "not set"),
    ],
)
def test_errors_name_source_and_key(d: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(UserError) as info:
        load(d, environ={})
    msg = str(info.value)
    assert msg.startswith("/camp/orca-hpc.toml: [mail] " + key + ":"), msg
    assert words in msg
    assert "\n" not in msg and SECRET not in msg


def test_password_from_env_is_hidden_everywhere() -> None:
    cfg = load(table(username="u", password_env="MAILPW"), environ={"MAILPW": SECRET})
    assert cfg.password is not None and cfg.password.reveal() == SECRET
    for text in (repr(cfg), str(cfg), f"{cfg.password}", repr(cfg.password), cfg.describe()):
        assert SECRET not in text
    with pytest.raises(TypeError):
        pickle.dumps(cfg)
    with pytest.raises(TypeError):
        json.dumps(cfg.password)


def test_password_env_without_username_refused() -> None:
    with pytest.raises(UserError, match=r"\[mail\] username: missing"):
        load(table(password_env="MAILPW"), environ={"MAILPW": SECRET})


def test_plaintext_auth_refused_unless_allowed() -> None:
    d = table(security="none", username="u", password_env="MAILPW")
    with pytest.raises(UserError, match=r"\[mail\] security: refusing to send the password"):
        load(d, environ={"MAILPW": SECRET})
    cfg = load({**d, "allow_plaintext_auth": True}, environ={"MAILPW": SECRET})
    assert cfg.allow_plaintext_auth and cfg.port == 25


def test_password_file_ok(tmp_path: Path) -> None:
    pw = tmp_path / "mailpw"
    pw.write_text(SECRET + "\n")
    pw.chmod(0o600)
    cfg = load(table(username="u", password_file="mailpw"), base_dir=tmp_path)
    assert cfg.password is not None and cfg.password.reveal() == SECRET


def test_password_file_relative_to_source_file(tmp_path: Path) -> None:
    pw = tmp_path / "mailpw"
    pw.write_text(SECRET)
    pw.chmod(0o400)
    cfg = MailConfig.from_dict(table(username="u", password_file="mailpw"), str(tmp_path / "orca-hpc.toml"))
    assert cfg.password is not None and cfg.password.reveal() == SECRET


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_password_file_readable_by_others_refused(tmp_path: Path, mode: int) -> None:
    pw = tmp_path / "mailpw"
    pw.write_text(SECRET)
    pw.chmod(mode)
    with pytest.raises(UserError) as info:
        load(table(username="u", password_file=str(pw)))
    msg = str(info.value)
    assert "[mail] password_file:" in msg and str(pw) in msg and f"{mode:04o}" in msg
    assert "chmod 600" in msg and SECRET not in msg


def test_password_file_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="password_file: cannot read"):
        load(table(username="u", password_file=str(tmp_path / "nope")))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(UserError, match="is empty"):
        load(table(username="u", password_file=str(empty)))


def test_both_password_sources_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="choose one"):
        load(table(username="u", password_env="A", password_file="b"), environ={"A": "x"})


def test_secret_equality_does_not_reveal() -> None:
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")
    assert "a" not in repr(Secret("a")).replace("Secret", "")


def test_ca_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert load(table(ca_file="ca.pem"), base_dir=tmp_path).ca_file == str(ca)
    with pytest.raises(UserError, match=r"\[mail\] ca_file: .*nope.pem is not a file"):
        load(table(ca_file="nope.pem"), base_dir=tmp_path)
    with pytest.raises(UserError, match=r"\[mail\] ca_file: only used with"):
        load(table(ca_file=str(ca), security="none"))


def test_campaign_mail_is_resolved_once_relative_to_the_file_holding_the_table(tmp_path: Path) -> None:
    from orca_hpc.config.campaign import init_campaign, load_campaign
    from orca_hpc.notify.config import campaign_mail

    sites = tmp_path / "sites"
    sites.mkdir()
    shipped = (Path(__file__).resolve().parents[1] / "site_configs" / "local.toml").read_text()
    mail = '\n[mail]\nhost = "smtp.example.org"\nfrom = "a@example.org"\nto = "b@example.org"\n'
    (sites / "mysite.toml").write_text(
        shipped.replace('name = "local"', 'name = "mysite"')
        + mail
        + ('username = "u"\npassword_file = "mailpw"\n')
    )
    (sites / "mailpw").write_text(SECRET + "\n")
    (sites / "mailpw").chmod(0o600)
    init_campaign(tmp_path / "camp", str(sites / "mysite.toml"))
    camp = load_campaign(tmp_path / "camp")
    cfg = campaign_mail(camp)
    assert (
        cfg is not None and cfg.password is not None and cfg.password.reveal() == SECRET
    )  # read beside the site
    own = (tmp_path / "camp" / "orca-hpc.toml").read_text() + mail.replace(
        "smtp.example.org", "own.example.org"
    )
    (tmp_path / "camp" / "orca-hpc.toml").write_text(own)
    cfg = campaign_mail(load_campaign(tmp_path / "camp"))
    assert cfg is not None and cfg.host == "own.example.org"  # the campaign's own table wins
