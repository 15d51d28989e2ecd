"""Site configs: shipped sites load, every mistake is one line naming file, line and key, overrides."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orca_hpc import shipped
from orca_hpc.config.site import (
    DEFAULT_KEEP,
    SiteConfig,
    available_sites,
    format_walltime,
    load_site,
    parse_walltime,
    resources_for,
    shipped_site_dirs,
)
from orca_hpc.errors import InputFileError, UserError

REPO_SITES = Path(__file__).resolve().parent.parent / "site_configs"
SHIPPED = sorted(p.stem for p in REPO_SITES.glob("*.toml"))

MINIMAL = """\
name = "tiny"
scheduler = "slurm"

[slurm]
partition = "debug"
walltime = 30
mem_per_cpu_mb = 1000

[orca]
path = "/opt/orca/orca"
"""


def write_site(tmp_path: Path, text: str, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write_site(tmp_path, text)
    with pytest.raises(UserError) as info:
        load_site(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)) or (message.split(": ", 1)[1].startswith(str(path)))
    return message


# ---------------------------------------------------------------- shipped sites


def test_the_three_shipped_sites_exist() -> None:
    assert {"local-slurm", "local", "example-cluster"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_site_loads_by_name(name: str) -> None:
    site = load_site(name)
    assert site.name == name
    assert site.scheduler in ("slurm", "local")
    assert site.source == REPO_SITES / f"{name}.toml"
    assert site.orca_path
    assert site.signal_before_end_s < site.walltime_min * 60


def test_local_slurm_matches_the_test_cluster() -> None:
    site = load_site("local-slurm")
    assert (site.scheduler, site.partition, site.account) == ("slurm", "debug", None)
    assert site.orca_path == "orca-emulator"
    assert (site.scratch_root, site.walltime_min, site.mem_per_cpu_mb) == ("/tmp", 30, 2000)
    assert (site.max_array_size, site.signal_before_end_s) == (1000, 30)
    assert site.max_mem_mb is not None and site.max_mem_mb <= 16000


def test_example_cluster_sets_every_section() -> None:
    site = load_site("example-cluster")
    assert site.account and site.qos and site.modules and site.openmpi_prefix
    assert site.orca_path.startswith("/")
    assert site.scratch_root == "$TMPDIR"
    assert any(line.startswith("--constraint=") for line in site.extra_sbatch)
    assert site.max_walltime_min is not None and site.walltime_min <= site.max_walltime_min


def test_local_site_needs_no_slurm() -> None:
    assert load_site("local").scheduler == "local"


def test_defaults_and_frozen(tmp_path: Path) -> None:
    site = load_site(write_site(tmp_path, MINIMAL))
    assert (site.max_array_size, site.signal_before_end_s, site.nodes, site.nprocs) == (1000, 300, 1, 1)
    assert (site.max_retries, site.max_nodefail_retries, site.lock_kind) == (3, 5, "flock")
    assert site.keep == DEFAULT_KEEP and site.scratch_root == "$TMPDIR" and site.mail == {}
    assert site.array_parallelism is None and site.template_dir is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        site.walltime_min = 5  # type: ignore[misc]


def test_name_defaults_to_the_file_name(tmp_path: Path) -> None:
    site = load_site(write_site(tmp_path, MINIMAL.replace('name = "tiny"\n', ""), name="mycluster"))
    assert site.name == "mycluster"


def test_env_values_become_strings_and_mail_passes_through(tmp_path: Path) -> None:
    text = (
        MINIMAL + '[environment]\nenv = { OMP_NUM_THREADS = 1, LABEL = "a b" }\n'
        '[mail]\nto = ["x@example.org"]\nsmtp = { host = "localhost", port = 2525 }\n'
    )
    site = load_site(write_site(tmp_path, text))
    assert site.env == {"OMP_NUM_THREADS": "1", "LABEL": "a b"}
    assert site.mail == {"to": ["x@example.org"], "smtp": {"host": "localhost", "port": 2525}}


# ---------------------------------------------------------------- walltime


@pytest.mark.parametrize(
    ("value", "minutes"),
    [
        (30, 30),
        ("30", 30),
        ("10:30", 11),
        ("01:30:00", 90),
        ("48:00:00", 2880),
        ("1-00:00:00", 1440),
        ("2-12", 3600),
        ("1-02:03", 1563),
        ("0-00:00:01", 1),
        ("3-00:00:00", 4320),
    ],
)
def test_parse_walltime(value: int | str, minutes: int) -> None:
    assert parse_walltime(value) == minutes


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "1:2:3:4",
        "0",
        "00:61:00",
        "1-25:00:00",
        "1h",
        "",
        -5,
        0,
        True,
        1.5,
    ],
)
def test_parse_walltime_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_walltime(value)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=100 * 24 * 60))
def test_format_walltime_round_trips(minutes: int) -> None:
    assert parse_walltime(format_walltime(minutes)) == minutes


def test_max_walltime_unlimited(tmp_path: Path) -> None:
    text = MINIMAL.replace("walltime = 30", 'walltime = 30\nmax_walltime = "UNLIMITED"')
    site = load_site(write_site(tmp_path, text))
    assert site.max_walltime_min is None


# ---------------------------------------------------------------- errors


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL.replace("walltime = 30", "walltme = 30"))
    assert message.startswith(f"{tmp_path / 'tiny.toml'}:6: [slurm] walltme: unknown key")
    assert "did you mean 'walltime'?" in message


def test_unknown_section_suggests_the_closest(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL + '[scrach]\nroot = "/tmp"\n')
    assert ":11: scrach: unknown key" in message and "'scratch'" in message


def test_every_unknown_key_and_wrong_type_is_named_at_once(tmp_path: Path) -> None:
    text = MINIMAL.replace("walltime = 30", "walltme = 30").replace("1000", '"1000"') + "[scrach]\n"
    message = load_error(tmp_path, text)
    assert message.startswith("3 problems: ")
    assert ":6: [slurm] walltme: unknown key" in message
    assert ":7: [slurm] mem_per_cpu_mb: expected an integer" in message
    assert ":11: scrach: unknown key" in message


def test_every_bad_value_is_named_at_once(tmp_path: Path) -> None:
    """Values of the right type that are wrong: each one named, with its line, in one error."""
    text = (
        MINIMAL.replace('partition = "debug"', 'partition = "de bug"')
        .replace("walltime = 30", 'walltime = "ten minutes"')
        .replace('path = "/opt/orca/orca"', 'path = "opt/orca"')
        .replace("mem_per_cpu_mb = 1000", "mem_per_cpu_mb = 1000\nnodes = 2")
        + '[scratch]\nroot = "scratch"\n'
    )
    message = load_error(tmp_path, text)
    assert message.startswith("5 problems: "), message
    for said in (
        ":5: [slurm] partition: 'de bug' has characters",
        ":6: [slurm] walltime: bad walltime format 'ten minutes'",
        ":8: [slurm] nodes: only single-node jobs",
        ":11: [orca] path: 'opt/orca' must be an absolute path",
        ":13: [scratch] root: 'scratch' must be an absolute path",
    ):
        assert said in message, (said, message)


def test_wrong_type(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL.replace("mem_per_cpu_mb = 1000", 'mem_per_cpu_mb = "1000"'))
    assert ":7: [slurm] mem_per_cpu_mb: expected an integer, got a string ('1000')" in message


def test_boolean_is_not_an_integer(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL + "[retry]\nmax_retries = true\n")
    assert "[retry] max_retries: expected an integer, got a boolean" in message


def test_wrong_type_in_a_list(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL + '[environment]\nmodules = ["openmpi", 4]\n')
    assert "[environment] modules: expected a list of strings, but an item is an integer (4)" in message


def test_missing_orca_path(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL.replace('path = "/opt/orca/orca"', ""))
    assert "[orca] path: missing value" in message


def test_missing_walltime_on_slurm(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL.replace("walltime = 30\n", ""))
    assert "[slurm] walltime: missing value" in message


def test_missing_scheduler(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL.replace('scheduler = "slurm"\n', ""))
    assert ": scheduler: missing value" in message


def test_empty_string_is_missing(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL.replace('partition = "debug"', 'partition = ""'))
    assert ":5: [slurm] partition: missing value" in message


def test_bad_walltime_format(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL.replace("walltime = 30", 'walltime = "25 hours"'))
    assert ":6: [slurm] walltime: bad walltime format '25 hours'" in message


def test_walltime_over_max(tmp_path: Path) -> None:
    text = MINIMAL.replace("walltime = 30", 'walltime = "05:00:00"\nmax_walltime = 60')
    message = load_error(tmp_path, text)
    assert "[slurm] walltime: 05:00:00 is longer than max_walltime 01:00:00" in message


def test_bad_scheduler_suggests(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL.replace('"slurm"', '"slrum"'))
    assert ":2: scheduler:" in message and "did you mean 'slurm'?" in message


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL + "oops = \n")
    assert f"{tmp_path / 'tiny.toml'}:11: invalid TOML" in message


@pytest.mark.parametrize(
    ("addition", "expected"),
    [
        ('[slurm]\nextra_sbatch = ["constraint=x"]', 'must start with "--"'),
        ('[slurm]\nextra_sbatch = ["--time=10"]', "use [slurm] walltime"),
        ('[slurm]\nextra_sbatch = ["--array=0-3"]', "--array cannot be set here"),
        ('[slurm]\nextra_sbatch = ["--constraint=x\\n#SBATCH --time=1"]', "one line"),
        ('[slurm]\npartition = "a b"', "characters SLURM names do not use"),
        ("[slurm]\nnodes = 2", "single-node"),
        ("[slurm]\nnprocs = 0", "at least 1"),
        ("[slurm]\nsignal_before_end_s = 1800", "not shorter than the walltime"),
        ("[slurm]\nwalltime = 2\nsignal_before_end_s = 60", "less the 60 s SLURM may send the warning early"),
        ('[orca]\npath = "bin/orca"', "absolute path or a bare command name"),
        ('[orca]\nopenmpi_prefix = "openmpi"', "absolute path"),
        ('[environment]\nmodules = ["openmpi gcc"]', "one word"),
        ('[environment]\nenv = { "BAD-NAME" = "1" }', "not a valid environment variable name"),
        ('[scratch]\nroot = "scratch"', "absolute path or start with an environment variable"),
        ('[ledger]\nlock_kind = "flok"', "did you mean 'flock'?"),
        ('[retry]\ndisabled_handlers = ["scf", "imaginary_mode"]', "did you mean 'imaginary_modes'?"),
        ('template_dir = "nowhere"', "is not a folder"),
    ],
)
def test_semantic_errors(tmp_path: Path, addition: str, expected: str) -> None:
    section, _, rest = addition.partition("\n")
    if section.startswith("["):
        # merge into the existing table (TOML forbids defining it twice)
        text = (
            MINIMAL.replace(f"{section}\n", f"{section}\n{rest}\n")
            if section in MINIMAL
            else f"{MINIMAL}{addition}\n"
        )
        text = _drop_duplicate_keys(text)
    else:
        text = addition + "\n" + MINIMAL
    assert expected in load_error(tmp_path, text)


def _drop_duplicate_keys(text: str) -> str:
    """Keep the first assignment of a key within each table (the test's replacement)."""
    out, seen, table = [], set(), ""
    for line in text.splitlines():
        if line.startswith("["):
            table = line
        key = line.split("=")[0].strip() if "=" in line else None
        if key and (table, key) in seen:
            continue
        if key:
            seen.add((table, key))
        out.append(line)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- overrides


def campaign_toml(tmp_path: Path, overrides: str) -> Path:
    path = tmp_path / "campaign" / "orca-hpc.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'name = "c"\nsite = "local-slurm"\n\n{overrides}', encoding="utf-8")
    return path


def test_overrides_change_only_what_they_name(tmp_path: Path) -> None:
    base = load_site("local-slurm")
    source = campaign_toml(tmp_path, "")
    site = base.with_overrides(
        {"slurm": {"walltime": "02:00:00", "nprocs": 4}, "environment": {"env": {"A": "1"}}},
        source=str(source),
    )
    assert (site.walltime_min, site.nprocs, site.env) == (120, 4, {"A": "1"})
    assert (site.partition, site.mem_per_cpu_mb, site.orca_path) == (base.partition, 2000, "orca-emulator")
    assert base.walltime_min == 30 and base.nprocs == 1  # the original is untouched
    assert site.with_overrides({}, source=str(source)) is site


def test_overrides_are_validated_with_the_campaign_file_and_line(tmp_path: Path) -> None:
    source = campaign_toml(tmp_path, "[overrides.slurm]\nwalltme = 60\n")
    with pytest.raises(InputFileError) as info:
        load_site("local-slurm").with_overrides({"slurm": {"walltme": 60}}, source=str(source))
    expected = f"{source}:5: [overrides.slurm] walltme: unknown key (did you mean 'walltime'?)"
    assert str(info.value) == expected


def test_overrides_wrong_type_and_limits(tmp_path: Path) -> None:
    site = load_site("local-slurm")
    source = str(campaign_toml(tmp_path, ""))
    with pytest.raises(UserError, match=r"\[overrides.slurm\] nprocs: expected an integer, got a string"):
        site.with_overrides({"slurm": {"nprocs": "4"}}, source=source)
    with pytest.raises(UserError, match=r"\[overrides.slurm\] walltime: .* longer than max_walltime"):
        site.with_overrides({"slurm": {"walltime": "1-00:00:00"}}, source=source)
    with pytest.raises(UserError, match="name: cannot be overridden"):
        site.with_overrides({"name": "other"}, source=source)


def test_overrides_template_dir_is_relative_to_the_campaign(tmp_path: Path) -> None:
    source = campaign_toml(tmp_path, "")
    (source.parent / "templates").mkdir()
    site = load_site("local-slurm").with_overrides({"template_dir": "templates"}, source=str(source))
    assert site.template_dir == (source.parent / "templates").resolve()


def test_overrides_replace_mail_whole(tmp_path: Path) -> None:
    path = write_site(tmp_path, MINIMAL + '[mail]\nto = ["a@example.org"]\nfrom = "b@example.org"\n')
    overrides = {"mail": {"to": ["c@example.org"]}}
    site = load_site(path).with_overrides(overrides, source=str(tmp_path / "x.toml"))
    assert site.mail == {"to": ["c@example.org"]}


# ---------------------------------------------------------------- lookup


def test_campaign_site_dir_wins_over_env_and_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign_sites, env_sites = tmp_path / "campaign", tmp_path / "env"
    for folder, partition in ((campaign_sites, "from-campaign"), (env_sites, "from-env")):
        folder.mkdir()
        text = (REPO_SITES / "local-slurm.toml").read_text().replace('"debug"', f'"{partition}"')
        (folder / "local-slurm.toml").write_text(text)
    monkeypatch.setenv("ORCA_HPC_SITE_DIR", str(env_sites))
    assert load_site("local-slurm", search_dirs=[campaign_sites]).partition == "from-campaign"
    assert load_site("local-slurm").partition == "from-env"
    monkeypatch.delenv("ORCA_HPC_SITE_DIR")
    assert load_site("local-slurm", search_dirs=[tmp_path / "missing"]).partition == "debug"
    assert available_sites([campaign_sites])["local-slurm"] == campaign_sites / "local-slurm.toml"


def test_unknown_site_name_suggests_and_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCA_HPC_SITE_DIR", raising=False)
    with pytest.raises(UserError) as info:
        load_site("local-slrum")
    message = str(info.value)
    assert "unknown site 'local-slrum' (did you mean 'local-slurm'?)" in message
    assert "example-cluster" in message and "\n" not in message


def test_bad_site_name_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="bad site name"):
        load_site("two words")
    with pytest.raises(UserError, match="site config not found"):
        load_site(tmp_path / "nope.toml")


