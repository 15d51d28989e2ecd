"""A campaign is a folder: its config (`orca-hpc.toml`), its state (`.orca-hpc/`) and its jobs (`jobs/`)."""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orca_hpc.config.site import SIGNAL_EARLY_S, SiteConfig, load_site
from orca_hpc.config.tomlfile import parse_toml, read_config_text
from orca_hpc.errors import UserError, one_line
from orca_hpc.ledger.store import Ledger
from orca_hpc.perms import DIR_MODE, make_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TYPE_CHECKING = False
if TYPE_CHECKING:  # the workflow module (and the input parser it needs) loads for workflow campaigns only
    from orca_hpc.config.workflow import Workflow

CONFIG_NAME = "orca-hpc.toml"
STATE_DIR = ".orca-hpc"
_KNOWN_KEYS = {
    "name", "id", "site", "overrides", "mail", "method_template", "presets", "logging", "rightsize",
    "workflow",
}  # fmt: skip


@dataclass(frozen=True)
class RightSizing:
    """``[rightsize]``: new submissions of similar jobs get the walltime and memory that ``orca-hpc
    usage`` suggests (``controller/rightsize.py``). The report uses ``min_evidence`` and ``margin`` too."""

    enabled: bool = False
    min_evidence: int = 20  # finished attempts of similar jobs before their suggestion is used
    margin: float = 0.2  # added to the 95th percentile of what they used


def _check_step_walltimes(workflow: Workflow, site: SiteConfig, config_path: Path) -> None:
    """A step's own walltime must leave time before the walltime warning, as the site's must
    (``config/site.py``): SLURM may send it ``SIGNAL_EARLY_S`` early, and the runner stops ORCA then."""
    warn = site.signal_before_end_s + SIGNAL_EARLY_S
    short = [s for s in workflow.steps if s.walltime_min is not None and warn >= s.walltime_min * 60]
    if short:
        raise UserError(
            f"{config_path}: workflow step(s) "
            + ", ".join(f"{s.name!r} (walltime {s.walltime_min} min)" for s in short)
            + f": not longer than the site's {site.signal_before_end_s} s walltime warning plus the "
            f"{SIGNAL_EARLY_S} s SLURM may send it early"
        )


def _rightsizing(table: Any, path: Path) -> RightSizing:
    if table is None:
        return RightSizing()
    if not isinstance(table, dict):
        raise UserError(f"{path}: [rightsize] must be a table")
    unknown = sorted(set(table) - {"enabled", "min_evidence", "margin"})
    if unknown:
        known = "enabled, min_evidence, margin"
        raise UserError(f"{path}: [rightsize] unknown key {unknown[0]!r} (known: {known})")
    enabled = table.get("enabled", False)
    evidence = table.get("min_evidence", RightSizing.min_evidence)
    margin = table.get("margin", RightSizing.margin)
    problems = []
    if not isinstance(enabled, bool):
        problems.append("enabled must be true or false")
    if isinstance(evidence, bool) or not isinstance(evidence, int) or evidence < 1:
        problems.append(f"min_evidence must be a whole number from 1, not {evidence!r}")
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 <= margin <= 10:
        problems.append(f"margin must be a number from 0 to 10 (0.2 = 20 %), not {margin!r}")
    if problems:
        raise UserError(f"{path}: [rightsize] " + "; ".join(problems))
    return RightSizing(enabled, evidence, float(margin))


@dataclass
class Campaign:
    root: Path
    name: str
    campaign_id: str
    site: SiteConfig
    config: dict[str, Any] = field(default_factory=dict)
    workflow: Workflow | None = None  # the steps of a workflow campaign (`config/workflow.py`)
    rightsize: RightSizing = field(default_factory=RightSizing)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def arrays_dir(self) -> Path:
        return self.state_dir / "arrays"

    @property
    def submitit_dir(self) -> Path:
        return self.state_dir / "submitit"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def slug(self) -> str:
        """Safe in file names and job names: names scratch folders on shared file systems."""
        return f"{_slug(self.name)[:24]}-{self.campaign_id}"

    def ledger(self) -> Ledger:
        return Ledger(self.state_dir, lock_kind=self.site.lock_kind)


@functools.lru_cache(maxsize=16)  # asked once per attempt laid out: 10,000 times in a large submit
def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() or c in "._-" else "_" for c in text)
    return out.strip("._") or "x"


