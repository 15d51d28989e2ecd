"""The ORCA emulator, console script ``orca-emulator`` (ORCA is licensed and cannot be shipped).

Run it like ORCA: ``orca-emulator job.inp > job.out``. It writes ORCA-6-style output on stdout and the
usual files (``job.gbw``, ``job.xyz``, ``job_trj.xyz``, ``job.property.txt``, ...) into the current
directory, exits 0 on normal termination and 1 on error termination. Failures are requested with
``# emulate: ...`` lines in the input or the ``ORCA_EMULATE`` variable; docs/emulator.md lists them.
"""

from __future__ import annotations

import contextlib
import faulthandler
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from orca_hpc.emulator import model, text
from orca_hpc.emulator.directives import DirectiveError, Directives, fails, parse_directives
from orca_hpc.emulator.inputs import (
    DEFAULT_GEOM_MAXITER,
    DEFAULT_MAXCORE,
    DEFAULT_SCF_MAXITER,
    Atom,
    EmuJob,
    EmulatedInputError,
    parse_input,
    read_xyz_file,
)

EXIT_ERROR_TERMINATION = 1
EXIT_EMULATOR_MISUSE = 2  # bad directive or no input argument: a test bug, not an emulated ORCA failure
ENV_VAR = "ORCA_EMULATE"
PACE_STEPS = 20
SCF_CYCLES = 10
OPT_CYCLES = 3


class Terminated(Exception):
    """The emulated ORCA has stopped with an error termination (output already written)."""


