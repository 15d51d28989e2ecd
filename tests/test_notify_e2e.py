"""Reconcile sends the digest of permanent failures: real jobs, real SMTP server on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from e2e import cli, new_campaign, orca_input, reconcile_until_done, write_inputs
from smtp_server import SmtpTestServer, closed_port

from orca_hpc.ledger.store import Ledger
from orca_hpc.scheduler import slurm

pytestmark = pytest.mark.slurm


def _mail(port: int) -> str:
    return (
        f'\n[mail]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\nfrom = "orca-hpc@localhost"\n'
        'to = ["chemist@localhost"]\nmax_attempts = 2\nbackoff_base = 0.1\nbackoff_max = 0.2\ntimeout = 5\n'
    )


def test_reconcile_mails_one_digest_and_keeps_it_while_the_server_is_down(tmp_path: Path) -> None:
    down = closed_port()
    camp = new_campaign(tmp_path, overrides=_mail(down))  # appended after [overrides]: its own table
    config = camp / "orca-hpc.toml"
    paths = write_inputs(
        tmp_path / "in",
        {
            "bad1.inp": orca_input(directive="input_error"),
            "bad2.inp": orca_input("PBE def2-SVP", directive="input_error"),
        },
    )
    cli(camp, "submit", *paths)
    # One digest for both needs both ends in one reconcile: wait until SLURM and its accounting have both
    # (a task whose usage sacct has not yet is finished on a later run, and mailed in a digest of its own).
    ids = [j.latest.slurm_id or "" for j in Ledger(camp / ".orca-hpc").snapshot().jobs.values()]

    def both_ended() -> bool:
        recs = slurm.query_jobs(ids)
        return len(recs) == 2 and all(r.finished and not r.usage_pending for r in recs.values())

    deadline = time.monotonic() + 120
    while not both_ended():
        assert time.monotonic() < deadline, "the two jobs did not both end in SLURM's accounting"
        time.sleep(0.5)
    # The mail server is down: reconcile still succeeds, the digest waits in the outbox.
    final = reconcile_until_done(camp)
    assert final["counts"] == {"PERMANENT_FAILED": 2}
    outbox = Ledger(camp / ".orca-hpc").snapshot().outbox
    assert [m["status"] for m in outbox] == ["pending"]
    with SmtpTestServer() as server:
        config.write_text(config.read_text().replace(f"port = {down}", f"port = {server.port}"))
        cli(camp, "reconcile")
        assert len(server.messages) == 1
        message = server.messages[0].message
        body = message.get_content()
        assert "bad1" in body and "bad2" in body and "input_error" in body
        assert message["Message-ID"] == outbox[0]["message_id"]
    assert [m["status"] for m in Ledger(camp / ".orca-hpc").snapshot().outbox] == ["sent"]
