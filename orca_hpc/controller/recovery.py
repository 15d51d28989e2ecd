"""ORCA-aware recovery: one small handler per failure, each with ``check()`` and ``correct()``.

A handler looks at how an attempt failed (``check``) and derives the next attempt's plan from the
failed one (``correct``), saying what it changed and why. Every change is recorded on the next
attempt, so ``orca-hpc show`` explains why attempt 3 differs from attempt 1. Escalation (the SCF
ladder) is driven by the corrections already recorded on the job's earlier attempts; when the job's
retry budget is nearly spent, the last allowed attempt gets every compatible step the ladder has left,
so the strongest remedies are reached with the default ``max_retries = 3``. A correction never lowers
a value the user set higher (SCF/geometry MaxIter, maxcore, time). The ladders are in
docs/recovery.md.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orca_hpc.attempt.folder import AttemptPlan
from orca_hpc.config.site import job_memory_mb
from orca_hpc.errors import OrcaHpcError
from orca_hpc.orca import chemistry
from orca_hpc.orca import inputs as orca_input
from orca_hpc.orca.outcomes import DEFAULT_IMAG_THRESHOLD_CM1, Outcome
from orca_hpc.orca.read import read_tail

PREVIOUS_GBW = "previous.gbw"
RESTART_XYZ = "restart.xyz"
DISPLACED_XYZ = "displaced.xyz"
# How much of an output's end is searched for its last geometry (an optimisation cycle prints it).
GEOMETRY_TAIL_BYTES = 4 << 20  # a cycle of a large molecule prints well over 1 MB
# How far the atom that moves most is pushed along an unwanted imaginary mode (Angstrom): enough to
# leave the saddle region, small enough to stay in the same basin.
DISPLACEMENT_A = 0.1
# Keywords a tighter re-optimisation replaces (TightOpt instead), and grids replaced by a finer one.
_LOOSER_OPT = ("Opt", "LooseOpt", "NormalOpt", "CrudeOpt", "SloppyOpt", "L-Opt", "L-LooseOpt", "L-NormalOpt")
_GRIDS = ("DefGrid1", "DefGrid2", "Grid1", "Grid2", "Grid3", "Grid4", "Grid5", "FinalGrid5", "NoFinalGrid")


@dataclass
class Limits:
    """What the site allows a corrected attempt to ask for."""

    max_mem_mb: int
    max_time_min: int


@dataclass
class Failure:
    """What a handler may look at: how the attempt ended and what it left behind."""

    outcome: Outcome
    reason: str | None  # walltime, cancelled, preempted, node_fail, memory_limit
    classification: dict[str, Any]
    attempt_dir: Path
    base: str  # ORCA base name (input name without .inp)
    history: list[list[dict[str, str]]] = field(default_factory=list)  # corrections of every earlier attempt
    # Counted retries the job may still make after this one (None: unknown, climb one step at a time).
    retries_left: int | None = None

    @property
    def last_chance(self) -> bool:
        """This correction makes the last attempt the budget allows: give it everything left."""
        return self.retries_left is not None and self.retries_left <= 0

    def steps_done(self, handler: str) -> set[str]:
        return {
            c["step"]
            for changes in self.history
            for c in changes
            if c.get("handler") == handler and "step" in c
        }

    def file(self, suffix: str) -> Path | None:
        path = self.attempt_dir / f"{self.base}{suffix}"
        return path if path.is_file() and path.stat().st_size > 0 else None

    def times_applied(self, handler: str) -> int:
        """Earlier attempts this handler corrected (one attempt may carry several of its changes)."""
        return sum(1 for changes in self.history if any(c.get("handler") == handler for c in changes))


class NoCorrection(Exception):
    """The handler has nothing left to try."""


def _change(handler: str, change: str, why: str, step: str | None = None) -> dict[str, str]:
    found = {"handler": handler, "change": change, "why": why}
    if step:
        found["step"] = step  # which rung of the handler's ladder this was (see ScfHandler)
    return found


def _current_int(text: str, block: str, key: str) -> int | None:
    """The value the input sets for ``%block key`` (first job), or None."""
    try:
        value = orca_input.parse_input(Path("input.inp"), text, check_files=False).first.option(block, key)
        return int(value) if value is not None else None
    except (ValueError, OrcaHpcError):
        return None


def _raise_option(text: str, block: str, key: str, wanted: int) -> tuple[str, int, int | None]:
    """Set ``%block key`` to at least ``wanted``, never below what the input already has."""
    current = _current_int(text, block, key)
    value = max(wanted, current or 0)
    if value != current:
        text = orca_input.set_block_option(text, block, key, str(value))
    return text, value, current


def _with_moread(
    plan: AttemptPlan, failure: Failure, handler: str, text: str
) -> tuple[str, list[dict[str, str]]]:
    gbw = failure.file(".gbw")
    if gbw is None:
        return text, []
    plan.extra_files[PREVIOUS_GBW] = gbw
    return orca_input.set_moread(text, PREVIOUS_GBW), [
        _change(handler, f"MORead {PREVIOUS_GBW}", "start from the orbitals of the failed attempt")
    ]


def _last_geometry(failure: Failure) -> Path | None:
    """The newest geometry the failed attempt reached: the last frame of _trj.xyz, else the .xyz, else
    the last complete coordinate block of the output (all that a node failure leaves: the runner died
    before its copy-back, and only the output mirrored during the run is in the attempt folder)."""
    trj = failure.file("_trj.xyz")
    frame = _last_xyz_frame(trj) if trj is not None else None
    if not frame and failure.file(".xyz") is not None:
        return failure.file(".xyz")
    if not frame:
        frame = _output_geometry(failure)
    if not frame:
        return None
    out = failure.attempt_dir / f".{RESTART_XYZ}"
    out.write_text(frame, encoding="utf-8")
    return out


def _output_geometry(failure: Failure) -> str | None:
    """The last CARTESIAN COORDINATES (ANGSTROEM) block of the output as xyz text, if ORCA finished
    printing it (a blank line follows a whole block: one cut off mid-write would lose atoms)."""
    output = failure.file(".out")
    if output is None:
        return None
    tail = read_tail(output, GEOMETRY_TAIL_BYTES)
    atoms = chemistry.last_geometry(tail[: tail.rfind("\n\n") + 1])
    return _xyz_text(atoms, f"last geometry in {output.name}") if atoms else None


def _optimises(text: str) -> bool:
    """The first job searches a minimum or a transition state from the input's coordinates (what
    ``* xyzfile restart.xyz`` replaces); not a NEB (its geometry is the reactant, not the path)."""
    try:
        parsed = orca_input.parse_input(Path("input.inp"), text, check_files=False)
    except OrcaHpcError:
        return False
    if parsed.first.blocks_named("compound"):
        return False
    return any(s.step == 0 and s.optimises and not s.neb for s in orca_input.job_intents(parsed))


def _last_xyz_frame(path: Path) -> str | None:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    start, last = 0, None
    while start < len(lines):
        try:
            n = int(lines[start].split()[0])
        except (ValueError, IndexError):
            break
        if start + 2 + n > len(lines):
            break
        last = "\n".join(lines[start : start + 2 + n]) + "\n"
        start += 2 + n
    return last


class Handler:
    name = "handler"
    outcomes: frozenset[Outcome] = frozenset()

    def check(self, failure: Failure) -> bool:
        return failure.outcome in self.outcomes

    def correct(self, plan: AttemptPlan, failure: Failure, limits: Limits) -> AttemptPlan:
        raise NotImplementedError


# The SCF ladder (../shared/docs/orca-facts.md, "Recovery that works"): one rung per attempt, weakest first.
SCF_STEPS = ("maxiter", "slowconv", "veryslowconv", "kdiis", "shift")
SCF_MAXITER = 500
SCF_SHIFT = 0.1  # Eh, with the same ErrOff: the level shift of the ladder's last rung


class ScfHandler(Handler):
    """SCF not converged: climb the ladder one rung per attempt; the last allowed attempt gets every
    rung left. Inside an optimisation the next attempt starts from the last geometry reached."""

    name = "scf"
    outcomes = frozenset({Outcome.SCF_NOT_CONVERGED})

    def _remaining(self, failure: Failure) -> list[str]:
        done = failure.steps_done(self.name)
        if not done and failure.times_applied(self.name):
            done = set(SCF_STEPS[: failure.times_applied(self.name)])  # attempts recorded before steps
        return [step for step in SCF_STEPS if step not in done]

    def correct(self, plan: AttemptPlan, failure: Failure, limits: Limits) -> AttemptPlan:
        remaining = self._remaining(failure)
        if not remaining:
            raise NoCorrection("the SCF ladder is exhausted")
        if failure.last_chance and "slowconv" in remaining and "veryslowconv" in remaining:
            remaining.remove("slowconv")  # VerySlowConv is the stronger damping; ORCA takes one of them
        text, changes = plan.input_text, list[dict[str, str]]()
        if failure.classification.get("calc_kind") in ("optimisation", "transition_state"):
            text, changes = _restart_geometry(plan, failure, self.name, text)
        text, more = _with_moread(plan, failure, self.name, text)
        changes += more
        why = "SCF did not converge"
        if failure.last_chance and len(remaining) > 1:
            why += (
                f" (last attempt of the retry budget: every remaining rung at once: {', '.join(remaining)})"
            )
        applied = 0
        for step in remaining:
            new_text, change = self._apply(step, text, why)
            if new_text == text:
                # The input already has this rung (the user's SlowConv, MaxIter 1000, a larger Shift):
                # an attempt spent on it would run the same SCF again. Recorded, so the ladder moves on.
                changes.append(_change(self.name, f"{change}: already in the input", why, step))
                continue
            text = new_text
            changes.append(_change(self.name, change, why, step))
            applied += 1
            if not failure.last_chance:
                break
        if not applied:
            raise NoCorrection("the SCF ladder is exhausted (the input already has every remaining rung)")
        return _next(plan, text, changes)

    def _apply(self, step: str, text: str, why: str) -> tuple[str, str]:
        """The input with ``step`` applied (unchanged when it already has it), and how to say it."""
        if step == "maxiter":
            text, value, current = _raise_option(text, "scf", "MaxIter", SCF_MAXITER)
            kept = f" (the input's {current} kept)" if current is not None and current >= SCF_MAXITER else ""
            return text, f"%scf MaxIter {value}{kept}"
        words = _keywords(text)
        if step == "slowconv":
            if "veryslowconv" in words:  # the stronger damping is there already
                return text, "! SlowConv"
            return orca_input.add_keywords(text, "SlowConv"), "! SlowConv"
        if step == "veryslowconv":
            if "veryslowconv" in words:
                return text, "! VerySlowConv"
            text = orca_input.remove_keywords(text, "SlowConv")
            return orca_input.add_keywords(text, "VerySlowConv"), "! VerySlowConv"
        if step == "kdiis":
            if "nososcf" in words:  # the user turned SOSCF off: "NoSOSCF SOSCF" would contradict itself
                return orca_input.add_keywords(text, "KDIIS"), "! KDIIS (the input's NoSOSCF kept)"
            return orca_input.add_keywords(text, "KDIIS", "SOSCF"), "! KDIIS SOSCF"
        shift = _current_shift(text)
        if shift is not None and shift >= SCF_SHIFT:
            # A larger level shift is the stronger remedy: never replace the user's by a weaker one.
            return text, f"%scf Shift {shift:g} (the input's kept)"
        text = orca_input.set_block_option(text, "scf", "Shift", f"Shift {SCF_SHIFT} ErrOff {SCF_SHIFT} end")
        return text, f"%scf Shift {SCF_SHIFT} ErrOff {SCF_SHIFT}"


def _keywords(text: str) -> frozenset[str]:
    """The simple-input keywords of every job, lower case."""
    return orca_input.parse_input(Path("input.inp"), text, check_files=False).keywords_lower


def _current_shift(text: str) -> float | None:
    """The level shift the input's ``%scf Shift Shift X ... end`` sets (first job), or None."""
    try:
        value = orca_input.parse_input(Path("input.inp"), text, check_files=False).first.option(
            "scf", "Shift"
        )
    except OrcaHpcError:
        return None
    match = re.search(r"(?i)\bshift\s+(-?[0-9.]+(?:[eE][-+]?\d+)?)", value or "")
    try:
        return float(match.group(1)) if match else None
    except ValueError:
        return None


