"""Render the SLURM job script (`templates/slurm/`) for one array of attempts.

Templates are looked up in the site's `template_dir` first, then in the packaged templates, so a site
can ship a `job.sh.j2` that extends "base.sh.j2" and replaces blocks. Rendering is strict (an undefined
variable is an error) and never HTML-escapes; every value that reaches the shell goes through `shq`,
every `#SBATCH` value through `sbatch`, and neither can ever start a new line in the script.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orca_hpc.atomic import atomic_write_bytes
from orca_hpc.config.site import SiteConfig, format_walltime
from orca_hpc.config.tomlfile import refusal
from orca_hpc.errors import TEMPLATE_RUNTIME_ERRORS, InputFileError, UserError
from orca_hpc.perms import FILE_MODE, make_dir, writable_by_others
from orca_hpc.shipped import shipped_dir

# jinja2 is imported where a script is rendered: status and reconcile load this module and never render.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

    import jinja2

ENTRY_TEMPLATE = "job.sh.j2"
# The packaged templates are also reachable under this prefix, so a site's own base.sh.j2 can
# extend "orca-hpc/base.sh.j2" without extending itself.
PACKAGED_PREFIX = "orca-hpc"

# Characters that would end a line (for bash, SLURM or Python's splitlines) or are invisible controls.
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SBATCH_BARE = re.compile(r"^[A-Za-z0-9_.,:@%+=/-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class JobScriptContext:
    """What one sbatch call needs beyond the site: the array of attempts and its resources."""

    job_name: str  # sbatch --job-name, "ohpc-<token>": how an unconfirmed submission is found again
    array_size: int  # N tasks: --array=0-(N-1)
    ntasks: int  # ORCA's nprocs
    mem_mb: int  # per job (see site.resources_for)
    time_min: int
    output_pattern: str | os.PathLike[str]  # absolute, with %A_%a: stdout and stderr of each task
    manifest: str | os.PathLike[str]  # absolute: line i is the attempt folder of task i
    python: str | os.PathLike[str]  # absolute interpreter that has orca_hpc installed
    campaign_dir: str | os.PathLike[str]
    env: Mapping[str, str] = field(default_factory=dict, hash=False)  # extra exported variables
    unset_env: tuple[str, ...] = ()  # the controller's secrets (``config.secrets``): unset first


@dataclass(frozen=True)
class ScriptLayout:
    """Where a campaign's job scripts, array manifests and job logs go, and what runs the runner."""

    campaign_dir: Path
    arrays_dir: Path  # <token>.txt (line i: the attempt folder of task i) and <token>.sh
    log_dir: Path  # each array task's stdout/stderr, %A_%a.out
    python: str  # absolute interpreter that has orca_hpc installed
    unset_env: tuple[str, ...] = ()  # variables no job may inherit (``config.secrets``)

    def manifest(self, token: str) -> Path:
        return self.arrays_dir / f"{token}.txt"


def write_lines(path: Path, lines: list[str]) -> None:
    """An array manifest: atomic (a task never reads half of it), not fsynced (rewritten on resubmit)."""
    make_dir(path.parent, parents=True)
    atomic_write_bytes(path, "".join(f"{line}\n" for line in lines).encode("utf-8"), FILE_MODE, durable=False)


def template_root() -> Path:
    """The folder holding `slurm/`: inside the package (wheel install), else the repo's `templates/`."""
    return shipped_dir("templates")


def shell_quote(value: object) -> str:
    """Quote a value as one shell word that is always on one line.

    Plain values use shlex.quote; values with line breaks or control characters use bash's $'...'
    with escapes, so the rendered script keeps one command per line.
    """
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if "\x00" in text:
        raise UserError(f"a value for the job script contains a NUL byte: {text!r}")
    if not _LINE_BREAKING.search(text):
        return shlex.quote(text)
    out = []
    for char in text:
        if char in "\\'":
            out.append("\\" + char)
        elif _LINE_BREAKING.match(char):
            # UTF-8 bytes as \xHH: bash's \uHHHH depends on the node's locale
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8"))
        else:
            out.append(char)
    return "$'" + "".join(out) + "'"


def slurm_filename(path: str | os.PathLike[str]) -> str:
    """``path`` as the literal part of an sbatch filename pattern (``--output``).

    sbatch expands ``%j``, ``%A``, ``%u``, ... in these patterns, so a campaign folder named ``50%j``
    would send every job's log elsewhere; ``%%`` stands for one ``%`` (sbatch man page, "filename
    pattern"). A backslash is no way out: it switches off every replacement, ``%A_%a`` included.
    """
    return os.fspath(path).replace("%", "%%")


