"""The campaign log: format, levels, redaction, rotation, and rotation with several writers at once."""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orca_hpc.errors import UserError
from orca_hpc.logs import (
    LOG_NAME,
    LockedRotatingFileHandler,
    LogSettings,
    redact,
    settings_from_config,
    setup_logging,
    teardown_logging,
)
from tests.e2e import cli, new_campaign

DAY = 86400.0
LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z pid=(\d+) (\S+) (INFO|WARNING|ERROR|DEBUG) (\S+): (.*)$"
)


def _log_of(campaign: Path) -> str:
    return (campaign / ".orca-hpc" / "logs" / LOG_NAME).read_text()


# -- settings -------------------------------------------------------------------------------------


def test_settings_defaults_and_values() -> None:
    assert settings_from_config({}) == LogSettings("daily", 7, 0, "INFO")
    got = settings_from_config(
        {"logging": {"when": "midnight", "backup_count": 3, "max_bytes": 1000, "level": "debug"}}
    )
    assert got == LogSettings("daily", 3, 1000, "DEBUG")
    assert settings_from_config({"logging": {"when": "hourly"}}).when == "hourly"


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"when": "weekly"}, "when must be"),
        ({"backup_count": -1}, "backup_count must be"),
        ({"max_bytes": "1M"}, "max_bytes must be"),
        ({"max_bytes": True}, "max_bytes must be"),
        ({"level": "LOUD"}, "level must be"),
        ({"colour": 1}, "unknown key 'colour'"),
    ],
)
def test_bad_settings_are_one_line_user_errors(table: dict[str, object], needle: str) -> None:
    with pytest.raises(UserError, match=needle) as info:
        settings_from_config({"logging": table}, "camp/orca-hpc.toml")
    assert str(info.value).startswith("camp/orca-hpc.toml: [logging]") and "\n" not in str(info.value)


# -- redaction -------------------------------------------------------------------------------------


def test_redact_masks_passwords_tokens_and_url_credentials() -> None:
    text = redact(
        "login smtp://alice:s3cr3t@mail.example.org:587 password=hunter2 token: abc123 Secret 'x y'"
    )
    for secret in ("s3cr3t", "hunter2", "abc123", "x y"):
        assert secret not in text
    assert "smtp://alice:***@mail.example.org:587" in text and "password=***" in text
    assert redact("j000001 w: COMPLETED, E = -75.89 Eh") == "j000001 w: COMPLETED, E = -75.89 Eh"


# -- the handler -----------------------------------------------------------------------------------


def _handler(tmp_path: Path, **kw: object) -> LockedRotatingFileHandler:
    h = LockedRotatingFileHandler(tmp_path / LOG_NAME, LogSettings(**kw))  # type: ignore[arg-type]
    h.setFormatter(logging.Formatter("%(message)s"))
    return h


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("orca_hpc.test", logging.INFO, __file__, 1, msg, None, None)


def test_file_is_private_and_a_world_writable_one_is_fixed(tmp_path: Path) -> None:
    path = tmp_path / LOG_NAME
    path.write_text("")
    os.chmod(path, 0o666)
    h = _handler(tmp_path)
    h.emit(_record("one"))
    h.close()
    assert not os.stat(path).st_mode & stat.S_IWOTH
    assert not os.stat(h.lock_path).st_mode & stat.S_IWOTH
    assert path.read_text() == "one\n"


def test_daily_rollover_keeps_yesterday_under_its_date(tmp_path: Path) -> None:
    h = _handler(tmp_path, when="daily", backup_count=7)
    h.emit(_record("yesterday"))
    past = time.time() - DAY
    os.utime(h.path, (past, past))
    h.emit(_record("today"))
    h.close()
    dated = tmp_path / f"{LOG_NAME}.{time.strftime('%Y-%m-%d', time.gmtime(past))}"
    assert dated.read_text() == "yesterday\n"
    assert h.path.read_text() == "today\n"


def test_no_time_rollover_within_the_period(tmp_path: Path) -> None:
    h = _handler(tmp_path, when="daily")
    for i in range(3):
        h.emit(_record(f"line {i}"))
    h.close()
    assert h.backups() == []
    assert h.path.read_text() == "line 0\nline 1\nline 2\n"


def test_size_rollover_keeps_backup_count_generations(tmp_path: Path) -> None:
    h = _handler(tmp_path, when="never", backup_count=3, max_bytes=100)
    for i in range(60):
        h.emit(_record(f"line {i:03d} " + "x" * 20))
    h.close()
    backups = h.backups()
    assert len(backups) == 3
    assert all(p.stat().st_size <= 100 for p in [*backups, h.path])
    # the newest generations survive, in order, ending with the current file
    kept = "".join(p.read_text() for p in [*backups, h.path]).splitlines()
    numbers = [int(line.split()[1]) for line in kept]
    assert numbers == list(range(60 - len(numbers), 60))