def _restart_geometry(
    plan: AttemptPlan, failure: Failure, handler: str, text: str
) -> tuple[str, list[dict[str, str]]]:
    geometry = _last_geometry(failure)
    if geometry is None:
        return text, []
    plan.extra_files[RESTART_XYZ] = geometry
    text = orca_input.set_xyzfile(text, RESTART_XYZ)
    return text, [_change(handler, f"* xyzfile {RESTART_XYZ}", "restart from the last geometry")]


def _restarts_geometry(plan: AttemptPlan, failure: Failure) -> bool:
    """A stopped run that was moving the geometry: its next attempt starts where it stopped."""
    kind = failure.classification.get("calc_kind")
    return (
        kind in ("optimisation", "transition_state")
        or bool(failure.file("_trj.xyz"))
        or _optimises(plan.input_text)
    )


class OptHandler(Handler):
    """Optimisation hit its cycle limit: go on from where it stopped."""

    name = "opt"
    outcomes = frozenset({Outcome.OPT_NOT_CONVERGED})

    def correct(self, plan: AttemptPlan, failure: Failure, limits: Limits) -> AttemptPlan:
        text, changes = _restart_geometry(plan, failure, self.name, plan.input_text)
        text, more = _with_moread(plan, failure, self.name, text)
        changes += more
        cycles = failure.classification.get("opt_cycles") or 50
        current = _current_int(text, "geom", "MaxIter")
        # Twice what was reached or allowed: never below a MaxIter the user set higher.
        new_max = max(100, 2 * max(int(cycles), current or 0))
        text = orca_input.set_block_option(text, "geom", "MaxIter", str(new_max))
        changes.append(_change(self.name, f"%geom MaxIter {new_max}", f"stopped after {cycles} cycles"))
        return _next(plan, text, changes)


