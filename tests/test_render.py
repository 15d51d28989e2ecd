"""Job script rendering: golden files, site template overrides, quoting of hostile values, signals."""

from __future__ import annotations

import dataclasses
import os
import random
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from orca_hpc import shipped
from orca_hpc.config.site import SiteConfig, load_site, resources_for
from orca_hpc.errors import InputFileError, UserError
from orca_hpc.scheduler.script import (
    JobScriptContext,
    render_job_script,
    sbatch_quote,
    shell_quote,
    template_root,
)

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
SLURM_SITES = sorted(
    p.stem for p in (REPO / "site_configs").glob("*.toml") if load_site(p).scheduler == "slurm"
)
BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="bash not installed")

HOSTILE = "a b;c $(touch PWNED) `touch PWNED` 'sq' \"dq\" \\ \n\r\t é ☃ \u2028 $HOME *"


def golden_context(site: SiteConfig) -> JobScriptContext:
    mem, _ = resources_for(site, 4, 1500)
    return JobScriptContext(
        job_name="ohpc-0123456789abcdef",
        array_size=12,
        ntasks=4,
        mem_mb=mem,
        time_min=site.walltime_min,
        output_pattern="/home/alice/water/.orca-hpc/submitit/%A_%a.out",
        manifest="/home/alice/water/.orca-hpc/arrays/array-0001.txt",
        python="/home/alice/.venv/bin/python3",
        campaign_dir="/home/alice/water",
        env={"ORCA_HPC_LOG_LEVEL": "info"},
    )


def bash_syntax_ok(script: str, tmp_path: Path) -> None:
    path = tmp_path / "syntax-check.sh"
    path.write_text(script, encoding="utf-8")
    proc = subprocess.run([BASH, "-n", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def sbatch_lines(script: str) -> list[str]:
    return [line for line in script.split("\n") if line.startswith("#SBATCH")]


# ---------------------------------------------------------------- golden files


@pytest.mark.parametrize("name", SLURM_SITES)
def test_golden(name: str, tmp_path: Path) -> None:
    site = load_site(name)
    script = render_job_script(site, golden_context(site))
    golden = GOLDEN / f"{name}.sh"
    if os.environ.get("ORCA_HPC_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(script, encoding="utf-8")
    assert golden.is_file(), f"no golden file {golden}: run with ORCA_HPC_UPDATE_GOLDEN=1"
    assert script == golden.read_text(encoding="utf-8")
    if BASH:
        bash_syntax_ok(script, tmp_path)


@pytest.mark.parametrize("name", SLURM_SITES)
def test_four_processes_ask_for_memory_that_fits_maxcore(name: str) -> None:
    site = load_site(name)
    mem, maxcore = resources_for(site, 4, 1500)
    lines = sbatch_lines(render_job_script(site, golden_context(site)))
    assert "#SBATCH --nodes=1" in lines and "#SBATCH --ntasks=4" in lines
    assert "#SBATCH --cpus-per-task=1" in lines
    assert f"#SBATCH --mem={mem}M" in lines
    assert maxcore * 4 <= 0.8 * mem


def test_script_shape_for_the_runner() -> None:
    site = load_site("local-slurm")
    script = render_job_script(site, golden_context(site))
    assert script.startswith("#!/bin/bash\n")
    lines = script.split("\n")
    header = [line for line in lines if line.startswith("#SBATCH")]
    # every #SBATCH line comes before the first command, or sbatch ignores it
    first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    assert all(lines.index(line) < first_command for line in header)
    assert "#SBATCH --signal=B:USR1@30" in header
    assert "#SBATCH --array=0-11" in header
    assert "#SBATCH --time=00:30:00" in header
    assert "#SBATCH --no-requeue" in header  # node failures come back to orca-hpc as new attempts
    assert not any(word in script for word in ("srun", "mpirun"))
    expected = [
        '"$PYTHON" -m orca_hpc.runner --manifest "$MANIFEST" --index "${SLURM_ARRAY_TASK_ID:-0}" &',
        "runner_pid=$!",
    ]
    start = lines.index(expected[0])
    assert lines[start : start + 2] == expected
    # the traps come before every block: a warning SLURM sends early must not kill the batch shell
    traps = [i for i, line in enumerate(lines) if line.startswith("trap ")]
    assert len(traps) == 2 and max(traps) < script.split("\n").index("# --- environment ---")
    assert script.rstrip("\n").endswith('exit "$rc"')
    order = [script.index(f"# --- {block} ---") for block in ("environment", "scratch", "run", "copy back")]
    assert order == sorted(order)


def test_array_parallelism_and_extra_sbatch() -> None:
    site = load_site("example-cluster")
    lines = sbatch_lines(render_job_script(site, golden_context(site)))
    assert "#SBATCH --array=0-11%50" in lines
    assert "#SBATCH --constraint=cascadelake" in lines
    assert "#SBATCH --account=chem-group" in lines and "#SBATCH --qos=normal" in lines


def test_local_site_renders_without_slurm_names() -> None:
    site = load_site("local")
    script = render_job_script(site, golden_context(site))
    assert "--partition" not in script and "--account" not in script
    assert "#SBATCH --array=0-11%2" in script


# ---------------------------------------------------------------- context checks


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"array_size": 1001}, "max_array_size 1000"),
        ({"array_size": 0}, "array_size must be a positive integer"),
        ({"mem_mb": 16001}, "max_mem_mb 16000"),
        ({"time_min": 241}, "longer than site local-slurm's max_walltime"),
        ({"manifest": "relative/manifest.txt"}, "manifest must be an absolute path"),
        ({"env": {"BAD NAME": "x"}}, "not a valid environment variable name"),
        ({"job_name": "ohpc-x\n#SBATCH --time=1"}, "cannot go into an #SBATCH line"),
        ({"output_pattern": '/tmp/a"b/%A_%a.out'}, "cannot go into an #SBATCH line"),
    ],
)
def test_bad_context_is_rejected(change: dict[str, object], message: str) -> None:
    site = load_site("local-slurm")
    ctx = JobScriptContext(**{**golden_context(site).__dict__, **change})  # type: ignore[arg-type]
    with pytest.raises(UserError, match=message):
        render_job_script(site, ctx)


