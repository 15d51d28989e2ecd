"""The campaign log: ``CAMPAIGN/.orca-hpc/logs/orca-hpc.log``, safe with several processes at once.

Cron's ``reconcile``, a ``watch`` under systemd and a person's ``submit`` may all log at the same
moment. The stdlib rotating handlers rename the file from whichever process notices first and
keep writing to their old descriptor, so lines get lost or land in the wrong generation. Here
every record is written under an ``flock`` on ``orca-hpc.log.lock``; while holding it the writer

1. rolls the file over if it is due (the file's last write, its mtime, lies in an earlier period
   than now, or the record would push it past ``max_bytes``),
2. re-opens its descriptor when the path no longer names the file it has open (another process
   rolled it over: compare inodes),
3. appends the whole line with ``O_APPEND``.

So a rollover happens exactly once, and each line is written exactly once, to the current file.

Rotated generations are ``orca-hpc.log.<period>`` (``2026-11-27`` daily, ``2026-11-27T21`` hourly;
``.1``, ``.2``, ... are added when a size rollover repeats a name); the newest ``backup_count``
are kept. Periods are UTC, like the timestamps.

Configured by the campaign's ``orca-hpc.toml``::

    [logging]
    when = "daily"        # "daily" (default), "hourly" or "never"
    backup_count = 7      # rotated generations kept (0: keep all)
    max_bytes = 0         # also roll over past this size (0: no size limit)
    level = "INFO"        # what the file gets ("DEBUG" for more)

The terminal shows the commands' own short messages; ``-v`` adds the log records (``-vv``: debug),
``-q`` keeps only errors. Secrets (passwords, tokens, credentials in URLs) are masked in both.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orca_hpc.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LOG_NAME = "orca-hpc.log"
ROOT_LOGGER = "orca_hpc"
FILE_MODE = 0o640
_PERIOD_FORMATS = {"daily": "%Y-%m-%d", "hourly": "%Y-%m-%dT%H", "never": ""}
_WHEN_ALIASES = {"midnight": "daily", "d": "daily", "h": "hourly", "none": "never"}
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# Values after these words are masked, whatever the message: "password=x", "token: x", "secret x".
_SECRET_WORDS = re.compile(
    r"(?i)\b(pass(?:word|wd)?|secret|token|api[_-]?key|credentials?|auth(?:orization)?)(\s*[=:]\s*|\s+)"
    r"(?!\*\*\*)(\"[^\"]*\"|'[^']*'|\S+)"
)
_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+):[^@\s/]+@", re.I)


# Every text either pattern above matches holds one of these: a text without any needs no masking
# (the campaign log gets a line per finished job). ASCII text is searched for them in lower case (a
# few substring searches, ~20x cheaper than this pattern); other text always gets the substitutions
# (case-insensitive matching also pairs "ſ" with "s" and the Kelvin sign with "k").
_SECRET_HINT = re.compile(r"(?i)pass|secret|token|api|credential|auth|://")
_SECRET_HINT_WORDS = ("pass", "secret", "token", "api", "credential", "auth", "://")


def _may_hold_secret(text: str) -> bool:
    if not text.isascii():
        return True
    lower = text.lower()
    return any(word in lower for word in _SECRET_HINT_WORDS)


def redact(text: str) -> str:
    """``text`` with passwords, tokens and URL credentials replaced by ``***``."""
    if not _may_hold_secret(text):
        return text
    text = _URL_USERINFO.sub(r"\1:***@", text)
    return _SECRET_WORDS.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


@dataclass(frozen=True)
class LogSettings:
    when: str = "daily"
    backup_count: int = 7
    max_bytes: int = 0
    level: str = "INFO"


def settings_from_config(config: dict[str, Any], source: str = "orca-hpc.toml") -> LogSettings:
    """The ``[logging]`` table of a campaign config -> ``LogSettings`` (``UserError`` if malformed)."""
    table = config.get("logging", {})
    if not isinstance(table, dict):
        raise UserError(f"{source}: [logging] must be a table")
    unknown = sorted(set(table) - {"when", "backup_count", "max_bytes", "level"})
    if unknown:
        known = "when, backup_count, max_bytes, level"
        raise UserError(f"{source}: [logging]: unknown key {unknown[0]!r} (known: {known})")
    defaults = LogSettings()
    when = table.get("when", defaults.when)
    if not isinstance(when, str) or _WHEN_ALIASES.get(when.lower(), when.lower()) not in _PERIOD_FORMATS:
        raise UserError(f'{source}: [logging] when must be "daily", "hourly" or "never", not {when!r}')
    when = _WHEN_ALIASES.get(when.lower(), when.lower())
    numbers = {}
    for key in ("backup_count", "max_bytes"):
        value = table.get(key, getattr(defaults, key))
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UserError(f"{source}: [logging] {key} must be a whole number >= 0, not {value!r}")
        numbers[key] = value
    level = table.get("level", defaults.level)
    if not isinstance(level, str) or level.upper() not in _LEVELS:
        raise UserError(f"{source}: [logging] level must be one of {', '.join(_LEVELS)}, not {level!r}")
    return LogSettings(when, numbers["backup_count"], numbers["max_bytes"], level.upper())


class LockedRotatingFileHandler(logging.Handler):
    """Appends records to ``path`` under an flock; rolls over by period and/or size (see module doc)."""

    def __init__(self, path: Path, settings: LogSettings | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.settings = settings or LogSettings()
        self._fd: int | None = None
        self._ino: tuple[int, int] | None = None
        self._failed = False
        self._held: list[str] | None = None  # records kept by ``hold`` for one write

    # -- files ------------------------------------------------------------------------------

    def _open_private(self, path: Path, flags: int) -> int:
        flags |= os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, FILE_MODE)
        st = os.fstat(fd)
        if st.st_mode & stat.S_IWOTH and st.st_uid == os.geteuid():
            # a log that anyone can write cannot be trusted
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~stat.S_IWOTH)
        return fd

    def _current_file(self, st: os.stat_result | None) -> int:
        """Our descriptor for the file the path names now (re-opened after another process rolled over);
        ``st``: the path's stat, taken under the lock (None: no file there)."""
        now_ino = (st.st_dev, st.st_ino) if st is not None else None
        if self._fd is None or now_ino != self._ino:
            self._close_fd()
            self._fd = self._open_private(self.path, os.O_WRONLY | os.O_APPEND)
            st = os.fstat(self._fd)
            self._ino = (st.st_dev, st.st_ino)
        return self._fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        self._ino = None

    # -- rollover ---------------------------------------------------------------------------

    def _period(self, t: float) -> str:
        fmt = _PERIOD_FORMATS[self.settings.when]
        return time.strftime(fmt, time.gmtime(t)) if fmt else ""

    def rollover_due(self, size: int, mtime: float, incoming: int, now: float) -> bool:
        if size == 0:
            return False
        if self.settings.when != "never" and self._period(mtime) != self._period(now):
            return True
        return bool(self.settings.max_bytes) and size + incoming > self.settings.max_bytes

    def _rotated_name(self, mtime: float) -> Path:
        stamp = self._period(mtime) or time.strftime("%Y-%m-%dT%H%M%S", time.gmtime(mtime))
        candidate = self.path.with_name(f"{self.path.name}.{stamp}")
        n = 0
        while os.path.lexists(candidate):
            n += 1
            candidate = self.path.with_name(f"{self.path.name}.{stamp}.{n}")
        return candidate

    def backups(self) -> list[Path]:
        """Rotated generations, oldest first (by their last write)."""
        prefix = self.path.name + "."
        found = [
            p
            for p in self.path.parent.iterdir()
            if p.name.startswith(prefix) and p.name != self.lock_path.name
        ]
        return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))

    def do_rollover(self, mtime: float) -> None:
        """Rename the current file to its generation name and drop generations beyond ``backup_count``.
        The caller holds the lock."""
        os.rename(self.path, self._rotated_name(mtime))
        self._close_fd()
        if self.settings.backup_count > 0:  # 0 keeps every generation, as in the stdlib handlers
            backups = self.backups()
            for old in backups[: max(0, len(backups) - self.settings.backup_count)]:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()

    # -- writing ----------------------------------------------------------------------------

    def write_line(self, line: str) -> None:
        self.write_lines([line])

    def write_lines(self, lines: list[str]) -> None:
        """Append ``lines`` with one lock, one stat and one write (a mass completion logs a line per job)."""
        data = "".join(line.rstrip("\n") + "\n" for line in lines).encode("utf-8", errors="replace")
        lock_fd = self._open_private(self.lock_path, os.O_RDWR)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                st = None
            if st is not None and self.rollover_due(st.st_size, st.st_mtime, len(data), time.time()):
                self.do_rollover(st.st_mtime)
                st = None  # renamed away: the path names no file now
            fd = self._current_file(st)  # one stat per record, not two
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(lock_fd)  # releases the flock

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            self.acquire()  # threads of this process: one descriptor, one writer at a time
            try:
                if self._held is not None:
                    self._held.append(line)
                else:
                    self.write_line(line)
            finally:
                self.release()
        except Exception:
            self.handleError(record)

    def quick_lines(self) -> bool:
        """True when ``hold_line`` makes the line ``emit`` would: this module's file format and filter."""
        fmt = self.formatter
        return (
            type(fmt) is _UTCFormatter
            and fmt._fmt == FILE_FORMAT
            and isinstance(fmt._style, logging.PercentStyle)
            and len(self.filters) == 1
            and type(self.filters[0]) is _CommandFilter
        )

    def hold_line(self, level: int, name: str, message: str) -> None:
        """Keep the line ``emit`` would make of an echoed record (only while holding, see ``quick_lines``)."""
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        command = self.filters[0].command  # type: ignore[union-attr]
        fields = {
            "asctime": f"{stamp}.{int((now - int(now)) * 1000):03d}Z",
            "process": os.getpid(),
            "command": command,
            "levelname": logging.getLevelName(level),
            "name": name,
            "message": str(message),
        }
        line = redact(FILE_FORMAT % fields)
        self.acquire()
        try:
            if self._held is not None:
                self._held.append(line)
            else:
                self.write_line(line)
        except Exception:
            self.handleError(logging.LogRecord(name, level, "", 0, message, None, None))
        finally:
            self.release()

    def hold(self) -> None:
        """Keep records in memory until ``write_held`` (see ``held_records``)."""
        self.acquire()
        try:
            if self._held is None:
                self._held = []
        finally:
            self.release()

    def write_held(self) -> None:
        """Write the records kept since ``hold`` in one append, and write each record at once again."""
        self.acquire()
        try:
            held, self._held = self._held, None
            if held:
                self.write_lines(held)
        except Exception:
            self.handleError(logging.LogRecord(self.name or "", logging.ERROR, "", 0, "", None, None))
        finally:
            self.release()

    def handleError(self, record: logging.LogRecord) -> None:
        # A full disk or a read-only campaign must not break the command, nor print a traceback per record.
        if not self._failed:
            self._failed = True
            err = sys.exc_info()[1]
            with contextlib.suppress(Exception):
                sys.stderr.write(f"orca-hpc: warning: cannot write the log {self.path}: {err}\n")

    def close(self) -> None:
        self.acquire()
        try:
            self._close_fd()
        finally:
            self.release()
        super().close()