class ImaginaryModeHandler(Handler):
    """A minimum with imaginary modes, or a transition state with more than one: push the final
    geometry along the unwanted mode and optimise again, tighter and on a finer grid."""

    name = "imaginary_modes"
    outcomes = frozenset({Outcome.IMAGINARY_MODES, Outcome.TS_MODE_COUNT})
    max_times = 2

    def correct(self, plan: AttemptPlan, failure: Failure, limits: Limits) -> AttemptPlan:
        if failure.times_applied(self.name) >= self.max_times:
            raise NoCorrection(f"still wrong after {self.max_times} displaced re-optimisations")
        output = failure.file(".out")
        if output is None:
            raise NoCorrection("the output with the normal modes is gone")
        parsed = orca_input.parse_input(Path("<input>"), plan.input_text, check_files=False)
        if any(job.blocks_named("compound") for job in parsed.jobs):
            # The steps of a %compound script take their geometry and keywords from the script, not
            # from the job's coordinates and keyword line that a displacement and TightOpt would edit.
            raise NoCorrection("a %compound script: displace and re-optimise its steps by hand")
        threshold = failure.classification.get("imag_threshold") or DEFAULT_IMAG_THRESHOLD_CM1
        mode, value, vector, geometry = _unwanted_mode(output, failure, float(threshold))
        displaced = displace(geometry, vector, DISPLACEMENT_A)
        path = failure.attempt_dir / f".{DISPLACED_XYZ}"
        path.write_text(_xyz_text(displaced, f"displaced along mode {mode} ({value:.2f} cm**-1)"), "utf-8")
        plan.extra_files[DISPLACED_XYZ] = path
        text = orca_input.set_xyzfile(plan.input_text, DISPLACED_XYZ)
        changes = [
            _change(
                self.name,
                f"* xyzfile {DISPLACED_XYZ}",
                f"final geometry moved {DISPLACEMENT_A} A along imaginary mode {mode} ({value:.2f} cm**-1)",
            )
        ]
        text, more = _tighter(text, failure)
        changes += more
        return _next(plan, text, changes)


