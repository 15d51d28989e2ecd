"""What a job inherits: never the controller's mail password (issue 18).

The variable named by ``[mail] password_env`` is unset at the top of the job script (outside every
block, so no site template drops it), left out of the local site's environment, and kept from ORCA
by the runner even if a site's setup lines set it again.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from e2e import cli, orca_input, status, write_inputs

from orca_hpc.config.secrets import secret_env_names
from orca_hpc.config.site import load_site
from orca_hpc.perms import SECRET_ENV_VAR, without_secrets
from orca_hpc.scheduler.script import JobScriptContext, render_job_script

SECRET = "s3cr3t-value-'quoted' $(touch PWNED)"
BASH = shutil.which("bash")


def test_secret_names_come_from_every_mail_table_and_only_valid_ones() -> None:
    assert secret_env_names({"password_env": "B"}, {"password_env": "A"}, None, {}) == ("A", "B")
    assert secret_env_names({"password_env": "rm -rf /"}, {"password_env": 5}) == ()


def test_without_secrets_drops_the_named_and_the_listed_variables() -> None:
    env = {"KEEP": "1", "PW": "x", "OTHER_PW": "y", SECRET_ENV_VAR: "OTHER_PW"}
    assert without_secrets(env, ["PW"]) == {"KEEP": "1"}


@pytest.mark.skipif(BASH is None, reason="bash not installed")
def test_job_script_unsets_the_secret_before_anything_runs(tmp_path: Path) -> None:
    record = tmp_path / "env.txt"
    python = tmp_path / "python"  # a stand-in runner: prints its environment
    python.write_text(f'#!/bin/bash\nenv > "{record}"\n')
    python.chmod(0o755)
    site = dataclasses.replace(load_site("local-slurm"), setup=("echo setup-ran",))
    ctx = JobScriptContext(
        job_name="ohpc-t",
        array_size=1,
        ntasks=1,
        mem_mb=1000,
        time_min=10,
        output_pattern=str(tmp_path / "%A_%a.out"),
        manifest=str(tmp_path / "m.txt"),
        python=str(python),
        campaign_dir=str(tmp_path),
        unset_env=("OHPC_TEST_PW",),
    )
    script = render_job_script(site, ctx)
    unset_at = script.index("unset OHPC_TEST_PW")
    assert unset_at < script.index("setup-ran") and unset_at < script.index("orca_hpc.runner")
    (tmp_path / "job.sh").write_text(script)
    env = {"PATH": os.environ["PATH"], "OHPC_TEST_PW": SECRET, "KEPT": "yes"}
    subprocess.run([BASH, str(tmp_path / "job.sh")], cwd=tmp_path, env=env, check=True, capture_output=True)
    seen = record.read_text()
    assert "KEPT=yes" in seen and SECRET not in seen and "OHPC_TEST_PW=" not in seen
    assert f"{SECRET_ENV_VAR}=OHPC_TEST_PW" in seen  # the runner learns which names to keep from ORCA
    with pytest.raises(Exception, match="not a valid environment variable name"):
        render_job_script(site, dataclasses.replace(ctx, unset_env=("A;rm",)))


def test_local_site_run_never_shows_the_secret_to_orca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in ORCA that prints its environment (into its .out, copied back) and exits normally.
    orca = tmp_path / "fake-orca"
    orca.write_text("#!/bin/bash\nenv\necho '****ORCA TERMINATED NORMALLY****'\n")
    orca.chmod(0o755)
    camp = tmp_path / "camp"
    cli(tmp_path, "init", str(camp), "--site", "local")
    config = camp / "orca-hpc.toml"
    config.write_text(
        config.read_text()
        + f'\n[overrides.orca]\npath = "{orca}"\n'
        + '\n[mail]\nhost = "localhost"\nfrom = "a@b.example"\nto = "c@d.example"\n'
        + 'username = "u"\npassword_env = "OHPC_TEST_PW"\n'
    )
    monkeypatch.setenv("OHPC_TEST_PW", SECRET)
    monkeypatch.setenv("OHPC_TEST_KEPT", "visible")
    cli(camp, "submit", *write_inputs(tmp_path / "in", {"w.inp": orca_input()}))
    deadline = time.monotonic() + 120
    while not list(camp.glob("jobs/*/attempt-1/result.json")):
        assert time.monotonic() < deadline, status(camp)
        time.sleep(0.2)
    (out,) = camp.glob("jobs/*/attempt-1/*.out")
    seen = out.read_text()
    assert "OHPC_TEST_KEPT=visible" in seen  # the environment did reach ORCA
    assert SECRET not in seen and "OHPC_TEST_PW" not in seen and SECRET_ENV_VAR not in seen
