"""The `[mail]` table (site config or campaign `orca-hpc.toml`) -> a validated `MailConfig`.

The password itself never lives in a config file: only the name of an environment variable
(`password_env`) or a file readable by the owner alone (`password_file`). It is held in a
`Secret`, whose repr/str are redacted, so it cannot leak through logs, tracebacks or dumps.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orca_hpc.errors import InputFileError

if TYPE_CHECKING:
    from orca_hpc.config.campaign import Campaign

SECURITY_MODES = ("ssl", "starttls", "none")
DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}

_KEYS = frozenset(
    {
        "host",
        "port",
        "security",
        "username",
        "password_env",
        "password_file",
        "from",
        "to",
        "allow_plaintext_auth",
        "timeout",
        "max_attempts",
        "backoff_base",
        "backoff_max",
        "ca_file",
    }
)


class Secret:
    """A string that refuses to show itself: repr/str/format are redacted; `reveal()` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        # Pickling would write the password to disk (e.g. submitit's job pickles).
        raise TypeError("Secret cannot be pickled")


@dataclass(frozen=True)
class MailConfig:
    host: str
    from_addr: str
    to: tuple[str, ...]
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    password: Secret | None = field(default=None, repr=False, compare=False)
    allow_plaintext_auth: bool = False
    timeout: float = 30.0
    max_attempts: int = 5
    backoff_base: float = 2.0
    backoff_max: float = 60.0
    ca_file: str | None = None  # PEM bundle to verify the server by (sites with their own CA)
    source: str = "<mail config>"

    @property
    def uses_tls(self) -> bool:
        return self.security in ("ssl", "starttls")

    def describe(self) -> str:
        """One line for humans; never includes the password."""
        auth = f", user {self.username}" if self.username else ""
        return f"{self.host}:{self.port} ({self.security}{auth})"

    @classmethod
    def from_dict(
        cls,
        d: Mapping[str, Any],
        source: str,
        *,
        base_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> MailConfig:
        """Validate a `[mail]` table; every error is a one-line UserError naming `source` and the key.

        `base_dir` resolves a relative `password_file` (default: the folder of `source` if it is a
        file, else the current folder).
        """
        env = os.environ if environ is None else environ

        def fail(key: str, problem: str) -> InputFileError:
            return InputFileError(source, f"[mail] {key}: {problem}")

        if not isinstance(d, Mapping):
            raise InputFileError(source, "[mail] must be a table")
        if "password" in d:
            raise fail(
                "password",
                "do not put the password in a config file; use password_env (name of an "
                "environment variable) or password_file (a file only you can read)",
            )
        unknown = sorted(set(d) - _KEYS)
        if unknown:
            raise fail(unknown[0], f"unknown key (known: {', '.join(sorted(_KEYS))})")

        host = _str(d, "host", fail, required=True)
        assert host is not None
        if any(c.isspace() for c in host) or "/" in host:
            raise fail("host", f"not a host name: {host!r}")

        security = _str(d, "security", fail) or "starttls"
        if security not in SECURITY_MODES:
            raise fail("security", f"must be one of {', '.join(SECURITY_MODES)}, not {security!r}")

        port = d.get("port", DEFAULT_PORTS[security])
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise fail("port", f"must be an integer 1-65535, not {port!r}")

        from_addr = _address(_str(d, "from", fail, required=True), "from", fail)
        to_raw = d.get("to")
        if isinstance(to_raw, str):
            to_list = [to_raw]
        elif isinstance(to_raw, list) and to_raw and all(isinstance(a, str) for a in to_raw):
            to_list = list(to_raw)
        elif to_raw is None:
            raise fail("to", "missing (an address or a list of addresses)")
        else:
            raise fail("to", "must be an address or a non-empty list of addresses")
        to = tuple(_address(a, "to", fail) for a in to_list)

        username = _str(d, "username", fail)
        allow_plain = d.get("allow_plaintext_auth", False)
        if not isinstance(allow_plain, bool):
            raise fail("allow_plaintext_auth", f"must be true or false, not {allow_plain!r}")

        password = _password(d, source, fail, base_dir, env)
        if password is not None and not username:
            raise fail("username", "missing: a password is configured but no username")
        if username and password is None:
            raise fail("username", "set, but neither password_env nor password_file is")
        if password is not None and security == "none" and not allow_plain:
            raise fail(
                "security",
                "refusing to send the password over a connection without TLS; use ssl or "
                "starttls, or set allow_plaintext_auth = true if you really mean it",
            )

        timeout = _number(d, "timeout", 30.0, fail)
        backoff_base = _number(d, "backoff_base", 2.0, fail)
        backoff_max = _number(d, "backoff_max", 60.0, fail)
        if backoff_max < backoff_base:
            raise fail("backoff_max", f"must be >= backoff_base ({backoff_base})")
        max_attempts = d.get("max_attempts", 5)
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 1 <= max_attempts <= 20:
            raise fail("max_attempts", f"must be an integer 1-20, not {max_attempts!r}")

        ca_file = _str(d, "ca_file", fail)
        if ca_file is not None:
            ca_path = Path(ca_file).expanduser()
            if not ca_path.is_absolute():
                ca_path = _base(source, base_dir) / ca_path
            if not ca_path.is_file():
                raise fail("ca_file", f"{ca_path} is not a file")
            if security == "none":
                raise fail("ca_file", 'only used with security = "ssl" or "starttls"')
            ca_file = str(ca_path)

        return cls(
            host=host,
            ca_file=ca_file,
            port=port,
            security=security,
            username=username,
            password=password,
            from_addr=from_addr,
            to=to,
            allow_plaintext_auth=allow_plain,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            source=source,
        )


def _base(source: str, base_dir: Path | None) -> Path:
    if base_dir is not None:
        return base_dir
    src = Path(source)
    return src.parent if src.suffix else Path.cwd()


def _str(d: Mapping[str, Any], key: str, fail: Any, *, required: bool = False) -> str | None:
    value = d.get(key)
    if value is None:
        if required:
            raise fail(key, "missing")
        return None
    if not isinstance(value, str) or not value.strip():
        raise fail(key, f"must be a non-empty string, not {value!r}")
    return value.strip()


def _address(value: str | None, key: str, fail: Any) -> str:
    assert value is not None
    # CR/LF would let a config value inject SMTP commands or headers.
    if any(c in value for c in "\r\n\0") or "@" not in value or any(c.isspace() for c in value):
        raise fail(key, f"not an e-mail address: {value!r}")
    if not value.isascii():
        # smtplib sends MAIL FROM/RCPT TO as ASCII (no SMTPUTF8): the send would fail on every try, and
        # its UnicodeError would be taken for a non-ASCII password. Say it here, once, by its key.
        raise fail(key, f"{value!r} has non-ASCII characters, which SMTP here cannot send")
    return value


def _number(d: Mapping[str, Any], key: str, default: float, fail: Any) -> float:
    value = d.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise fail(key, f"must be a positive number of seconds, not {value!r}")
    return float(value)


def _password(
    d: Mapping[str, Any], source: str, fail: Any, base_dir: Path | None, env: Mapping[str, str]
) -> Secret | None:
    env_name = _str(d, "password_env", fail)
    file_name = _str(d, "password_file", fail)
    if env_name and file_name:
        raise fail("password_file", "set both password_env and password_file; choose one")
    if env_name:
        value = env.get(env_name)
        if not value:
            raise fail("password_env", f"environment variable {env_name} is not set or empty")
        return Secret(value)
    if file_name:
        path = Path(file_name).expanduser()
        if not path.is_absolute():
            path = _base(source, base_dir) / path
        try:
            st = path.stat()
        except OSError as err:
            raise fail("password_file", f"cannot read {path}: {err.strerror}") from None
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise fail(
                "password_file",
                f"{path} has mode {mode:04o}, readable by group or others; run: chmod 600 '{path}'",
            )
        try:
            value = path.read_text(encoding="utf-8").strip("\r\n")
        except OSError as err:
            raise fail("password_file", f"cannot read {path}: {err.strerror}") from None
        except UnicodeDecodeError:
            raise fail("password_file", f"{path} is not UTF-8 text") from None
        if not value:
            raise fail("password_file", f"{path} is empty")
        return Secret(value)
    return None


def campaign_mail(campaign: Campaign) -> MailConfig | None:
    """The campaign's mail settings, or None when neither it nor its site has a ``[mail]`` table.

    The one resolver: the campaign's own table wins over its site's, and relative paths in a table
    are relative to the file the table is in.
    """
    own = campaign.config.get("mail")
    if own:
        return MailConfig.from_dict(dict(own), str(campaign.config_path), base_dir=campaign.root)
    site = campaign.site
    if not site.mail:
        return None
    source = site.source
    return MailConfig.from_dict(
        dict(site.mail), str(source or site.name), base_dir=source.parent if source else campaign.root
    )
