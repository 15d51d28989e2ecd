"""One validation of the ledger for every load, every save and `ledger check` (issue 18).

Each damage below was reproduced on the real CLI before the fix: a traceback, a command that wrote
and then failed, a counter behind the archive that let the next submit reuse an id, a check that
passed what reconcile then wrote over the backup. Now every command refuses with one line that names
the file, the problem and the way back, and no file of the ledger changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e import cli

from orca_hpc.errors import LedgerCorrupt
from orca_hpc.ledger.states import JobState
from orca_hpc.ledger.store import Ledger, LedgerWriteError

COMMANDS = (
    ("ledger", "check"),
    ("status", "--no-reconcile"),
    ("status",),
    ("reconcile",),
    ("show", "j000001", "--no-reconcile"),
    ("results", "--no-reconcile"),
)


@pytest.fixture
def camp(tmp_path: Path) -> Path:
    """A `local` campaign with two waiting jobs and one cancelled (archived), two generations saved."""
    root = tmp_path / "camp"
    cli(tmp_path, "init", str(root), "--site", "local")
    ledger = Ledger(root / ".orca-hpc")
    with ledger.transaction() as txn:
        for i in range(3):
            job = txn.add_job(f"job{i}", f"in{i}.inp", f"{i:064x}", "local", 3)
            job.new_attempt(f"tok/{i}").slurm_id = f"local-99999{i}"
            txn.set_state(job, JobState.SUBMITTING)
            txn.set_state(job, JobState.PENDING)
        txn.set_state("j000003", JobState.CANCELLED)
    with ledger.transaction() as txn:
        txn.meta["note"] = "second generation"
    return root


def _files(camp: Path) -> dict[str, bytes]:
    state = camp / ".orca-hpc"
    return {n: (state / n).read_bytes() for n in ("ledger.json", "ledger.json.bak", "archive.jsonl")}


def _edit(fn: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def damage(camp: Path) -> None:
        path = camp / ".orca-hpc" / "ledger.json"
        doc = json.loads(path.read_bytes())
        fn(doc)
        path.write_text(json.dumps(doc))

    return damage


def _in_place(old: bytes, new: bytes) -> Callable[[Path], None]:
    """An edit that keeps the writer's layout (the fast load path): only the checksum can tell."""

    def damage(camp: Path) -> None:
        path = camp / ".orca-hpc" / "ledger.json"
        data = path.read_bytes()
        assert old in data
        path.write_bytes(data.replace(old, new, 1))

    return damage


def _append_archive(line: str) -> Callable[[Path], None]:
    def damage(camp: Path) -> None:
        with open(camp / ".orca-hpc" / "archive.jsonl", "a") as fh:
            fh.write(line + "\n")

    return damage


def _cut_archive(keep: Callable[[bytes], int]) -> Callable[[Path], None]:
    """Truncate archive.jsonl to ``keep(its bytes)`` bytes (a partial copy, a damaged disk)."""

    def damage(camp: Path) -> None:
        path = camp / ".orca-hpc" / "archive.jsonl"
        data = path.read_bytes()
        path.write_bytes(data[: keep(data)])

    return damage


def _job1(key: str, value: Any) -> Callable[[Path], None]:
    return _edit(lambda doc: doc["jobs"]["j000001"].__setitem__(key, value))


V0_WITHOUT_ATTEMPTS = {
    "counter": 2,
    "jobs": [
        {"id": "j000001", "name": "a", "input": "a.inp", "sha256": "0" * 64, "site": "local"}
        | {"state": "RUNNING", "max_retries": 3, "created": "x", "updated": "x", "dir": "jobs/j000001"}
    ],
}

