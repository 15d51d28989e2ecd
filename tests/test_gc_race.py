"""`orca-hpc gc` at the same time as a submit (cron's gc, a person's submit): gc must never take the
scratch or the array manifest of a job the other command has just recorded for one that no active
job refers to."""

from __future__ import annotations

from pathlib import Path

import pytest

from orca_hpc.attempt.scratch import attempt_scratch_dir, top_name
from orca_hpc.config.campaign import init_campaign, load_campaign
from orca_hpc.controller import housekeeping
from orca_hpc.controller.submit import submit
from orca_hpc.errors import LedgerLocked
from orca_hpc.ledger.store import Ledger
from orca_hpc.scheduler.fake import FakeScheduler

INPUT = "! HF def2-SVP\n* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n"


def test_gc_leaves_alone_what_a_submit_records_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "scratch").mkdir()
    init_campaign(tmp_path / "camp", "local-slurm")
    config = tmp_path / "camp" / "orca-hpc.toml"
    config.write_text(config.read_text() + f'\n[overrides.scratch]\nroot = "{tmp_path / "scratch"}"\n')
    campaign = load_campaign(tmp_path / "camp")
    fake = FakeScheduler()
    real = housekeeping.find_stale_scratch
    made: list[Path] = []

    def a_submit_runs_now(*args, **kwargs):  # type: ignore[no-untyped-def]
        """Between gc's reading of the ledger and its search: another command submits, if it can."""
        if not made:
            probe = Ledger(campaign.state_dir, lock_timeout=0.2)
            try:
                probe.lock.acquire()
            except LedgerLocked:
                made.append(Path("(the submit waits for gc's lock)"))
            else:
                probe.lock.release()
                path = campaign.root / "new.inp"
                path.write_text(INPUT)
                [(job_id, _name, _sid)] = submit(campaign, [path], scheduler=fake).submitted
                # ...and its runner starts on this machine: its scratch exists.
                scratch = attempt_scratch_dir(
                    Path(tmp_path / "scratch" / top_name()), campaign.slug, job_id, 1
                )
                scratch.mkdir(parents=True, mode=0o700)
                (tmp_path / "scratch" / top_name()).chmod(0o700)
                made.append(scratch)
        return real(*args, **kwargs)

    monkeypatch.setattr(housekeeping, "find_stale_scratch", a_submit_runs_now)
    housekeeping.collect_garbage(campaign, dry_run=False)
    # gc holds the ledger lock from its reading to its last removal: a submit cannot record a job in
    # between (without the lock, this test's submit ran here and gc removed its running scratch).
    assert made == [Path("(the submit waits for gc's lock)")], f"a submit ran while gc did: {made}"
