"""Property tests of the real CLI on generated and damaged files (issue 18).

Whatever the file, a command either works or refuses with one line and exit 1 (2 for usage):
never a traceback, and a refused command leaves the ledger's bytes as they were. Each test is
bounded (``max_examples``) so that together they stay well under 30 s.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from e2e import fresh_copy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orca_hpc.cli import main
from orca_hpc.ledger.states import JobState
from orca_hpc.ledger.store import Ledger

FAST = settings(
    max_examples=int(os.environ.get("ORCA_CLI_FUZZ_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WATER = "* xyz 0 1\nO 0 0 0.1178\nH 0 0.7555 -0.4712\nH 0 -0.7555 -0.4712\n*\n"


def run(campaign: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["-C", str(campaign), *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            f"traceback from {args}: {result.exception!r}\n{result.output}"
        ) from result.exception
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output)
    if result.exit_code == 1:
        errors = [line for line in result.output.splitlines() if line.startswith("orca-hpc: error:")]
        assert len(errors) == 1, (args, result.output)
    return result


def _damage(data: bytes, cuts: list[tuple[int, bytes]]) -> bytes:
    """Overwrite, insert or truncate at positions chosen by hypothesis."""
    for pos, chunk in cuts:
        pos = pos % (len(data) + 1)
        data = data[:pos] if chunk == b"<cut>" else data[:pos] + chunk + data[pos + len(chunk) // 2 :]
    return data


CHUNKS = st.one_of(
    st.sampled_from(
        [
            b"<cut>",
            b'"',
            b"}",
            b"{",
            b"\n",
            b"\x00",
            b"\x1b[2J",
            b"NaN",
            b"9" * 5000,
            b"[" * 2000,
            b"null",
            b'"x"',
        ]
    ),
    st.binary(max_size=8),
)
CUTS = st.lists(st.tuples(st.integers(0, 10**6), CHUNKS), min_size=1, max_size=3)


@pytest.fixture(scope="module")
def template_campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "camp"
    CliRunner().invoke(main, ["init", str(root), "--site", "local"], catch_exceptions=False)
    ledger = Ledger(root / ".orca-hpc")
    with ledger.transaction() as txn:
        for i in range(3):
            job = txn.add_job(f"job{i}", f"in{i}.inp", f"{i:064x}", "local", 3)
            job.new_attempt(f"tok/{i}")
        job = txn.get("j000003")
        for state in (JobState.SUBMITTING, JobState.PENDING, JobState.CANCELLED):
            txn.set_state(job, state)
    return root


@pytest.fixture
def camp(template_campaign: Path, tmp_path: Path) -> Path:
    return template_campaign


@FAST
@given(cuts=CUTS, name=st.sampled_from(["ledger.json", "archive.jsonl", "archive.index.json"]))
def test_damaged_ledger_files(
    template_campaign: Path, tmp_path: Path, cuts: list[tuple[int, bytes]], name: str
) -> None:
    camp = fresh_copy(template_campaign, tmp_path / "c")
    path = camp / ".orca-hpc" / name
    path.write_bytes(_damage(path.read_bytes() if path.exists() else b"", cuts))
    state = camp / ".orca-hpc"
    before = {p.name: p.read_bytes() for p in state.iterdir() if p.name in ("ledger.json", "ledger.json.bak")}
    for args in (("ledger", "check"), ("status", "--no-reconcile"), ("show", "j000001", "--no-reconcile")):
        result = run(camp, *args)
        if result.exit_code:
            now = {p.name: p.read_bytes() for p in state.iterdir() if p.name in before}
            assert now == before, args


@FAST
@given(cuts=CUTS)
def test_damaged_inputs_dry_run(
    template_campaign: Path, tmp_path: Path, cuts: list[tuple[int, bytes]]
) -> None:
    camp = template_campaign
    inp = tmp_path / "w.inp"
    inp.write_bytes(_damage(f"! B3LYP def2-SVP Opt\n%pal nprocs 2 end\n{WATER}".encode(), cuts))
    before = (camp / ".orca-hpc" / "ledger.json").read_bytes()
    run(camp, "submit", "--dry-run", str(inp))
    assert (camp / ".orca-hpc" / "ledger.json").read_bytes() == before


@FAST
@given(cuts=CUTS)
def test_damaged_xyz(template_campaign: Path, tmp_path: Path, cuts: list[tuple[int, bytes]]) -> None:
    xyz = tmp_path / "w.xyz"
    xyz.write_bytes(_damage(b"3\nwater\nO 0 0 0.1178\nH 0 0.7555 -0.4712\nH 0 -0.7555 -0.4712\n", cuts))
    run(template_campaign, "render", "--method", "B3LYP def2-SVP", str(xyz))


@FAST
@given(cuts=CUTS)
def test_damaged_campaign_config(
    template_campaign: Path, tmp_path: Path, cuts: list[tuple[int, bytes]]
) -> None:
    camp = fresh_copy(template_campaign, tmp_path / "c")
    config = camp / "orca-hpc.toml"
    config.write_bytes(_damage(config.read_bytes(), cuts))
    before = (camp / ".orca-hpc" / "ledger.json").read_bytes()
    for args in (("status", "--no-reconcile"), ("ledger", "check")):
        run(camp, *args)
    assert (camp / ".orca-hpc" / "ledger.json").read_bytes() == before


@FAST
@given(cuts=CUTS)
def test_damaged_site_config(tmp_path: Path, cuts: list[tuple[int, bytes]]) -> None:
    shipped = (Path(__file__).resolve().parents[1] / "site_configs" / "local.toml").read_bytes()
    site = tmp_path / "site.toml"
    site.write_bytes(_damage(shipped, cuts))
    target = tmp_path / "new"
    if target.exists():
        shutil.rmtree(target)
    run(tmp_path, "init", str(target), "--site", str(site))


@FAST
@given(
    template=st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            [
                "{{ molecule",
                "{% for %}",
                "{{ nosuch.value }}",
                "{{ 1/0 }}",
                "{% extends 'nowhere' %}",
                "{% include '/etc/passwd' %}",
                "{{ ''.__class__ }}",
                "{{ x" + "(" * 500,
            ]
        ),
    )
)
def test_user_method_templates(template_campaign: Path, tmp_path: Path, template: str) -> None:
    camp = fresh_copy(template_campaign, tmp_path / "c")
    config = camp / "orca-hpc.toml"
    quoted = template.replace("\\", "\\\\").replace('"', '\\"')
    quoted = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in quoted)
    # At the top: appended after the last table it would be that table's key, never a template.
    config.write_text(f'method_template = "{quoted}"\n' + config.read_text())
    xyz = tmp_path / "w.xyz"
    xyz.write_text("3\nwater\nO 0 0 0.1178\nH 0 0.7555 -0.4712\nH 0 -0.7555 -0.4712\n")
    run(camp, "render", "--method", "B3LYP def2-SVP", str(xyz))


def test_a_site_file_that_is_a_device(tmp_path: Path) -> None:
    result = run(tmp_path, "init", str(tmp_path / "c"), "--site", "/dev/zero")
    assert result.exit_code == 1 and "/dev/zero" in result.output


def test_a_site_file_that_is_a_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "site.toml"
    os.mkfifo(fifo)  # no writer: reading it would wait forever
    result = run(tmp_path, "init", str(tmp_path / "c"), "--site", str(fifo))
    assert result.exit_code == 1 and f"{fifo}" in result.output and "not a regular file" in result.output


def test_toml_files_with_a_byte_order_mark_are_read(tmp_path: Path, template_campaign: Path) -> None:
    # Notepad saves UTF-8 with a BOM: the campaign config and a site config are still the same TOML.
    camp = fresh_copy(template_campaign, tmp_path / "c")
    config = camp / "orca-hpc.toml"
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
    result = run(camp, "status", "--no-reconcile")
    assert result.exit_code == 0, result.output
    site = tmp_path / "site.toml"
    local = Path(__file__).resolve().parents[1] / "site_configs" / "local.toml"
    site.write_bytes(b"\xef\xbb\xbf" + local.read_bytes())
    result = run(tmp_path, "init", str(tmp_path / "new"), "--site", str(site))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "new" / "orca-hpc.toml").is_file()


@pytest.mark.parametrize(("name", "options"), [("w.inp", []), ("w.xyz", ["--method", "HF def2-SVP"])])
def test_an_input_that_is_a_fifo_does_not_block_submit(
    tmp_path: Path, template_campaign: Path, name: str, options: list[str]
) -> None:
    import contextlib
    import threading

    fifo = tmp_path / name
    os.mkfifo(fifo)  # no writer: validation's read waited forever

    def unblock() -> None:  # should a reader wait (the defect), end its read so the test fails, not hangs
        with contextlib.suppress(OSError):  # no reader: nothing waits
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    timer = threading.Timer(5.0, unblock)
    timer.daemon = True
    timer.start()
    try:
        result = run(template_campaign, "submit", "--dry-run", *options, str(fifo))
    finally:
        timer.cancel()
    assert result.exit_code == 1 and f"{fifo}: not a regular file" in result.output


def test_messages_reach_the_terminal_with_control_characters_escaped(
    tmp_path: Path, template_campaign: Path
) -> None:
    # reconcile and submit print job names and result messages through say()/warn().
    from orca_hpc.cli.common import say, warn

    @click.command()
    def speak() -> None:
        say(None, "j000001 evil\x1b[2J: COMPLETED\nsecond line \x07")
        warn("odd \x1b]0;title\x07 file")

    result = CliRunner().invoke(speak)
    assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout + result.stderr
    assert result.stdout.splitlines() == ["j000001 evil\\x1b[2J: COMPLETED", "second line \\x07"]
    assert "odd \\x1b]0;title\\x07 file" in result.stderr


NESTED = "\nx = " + "[" * 3000 + "]" * 3000 + "\n"


def test_deeply_nested_toml_is_one_line(tmp_path: Path, template_campaign: Path) -> None:
    camp = fresh_copy(template_campaign, tmp_path / "c")
    config = camp / "orca-hpc.toml"
    config.write_text(config.read_text() + NESTED)
    result = run(camp, "status", "--no-reconcile")
    assert result.exit_code == 1 and f"{config}: invalid TOML: nested too deeply" in result.output
    site = tmp_path / "site.toml"
    site.write_text(
        (Path(__file__).resolve().parents[1] / "site_configs" / "local.toml").read_text() + NESTED
    )
    result = run(tmp_path, "init", str(tmp_path / "new"), "--site", str(site))
    assert result.exit_code == 1 and "nested too deeply" in result.output


@pytest.mark.parametrize("setting", ["%maxcore 9{n}", "%pal nprocs 9{n} end", "! PAL9{n}"])
def test_numbers_of_thousands_of_digits_are_refused(
    tmp_path: Path, template_campaign: Path, setting: str
) -> None:
    inp = tmp_path / "big.inp"
    inp.write_text(f"! B3LYP def2-SVP\n{setting.format(n='9' * 5000)}\n{WATER}")
    result = run(template_campaign, "submit", "--dry-run", str(inp))
    if setting.startswith("!"):  # not a PALn keyword then, just a word ORCA will refuse: no traceback
        assert result.exit_code in (0, 1)
    else:
        assert result.exit_code == 1 and f"{inp}:2" in result.output


def test_control_characters_in_job_names_never_reach_the_terminal(
    tmp_path: Path, template_campaign: Path
) -> None:
    camp = fresh_copy(template_campaign, tmp_path / "c")
    with Ledger(camp / ".orca-hpc").transaction() as txn:
        txn.get("j000001").name = "evil\x1b[2J\nj000099  forged  COMPLETED"
    for args in (("status", "--no-reconcile"), ("show", "j000001", "--no-reconcile")):
        out = run(camp, *args).output
        assert "\x1b" not in out and "\\x1b[2J\\nj000099" in out
        assert not any(line.startswith("j000099") for line in out.splitlines())


ARCHIVE_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10)
    | st.sampled_from(["COMPLETED", "j000001", "jobs/j000009", "\x1b[2J", "jobs/../../etc"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
ARCHIVE_KEYS = ["id", "st", "name", "inp", "sha", "site", "rc", "nf", "max", "ct", "ut", "dir", "att", "x"]
ATTEMPT_KEYS = [
    "n",
    "tok",
    "sid",
    "sub",
    "beg",
    "end",
    "sst",
    "exit",
    "out",
    "why",
    "en",
    "msg",
    "fix",
    "dir",
]


@FAST
@given(
    job=st.dictionaries(st.sampled_from(ARCHIVE_KEYS), ARCHIVE_VALUES, max_size=3),
    attempt=st.dictionaries(st.sampled_from(ATTEMPT_KEYS), ARCHIVE_VALUES, max_size=3),
)
def test_hand_edited_archive_lines(
    template_campaign: Path, tmp_path: Path, job: dict[str, object], attempt: dict[str, object]
) -> None:
    # Well-formed JSON with fields of any type, unlike the byte damage above: a hand edit.
    camp = fresh_copy(template_campaign, tmp_path / "c")
    archive = camp / ".orca-hpc" / "archive.jsonl"
    line = json.loads(archive.read_text().splitlines()[0])
    line.update(job)
    if isinstance(line.get("att"), list) and line["att"] and isinstance(line["att"][0], dict):
        line["att"][0].update(attempt)
    with open(archive, "a") as fh:
        fh.write(json.dumps(line) + "\n")
    before = (camp / ".orca-hpc" / "ledger.json").read_bytes()
    for args in (
        ("ledger", "check"),
        ("status", "--no-reconcile"),
        ("show", "j000003", "--no-reconcile"),
        ("results", "--all", "--json", "--no-reconcile"),
    ):
        result = run(camp, *args)
        assert "\x1b" not in result.output
        if result.exit_code:
            assert (camp / ".orca-hpc" / "ledger.json").read_bytes() == before, args


@pytest.mark.parametrize("bad", ['port = "x"', "host = 5", 'to = ["a", 3]', "max_attempts = true"])
def test_a_wrong_type_in_mail_never_fails_a_reconcile(
    tmp_path: Path, template_campaign: Path, bad: str
) -> None:
    # Issue 18: a wrong type in [mail] crashed reconcile after it had written the ledger.
    camp = fresh_copy(template_campaign, tmp_path / "c")
    config = camp / "orca-hpc.toml"
    mail = {"host": '"smtp.example.org"', "from": '"a@example.org"', "to": '"b@example.org"'}
    key = bad.split(" =")[0]
    lines = [f"{k} = {v}" for k, v in mail.items() if k != key] + [bad]
    config.write_text(config.read_text() + "\n[mail]\n" + "\n".join(lines) + "\n")
    result = run(camp, "reconcile")
    assert result.exit_code == 0, result.output
    assert "mail not sent" in result.output and "[mail]" in result.output