def _unwanted_mode(
    output: Path, failure: Failure, threshold: float
) -> tuple[int, float, list[float], list[tuple[str, float, float, float]]]:
    """The mode to leave (index, cm**-1), its Cartesian vector, and the geometry to displace."""
    from orca_hpc.orca.read import read_output

    out = read_output(output)
    freqs = chemistry.read_frequencies(out.path, out.tail, out.size, out.whole)
    if freqs is None:
        raise NoCorrection("no VIBRATIONAL FREQUENCIES block in the output")
    imaginary = sorted(freqs.imaginary(threshold), key=lambda m: m[1])  # most negative first
    if failure.outcome == Outcome.TS_MODE_COUNT:
        # The strongest mode is taken as the reaction coordinate; leave along the next one.
        if len(imaginary) < 2:
            raise NoCorrection("no imaginary mode at all: a displacement cannot create the TS mode")
        mode, value = imaginary[1]
    elif imaginary:
        mode, value = imaginary[0]
    else:
        raise NoCorrection("no imaginary mode beyond the threshold in the output")
    vector = chemistry.read_normal_mode(out.path, freqs.offset, mode)
    geometry = _final_geometry(failure, out.tail)
    if not vector or len(vector) != 3 * len(geometry):
        raise NoCorrection(f"normal mode {mode} not readable for the {len(geometry)} atoms of the geometry")
    return mode, value, vector, geometry