# ---------------------------------------------------------------- site templates


def site_with_templates(tmp_path: Path, files: dict[str, str]) -> SiteConfig:
    folder = tmp_path / "mysite-templates"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    base = (REPO / "site_configs" / "local-slurm.toml").read_text(encoding="utf-8")
    path = tmp_path / "mysite.toml"
    text = 'template_dir = "mysite-templates"\n' + base.replace('name = "local-slurm"', 'name = "mysite"')
    path.write_text(text, encoding="utf-8")
    return load_site(path)


def test_site_template_replaces_a_block(tmp_path: Path) -> None:
    site = site_with_templates(
        tmp_path,
        {
            "job.sh.j2": (
                '{% extends "base.sh.j2" %}\n'
                "{% block environment %}\n# site environment\n"
                "export SITE_MARKER={{ site.name | shq }}\n{% endblock %}\n"
            )
        },
    )
    script = render_job_script(site, golden_context(site))
    assert "export SITE_MARKER=mysite\n" in script
    assert "# --- environment ---" not in script and "export ORCA_HPC_LOG_LEVEL" not in script
    assert "#SBATCH --ntasks=4" in script and "-m orca_hpc.runner" in script  # the other blocks stay
    default = render_job_script(load_site("local-slurm"), golden_context(site))
    assert script != default and "SITE_MARKER" not in default


