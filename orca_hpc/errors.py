"""Exceptions that the CLI turns into one-line messages and exit codes.

Exit codes (documented in the README): 0 success, 1 error, 2 usage error,
75 temporary failure (EX_TEMPFAIL: lock busy, scheduler unreachable; try again later).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75


# What a Jinja2 template's own expressions can raise while it renders ({{ 1/0 }}, a loop of macros, a
# wrong call): Jinja2 passes them through. A template file that is not UTF-8 raises UnicodeDecodeError,
# a ValueError. Method templates (orca/presets.py) and site job-script templates (scheduler/script.py)
# turn these into one-line errors alike.
TEMPLATE_RUNTIME_ERRORS: tuple[type[Exception], ...] = (
    ArithmeticError,
    LookupError,
    TypeError,
    ValueError,
    AttributeError,
    RecursionError,
)


def one_line(problems: list[str]) -> str:
    """Several problems as the one line every refusal prints: ``N problems: a; b``, or the problem."""
    return problems[0] if len(problems) == 1 else f"{len(problems)} problems: " + "; ".join(problems)


class OrcaHpcError(Exception):
    """An expected failure: the CLI prints ``str(self)`` on one line, no traceback."""

    exit_code = EXIT_ERROR


class UserError(OrcaHpcError):
    """Bad input from the user (file, config, arguments). Nothing was changed."""


class InputFileError(UserError):
    """A problem in a user file, reported as ``file:line: problem``."""

    def __init__(self, path: object, problem: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class TemporaryFailure(OrcaHpcError):
    """Try again later: the lock is busy or the scheduler cannot be reached."""

    exit_code = EXIT_TEMPFAIL


class SchedulerUnavailable(TemporaryFailure):
    """slurmctld or slurmdbd did not answer; nothing was changed that could not be confirmed."""


class SubmissionUnconfirmed(SchedulerUnavailable):
    """A submission got no answer after it was sent (sbatch's "Socket timed out", our timeout): the
    scheduler may have queued it. Unlike a controller that could not be reached, this is no refusal."""


class LedgerLocked(TemporaryFailure):
    """Another orca-hpc holds the campaign's ledger lock."""


class LedgerCorrupt(OrcaHpcError):
    """The ledger file cannot be parsed; the message names the file and its backup."""


class IllegalTransition(RuntimeError):
    """A programming error: a state change that the state machine forbids."""