def sbatch_quote(value: object) -> str:
    """Quote a value for an `#SBATCH --opt=VALUE` line.

    sbatch reads double quotes in these lines (spaces, '$', ';', quotes and unicode then stay
    literal) but has no escape for a double quote or a line break: those are rejected.
    """
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if _SBATCH_BARE.match(text):
        return text
    if _LINE_BREAKING.search(text) or '"' in text or "\\" in text:
        raise UserError(
            f"{text!r} cannot go into an #SBATCH line (no line breaks, control characters, "
            "double quotes or backslashes)"
        )
    return f'"{text}"'


def _owners_only_loader(folder: str) -> jinja2.FileSystemLoader:
    """A site's template folder, whose templates are refused when the group or others may change them
    (or their folder): a job script template is shell that runs as the campaign's owner, like the
    site config that names it (``config/tomlfile.py``)."""
    import jinja2

    class Loader(jinja2.FileSystemLoader):
        def get_source(self, environment: jinja2.Environment, template: str) -> Any:
            source, filename, uptodate = super().get_source(environment, template)
            for path in (filename, os.path.dirname(filename)):
                writable = writable_by_others(os.stat(path))
                if writable:
                    raise UserError(f"{path}: {refusal('job script template', writable, path)}")
            return source, filename, uptodate

    return Loader(folder)


@functools.lru_cache(maxsize=16)
def _environment(site_template_dir: str | None) -> jinja2.Environment:
    import jinja2

    packaged = jinja2.FileSystemLoader(str(template_root() / "slurm"))
    loaders: list[jinja2.BaseLoader] = []
    if site_template_dir:
        loaders.append(_owners_only_loader(site_template_dir))
    loaders += [packaged, jinja2.PrefixLoader({PACKAGED_PREFIX: packaged})]
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # a shell script, not HTML: quoting is shq's job
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["shq"] = shell_quote
    env.filters["sbatch"] = sbatch_quote
    env.filters["slurm_time"] = format_walltime
    return env


def _check_context(site: SiteConfig, ctx: JobScriptContext) -> None:
    for attr in ("array_size", "ntasks", "mem_mb", "time_min"):
        value = getattr(ctx, attr)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"job script: {attr} must be a positive integer, got {value!r}")
    if ctx.array_size > site.max_array_size:
        raise UserError(
            f"job script: array of {ctx.array_size} tasks is larger than site {site.name}'s "
            f"max_array_size {site.max_array_size}"
        )
    if site.max_mem_mb is not None and ctx.mem_mb > site.max_mem_mb:
        raise UserError(
            f"job script: --mem={ctx.mem_mb}M is more than site {site.name}'s max_mem_mb {site.max_mem_mb}"
        )
    if site.max_walltime_min is not None and ctx.time_min > site.max_walltime_min:
        raise UserError(
            f"job script: time limit {format_walltime(ctx.time_min)} is longer than site "
            f"{site.name}'s max_walltime {format_walltime(site.max_walltime_min)}"
        )
    for attr in ("output_pattern", "manifest", "python", "campaign_dir"):
        value = os.fspath(getattr(ctx, attr))
        if not os.path.isabs(value):
            raise UserError(f"job script: {attr} must be an absolute path, got {value!r}")
    for name in (*ctx.env, *ctx.unset_env):
        if not _ENV_NAME.match(name):
            raise UserError(f"job script: {name!r} is not a valid environment variable name")


def render_job_script(site: SiteConfig, ctx: JobScriptContext) -> str:
    """The job script text for one array: `#SBATCH` header, environment, then the runner."""
    _check_context(site, ctx)
    array_spec = f"0-{ctx.array_size - 1}"
    if site.array_parallelism:
        array_spec += f"%{site.array_parallelism}"
    env_vars = sorted({**site.env, **ctx.env}.items())
    template_dir = str(site.template_dir) if site.template_dir else None
    import jinja2

    try:
        template = _environment(template_dir).get_template(ENTRY_TEMPLATE)
        return template.render(
            site=site, ctx=ctx, array_spec=array_spec, time=format_walltime(ctx.time_min), env_vars=env_vars
        )
    except jinja2.TemplateSyntaxError as exc:
        raise InputFileError(
            exc.filename or exc.name or ENTRY_TEMPLATE, f"template error: {exc.message}", exc.lineno
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise UserError(
            f"site {site.name}: template {exc.name!r} not found (looked in "
            f"{template_dir or ''} {template_root() / 'slurm'})"
        ) from None
    except jinja2.UndefinedError as exc:
        raise UserError(
            f"site {site.name}: job script template uses an undefined value: {exc.message}"
        ) from None
    except jinja2.TemplateError as exc:
        raise UserError(f"site {site.name}: job script template: {exc}") from None
    except TEMPLATE_RUNTIME_ERRORS as exc:  # the site template's own code ({{ 1/0 }}, self-include)
        raise UserError(
            f"site {site.name}: job script template failed: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