# name -> (damage, what the one-line message must say, the damaged file)
DAMAGE: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "counter behind the archive": (
        _edit(lambda doc: doc["meta"].__setitem__("next_id", 3)),
        "meta.next_id 3 is not above job j000003 in the archive",
        "ledger.json",
    ),
    "counter not a number": (
        _edit(lambda doc: doc["meta"].__setitem__("next_id", "x")),
        "meta.next_id is 'x'",
        "ledger.json",
    ),
    "4,300-digit counter": (
        _in_place(b'"next_id":4', b'"next_id":' + b"9" * 5000),
        "not valid JSON",
        "ledger.json",
    ),
    "name of the wrong type": (_job1("name", 5), "job j000001: name is int, not string", "ledger.json"),
    "wrong type kept in the writer's layout": (
        _in_place(b'"max":3', b'"max":"3"'),
        "job j000001: max is str, not int",
        "ledger.json",
    ),
    "attempts not a list": (_job1("att", "zz"), "job j000001: att is str, not list", "ledger.json"),
    "odd key": (_job1("zz", 1), "job j000001: unknown key 'zz'", "ledger.json"),
    "NUL in an input path": (
        _job1("inp", "a\x00b.inp"),
        "inp holds a NUL character",
        "ledger.json",
    ),
    "control characters in a folder": (
        _job1("dir", "jobs/j\x1b000001"),
        "dir holds control characters",
        "ledger.json",
    ),
    "folder outside the campaign": (_job1("dir", "../../x"), "dir is '../../x'", "ledger.json"),
    "NaN energy": (
        _edit(lambda doc: doc["jobs"]["j000001"]["att"][0].__setitem__("en", float("nan"))),
        "en holds nan",
        "ledger.json",
    ),
    "id that breaks the writer's JSON": (
        _edit(lambda doc: doc["jobs"].__setitem__('j"1', doc["jobs"]["j000001"])),
        "not a job id",
        "ledger.json",
    ),
    "outbox of numbers": (_edit(lambda doc: doc.__setitem__("outbox", [5])), "outbox", "ledger.json"),
    "generation a string": (
        _edit(lambda doc: doc.__setitem__("generation", "1")),
        "generation",
        "ledger.json",
    ),
    "old schema, running job without attempts": (
        lambda camp: (camp / ".orca-hpc" / "ledger.json").write_text(json.dumps(V0_WITHOUT_ATTEMPTS)),
        "RUNNING but has no attempt",
        "ledger.json",
    ),
    "archive line of the wrong type": (
        _append_archive('{"id":"j000009","st":"COMPLETED","name":7}'),
        "job j000009: name is int",
        "archive.jsonl",
    ),
    "archive line not JSON": (_append_archive("#garbage"), "not valid JSON", "archive.jsonl"),
    # The cancelled job's line gone: it was taken for an interrupted write ("ignored"), and the job
    # vanished from status, results and show, `ledger check` passing.
    "archive cut inside its last line": (_cut_archive(lambda b: len(b) - 9), "shorter than", "archive.jsonl"),
    "archive cut at a line's end": (
        _cut_archive(lambda b: b.rstrip(b"\n").rfind(b"\n") + 1),
        "shorter than",
        "archive.jsonl",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damage_is_refused_on_one_line_and_nothing_is_written(camp: Path, case: str) -> None:
    damage, expected, damaged_file = DAMAGE[case]
    damage(camp)
    before = _files(camp)
    for command in COMMANDS:
        result = cli(camp, *command, expect=1)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, (command, result.output)
        line = lines[0]
        assert line.startswith("orca-hpc: error: ") and expected in line, (command, line)
        assert str(camp / ".orca-hpc" / damaged_file) in line, (command, line)
        # The way back: for ledger.json its backup; for an archive line, the line to fix.
        way_back = "orca-hpc ledger restore" if damaged_file == "ledger.json" else "line"
        if expected == "shorter than":  # lost lines: a copy of them, or going on without them
            way_back = "orca-hpc ledger restore"
        assert way_back in line, (command, line)
        assert _files(camp) == before, command


def test_counter_behind_the_archive_is_restored_past_every_archived_id(camp: Path) -> None:
    # The case: the next submit would have been j000003 again, over the cancelled job's files.
    DAMAGE["counter behind the archive"][0](camp)
    ledger = Ledger(camp / ".orca-hpc")
    with pytest.raises(LedgerCorrupt, match="ledger restore"), ledger.transaction() as txn:
        txn.add_job("new", "new.inp", "f" * 64, "local", 3)
    assert "restored" in cli(camp, "ledger", "restore").output
    with ledger.transaction() as txn:
        assert txn.add_job("new", "new.inp", "f" * 64, "local", 3).id == "j000004"
    assert cli(camp, "ledger", "check").exit_code == 0


def test_restore_takes_a_counter_behind_as_damage(camp: Path) -> None:
    DAMAGE["counter behind the archive"][0](camp)
    # Not "the ledger is not damaged, use --force": the same rule as every load.
    cli(camp, "ledger", "restore")
    doc = json.loads((camp / ".orca-hpc" / "ledger.json").read_text())
    assert doc["meta"]["next_id"] == 4


def test_a_sound_hand_edit_loads_and_the_next_save_proves_it_again(camp: Path) -> None:
    path = camp / ".orca-hpc" / "ledger.json"
    path.write_bytes(path.read_bytes().replace(b'"name":"job0"', b'"name":"renamed"', 1))
    ledger = Ledger(camp / ".orca-hpc")
    with ledger.transaction() as txn:
        assert txn.migrated  # the checksum does not match: every job was validated, and it is rewritten
        assert txn.get("j000001").name == "renamed"
    with ledger.transaction() as txn:
        assert not txn.migrated


def test_a_save_refuses_what_a_load_would_refuse(camp: Path) -> None:
    ledger = Ledger(camp / ".orca-hpc")
    before = _files(camp)
    with pytest.raises(LedgerWriteError, match="job j000001: name is int"), ledger.transaction() as txn:
        txn.get("j000001").name = 5  # type: ignore[assignment]  # a bug in a caller
    with pytest.raises(LedgerWriteError, match=r"meta\.next_id 2 is not above"), ledger.transaction() as txn:
        txn.meta["next_id"] = 2
    assert _files(camp) == before


def test_check_names_every_problem(camp: Path) -> None:
    _edit(
        lambda doc: (
            doc["jobs"]["j000001"].__setitem__("zz", 1),
            doc["jobs"]["j000002"].__setitem__("max", "3"),
        )
    )(camp)
    out = cli(camp, "ledger", "check", expect=1).output
    assert "j000001: unknown key 'zz'" in out and "j000002: max is str" in out
    assert "(the backup is good)" in out and len(out.strip().splitlines()) == 1


# ---------------------------------------------------------------- the save's quick path

_SOUND_ATTEMPT = {"n": 1, "tok": "a1b2", "sid": "12_0", "sst": "COMPLETED", "out": "success", "en": -76.4,
                  "dir": "jobs/j000007/attempt-1", "use": {"el": 5, "node": "vm"},
                  "fix": [{"handler": "scf", "change": "MaxIter 500"}]}  # fmt: skip
_SOUND_JOB = {"st": "COMPLETED", "name": "water.c1.opt", "inp": "/in/water.xyz", "sha": "0" * 64,
              "site": "local", "rc": 0, "max": 3, "ct": "2026-01-01T00:00:00Z",
              "ut": "2026-01-01T00:00:00Z", "dir": "jobs/j000007", "att": [_SOUND_ATTEMPT],
              "ch": {"mol": "water", "conf": 1, "step": "opt", "after": "j000003"}}  # fmt: skip
_ODD_VALUES = (None, True, False, 0, -1, 1, 2**31, 2**63 + 1, 1.5, float("nan"), float("inf"), "", "x",
               "a\nb", "a\x00b", "a\x85b", "j000001", "jobs/j000007", "COMPLETED", "RUNNING", [], [1], {},
               {"k": float("nan")}, {"mol": "m"})  # fmt: skip
_KEYS = ("st", "name", "inp", "sha", "max", "rc", "dir", "att", "ch", "x", "zz", "id")
_CHAIN_KEYS = ("mol", "conf", "step", "after", "zz")
_ATT_KEYS = ("n", "tok", "sid", "en", "dir", "use", "fix", "free", "msg", "zz")


def _edits() -> list[tuple[str, str, Any]]:
    """Every single edit: each key of the job, its chain and its attempt set to each odd value, or
    deleted."""
    out: list[tuple[str, str, Any]] = []
    for where, keys in (("job", _KEYS), ("chain", _CHAIN_KEYS), ("att", _ATT_KEYS)):
        out += [(where, key, value) for key in keys for value in _ODD_VALUES]
        out += [(f"del-{where}", key, None) for key in keys]
    return out


def _apply(edits: list[tuple[str, str, Any]]) -> dict[str, Any]:
    d = json.loads(json.dumps(_SOUND_JOB))
    for where, key, value in edits:
        target = {"job": d, "del-job": d, "chain": d.get("ch"), "del-chain": d.get("ch")}.get(where)
        if where in ("att", "del-att"):
            atts = d.get("att")
            target = atts[0] if isinstance(atts, list) and atts and isinstance(atts[0], dict) else None
        if not isinstance(target, dict):
            continue
        if where.startswith("del-"):
            target.pop(key, None)
        else:
            target[key] = json.loads(json.dumps(value)) if isinstance(value, (list, dict)) else value
    return d


def test_quick_path_never_accepts_what_the_full_rules_refuse() -> None:
    """`plainly_sound` answers for every save of a job it changed (workflow steps included, with their
    ``ch``): wherever it says yes, the full rules must find nothing. Every single edit of a sound job,
    and a fixed sample of pairs and triples of them."""
    import random

    from orca_hpc.ledger.validate import full_job_problems, plainly_sound

    assert plainly_sound("j000007", _SOUND_JOB) and full_job_problems("j000007", _SOUND_JOB) == []
    no_after = {**_SOUND_JOB, "ch": {"mol": "water", "conf": 1, "step": "opt", "after": None}}
    assert plainly_sound("j000007", no_after)
    singles = _edits()
    rnd = random.Random(17)
    cases = [[e] for e in singles] + [rnd.sample(singles, rnd.choice((2, 3))) for _ in range(3000)]
    said_yes = 0
    for edits in cases:
        d = _apply(edits)
        if plainly_sound("j000007", d):
            said_yes += 1
            assert full_job_problems("j000007", d) == [], edits
    assert said_yes > 50  # exercised on accepted mutants, not only on refused ones


def test_a_cut_archive_is_restored_past_and_keeps_every_id(camp: Path) -> None:
    """The way on without the lost lines: `ledger restore`; the lost job's id is never handed out again."""
    _cut_archive(lambda b: 0)(camp)
    assert "shorter than" in cli(camp, "ledger", "check", expect=1).output
    cli(camp, "ledger", "restore")
    assert cli(camp, "ledger", "check").exit_code == 0
    with Ledger(camp / ".orca-hpc").transaction() as txn:
        assert txn.add_job("new", "new.inp", "f" * 64, "local", 3).id == "j000004"