def _final_xyz(failure: Failure) -> Path | None:
    """The run's final geometry file: the classifier's ``final_xyz`` (the last job's ``<%base>.xyz``:
    in a multi-job input ``<input>.xyz`` is an earlier job's geometry), else ``<base>.xyz``."""
    name = failure.classification.get("final_xyz")
    if isinstance(name, str) and name.endswith(".xyz") and "/" not in name and "\\" not in name:
        path = failure.attempt_dir / name
        if path.is_file() and not path.is_symlink() and path.stat().st_size > 0:
            return path
    return failure.file(".xyz")


def _final_geometry(failure: Failure, tail: str) -> list[tuple[str, float, float, float]]:
    xyz = _final_xyz(failure)
    if xyz is not None:
        lines = xyz.read_text(encoding="utf-8", errors="replace").splitlines()
        try:
            n = int(lines[0].split()[0])
            atoms = [
                (w[0], float(w[1]), float(w[2]), float(w[3])) for w in (ln.split() for ln in lines[2 : 2 + n])
            ]
        except (ValueError, IndexError):
            atoms = []
        if atoms:
            return atoms
    atoms = chemistry.last_geometry(tail)
    if not atoms:
        raise NoCorrection("no final geometry (<base>.xyz, or coordinates in the output)")
    return atoms


def displace(
    geometry: list[tuple[str, float, float, float]], vector: list[float], largest: float
) -> list[tuple[str, float, float, float]]:
    """``geometry`` moved along ``vector`` (3 numbers an atom), scaled so the atom that moves most
    moves ``largest`` Angstrom."""
    norms = [math.dist((0, 0, 0), vector[3 * i : 3 * i + 3]) for i in range(len(geometry))]
    if max(norms, default=0.0) == 0.0:
        raise NoCorrection("the normal mode is all zeros")
    scale = largest / max(norms)
    return [
        (sym, x + scale * vector[3 * i], y + scale * vector[3 * i + 1], z + scale * vector[3 * i + 2])
        for i, (sym, x, y, z) in enumerate(geometry)
    ]


def _xyz_text(atoms: list[tuple[str, float, float, float]], comment: str) -> str:
    rows = [f"{sym:<2s} {x:14.8f} {y:14.8f} {z:14.8f}" for sym, x, y, z in atoms]
    return f"{len(atoms)}\n{comment}\n" + "\n".join(rows) + "\n"


def _tighter(text: str, failure: Failure) -> tuple[str, list[dict[str, str]]]:
    """TightOpt for minimum searches (an OptTS keeps its keyword and gets TightOpt convergence), and
    the finest standard grid for the ORCA version that ran."""
    name = ImaginaryModeHandler.name
    changes = []
    parsed = orca_input.parse_input(Path("<input>"), text, check_files=False)
    tight = any(job.keywords_lower & {"tightopt", "verytightopt"} for job in parsed.jobs)
    steps = [step.step for step in orca_input.job_intents(parsed) if step.optimises]
    if steps and not tight:
        if failure.outcome == Outcome.IMAGINARY_MODES:
            text = orca_input.remove_keywords(text, *_LOOSER_OPT)
        for step in steps:
            text = orca_input.add_keywords(text, "TightOpt", job=step)
        changes.append(_change(name, "! TightOpt", "converge the geometry tighter past the saddle region"))
    version = str(failure.classification.get("orca_version") or "5")
    grid = "DefGrid3" if version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 5 else "Grid6"
    words = {kw.lower() for job in parsed.jobs for kw in job.keywords}
    if grid.lower() not in words:
        text = orca_input.add_keywords(orca_input.remove_keywords(text, *_GRIDS), grid)
        changes.append(
            _change(name, f"! {grid}", "a finer integration grid: small imaginary modes are often grid noise")
        )
    return text, changes