def test_unwritable_log_warns_once_and_does_not_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = _handler(tmp_path)
    h.path.mkdir()  # the log path is a folder: every write fails
    h.emit(_record("a"))
    h.emit(_record("b"))
    err = capsys.readouterr().err
    assert err.count("cannot write the log") == 1


# -- several processes at once ---------------------------------------------------------------------

WRITER = """
import logging, sys
from pathlib import Path
from orca_hpc.logs import LockedRotatingFileHandler, LogSettings
path, tag, n, when, max_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
h = LockedRotatingFileHandler(Path(path), LogSettings(when=when, backup_count=0, max_bytes=max_bytes))
h.setFormatter(logging.Formatter("%(message)s"))
sys.stdin.readline()  # start together
for i in range(n):
    h.emit(logging.LogRecord("t", logging.INFO, "", 0, f"{tag} {i:05d} " + "y" * 40, None, None))
h.close()
"""


def _run_writers(tmp_path: Path, n: int, when: str, max_bytes: int, writers: int = 2) -> list[str]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path / LOG_NAME), f"p{k}", str(n), when, str(max_bytes)],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(writers)
    ]
    time.sleep(0.5)  # let both import before either writes
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert err == ""
    lines = []
    for f in sorted(tmp_path.glob(LOG_NAME + "*")):
        if not f.name.endswith(".lock"):
            lines.extend(f.read_text().splitlines())
    return lines


def _assert_each_line_once(lines: list[str], n: int, writers: int = 2) -> None:
    expected = {f"p{k} {i:05d} " + "y" * 40 for k in range(writers) for i in range(n)}
    assert len(lines) == len(expected), "lines lost or duplicated"
    assert set(lines) == expected, "torn or foreign lines"


def test_two_processes_many_size_rollovers_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    n = 1500
    lines = _run_writers(tmp_path, n, "never", max_bytes=4000)
    _assert_each_line_once(lines, n)
    generations = [p for p in tmp_path.glob(LOG_NAME + ".*") if not p.name.endswith(".lock")]
    assert len(generations) > 20  # the rollovers really happened, and concurrently
    # nobody kept writing into a file another process had already rolled over
    assert all(p.stat().st_size <= 4000 for p in [*generations, tmp_path / LOG_NAME])
    # within each writer, lines stay in order across generations (sorted by last write)
    h = LockedRotatingFileHandler(tmp_path / LOG_NAME)
    ordered = [ln for p in [*h.backups(), h.path] for ln in p.read_text().splitlines()]
    for k in range(2):
        mine = [int(ln.split()[1]) for ln in ordered if ln.startswith(f"p{k} ")]
        assert mine == list(range(n))


def test_two_processes_forced_daily_rollover_happens_once(tmp_path: Path) -> None:
    path = tmp_path / LOG_NAME
    path.write_text("old line\n")
    past = time.time() - DAY
    os.utime(path, (past, past))  # both writers find yesterday's file: each sees the rollover due
    n = 500
    lines = _run_writers(tmp_path, n, "daily", max_bytes=0)
    dated = tmp_path / f"{LOG_NAME}.{time.strftime('%Y-%m-%d', time.gmtime(past))}"
    assert dated.read_text() == "old line\n"
    assert not list(tmp_path.glob(LOG_NAME + ".*.1")), "rolled over twice"
    assert "old line" not in path.read_text()
    _assert_each_line_once([ln for ln in lines if ln != "old line"], n)


# -- through the CLI -------------------------------------------------------------------------------