def test_site_template_can_extend_a_block_with_super(tmp_path: Path) -> None:
    site = site_with_templates(
        tmp_path,
        {
            "job.sh.j2": (
                '{% extends "base.sh.j2" %}\n'
                "{% block scratch %}{{ super() }}mkdir -p /local/scratch/$USER\n{% endblock %}\n"
            )
        },
    )
    script = render_job_script(site, golden_context(site))
    assert "# --- scratch ---" in script and "mkdir -p /local/scratch/$USER\n" in script


def test_site_base_can_extend_the_packaged_base(tmp_path: Path) -> None:
    site = site_with_templates(
        tmp_path,
        {
            "base.sh.j2": (
                '{% extends "orca-hpc/base.sh.j2" %}\n'
                "{% block copy_back %}# site copy-back hook\n{% endblock %}\n"
            )
        },
    )
    script = render_job_script(site, golden_context(site))
    assert "# site copy-back hook" in script and "# --- copy back ---" not in script


def test_template_errors_are_one_line(tmp_path: Path) -> None:
    broken = '{% extends "base.sh.j2" %}\n{% block run %}{% if %}\n'
    site = site_with_templates(tmp_path, {"job.sh.j2": broken})
    with pytest.raises(InputFileError) as info:
        render_job_script(site, golden_context(site))
    assert "job.sh.j2:2: template error" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        '{% extends "base.sh.j2" %}{% block scratch %}{{ 1/0 }}{% endblock %}',
        '{% include "job.sh.j2" %}',
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
        "{{ ''.join(1) }}",
        "{{ site.name.upper(1, 2) }}",
        "{{ [][3] }}",
        b"\xff\xfe binary",
    ],
)
def test_a_site_template_that_fails_while_rendering_is_one_line(tmp_path: Path, body: str | bytes) -> None:
    # Issue 18: errors a template's own code raises (not Jinja2's) came out as tracebacks.
    site = site_with_templates(tmp_path, {"job.sh.j2": "placeholder"})
    job = tmp_path / "mysite-templates" / "job.sh.j2"
    job.write_bytes(body if isinstance(body, bytes) else body.encode())
    with pytest.raises(UserError) as info:
        render_job_script(site, golden_context(site))
    assert str(info.value).startswith("site mysite: job script template") and "\n" not in str(info.value)


def test_undefined_values_are_errors(tmp_path: Path) -> None:
    site = site_with_templates(
        tmp_path,
        {
            "job.sh.j2": (
                '{% extends "base.sh.j2" %}\n{% block scratch %}{{ site.no_such_value }}{% endblock %}\n'
            )
        },
    )
    with pytest.raises(UserError, match="undefined value"):
        render_job_script(site, golden_context(site))


def test_template_root_prefers_the_packaged_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (template_root() / "slurm" / "base.sh.j2").is_file()
    package = tmp_path / "orca_hpc"
    shutil.copytree(REPO / "templates", package / "templates")
    monkeypatch.setattr(shipped, "PACKAGE_DIR", package)
    assert template_root() == package / "templates"


# ---------------------------------------------------------------- quoting


def test_shell_quote_is_one_line_and_exact(tmp_path: Path) -> None:
    rng = random.Random(1234)
    alphabet = "ab /;$()`'\"\\\n\r\t\x01\x7f\x85é☃\u2028\u2029*?!{}[]<>|&#~%-="
    values = [HOSTILE, "", "-n", "plain", "it's", "$'x'"]
    values += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20))) for _ in range(300)]
    quoted = [shell_quote(value) for value in values]
    assert not any("\n" in q or "\r" in q or len(q.splitlines()) > 1 for q in quoted)
    if not BASH:
        pytest.skip("bash not installed")
    script = tmp_path / "echo.sh"
    script.write_text("".join(f"printf '%s\\0' {q}\n" for q in quoted), encoding="utf-8")
    out = subprocess.run(
        [BASH, str(script)],
        capture_output=True,
        check=True,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "LC_ALL": "C"},
    ).stdout
    assert out.decode("utf-8").split("\0")[:-1] == values
    assert not (tmp_path / "PWNED").exists()