class Pacer:
    """Spreads `sleep=SECONDS` over the run so the output grows while it waits (walltime tests)."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        # Short steps: the orbitals and geometries appear within seconds (as a real long run's first
        # .gbw does), and the rest of the time passes before the termination line.
        self.step = min(seconds / PACE_STEPS, 0.3)

    def pace(self) -> None:
        remaining = self.deadline - time.monotonic()
        if self.step > 0 and remaining > 0:
            time.sleep(min(self.step, remaining))

    def finish(self) -> None:
        while (remaining := self.deadline - time.monotonic()) > 0:
            time.sleep(min(0.2, remaining))


@dataclass
class Run:
    out: TextIO
    workdir: Path
    input_name: str
    directives: Directives
    pacer: Pacer
    base: str
    nprocs: int = 1
    maxcore: int = DEFAULT_MAXCORE
    atoms: list[Atom] = field(default_factory=list)
    tmp_files: list[Path] = field(default_factory=list)
    memory: bytearray | None = None
    version: str = text.VERSION

    def write(self, chunk: str) -> None:
        # Flushed at once so a killed run leaves exactly what was "computed" so far, like ORCA.
        self.out.write(chunk)
        self.out.flush()

    def fails(self, mode: str, job: EmuJob) -> bool:
        return fails(mode, self.directives, job, self.workdir)

    def path(self, suffix: str) -> Path:
        return self.workdir / f"{self.base}{suffix}"

    def orca_command(self, module: str, args: str) -> str:
        exe = Path(sys.argv[0]).resolve().parent / f"orca_{module}_mpi"
        return f"mpirun -np {self.nprocs}  {exe} {args} "


def _die_by(sig: signal.Signals) -> None:
    """Stop the way a crashed or killed ORCA does: no more output, files left as they are."""
    sys.stdout.flush()
    faulthandler.disable()
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource  # POSIX only; no core files from an emulated segfault

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sig != signal.SIGKILL:  # SIGKILL cannot be caught, so it has no handler to reset
        signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    time.sleep(5)  # SIGKILL/SIGSEGV are delivered at once; never reached in practice
    os._exit(137)


def _allocate(megabytes: int) -> bytearray:
    """Really use the memory (every page written) so a cgroup memory limit sees it."""
    buf = bytearray(megabytes * 1024 * 1024)
    view = memoryview(buf)
    pages = len(range(0, len(buf), 4096))
    view[::4096] = b"\x01" * pages
    return buf


def _burn_cpu(seconds: float) -> None:
    """Keep one core busy until this process has used ``seconds`` of CPU time (not wall time: on a
    shared machine the wall time is longer, the CPU time accounting reports is still ``seconds``)."""
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        sum(range(10_000))


def _scf(run: Run, job: EmuJob, energy: float) -> None:
    """Print one SCF; raises Terminated when the SCF is made to fail."""
    run.write(text.scf_header())
    failing = run.fails("scf_fail", job)
    if failing:
        cycles = job.scf_maxiter or DEFAULT_SCF_MAXITER
    else:
        cycles = int(run.directives.number("scf_cycles", SCF_CYCLES))
    previous = energy + 0.08
    for it in range(1, cycles + 1):
        size = 0.05 * 0.35**it if not failing else 0.01 * (1.5 + math.sin(it))
        e = energy + 0.08 * 0.35**it if not failing else energy + 0.02 * (1.2 + math.sin(it * 0.7))
        run.write(text.scf_iteration(it, e, e - previous if it > 1 else 0.0, size))
        previous = e
        if it == 3 and "crash" in run.directives.modes:
            _die_by(signal.SIGSEGV)
        if it % 5 == 0:
            run.pacer.pace()
    if failing:
        run.write(text.scf_failure(cycles))
        run.path(".gbw").write_bytes(model.blob("gbw", run.atoms, previous))
        run.write("\nError (ORCA_LEANSCF): unfortunately, the SCF has not converged.\n")
        run.write(text.error_termination("LEANSCF"))
        raise Terminated
    run.write(text.scf_success(cycles))
    run.write(text.total_scf_energy(energy))
    run.write(text.memory_used("LEANSCF", 12.4))
    run.path(".gbw").write_bytes(model.blob("gbw", run.atoms, energy))
    run.path(".densities").write_bytes(model.blob("densities", run.atoms, energy))
    run.pacer.pace()


def _single_point(run: Run, job: EmuJob, note: str = "") -> float:
    """SCF (+ coupled cluster when asked) at the current geometry; returns the final energy."""
    e = model.energy(run.atoms, job.charge)
    _scf(run, job, e)
    if job.is_ccsd or run.directives.modes & {"ccsd_not_converged", "too_many_processes", "mdci_oom"}:
        e = _mdci(run, job, e)
    if "suspicious" in run.directives.modes:
        e = e * 52_000.0  # a silent blow-up: far outside anything chemistry allows
    run.write(text.final_energy(e, note))
    return e


def _mdci(run: Run, job: EmuJob, e_scf: float) -> float:
    if run.fails("too_many_processes", job):
        limit = int(run.directives.number("max_procs", max(run.nprocs - 1, 1)))
        counts = run.directives.options.get("wording", "orca42") != "orca41"
        run.write(text.too_many_processes(run.nprocs, limit, counts))
        run.write(
            text.error_termination("MDCI", run.orca_command("mdci", f"{run.base}.mdciinp.tmp {run.base}"))
        )
        raise Terminated
    if run.fails("mdci_oom", job):
        more = run.directives.number("more_mb", 1000.0)
        # Each process asks for its own increment; the largest is `more_mb`.
        increments = [more * (0.5 + 0.5 * rank / max(run.nprocs - 1, 1)) for rank in range(run.nprocs)]
        run.write(text.mdci_oom(increments))
        run.write(
            text.error_termination("MDCI", run.orca_command("mdci", f"{run.base}.mdciinp.tmp {run.base}"))
        )
        raise Terminated
    if not (job.is_ccsd or "ccsd_not_converged" in run.directives.modes):
        return e_scf
    corr = [-0.05 * len(run.atoms) * (1 - 0.4**i) for i in range(1, 8)]
    if run.fails("ccsd_not_converged", job):
        corr = [c + 0.01 * (-1) ** i for i, c in enumerate(corr * 7)]
        run.write(text.ccsd_iterations(e_scf, corr, converged=False))
        run.write(text.final_energy(e_scf + corr[-1], "Wavefunction not fully converged!"))
        run.write(text.WAVEFUNCTION_NOT_CONVERGED)
        run.write(text.error_termination("MDCI", run.orca_command("mdci", f"{run.base}.mdci.tmp {run.base}")))
        raise Terminated
    run.write(text.ccsd_iterations(e_scf, corr, converged=True))
    run.write(text.memory_used("MDCI", 11.4))
    return e_scf + corr[-1]


def _write_geometry(run: Run, e: float, trajectory: bool) -> None:
    frame = model.xyz_text(run.atoms, run.base, e)
    run.path(".xyz").write_text(frame)
    if trajectory:
        with run.path("_trj.xyz").open("a") as trj:
            trj.write(frame)


def _optimise(run: Run, job: EmuJob) -> float:
    """Geometry optimisation: converges after `opt_cycles` cycles unless %geom MaxIter stops it first."""
    maxiter = job.geom_maxiter or DEFAULT_GEOM_MAXITER
    needed = int(run.directives.number("opt_cycles", OPT_CYCLES))
    if run.fails("opt_maxcycles", job):
        needed = maxiter + 1
    run.path("_trj.xyz").unlink(missing_ok=True)
    e = 0.0
    for cycle in range(1, maxiter + 1):
        run.write(text.opt_cycle_box(cycle))
        run.write(text.cartesians(run.atoms))
        e = _single_point(run, job)
        _write_geometry(run, e, trajectory=True)
        run.path(".engrad").write_text(f"# emulated gradient\n{len(run.atoms)}\n{e:.12f}\n")
        converged = cycle >= needed
        scale = 0.5 ** (needed - cycle) if converged else 3.0
        run.write(
            text.geometry_convergence(
                [
                    ("Energy change", -0.00001 * scale, 0.000005),
                    ("RMS gradient", 0.00004 * scale, 0.0001),
                    ("MAX gradient", 0.0001 * scale, 0.0003),
                    ("RMS step", 0.0005 * scale, 0.002),
                    ("MAX step", 0.001 * scale, 0.004),
                ]
            )
        )
        if converged:
            run.write(text.HURRAY)
            run.write(text.final_evaluation_box(cycle))
            run.write(text.cartesians(run.atoms))
            e = _single_point(run, job)
            run.write(text.OPT_DONE)
            return e
        run.write(text.NOT_YET_CONVERGED)
        run.atoms = model.relax(run.atoms)
        if cycle == 1 and "killed" in run.directives.modes:
            _die_by(signal.SIGKILL)
    run.write(text.MAX_CYCLES)
    return e


def _frequencies(run: Run, job: EmuJob) -> None:
    freqs = model.frequencies(run.atoms)
    # A transition-state search ends on a saddle: one imaginary mode, unless told otherwise.
    ts = any(k.lower() in ("optts", "scants", "neb-ts") for k in job.keywords)
    wrong = run.fails("imaginary", job)
    n_imag = int(run.directives.number("n_imaginary", 2 if ts else 1)) if wrong else (1 if ts else 0)
    zero = 5 if len(run.atoms) == 2 else 6
    for i in range(min(n_imag, len(freqs) - zero)):
        freqs[zero + i] = -round(850.0 / (i + 1), 2)
    run.write(text.frequencies(freqs))
    run.write(text.normal_modes(len(run.atoms), zero))
    real = [f for f in freqs if f > 0]
    zpe = sum(real) / 2 / 219474.63
    run.write(text.thermochemistry(model.energy(run.atoms), zpe, run.version))
    run.path(".hess").write_text(
        "\n$orca_hessian_file\n\n$vibrational_frequencies\n"
        + f"{len(freqs)}\n"
        + "".join(f"{i:5d} {f:16.6f}\n" for i, f in enumerate(freqs))
        + "\n$end\n"
    )


def _start_job(run: Run, job: EmuJob, previous: EmuJob | None) -> None:
    if previous is not None:
        run.write(text.job_number_banner(job.number))
    if job.nprocs is not None:
        run.nprocs = job.nprocs
    if job.maxcore is not None:
        run.maxcore = job.maxcore
    if job.atoms:
        run.atoms = list(job.atoms)
    for suffix in (".tmp", ".int.tmp", ".en.tmp"):
        tmp = run.path(suffix)
        tmp.write_bytes(b"emulated scratch\n")
        run.tmp_files.append(tmp)
    if "alloc_mb" in run.directives.options:
        run.memory = _allocate(int(run.directives.number("alloc_mb", 0)))
    if "cpu_s" in run.directives.options:
        _burn_cpu(run.directives.number("cpu_s", 0.0))
    if run.nprocs > 1:
        run.write(text.parallel_box(run.nprocs))
    if job.maxcore is not None:
        run.write(text.maxcore_note(job.maxcore))
    natoms = len(run.atoms)
    nbasis = model.basis_functions(run.atoms)
    run.write(text.startup(run.nprocs, run.maxcore, natoms, job.charge, job.mult, nbasis))
    run.pacer.pace()


def _check_startup_failures(run: Run, job: EmuJob) -> None:
    if run.fails("mpi_error", job):
        # mpirun speaks on stderr; ORCA's output only names the module and the command it ran.
        command = run.orca_command("gtoint", f"{run.base}.int.tmp {run.base}")
        executable = command.split()[3]
        kind = run.directives.options.get("mpi", "slots")
        sys.stderr.write(text.mpi_stderr(kind, executable, run.nprocs, socket.gethostname()))
        sys.stderr.flush()
        run.write(text.error_termination("GTOInt", command))
        raise Terminated
    if run.fails("disk_full", job):
        command = run.orca_command("scf", f"{run.base}.gbw b {run.base}")
        sys.stderr.write(f"{command.split()[3]}: cannot write {run.base}.gbw: No space left on device\n")
        sys.stderr.flush()
        run.write(text.error_termination("SCF", command))
        raise Terminated
    if run.fails("parallel_error", job):
        command = run.orca_command("gtoint", f"{run.base}.int.tmp {run.base}")
        run.write(text.error_termination("GTOInt", command))
        raise Terminated
    if run.fails("oom", job):
        need = int(run.directives.number("need_mb", 2 * run.maxcore))
        run.write(text.oom(min(run.maxcore, max(need - 1, 1)), need))
        run.write(text.error_termination("SCF", run.orca_command("scf", f"{run.base}.gbw b {run.base}")))
        raise Terminated


def _run_job(run: Run, job: EmuJob, previous: EmuJob | None) -> None:
    run.base = job.base or run.base
    run.directives = parse_directives(os.environ.get(ENV_VAR, "")).merged(_job_directives(job))
    if job.xyzfile is not None and not job.atoms:
        try:
            job.atoms = read_xyz_file(run.workdir / job.xyzfile)
        except EmulatedInputError as exc:
            run.write(text.input_error_box(exc.lines))
            raise Terminated from None
    _start_job(run, job, previous)
    _check_startup_failures(run, job)
    if job.neb is not None:
        e = _neb(run, job, job.neb)
    elif job.is_opt:
        e = _optimise(run, job)
    else:
        run.write(text.cartesians(run.atoms))
        e = _single_point(run, job)
        _write_geometry(run, e, trajectory=False)
        if "killed" in run.directives.modes:
            _die_by(signal.SIGKILL)
    if job.is_freq:
        _frequencies(run, job)
    run.write(text.property_section(run.base, len(run.atoms), model.basis_functions(run.atoms), run.maxcore))
    if not run.version.startswith("4."):  # ORCA 4 wrote <base>_property.txt in another format
        run.path(".property.txt").write_text(
            model.property_txt(
                run.base, e, run.atoms, job.charge, job.mult, "NORMAL TERMINATION", run.version
            )
        )


def _version(env: Directives, source: str) -> str:
    """The ORCA version to imitate: `version=` from ORCA_EMULATE or any `# emulate:` line (the last
    one wins), else 6.0.1. Read before the input is parsed because the banner comes first."""
    found = env.options.get("version")
    for line in source.splitlines():
        head, _sep, rest = line.strip().partition(":")
        if head.replace(" ", "").lower() == "#emulate":
            found = parse_directives(rest).options.get("version", found)
    return found or text.VERSION


def _neb(run: Run, job: EmuJob, kind: str) -> float:
    """A nudged elastic band between the input geometry and the product: `opt_cycles` iterations to
    converge (default 3); `neb_not_converged` stops after 2x that many without the HURRAY box."""
    images = 8
    needed = int(run.directives.number("opt_cycles", OPT_CYCLES))
    stuck = run.fails("neb_not_converged", job)
    iterations = 2 * needed if stuck else needed
    climbing = images // 2 + 1
    run.write(text.cartesians(run.atoms))
    e0 = _single_point(run, job)
    run.write(text.neb_settings(kind, images))
    for it in range(iterations):
        scale = 0.5**it if not stuck else 1.0
        if it == 1 and kind != "neb":
            run.write(text.neb_climbing_switch(climbing))
        run.write(text.neb_iteration(it, climbing, 0.13 + 0.02 * scale, 0.1 * scale, 0.02 * scale, 15.0))
        run.pacer.pace()
    if stuck:
        run.write(text.NEB_NOT_CONVERGED)
    else:
        run.write(text.NEB_CONVERGED)
        if kind.endswith("neb-ts"):
            run.write(text.NEB_TS_CONVERGED)
    barrier = [0.0, 0.005, 0.02, 0.05, 0.08, 0.12, 0.085, 0.04, 0.01, 0.002]
    run.write(text.neb_path_summary(kind, [e0 + b for b in barrier], climbing))
    # The run's last single point: the highest image (NEB, NEB-CI) or the transition state (NEB-TS).
    e = e0 + max(barrier)
    run.write(text.final_energy(e))
    _write_geometry(run, e, trajectory=False)
    return e


def _job_directives(job: EmuJob) -> Directives:
    found = Directives()
    for line in job.directives:
        found = found.merged(parse_directives(line))
    return found


def _validate(run: Run, jobs: Sequence[EmuJob]) -> None:
    """Checks ORCA makes while reading the input, before any calculation (so before the echo)."""
    have_atoms = False
    for job in jobs:
        if job.xyzfile is not None and job.number == 1:
            job.atoms = read_xyz_file(run.workdir / job.xyzfile)
        have_atoms = have_atoms or bool(job.atoms) or job.xyzfile is not None
        if not have_atoms:
            raise EmulatedInputError(["No coordinates were given in the input"])
        directives = parse_directives(os.environ.get(ENV_VAR, "")).merged(_job_directives(job))
        if fails("input_error", directives, job, run.workdir):
            bad = directives.options.get("keyword") or (job.keywords[-1] if job.keywords else "?")
            raise EmulatedInputError(
                ["UNRECOGNIZED OR DUPLICATED KEYWORD(S) IN SIMPLE INPUT LINE", f" {bad}   "]
            )
        if job.atoms and job.mult > 0 and (model.electrons(job.atoms, job.charge) + job.mult) % 2 == 0:
            n = model.electrons(job.atoms, job.charge)
            parity = "even" if n % 2 == 0 else "odd"
            mult_parity = "even" if job.mult % 2 == 0 else "odd"
            raise EmulatedInputError(
                [
                    f"Error : multiplicity ({job.mult}) is {mult_parity} and number of electrons ({n}) "
                    f"is {parity} -> impossible"
                ]
            )


def emulate(input_path: Path, out: TextIO) -> int:
    """Run the emulated ORCA on one input file in the current directory; returns the exit code."""
    started = time.monotonic()
    workdir = Path.cwd()
    base = input_path.name[: -len(".inp")] if input_path.name.endswith(".inp") else input_path.name
    env_directives = parse_directives(os.environ.get(ENV_VAR, ""))
    run = Run(out, workdir, input_path.name, env_directives, Pacer(0.0), base)
    try:
        source = input_path.read_text()
    except OSError:
        run.write(text.header(_version(env_directives, "")))
        run.write(f"\nERROR: cannot open input file {input_path.name}\n")
        run.write(text.error_termination("Startup"))
        return EXIT_ERROR_TERMINATION
    run.version = _version(env_directives, source)
    run.write(text.header(run.version))  # the banner comes first, before ORCA reads the input
    try:
        jobs = parse_input(source)
        _validate(run, jobs)
    except EmulatedInputError as exc:
        run.write(text.input_error_box(exc.lines))
        return EXIT_ERROR_TERMINATION
    all_directives = env_directives
    for job in jobs:
        all_directives = all_directives.merged(_job_directives(job))
    run.pacer = Pacer(all_directives.number("sleep", 0.0))
    run.write(text.input_echo(input_path.name, source.splitlines()))
    previous: EmuJob | None = None
    try:
        for job in jobs:
            _run_job(run, job, previous)
            previous = job
    except Terminated:
        return EXIT_ERROR_TERMINATION
    run.pacer.finish()
    for tmp in run.tmp_files:
        tmp.unlink(missing_ok=True)
    run.write(
        "\nTimings for individual modules:\n\n"
        f"Sum of individual times          ...        {time.monotonic() - started:.3f} sec\n"
    )
    run.write(text.normal_termination(time.monotonic() - started))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # Die on SIGTERM/SIGINT exactly like a killed ORCA: no traceback, no cleanup, output just stops.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write("usage: orca-emulator INPUT.inp > OUTPUT.out   (an ORCA emulator for tests)\n")
        return EXIT_EMULATOR_MISUSE
    try:
        return emulate(Path(args[0]), sys.stdout)
    except DirectiveError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"orca-emulator: {exc}\n")
        return EXIT_EMULATOR_MISUSE


if __name__ == "__main__":
    sys.exit(main())
