"""`orca-hpc notify`: test the mail settings, or deliver the campaign's pending notifications."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from orca_hpc.errors import TemporaryFailure, UserError
from orca_hpc.notify.config import MailConfig, campaign_mail
from orca_hpc.notify.smtp import send_test

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CAMPAIGN_CONFIG = "orca-hpc.toml"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path}: not valid TOML: {err}") from None


def load_mail_config(directory: Path, config_file: Path | None = None) -> MailConfig:
    """`[mail]` from `config_file`, else the campaign's (``notify.config.campaign_mail``)."""
    if config_file is not None:
        given = _mail_from_file(config_file, required=True)
        if given is None:  # required=True raises instead; kept for the type checker
            raise UserError(f"{config_file}: no [mail] table")
        return given
    from orca_hpc.config.campaign import load_campaign

    campaign = load_campaign(directory)
    cfg = campaign_mail(campaign)
    if cfg is None:
        source = campaign.site.source or campaign.site.name
        raise UserError(
            f"no [mail] table in {campaign.config_path} or in the site config {source}; "
            "add one (host, port, security, from, to, ...)"
        )
    return cfg


def _mail_from_file(path: Path, *, required: bool) -> MailConfig | None:
    data = _read_toml(path)
    table = data.get("mail")
    if table is None:
        if required:
            raise UserError(f"{path}: no [mail] table; add one (host, port, security, from, to, ...)")
        return None
    if not isinstance(table, dict):
        raise UserError(f"{path}: [mail] must be a table")
    return MailConfig.from_dict(table, str(path), base_dir=path.parent)


def _campaign_name(directory: Path) -> str:
    try:
        data = tomllib.loads((directory / CAMPAIGN_CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return directory.name
    name = data.get("name")
    return name if isinstance(name, str) and name else directory.name


@click.command("notify")
@click.option("--test", "test", is_flag=True, help="Send one test message now and show the server's reply.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read [mail] from this TOML file instead of the campaign's orca-hpc.toml.",
)
@click.option(
    "--requeue-failed",
    "requeue",
    is_flag=True,
    help="Try permanently failed messages again (after fixing the mail settings).",
)
@click.pass_obj
def notify(obj: Any, test: bool, config_file: Path | None, requeue: bool) -> None:
    """Deliver pending notifications, or check the mail settings with --test."""
    directory: Path = obj.directory
    cfg = load_mail_config(directory, config_file)
    if test:
        reply = send_test(cfg, campaign=_campaign_name(directory))
        click.echo(f"mail test: sent to {', '.join(cfg.to)} via {cfg.describe()}")
        click.echo(f"server said: {reply}")
        return
    _deliver_ledger_outbox(directory, cfg, requeue, quiet=bool(getattr(obj, "quiet", False)))


def _deliver_ledger_outbox(directory: Path, cfg: MailConfig, requeue: bool, *, quiet: bool) -> None:
    from orca_hpc.config.campaign import load_campaign
    from orca_hpc.notify.outbox import deliver_campaign_outbox

    report = deliver_campaign_outbox(load_campaign(directory), cfg, requeue=requeue)
    assert report is not None  # a config was given
    if not (report.sent or report.failed or report.pending):
        if not quiet:
            click.echo("mail: nothing pending")
        if report.given_up:
            from orca_hpc.cli.common import warn

            warn(report.given_up_line())
        return
    if not quiet:
        for line in report.messages:
            click.echo(line)
        click.echo(report.summary())
    if report.failed:
        raise UserError(f"{report.failed} message(s) could not be sent: {report.messages[-1]}")
    if report.pending:
        raise TemporaryFailure(f"{report.pending} message(s) still pending: {report.messages[-1]}")