def test_command_messages_land_in_the_log_with_pid_and_command(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    result = cli(camp, "reconcile")
    assert result.output == ""  # the terminal stays quiet by default
    lines = [LINE.match(ln) for ln in _log_of(camp).splitlines()]
    assert lines and all(lines)
    last = lines[-1]
    assert last is not None
    assert last.group(1) == str(os.getpid()) and last.group(2) == "reconcile"
    assert last.group(5).startswith("reconciled: 0 change(s)")


def test_verbose_shows_log_records_once_and_quiet_hides_them(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path)
    setup_logging(camp, verbose=1, command="test")
    try:
        from orca_hpc.cli.common import say

        class Obj:
            quiet = False

        logging.getLogger("orca_hpc.test").info("detail password=hunter2")
        say(Obj(), "short message")
    finally:
        teardown_logging()
    log = _log_of(camp)
    assert "detail password=***" in log and "hunter2" not in log
    assert "short message" in log


def test_console_levels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for verbose, quiet, shown in ((0, False, {"warning"}), (1, False, {"info", "warning"}), (0, True, set())):
        setup_logging(None, verbose=verbose, quiet=quiet)
        try:
            logging.getLogger("orca_hpc.t").info("an info")
            logging.getLogger("orca_hpc.t").warning("a warning")
            logging.getLogger("orca_hpc.t").info("said already", extra={"echoed": True})
        finally:
            teardown_logging()
        err = capsys.readouterr().err
        assert ("orca-hpc: info: an info" in err) == ("info" in shown)
        assert ("orca-hpc: warning: a warning" in err) == ("warning" in shown)
        assert "said already" not in err


def test_malformed_logging_table_is_exit_1_one_line(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path, overrides='\n[logging]\nwhen = "weekly"\n')
    result = cli(camp, "status", "--no-reconcile", expect=1)
    assert "[logging] when must be" in result.output and result.output.count("\n") == 1


def test_campaign_settings_drive_the_handler(tmp_path: Path) -> None:
    camp = new_campaign(
        tmp_path, overrides='\n[logging]\nbackup_count = 2\nmax_bytes = 300\nlevel = "DEBUG"\n'
    )
    handler = setup_logging(camp, command="test")
    try:
        assert handler is not None
        assert handler.settings == LogSettings("daily", 2, 300, "DEBUG")
        for i in range(40):
            logging.getLogger("orca_hpc.test").debug("debug line %d", i)
    finally:
        teardown_logging()
    assert len(handler.backups()) == 2
    assert "debug line 39" in _log_of(camp)


def test_held_records_are_written_together_when_the_block_ends(tmp_path: Path) -> None:
    from orca_hpc.logs import held_records, log_echoed

    campaign = new_campaign(tmp_path)
    setup_logging(campaign, command="test")
    try:
        log_echoed("before")
        with held_records():
            for i in range(3):
                log_echoed(f"held {i}")
            assert "held" not in _log_of(campaign)  # kept until the block ends
        log_echoed("after")
        messages = [LINE.match(line).group(5) for line in _log_of(campaign).splitlines()]  # type: ignore[union-attr]
        assert messages == ["before", "held 0", "held 1", "held 2", "after"]
    finally:
        teardown_logging()


def test_held_echoed_lines_are_the_lines_the_logging_framework_makes(tmp_path: Path) -> None:
    """While held, an echoed line is made without a LogRecord (a reconcile echoes a line per finished
    job); it must be the line the framework makes, secrets masked, at every level."""
    from orca_hpc import logs
    from orca_hpc.logs import held_records, log_echoed

    campaign = new_campaign(tmp_path)
    setup_logging(campaign, command="status")
    messages = [("j000001 w: COMPLETED, E = -1.10000000 Eh", logging.INFO), ("token=abc x", logging.WARNING)]
    root = logging.getLogger()
    listeners = root.handlers[:]  # pytest's capture: the framework's path
    try:
        with held_records():
            root.handlers = []  # only the campaign log listens: the quick path
            assert logs._sole_holder(logging.getLogger("orca_hpc.cli"), logging.INFO) is not None
            for message, level in messages:
                log_echoed(message, level)
            root.handlers = [logging.NullHandler()]
            assert logs._sole_holder(logging.getLogger("orca_hpc.cli"), logging.INFO) is None
            for message, level in messages:
                log_echoed(message, level)
    finally:
        root.handlers = listeners
        teardown_logging()
    lines = [line.split(" ", 1)[1] for line in _log_of(campaign).splitlines()]  # without the time
    assert len(lines) == 4 and lines[:2] == lines[2:]
    assert lines[0] == f"pid={os.getpid()} status INFO orca_hpc.cli: {messages[0][0]}"
    assert lines[1].endswith("WARNING orca_hpc.cli: token=*** x")


@pytest.mark.parametrize(
    "text",
    ["PassWord: x", "x://u:p@h", "apikey y", "api-key=z", "Authorization bearer", "credential 'a b'",
     "secret",
     "tok en", "j000001 w: COMPLETED", "pas sword=1", "AUTH=1", "smtp://host:25 a",
     "pa\u017f\u017fword=x", "\u212aey token=1", "TOKEN=z"],
)  # fmt: skip
def test_redact_looks_closer_only_at_texts_that_may_hold_a_secret(text: str) -> None:
    """``redact`` skips texts without any hint of a secret: the two patterns must agree it is clean."""
    from orca_hpc import logs

    full = logs._SECRET_WORDS.sub(
        lambda m: f"{m.group(1)}{m.group(2)}***", logs._URL_USERINFO.sub(r"\1:***@", text)
    )
    assert redact(text) == full
    if full != text:
        assert logs._SECRET_HINT.search(text) and logs._may_hold_secret(text)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["pass", "PassWd", "token", "api_key", "Auth", "://", "u:p@", "=", ": ", " ", "'",
                         '"', "x", "\u017f", "\u212a", "j000001", "\n"]) | st.text(max_size=3),
        max_size=8,
    ).map("".join)
)  # fmt: skip
def test_redact_with_its_quick_look_masks_what_the_patterns_mask(text: str) -> None:
    from orca_hpc import logs

    full = logs._SECRET_WORDS.sub(
        lambda m: f"{m.group(1)}{m.group(2)}***", logs._URL_USERINFO.sub(r"\1:***@", text)
    )
    assert redact(text) == full
