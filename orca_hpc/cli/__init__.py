"""The `orca-hpc` command line: global options, error handling, command registration."""

from __future__ import annotations

import importlib
import os
import sys

import click

from orca_hpc import __version__
from orca_hpc.errors import EXIT_ERROR, OrcaHpcError, TemporaryFailure
from orca_hpc.perms import tighten_umask

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

# (module under orca_hpc.cli, attribute): each module owns one command or group. Only the module of
# the command that runs is imported (like pip's CLI): `orca-hpc --version` loads no ledger, no
# submitit, no Jinja2, and not even `logging` or `pathlib` (the log is set up once a command runs).
# tests/test_architecture.py holds these lines.
COMMANDS: list[tuple[str, str]] = [
    ("init", "init"),
    ("check", "check"),
    ("submit", "submit"),
    ("submit", "render"),
    ("reconcile", "reconcile"),
    ("reconcile", "watch"),
    ("status", "status"),
    ("status", "show"),
    ("status", "results"),
    ("usage", "usage"),
    ("control", "retry"),
    ("control", "cancel"),
    ("control", "gc"),
    ("inspect", "inspect"),
    ("ledger", "ledger"),
    ("notify", "notify"),
]


class Context:
    """What every command gets: the campaign folder (``-C DIR``, like git) and verbosity."""

    def __init__(self, directory: Path, verbose: int, quiet: bool) -> None:
        self.directory = directory
        self.verbose = verbose
        self.quiet = quiet


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports `cat` when `head` stopped reading


def _recorded(obj: object) -> str:
    """What the ledger holds after an interruption: every transaction is all or nothing, so this is
    exactly what was kept. A submission cut between sbatch and saving the ids is adopted by the next
    reconcile (never submitted twice)."""
    directory = getattr(obj, "directory", None)
    if directory is None or not (directory / "orca-hpc.toml").is_file():
        return "nothing was changed"
    try:
        from collections import Counter

        from orca_hpc.config.campaign import load_campaign

        states = load_campaign(directory).ledger().snapshot().states()
    except (OrcaHpcError, OSError):
        return "the ledger keeps what was saved before; 'orca-hpc ledger check' verifies it"
    counts = Counter(state.value for state in states.values())
    held = ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) or "none"
    return (
        f"the ledger keeps every change saved before the interruption (active jobs: {held}); "
        "a submission cut short is completed by the next 'orca-hpc reconcile'"
    )


def _log_exit(message: str, level: str) -> None:
    """How the command ended, for the campaign log (``logging`` is imported here, not at start-up)."""
    import logging

    from orca_hpc.logs import log_echoed

    log_echoed(message, getattr(logging, level))


class OrcaHpcGroup(click.Group):
    """Loads each command's module only when that command runs; turns expected errors into one line on
    stderr and the documented exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(attr for _module, attr in COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for module_name, attr in COMMANDS:
            if attr == cmd_name:
                command = getattr(importlib.import_module(f"orca_hpc.cli.{module_name}"), attr)
                return command if isinstance(command, click.Command) else None
        return None

    def invoke(self, ctx: click.Context) -> object:
        try:
            result = super().invoke(ctx)
            # A closed pipe must show up here, not in the interpreter's final flush.
            sys.stdout.flush()
            return result
        except OrcaHpcError as err:
            click.echo(f"orca-hpc: error: {err}", err=True)
            _log_exit(
                f"exit {err.exit_code}: {err}", "WARNING" if isinstance(err, TemporaryFailure) else "ERROR"
            )
            sys.exit(err.exit_code)
        except BrokenPipeError:
            # `orca-hpc status | head`: the reader has all it wanted. Quiet, like cat; stdout goes to
            # /dev/null so that the interpreter's final flush does not complain either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_BROKEN_PIPE)
        except KeyboardInterrupt:
            message = f"interrupted; {_recorded(ctx.obj)}"
            click.echo(f"orca-hpc: {message}", err=True)
            _log_exit(f"exit {EXIT_INTERRUPTED}: {message}", "WARNING")
            sys.exit(EXIT_INTERRUPTED)
        except OSError as err:
            # A file we were pointed at is missing or unreadable: a user problem, not a bug.
            where = f"{err.filename}: " if err.filename else ""
            click.echo(f"orca-hpc: error: {where}{err.strerror or err}", err=True)
            _log_exit(f"exit {EXIT_ERROR}: {where}{err.strerror or err}", "ERROR")
            sys.exit(EXIT_ERROR)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception:
            # A bug: the traceback goes to the log too, where an unattended run's trouble is looked for.
            import logging

            logging.getLogger("orca_hpc.cli").exception("unexpected error", extra={"echoed": True})
            raise
        finally:
            if "orca_hpc.logs" in sys.modules:  # else no command ran: nothing was set up
                from orca_hpc.logs import teardown_logging

                teardown_logging()


@click.group(cls=OrcaHpcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False),
    default=".",
    help="Campaign folder, or any folder inside one (default: the current folder).",
)
@click.option("-v", "--verbose", count=True, help="More detail on the terminal.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on the terminal.")
@click.version_option(__version__, prog_name="orca-hpc")
@click.pass_context
def main(ctx: click.Context, directory: str, verbose: int, quiet: bool) -> None:
    """Run ORCA calculations on SLURM clusters, unattended.

    \b
    Exit codes: 0 success, 1 error, 2 usage error,
    75 temporary failure (ledger locked, scheduler unreachable: try again later).
    """
    import logging
    from pathlib import Path

    from orca_hpc.logs import setup_logging

    # Nothing a command creates (ours, submitit's, filelock's) may be group- or world-writable.
    tighten_umask()
    where = Path(directory).absolute()
    if ctx.invoked_subcommand != "init":
        from orca_hpc.config.campaign import find_campaign_root

        # Like git: from anywhere inside a campaign (or -C anywhere inside one), the campaign is the
        # nearest folder up with an orca-hpc.toml. `init` makes a new one, relative to where it is run.
        where = find_campaign_root(where) or where
    ctx.obj = Context(where, verbose, quiet)
    # The campaign's log gets every command's details; the terminal gets -v/-q's share.
    setup_logging(ctx.obj.directory, verbose=verbose, quiet=quiet, command=ctx.invoked_subcommand or "-")
    logging.getLogger("orca_hpc.cli").debug("orca-hpc %s started", " ".join(sys.argv[1:]))
