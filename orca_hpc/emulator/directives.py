"""Failure-mode directives of the ORCA emulator (`# emulate: ...` lines and `ORCA_EMULATE`).

A directive string is a list of tokens separated by commas and/or blanks. A bare token switches a mode
on; `key=value` sets an option. Every failure mode X also accepts `X_unless=COND[|COND...]`: the failure
happens unless one of the conditions holds for the input being run (which is how tests emulate
"fails until the controller applies the right correction"). See docs/emulator.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from orca_hpc.emulator.inputs import DEFAULT_GEOM_MAXITER, DEFAULT_MAXCORE, DEFAULT_SCF_MAXITER, EmuJob
from orca_hpc.emulator.text import VERSIONS

FAILURE_MODES = (
    "scf_fail",
    "opt_maxcycles",
    "oom",
    "input_error",
    "too_many_processes",
    "parallel_error",
    "ccsd_not_converged",
    "suspicious",
    "crash",
    "killed",
    "imaginary",  # Freq after Opt: imaginary modes where none belong (OptTS: not exactly one)
    "mpi_error",
    "disk_full",
    "mdci_oom",
    "neb_not_converged",  # a NEB band that runs out of iterations
)
# Options that take a value; several also switch their failure mode on (see IMPLIES).
OPTIONS = (
    "n_imaginary", "sleep", "alloc_mb", "need_mb", "max_procs", "keyword", "opt_cycles", "scf_cycles", "mpi",
    "wording", "more_mb", "version", "cpu_s",
)  # fmt: skip
MPI_KINDS = ("slots", "launch", "orted", "libs")
WORDINGS = ("orca42", "orca41")
IMPLIES = {"need_mb": "oom", "max_procs": "too_many_processes"}
UNLESS_PREFIX = {"need_mb": "MaxCore", "max_procs": "NProcs"}
# Older spelling kept because tests and docs use it: same as opt_maxcycles_unless=Restart.
ALIASES = {"opt_maxcycles_unless_restart": ("opt_maxcycles", "Restart")}


class DirectiveError(ValueError):
    """An emulate directive the emulator does not know (a typo must not silently pass a test)."""


@dataclass
class Directives:
    modes: set[str] = field(default_factory=set)
    unless: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)

    def number(self, key: str, default: float) -> float:
        value = self.options.get(key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise DirectiveError(f"emulate option {key}={value!r} is not a number") from None

    def merged(self, other: Directives) -> Directives:
        unless = {k: list(v) for k, v in self.unless.items()}
        for mode, conds in other.unless.items():
            unless.setdefault(mode, []).extend(conds)
        return Directives(self.modes | other.modes, unless, {**self.options, **other.options})


def parse_directives(text: str) -> Directives:
    found = Directives()
    for token in re.split(r"[,\s]+", text.strip()):
        if not token:
            continue
        key, eq, value = token.partition("=")
        key = key.lower()
        if key in ALIASES:
            mode, cond = ALIASES[key]
            found.modes.add(mode)
            found.unless.setdefault(mode, []).append(cond)
        elif not eq:
            if key not in FAILURE_MODES:
                raise DirectiveError(f"unknown emulate mode {token!r}; known: {', '.join(FAILURE_MODES)}")
            found.modes.add(key)
        elif key.endswith("_unless") and key[: -len("_unless")] in FAILURE_MODES:
            mode = key[: -len("_unless")]
            found.modes.add(mode)
            found.unless.setdefault(mode, []).extend(c for c in value.split("|") if c)
        elif key in OPTIONS:
            if key == "mpi" and value not in MPI_KINDS:
                raise DirectiveError(f"emulate option mpi={value!r}; known: {', '.join(MPI_KINDS)}")
            if key == "version" and value not in VERSIONS:
                raise DirectiveError(f"emulate option version={value!r}; known: {', '.join(VERSIONS)}")
            if key == "wording" and value not in WORDINGS:
                raise DirectiveError(f"emulate option wording={value!r}; known: {', '.join(WORDINGS)}")
            found.options[key] = value
            if key in IMPLIES:
                mode = IMPLIES[key]
                found.modes.add(mode)
                found.unless.setdefault(mode, []).append(f"{UNLESS_PREFIX[key]}{value}")
        else:
            raise DirectiveError(f"unknown emulate option {token!r}; known: {', '.join(OPTIONS)}")
    return found


def condition_holds(cond: str, job: EmuJob, workdir: Path) -> bool:
    """Whether one `_unless` condition is met by the job as written (see the docs' condition table)."""
    low = cond.lower()
    if m := re.fullmatch(r"maxiter(\d+)", low):
        return (job.scf_maxiter or DEFAULT_SCF_MAXITER) >= int(m.group(1))
    if m := re.fullmatch(r"geommaxiter(\d+)", low):
        return (job.geom_maxiter or DEFAULT_GEOM_MAXITER) >= int(m.group(1))
    if m := re.fullmatch(r"maxcore(\d+)", low):
        return (job.maxcore or DEFAULT_MAXCORE) >= int(m.group(1))
    if m := re.fullmatch(r"nprocs(\d+)", low):
        return (job.nprocs or 1) <= int(m.group(1))
    if low == "restart":
        return job.coord_kind == "xyzfile"
    if low == "moread":
        return job.has_keyword("moread") and job.moinp is not None and (workdir / job.moinp).is_file()
    return job.has_keyword(cond)


def fails(mode: str, directives: Directives, job: EmuJob, workdir: Path) -> bool:
    """A mode fires when it is on and none of its `_unless` conditions holds."""
    if mode not in directives.modes:
        return False
    return not any(condition_holds(c, job, workdir) for c in directives.unless.get(mode, []))