def _fit_memory(plan: AttemptPlan, maxcore: int, limits: Limits, handler: str, why: str) -> AttemptPlan:
    """maxcore x nprocs must fit in 80 % of the job's memory (``job_memory_mb``); else fewer processes."""
    nprocs = plan.nprocs
    changes = []
    while nprocs > 1 and job_memory_mb(maxcore, nprocs) > limits.max_mem_mb:
        nprocs -= 1
    mem = job_memory_mb(maxcore, nprocs)
    if mem > limits.max_mem_mb:
        raise NoCorrection(f"{maxcore} MB per process does not fit the partition's {limits.max_mem_mb} MB")
    changes.append(_change(handler, f"%maxcore {plan.maxcore_mb} -> {maxcore}, --mem {mem}M", why))
    if nprocs != plan.nprocs:
        changes.append(_change(handler, f"nprocs {plan.nprocs} -> {nprocs}", "more memory per process"))
    new = _next(plan, plan.input_text, changes)
    new.maxcore_mb, new.nprocs, new.mem_mb = maxcore, nprocs, mem
    return new


class MemoryHandler(Handler):
    """Out of memory: raise %maxcore above what ORCA asked for, and SLURM's --mem with it."""

    name = "memory"
    outcomes = frozenset({Outcome.OUT_OF_MEMORY})

    def correct(self, plan: AttemptPlan, failure: Failure, limits: Limits) -> AttemptPlan:
        asked = failure.classification.get("memory_required_mb")
        if failure.reason == "memory_limit":
            # SLURM killed it: ORCA used more than --mem, so give the job more room, same maxcore.
            mem = min(limits.max_mem_mb, math.ceil(plan.mem_mb * 1.5))
            if mem <= plan.mem_mb:
                raise NoCorrection("already at the partition's memory limit")
            new = _next(
                plan,
                plan.input_text,
                [
                    _change(
                        self.name,
                        f"--mem {plan.mem_mb}M -> {mem}M",
                        "SLURM killed the job for exceeding its memory",
                    )
                ],
            )
            new.mem_mb = mem
            return new
        needed = float(asked) if asked else 0.0
        if asked and failure.classification.get("memory_request") == "increment":
            # MDCI: "increase MaxCore - by at least (X MB)" is on top of the current MaxCore.
            needed = plan.maxcore_mb + float(asked)
            why = f"ORCA asked for at least {asked:g} MB more per process than {plan.maxcore_mb} MB"
        elif asked:
            why = f"ORCA asked for more than {asked:g} MB per process"
        else:
            why = "ORCA ran out of memory"
        target = math.ceil(max(needed * 1.3, plan.maxcore_mb * 1.5))
        return _fit_memory(plan, target, limits, self.name, why)


class ProcessesHandler(Handler):
    """Too many processes for the problem size: use as many as ORCA says it can."""

    name = "processes"
    outcomes = frozenset({Outcome.TOO_MANY_PROCESSES})

    def correct(self, plan: AttemptPlan, failure: Failure, limits: Limits) -> AttemptPlan:
        message = " ".join(
            [failure.classification.get("message") or "", *failure.classification.get("error_lines", [])]
        )
        match = re.search(r"exceeds number of \w+ \((\d+)\)", message)
        nprocs = int(match.group(1)) if match else plan.nprocs // 2
        nprocs = max(1, min(nprocs, plan.nprocs - 1))
        if nprocs >= plan.nprocs:
            raise NoCorrection("already one process")
        new = _next(
            plan,
            plan.input_text,
            [
                _change(
                    self.name, f"nprocs {plan.nprocs} -> {nprocs}", "ORCA: more processes than work to share"
                )
            ],
        )
        new.nprocs = nprocs
        new.mem_mb = job_memory_mb(plan.maxcore_mb, nprocs)
        return new


class WalltimeHandler(Handler):
    """Killed at the time limit: restart from the saved files with more time."""

    name = "walltime"

    def check(self, failure: Failure) -> bool:
        return failure.outcome == Outcome.TRUNCATED and failure.reason == "walltime"

    def correct(self, plan: AttemptPlan, failure: Failure, limits: Limits) -> AttemptPlan:
        time_min = min(limits.max_time_min, plan.time_min * 2)
        if time_min <= plan.time_min:
            raise NoCorrection(f"already at the partition's time limit ({limits.max_time_min} min)")
        text, changes = plan.input_text, list[dict[str, str]]()
        if _restarts_geometry(plan, failure):
            text, changes = _restart_geometry(plan, failure, self.name, text)
        text, more = _with_moread(plan, failure, self.name, text)
        changes += more
        changes.append(_change(self.name, f"--time {plan.time_min} -> {time_min} min", "hit the time limit"))
        new = _next(plan, text, changes)
        new.time_min = time_min
        return new