def test_sbatch_quote() -> None:
    assert sbatch_quote("ohpc-abc123") == "ohpc-abc123"
    assert sbatch_quote("/a b/%A_%a.out") == '"/a b/%A_%a.out"'
    assert sbatch_quote("x;$(y) 'z' é") == "\"x;$(y) 'z' é\""
    for bad in ("a\nb", "a\rb", 'a"b', "a\\b", "a\u2028b", "a\x00b"):
        with pytest.raises(UserError):
            sbatch_quote(bad)


@pytest.mark.parametrize("job_name", ["ohpc a;b", "ohpc-$(touch PWNED)", "ohpc 'x' é ☃", "ohpc `id` #x"])
def test_hostile_job_name_stays_on_its_sbatch_line(job_name: str, tmp_path: Path) -> None:
    site = load_site("local-slurm")
    ctx = JobScriptContext(**{**golden_context(site).__dict__, "job_name": job_name})  # type: ignore[arg-type]
    script = render_job_script(site, ctx)
    baseline = render_job_script(site, golden_context(site))
    assert len(script.splitlines()) == len(baseline.splitlines())
    assert f'#SBATCH --job-name="{job_name}"' in script.splitlines()
    if BASH:
        bash_syntax_ok(script, tmp_path)


def hostile_run(
    tmp_path: Path, fake_python: str, setup: tuple[str, ...] = ()
) -> tuple[Path, JobScriptContext, Path]:
    """A job script whose every path is hostile, with a stand-in for python (a shell script);
    ``setup``: the site's setup lines (the environment block)."""
    root = tmp_path / "c a;m $(touch PWNED) 'q' é"
    root.mkdir()
    campaign = root / ("camp\naign")
    campaign.mkdir()
    python = root / "py thon;$(touch PWNED)"
    python.write_text(fake_python, encoding="utf-8")
    python.chmod(0o755)
    record = tmp_path / "record"
    site = dataclasses.replace(load_site("local-slurm"), setup=setup)
    ctx = JobScriptContext(
        job_name="ohpc-hostile",
        array_size=5,
        ntasks=2,
        mem_mb=4000,
        time_min=30,
        output_pattern=str(root / "%A_%a.out"),
        manifest=str(root / ("manifest $(touch PWNED)\n`touch PWNED`\u2028.txt")),
        python=str(python),
        campaign_dir=str(campaign),
        env={"RECORD": str(record), "HOSTILE": HOSTILE},
    )
    script = tmp_path / "job.sh"
    script.write_text(render_job_script(site, ctx), encoding="utf-8")
    return script, ctx, record


@needs_bash
def test_hostile_paths_reach_the_runner_verbatim(tmp_path: Path) -> None:
    fake = '#!/bin/sh\nprintf \'%s\\0\' "$PWD" "$HOSTILE" "$@" > "$RECORD"\n'
    script, ctx, record = hostile_run(tmp_path, fake)
    bash_syntax_ok(script.read_text(encoding="utf-8"), tmp_path)
    env = {"PATH": os.environ["PATH"], "SLURM_ARRAY_TASK_ID": "3", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [BASH, str(script)], cwd=tmp_path, env=env, capture_output=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    recorded = record.read_bytes().decode("utf-8").split("\0")[:-1]
    assert recorded == [
        ctx.campaign_dir,
        HOSTILE,
        "-m",
        "orca_hpc.runner",
        "--manifest",
        str(ctx.manifest),
        "--index",
        "3",
    ]
    assert not list(tmp_path.rglob("PWNED"))
    assert not Path("PWNED").exists()


@needs_bash
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGUSR1, 42), (signal.SIGTERM, 43)])
def test_signals_are_forwarded_and_the_runner_exit_code_is_kept(tmp_path: Path, sig: int, code: int) -> None:
    fake = (
        "#!/bin/bash\n"
        "trap 'echo USR1 > \"$RECORD\"; exit 42' USR1\n"
        "trap 'echo TERM > \"$RECORD\"; exit 43' TERM\n"
        'echo ready > "$RECORD.ready"\n'
        "while true; do sleep 0.05; done\n"
    )
    script, _, record = hostile_run(tmp_path, fake)
    proc = subprocess.Popen([BASH, str(script)], cwd=tmp_path, env={"PATH": os.environ["PATH"]})
    try:
        deadline = time.monotonic() + 10
        while not Path(f"{record}.ready").exists():
            assert time.monotonic() < deadline, "the stand-in runner never started"
            time.sleep(0.02)
        time.sleep(0.1)  # let bash reach its wait
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == code
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert record.read_text().strip() == signal.Signals(sig).name.removeprefix("SIG")