def test_shipped_sites_are_found_in_the_wheel_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A wheel has orca_hpc/site_configs/ (pyproject force-include) and no repo folder next to the package.
    package = tmp_path / "site-packages" / "orca_hpc"
    (package / "site_configs").mkdir(parents=True)
    shutil.copy(REPO_SITES / "local.toml", package / "site_configs" / "local.toml")
    monkeypatch.setattr(shipped, "PACKAGE_DIR", package)
    monkeypatch.delenv("ORCA_HPC_SITE_DIR", raising=False)
    assert shipped_site_dirs() == [package / "site_configs"]
    assert load_site("local").source == package / "site_configs" / "local.toml"
    with pytest.raises(UserError, match="unknown site 'local-slurm'"):
        load_site("local-slurm")


def test_repo_layout_is_found() -> None:
    assert REPO_SITES in shipped_site_dirs()


# ---------------------------------------------------------------- memory


def test_resources_from_maxcore() -> None:
    site = load_site("local-slurm")
    assert resources_for(site, 4, 1500) == (7500, 1500)
    assert resources_for(site, 1, 1001) == (1252, 1001)  # rounded up, never below 1001/0.8
    with pytest.raises(UserError, match="more than max_mem_mb = 16000"):
        resources_for(site, 8, 2000)


def test_resources_without_maxcore() -> None:
    site = load_site("local-slurm")
    assert resources_for(site, 4, None) == (8000, 1600)
    assert resources_for(site, 16, None) == (16000, 800)  # capped at max_mem_mb, maxcore follows
    with pytest.raises(UserError):
        resources_for(site, 0, None)


@given(
    nprocs=st.integers(1, 128), maxcore=st.integers(1, 20000) | st.none(), mem_per_cpu=st.integers(2, 20000)
)
def test_resources_keep_maxcore_within_80_percent(nprocs: int, maxcore: int | None, mem_per_cpu: int) -> None:
    site = SiteConfig(name="h", scheduler="slurm", orca_path="orca", mem_per_cpu_mb=mem_per_cpu)
    mem, core = resources_for(site, nprocs, maxcore)
    assert core * nprocs * 5 <= mem * 4
    if maxcore is not None:
        assert core == maxcore and (mem - 1) * 4 < core * nprocs * 5  # the least memory that fits


def test_recovery_handler_names_are_the_controllers() -> None:
    from orca_hpc.config.site import RECOVERY_HANDLERS
    from orca_hpc.controller.recovery import HANDLERS

    assert sorted(RECOVERY_HANDLERS) == sorted(h.name for h in HANDLERS)