class ParallelErrorHandler(Handler):
    """A parallel module died without saying why: memory first, then fewer processes."""

    name = "parallel"
    outcomes = frozenset({Outcome.PARALLEL_ERROR})

    def correct(self, plan: AttemptPlan, failure: Failure, limits: Limits) -> AttemptPlan:
        first = failure.times_applied(self.name) == 0
        if first:
            plan = _fit_memory(
                plan,
                math.ceil(plan.maxcore_mb * 1.5),
                limits,
                self.name,
                "a parallel module died without a cause: usually memory",
            )
            if not failure.last_chance or plan.nprocs <= 1:
                return plan
        if plan.nprocs <= 1:
            raise NoCorrection("already one process")
        nprocs = max(1, plan.nprocs // 2)
        why = "still failing with more memory: fewer processes"
        if first:
            why = "last attempt of the retry budget: more memory and fewer processes at once"
        new = _next(
            plan,
            plan.input_text,
            [*plan.corrections, _change(self.name, f"nprocs {plan.nprocs} -> {nprocs}", why)],
        )
        new.nprocs = nprocs
        new.mem_mb = job_memory_mb(plan.maxcore_mb, nprocs)
        return new


class WavefunctionHandler(Handler):
    """Coupled-cluster iterations did not converge: more iterations from the same orbitals."""

    name = "wavefunction"
    outcomes = frozenset({Outcome.WAVEFUNCTION_NOT_CONVERGED})

    def correct(self, plan: AttemptPlan, failure: Failure, limits: Limits) -> AttemptPlan:
        if failure.times_applied(self.name) >= 2:
            raise NoCorrection("more iterations did not help")
        text, changes = _with_moread(plan, failure, self.name, plan.input_text)
        current = _current_int(text, "mdci", "MaxIter")
        value = max(200, 2 * current) if current else 200  # never below what the user set
        text = orca_input.set_block_option(text, "mdci", "MaxIter", str(value))
        changes.append(_change(self.name, f"%mdci MaxIter {value}", "the CC iterations did not converge"))
        return _next(plan, text, changes)


class RestartHandler(Handler):
    """Killed from outside (node failure, preemption) or died without a cause: run it again as it was,
    from the orbitals it had if any."""

    name = "restart"
    outcomes = frozenset({Outcome.TRUNCATED, Outcome.UNKNOWN_ERROR})

    def correct(self, plan: AttemptPlan, failure: Failure, limits: Limits) -> AttemptPlan:
        text, changes = plan.input_text, list[dict[str, str]]()
        if failure.outcome == Outcome.TRUNCATED and _restarts_geometry(plan, failure):
            # Preempted or the node failed mid-optimisation: go on from where it was, as after a timeout.
            text, changes = _restart_geometry(plan, failure, self.name, text)
        text, more = _with_moread(plan, failure, self.name, text)
        changes += more
        if not changes:
            changes = [
                _change(
                    self.name,
                    "none",
                    f"{failure.outcome}{f' ({failure.reason})' if failure.reason else ''}: run again",
                )
            ]
        return _next(plan, text, changes)


def _next(plan: AttemptPlan, text: str, changes: list[dict[str, str]]) -> AttemptPlan:
    return dataclasses.replace(plan, input_text=text, extra_files=dict(plan.extra_files), corrections=changes)


HANDLERS: tuple[Handler, ...] = (
    ScfHandler(),
    OptHandler(),
    MemoryHandler(),
    ProcessesHandler(),
    WalltimeHandler(),
    ParallelErrorHandler(),
    WavefunctionHandler(),
    ImaginaryModeHandler(),
    RestartHandler(),
)


def plan_recovery(
    plan: AttemptPlan, failure: Failure, limits: Limits, disabled: Sequence[str] = ()
) -> tuple[AttemptPlan | None, str]:
    """The next attempt's plan from the first handler that recognises the failure.

    Returns (None, why) when no handler applies or the one that does has nothing left to try:
    running the same input again would fail the same way, so the job fails permanently now.
    """
    for handler in HANDLERS:
        if handler.name in disabled or not handler.check(failure):
            continue
        base = dataclasses.replace(plan, extra_files=dict(plan.extra_files), corrections=[])
        try:
            return handler.correct(base, failure, limits), handler.name
        except NoCorrection as why:
            return None, f"{handler.name}: no further correction: {why}"
    return None, f"no recovery handler for {failure.outcome}"