@needs_bash
@pytest.mark.parametrize(("sig", "code", "runs"), [(signal.SIGUSR1, 0, True), (signal.SIGTERM, 143, False)])
def test_a_signal_before_the_runner_starts_neither_kills_the_script_nor_starts_a_cancelled_job(
    tmp_path: Path, sig: int, code: int, runs: bool
) -> None:
    """SLURM may send the walltime warning up to 60 s early, here while the site's setup runs: the
    script lives on and starts the runner; a cancel in that time ends it without starting one."""
    record = tmp_path / "record"  # the job's own variables are exported after the setup lines
    setup = (
        f"echo setup > {shlex.quote(f'{record}.setup')}",
        f"until [ -e {shlex.quote(f'{record}.go')} ]; do sleep 0.05; done",
    )
    script, _, _ = hostile_run(tmp_path, '#!/bin/sh\necho ran > "$RECORD"\n', setup)
    proc = subprocess.Popen([BASH, str(script)], cwd=tmp_path, env={"PATH": os.environ["PATH"]})
    try:
        deadline = time.monotonic() + 10
        while not Path(f"{record}.setup").exists():  # the traps are set before the setup runs
            assert time.monotonic() < deadline, "the job script never reached its setup"
            time.sleep(0.02)
        proc.send_signal(sig)
        Path(f"{record}.go").touch()
        assert proc.wait(timeout=10) == code
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert record.exists() is runs


# ---------------------------------------------------------------- the real cluster


@pytest.mark.slurm
def test_rendered_script_runs_under_sbatch(tmp_path: Path) -> None:
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        pytest.skip("sbatch not installed")
    shared = Path("/tmp") / f"orca-hpc-render-{os.getpid()}"
    shared.mkdir()
    try:
        fake = '#!/bin/sh\nprintf \'%s\\n\' "$@" > "$RECORD.$SLURM_ARRAY_TASK_ID"\n'
        python = shared / "fake python"
        python.write_text(fake)
        python.chmod(0o755)
        site = load_site("local-slurm")
        ctx = JobScriptContext(
            job_name="ohpc-render-test",
            array_size=2,
            ntasks=1,
            mem_mb=500,
            time_min=2,
            output_pattern=str(shared / "out %A_%a.log"),
            manifest=str(shared / "manifest $(x).txt"),
            python=str(python),
            campaign_dir=str(shared),
            env={"RECORD": str(shared / "record")},
        )
        script = shared / "job.sh"
        script.write_text(render_job_script(site, ctx))
        job = subprocess.run([sbatch, "--parsable", str(script)], capture_output=True, text=True, check=True)
        job_id = job.stdout.strip().split(";")[0]
        deadline = time.monotonic() + 60
        while not all((shared / f"record.{i}").exists() for i in range(2)):
            assert time.monotonic() < deadline, f"array {job_id} did not run"
            time.sleep(0.2)
        assert (shared / "record.1").read_text().split("\n")[:6] == [
            "-m",
            "orca_hpc.runner",
            "--manifest",
            str(ctx.manifest),
            "--index",
            "1",
        ]
        assert list(shared.glob(f"out {job_id}_*.log"))
    finally:
        shutil.rmtree(shared, ignore_errors=True)