def init_campaign(
    root: Path, site_name: str, name: str | None = None, workflow: str | None = None
) -> Campaign:
    """Create a campaign folder; refuses to touch an existing campaign. ``workflow``: a shipped
    workflow preset (``config.workflow.PRESETS``) written into the config."""
    import secrets

    from orca_hpc.config.workflow import PRESETS, Workflow

    root = root.absolute()
    if workflow is not None and workflow not in PRESETS:  # the option's fault: no file to name yet
        raise UserError(f"--workflow: unknown preset {workflow!r} (presets: {', '.join(PRESETS)})")
    flow = None if workflow is None else Workflow.parse(workflow, root / CONFIG_NAME, {}, None)
    config_path = root / CONFIG_NAME
    if config_path.exists() or (root / STATE_DIR).exists():
        raise UserError(f"{root}: already an orca-hpc campaign")
    site = load_site(site_name, search_dirs=[root / "site_configs"])
    name = name or root.name
    campaign_id = secrets.token_hex(3)
    make_dir(root, parents=True)
    make_dir(root / "jobs")
    state = root / STATE_DIR
    state.mkdir(mode=DIR_MODE)
    for sub in ("arrays", "submitit", "logs"):
        make_dir(state / sub)
    text = (
        "# orca-hpc campaign. [overrides] replace site values (same keys as site_configs/*.toml).\n"
        f"name = {_toml_str(name)}\n"
        f"id = {_toml_str(campaign_id)}\n"
        f"site = {_toml_str(site_name)}\n"
        + (f"workflow = {_toml_str(workflow)}\n" if workflow is not None else "")
        + "\n[overrides]\n"
    )
    _write_new(config_path, text)
    Ledger.create(
        state,
        meta={"campaign": name, "campaign_id": campaign_id, "site": site_name},
        lock_kind=site.lock_kind,
    )
    return Campaign(root, name, campaign_id, site, tomllib.loads(text), flow)


def _toml_str(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _write_new(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def find_campaign_root(start: Path) -> Path | None:
    """The campaign that ``start`` is in, like git finds its repository: ``start`` or the nearest
    parent folder with an ``orca-hpc.toml``; None when there is none up to the file system's root."""
    start = start.absolute()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    return None


def load_campaign(root: Path) -> Campaign:
    root = root.absolute()
    config_path = root / CONFIG_NAME
    if not config_path.is_file():
        raise UserError(
            f"{root}: not an orca-hpc campaign (no {CONFIG_NAME} here or in any parent folder); "
            "create one with 'orca-hpc init'"
        )
    config = parse_toml(read_config_text(config_path, "campaign config"), config_path)
    problems = []  # every problem of the file's own keys at once
    unknown = sorted(set(config) - _KNOWN_KEYS)
    if unknown:
        keys = ", ".join(repr(k) for k in unknown)
        problems.append(f"{config_path}: unknown key {keys} (known: {', '.join(sorted(_KNOWN_KEYS))})")
    for key in ("name", "id", "site"):
        if not isinstance(config.get(key), str) or not config[key]:
            problems.append(f"{config_path}: key {key!r} must be a non-empty string")
    presets = config.get("presets", {})
    if not isinstance(presets, dict) or not all(isinstance(v, str) and v.strip() for v in presets.values()):
        problems.append(f"{config_path}: [presets] must map names to ORCA method lines (strings)")
    if not isinstance(config.get("method_template", ""), str):
        problems.append(f"{config_path}: method_template must be a string (a Jinja2 template)")
    if problems:
        raise UserError(one_line(problems))
    site = load_site(config["site"], search_dirs=[root / "site_configs"])
    overrides = config.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise UserError(f"{config_path}: [overrides] must be a table")
    if overrides:
        site = site.with_overrides(overrides, source=str(config_path))
    workflow = None
    if "workflow" in config:
        from orca_hpc.config.workflow import Workflow

        workflow = Workflow.parse(config["workflow"], config_path, presets, config.get("method_template"))
        _check_step_walltimes(workflow, site, config_path)
    rightsize = _rightsizing(config.get("rightsize"), config_path)
    return Campaign(root, config["name"], config["id"], site, config, workflow, rightsize)