class _UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _ConsoleFilter(logging.Filter):
    """Leaves out what the command has already printed itself (``say``), so nothing shows twice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "echoed", False)


class _CommandFilter(logging.Filter):
    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command

    def filter(self, record: logging.LogRecord) -> bool:
        record.command = self.command
        return True


FILE_FORMAT = "%(asctime)s pid=%(process)d %(command)s %(levelname)s %(name)s: %(message)s"

_installed: list[logging.Handler] = []


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the moment (click's test runner swaps it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


@contextlib.contextmanager
def held_records() -> Iterator[None]:
    """Records for the campaign log are written together when the block ends: one lock, one stat and
    one append instead of one each per record (a reconcile after 1,000 completions logs 1,000 lines).

    They are written when the block ends however it ends (an exception included), after what they
    report was saved; a process killed inside the block loses them, as it loses a line being written."""
    files = [h for h in _installed if isinstance(h, LockedRotatingFileHandler)]
    for handler in files:
        handler.hold()
    try:
        yield
    finally:
        for handler in files:
            handler.write_held()


def teardown_logging() -> None:
    """Remove what ``setup_logging`` installed (the CLI calls it when a command ends)."""
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in _installed:
        logger.removeHandler(handler)
        handler.close()
    _installed.clear()
    logger.setLevel(logging.NOTSET)


def console_level(verbose: int, quiet: bool) -> int:
    if quiet:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


def read_campaign_settings(root: Path) -> LogSettings:
    """``[logging]`` of ``ROOT/orca-hpc.toml``; defaults if the file is missing or not TOML (the command
    itself reports a broken config)."""
    path = Path(root) / "orca-hpc.toml"
    try:
        if not path.is_file() or path.stat().st_size > 1 << 20:  # a FIFO or device would block
            return LogSettings()
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # ValueError: TOMLDecodeError, 4,300+ digit numbers
        return LogSettings()
    return settings_from_config(config, str(path))


def setup_logging(
    campaign_root: Path | None, *, verbose: int = 0, quiet: bool = False, command: str = "-"
) -> LockedRotatingFileHandler | None:
    """Send ``orca_hpc.*`` records to stderr (per ``-v``/``-q``) and, when ``campaign_root`` is a
    campaign, to its log file. Returns the file handler (None if there is no campaign log).
    Replaces what an earlier call installed (tests run many commands in one process)."""
    teardown_logging()
    logger = logging.getLogger(ROOT_LOGGER)
    console = _StderrHandler()
    console.setLevel(console_level(verbose, quiet))
    console.addFilter(_ConsoleFilter())
    console.setFormatter(_RedactingFormatter("orca-hpc: %(levelname_lower)s: %(message)s"))
    logger.addHandler(console)
    _installed.append(console)
    level = console.level
    handler = None
    log_dir = Path(campaign_root) / ".orca-hpc" / "logs" if campaign_root is not None else None
    if log_dir is not None and log_dir.is_dir() and os.access(log_dir, os.W_OK):
        settings = read_campaign_settings(log_dir.parents[1])
        handler = LockedRotatingFileHandler(log_dir / LOG_NAME, settings)
        handler.setLevel(settings.level)
        handler.setFormatter(_UTCFormatter(FILE_FORMAT))
        handler.addFilter(_CommandFilter(command))
        logger.addHandler(handler)
        _installed.append(handler)
        level = min(level, handler.level)
    logger.setLevel(level)
    return handler


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.levelname_lower = record.levelname.lower()
        return redact(super().format(record))


def log_echoed(message: str, level: int = logging.INFO, name: str = "orca_hpc.cli") -> None:
    """Put a message the command printed itself into the log (and not on the terminal a second time)."""
    logger = logging.getLogger(name)
    holder = _sole_holder(logger, level)
    if holder is not None:
        holder.hold_line(level, name, message)
        return
    logger.log(level, "%s", message, extra={"echoed": True})


def _sole_holder(logger: logging.Logger, level: int) -> LockedRotatingFileHandler | None:
    """The campaign log's handler when it holds records (``held_records``) and is the only place an
    echoed record at ``level`` from ``logger`` would go (the terminal handler drops echoed records):
    then the line can be made without a ``LogRecord`` and the framework's dispatch (~50 us per line;
    a reconcile after a mass completion echoes a line per job). None: the ordinary path."""
    if not logger.isEnabledFor(level) or logger.disabled or not logging.logProcesses:
        return None
    holder = None
    node: logging.Logger | None = logger
    while node is not None:
        if node.filters:
            return None
        for handler in node.handlers:
            if handler not in _installed:
                return None  # someone else listens (a test's capture, an embedding program)
            if isinstance(handler, _StderrHandler) and any(
                isinstance(f, _ConsoleFilter) for f in handler.filters
            ):
                continue  # drops echoed records
            if not isinstance(handler, LockedRotatingFileHandler) or holder is not None:
                return None
            holder = handler
        node = node.parent if node.propagate else None
    if holder is None or holder._held is None or level < holder.level or not holder.quick_lines():
        return None
    return holder
