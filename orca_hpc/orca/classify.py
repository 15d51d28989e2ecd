"""Say how an ORCA run ended, from its output file (and property files when present).

The rules follow ../shared/docs/orca-facts.md (beside the repository): "terminated normally" is not
success for an optimisation without the converged banner; an output that just stops is `truncated` (walltime,
node failure, scancel); input/basis/multiplicity/geometry mistakes are `input_error` and never
retried; an "error termination" without a recognised cause is `parallel_error`; a normal end with
an absurd energy is `suspicious_result`; MPI start-up failures, a missing ORCA and a full disk are
`environment_error` (read from ORCA's stderr too, see `orca.environment`). When several causes are
printed, the one printed last decides: it is the error that ended the run. Only the head and tail
of the file are read (see `orca.read`), so a multi-GB output costs about half a MB of memory.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path

from orca_hpc.errors import OrcaHpcError
from orca_hpc.orca.chemistry import Chemistry, read_chemistry
from orca_hpc.orca.environment import environment_cause
from orca_hpc.orca.inputs import MINIMUM, SADDLE, StepIntent, final_base, input_intents
from orca_hpc.orca.outcomes import DEFAULT_IMAG_THRESHOLD_CM1, NOT_RETRYABLE, Classification, Outcome
from orca_hpc.orca.read import (
    HEAD_BYTES,
    TAIL_BYTES,
    OutputText,
    find_last_literal,
    property_energy,
    property_energy_orca4,
    read_output,
    scan_backwards,
)

__all__ = ["Classification", "classify_output", "energy_is_suspicious"]

MAX_ERROR_LINES = 12
ERROR_LINES_WINDOW = 64 * 1024
# How far back from the end to look for a final energy outside the tail (after a normal end).
ENERGY_SCAN_LIMIT_BYTES = 64 * 1024 * 1024
# Sanity limits for a final energy (Eh). No molecule ORCA can treat comes near 1e5 Eh, and a
# final energy more than 5 % (at least 10 Eh) below the first SCF iteration is a blow-up, not
# correlation energy or geometry relaxation (those are well under 1 % in practice).
ABSURD_ENERGY_EH = 1.0e5
# The output prints the final energy to 1e-12 Eh; a property file's value that differs by more is
# another step's, not a more precise copy of this one.
PROPERTY_AGREEMENT_EH = 1.0e-6
DROP_FRACTION = 0.05
DROP_MIN_EH = 10.0


# --- patterns -------------------------------------------------------------------------------

_NORMAL = "****ORCA TERMINATED NORMALLY****"
_VERSION = re.compile(r"Program Version\s+(\d+(?:\.\d+)+)")
_RUN_TIME = re.compile(
    r"TOTAL RUN TIME:\s*(\d+)\s*days?\s*(\d+)\s*hours?\s*(\d+)\s*minutes?\s*(\d+)\s*seconds?\s*(\d+)\s*msec"
)
_FINAL_ENERGY = re.compile(r"^FINAL SINGLE POINT ENERGY\s+(\S+)(.*)$", re.MULTILINE)
_SCF_CYCLES = re.compile(r"SCF (?:NOT )?CONVERGED AFTER\s+(\d+)\s+CYCLES")
_OPT_CYCLE = re.compile(r"GEOMETRY OPTIMIZATION CYCLE\s+(\d+)")
_OPT_VERDICTS = (
    "THE OPTIMIZATION HAS CONVERGED",
    "THE TS OPTIMIZATION HAS CONVERGED",  # NEB-TS: the TS search after the band
    "THE NEB OPTIMIZATION HAS CONVERGED",  # NEB, NEB-CI: not the optimiser's HURRAY box
    # ORCA 5 prints "... reached the maximum number of optimization cycles." on one line; ORCA 6.1,
    # when a Freq step was to follow, wraps it in an ERROR box after "maximum" (GoodVibes'
    # tests/orca6/52_err_opt_not_converged_maxcycles.out): match only the part before the wrap.
    "did not converge but reached the maximum",
)
_OPT_DONE = re.compile("|".join(re.escape(v) for v in _OPT_VERDICTS))
_NPROCS_RUNNING = re.compile(r"Program running with (\d+) parallel MPI-processes")
_NPROCS_MPIRUN = re.compile(r"mpirun\b[^\n]*?\s-np\s+(\d+)")
_TOTAL_ENERGY = re.compile(r"Total Energy\s+:\s+(-?\d+\.\d+)\s+Eh")
_ITER_HEADER = re.compile(r"^\s*(?:ITER|Iteration|Iter\.)\s+[Ee]nergy", re.MULTILINE)
_ITER_ROW = re.compile(r"^\s*\d+\s+(-?\d+\.\d+)", re.MULTILINE)
_MEMORY_NEEDED = re.compile(r"increase MaxCore([^\n]*?)(\d+(?:\.\d+)?)\s*\)?\s*MB", re.IGNORECASE)
_MEMORY_ESTIMATE = re.compile(r"Memory needed \(estimated\)\s*:\s*(\d+(?:\.\d+)?)\s*MB")
_ERROR_TERMINATION = re.compile(r"ORCA finished by error termination in (\S+)")
_ORCA_MARKERS = (
    "O   R   C   A",
    "Program Version",
    _NORMAL,
    "ORCA finished by error termination",
    "INPUT ERROR",
    "FINAL SINGLE POINT ENERGY",
    "ORCA_",
)

# (outcome, patterns): the first group with a match in the output decides. Order matters: a
# memory failure also prints an error termination, and so on down the list.
_CAUSES: list[tuple[Outcome, tuple[str, ...]]] = [
    (
        Outcome.INPUT_ERROR,
        (
            r"INPUT ERROR",
            r"UNRECOGNIZED OR DUPLICATED KEYWORD",
            r"Unknown identifier",
            r"Invalid assignment",
            r"ERROR: expect a '\$', '!', '%', '\*' or '\[' in the input",
            r"basis set was either not assigned or not available",
            r"multiplicity \(\d+\) is (?:even|odd) and number of electrons \(\d+\) is (?:even|odd)",
            r"Zero distance encountered",
            r"cannot open input file",
            # ORCA 6 input reader: an abort from orca_main/main_input*.cpp is the input's fault
            # (e.g. "Error: 'END' expected in COORDS/XYZ", with no banner and no termination line).
            r"'END' expected",
            r"\[file orca_main/main_input\w*\.cpp, line \d+\]:\s*\S",
        ),
    ),
    (
        Outcome.OUT_OF_MEMORY,
        (
            r"[Nn]ot enough memory",
            r"Please increase MaxCore",
            r"[Ii]nsufficient memory",
            r"std::bad_alloc",
        ),
    ),
    (
        Outcome.TOO_MANY_PROCESSES,
        (
            # ORCA 4.1 prints no counts, 4.2 and later print "(16)" and "(10)".
            r"Number of processes(?: \(\d+\))? in parallel calculation exceeds",
        ),
    ),
    (
        Outcome.SCF_NOT_CONVERGED,
        (
            r"SCF NOT CONVERGED AFTER",
            r"SCF-wavefunction IS NOT FULLY CONVERGED",
            r"the SCF has not converged",
            r"\(SCF not fully converged!\)",
        ),
    ),
    (
        Outcome.WAVEFUNCTION_NOT_CONVERGED,
        (
            r"iterations have NOT converged",
            r"This wavefunction IS NOT FULLY CONVERGED",
            r"\(Wavefunction not fully converged!\)",
        ),
    ),
    (
        Outcome.PARALLEL_ERROR,
        (
            r"has to be called with full pathname",
            r"ORCA finished by error termination in",
            r"mpirun (?:noticed|has exited|was unable)",
            r"MPI_ABORT",
        ),
    ),
    (Outcome.UNKNOWN_ERROR, (r"[Aa]borting the run", r"Segmentation fault", r"\bError\b.*\bORCA_\w+")),
]
_ABORTED = re.compile(r"[Aa]borting the run|error termination")
_FATAL_ONLY_IF_ABORTED = frozenset({Outcome.SCF_NOT_CONVERGED, Outcome.WAVEFUNCTION_NOT_CONVERGED})
_CAUSE_RES = [(outcome, re.compile("|".join(f"(?:{p})" for p in pats))) for outcome, pats in _CAUSES]
# Lines worth quoting back to a person: the ones that say what went wrong.
_ERROR_LINE = re.compile(
    r"error|not enough memory|increase maxcore|not converged|not fully converged|aborting|"
    r"exceeds number|unrecognized|unknown identifier|invalid assignment|zero distance|impossible|"
    r"full pathname|not available|did not converge|calling command",
    re.IGNORECASE,
)
_NOISE_LINE = re.compile(r"DIIS[- ]Err|Startup error|TolErr|\|\|Error\|\||ErrOff|^\s*\d+\s+-?\d+\.\d+")

_OPT_WORDS = frozenset(
    "opt copt zopt gdiisopt looseopt normalopt tightopt verytightopt crudeopt sloppyopt "
    "l-opt l-normalopt l-tightopt l-looseopt l-crudeopt optH".lower().split()
)
_TS_WORDS = frozenset({"optts", "scants", "neb-ts", "neb-ci"})
_FREQ_WORDS = frozenset({"freq", "numfreq", "anfreq"})
_OPT_HINTS = ("GEOMETRY OPTIMIZATION CYCLE", "OPTIMIZATION RUN DONE", "reached the maximum")
# An echoed input line (`| 12> ...`): the user's text, which may quote ORCA's messages in comments.
_ECHO_LINE = re.compile(r"^\|\s*\d+>[^\n]*", re.MULTILINE)


# --- helpers --------------------------------------------------------------------------------


def _input_echo(head: str) -> list[str]:
    """The echoed input lines (`| 12> ...`) between INPUT FILE and ****END OF INPUT****."""
    start = head.find("INPUT FILE")
    if start < 0:
        return []
    end = head.find("****END OF INPUT****", start)
    block = head[start : end if end >= 0 else len(head)]
    lines = []
    for m in re.finditer(r"^\|\s*\d+>\s?(.*)$", block, re.MULTILINE):
        text = m.group(1).split("#", 1)[0].strip()
        if text and "****END OF INPUT****" not in text:
            lines.append(text)
    return lines


def _calc_kind(echo: list[str], text: str) -> str | None:
    words: set[str] = set()
    blocks: set[str] = set()
    for line in echo:
        if line.startswith("!"):
            words.update(w.lower() for w in line[1:].split())
        elif line.startswith("%"):
            blocks.add(line[1:].split()[0].lower() if line[1:].split() else "")
    if echo:
        if words & _TS_WORDS:
            return "transition_state"
        if words & _OPT_WORDS:
            return "optimisation"
        if "irc" in words or "irc" in blocks:
            return "irc"
        if "md" in words or "md" in blocks:
            return "molecular_dynamics"
        if words & _FREQ_WORDS:
            return "frequencies"
        if blocks & {"tddft", "cis"} or "tda" in words:
            return "tddft"
        if any("ccsd" in w or "qcisd" in w or w.endswith("cisd") for w in words):
            return "coupled_cluster"
        if any("mp2" in w for w in words):
            return "mp2"
        return "single_point"
    # No input echo in what we read (a very early failure, or a huge head): infer from the output.
    if any(marker in text for marker in _OPT_HINTS):
        return "optimisation"
    return None


def _nprocs(text: str, echo: list[str]) -> int | None:
    for pattern in (_NPROCS_RUNNING, _NPROCS_MPIRUN):
        found = pattern.findall(text)
        if found:
            return int(found[-1])
    for line in echo:
        m = re.search(r"\bnprocs\s+(\d+)", line, re.IGNORECASE) or (
            re.search(r"\bPAL(\d+)\b", line, re.IGNORECASE) if line.startswith("!") else None
        )
        if m:
            return int(m.group(1))
    return None


def _first_scf_energy(head: str) -> float | None:
    """The energy of the first SCF iteration: the sane reference for the blow-up check."""
    candidates: list[tuple[int, float]] = []
    header = _ITER_HEADER.search(head)
    if header:
        row = _ITER_ROW.search(head, header.end())
        if row and row.start() - header.end() < 2000:
            candidates.append((row.start(), float(row.group(1))))
    total = _TOTAL_ENERGY.search(head)
    if total:
        candidates.append((total.start(), float(total.group(1))))
    return min(candidates)[1] if candidates else None


def energy_is_suspicious(energy: float, first_scf_energy: float | None) -> str | None:
    """Why a final energy after a normal end cannot be right, or None if it looks sane."""
    if not math.isfinite(energy):
        return f"final energy is {energy}"
    if abs(energy) > ABSURD_ENERGY_EH:
        return f"final energy {energy:.6f} Eh is beyond {ABSURD_ENERGY_EH:g} Eh"
    if first_scf_energy is not None and math.isfinite(first_scf_energy):
        allowed = max(DROP_MIN_EH, DROP_FRACTION * abs(first_scf_energy))
        if energy < first_scf_energy - allowed:
            return (
                f"final energy {energy:.6f} Eh is {first_scf_energy - energy:.1f} Eh below the first "
                f"SCF iteration ({first_scf_energy:.6f} Eh)"
            )
    return None


def _error_lines(text: str) -> list[str]:
    seen: list[str] = []
    keys: set[str] = set()
    text = text[-ERROR_LINES_WINDOW:]  # the decisive lines are at the end; keeps this cheap
    line_end = -1
    for match in _ERROR_LINE.finditer(text):
        if match.start() <= line_end:
            continue  # another hit on a line already seen
        line_start = text.rfind("\n", 0, match.start()) + 1
        line_end = text.find("\n", match.end())
        line_end = len(text) if line_end < 0 else line_end
        line = text[line_start:line_end].strip()
        if _NOISE_LINE.search(line):
            continue
        # Parallel runs print the same error once per process: keep one of each.
        key = re.sub(r"\d+", "#", line)
        if key not in keys:
            keys.add(key)
            seen.append(line[:200])
    return seen[-MAX_ERROR_LINES:]


def _last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()[:120]
    return ""


def _looks_like_orca(out: OutputText) -> bool:
    if out.nul_fraction > 0.01:
        return False
    return any(marker in out.head or marker in out.tail for marker in _ORCA_MARKERS)


def _to_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# --- the classifier -------------------------------------------------------------------------


def classify_output(
    path: str | os.PathLike[str],
    *,
    head_bytes: int = HEAD_BYTES,
    tail_bytes: int = TAIL_BYTES,
    intents: list[StepIntent] | None = None,
    imag_threshold: float = DEFAULT_IMAG_THRESHOLD_CM1,
    stderr: str = "",
) -> Classification:
    """Classify one ORCA output file; ``stderr`` is (the tail of) what ORCA and mpirun wrote there.

    ``intents``: what the input file asked for (``inputs.input_intents``); without it, the input
    echo in the output is parsed. ``imag_threshold``: negative modes smaller than this (cm**-1) are
    numerical noise, reported but not counted as imaginary.

    Raises ``UserError`` (one line, naming the path) if the path is missing, a directory or
    unreadable; any file content at all gives a ``Classification``.
    """
    out = read_output(path, head_bytes, tail_bytes)
    result = Classification(file=str(out.path), outcome=Outcome.UNKNOWN_ERROR, retryable=True)
    if out.size == 0 or not (out.head.strip() or out.tail.strip()):
        env = environment_cause(stderr)
        if env is not None:  # mpirun or the disk failed before ORCA printed anything
            result.reason = env.reason
            return _finish(result, Outcome.ENVIRONMENT_ERROR, env.message)
        return _finish(result, Outcome.TRUNCATED, "output file is empty (ORCA never wrote to it)")
    if not _looks_like_orca(out):
        kind = "binary data" if out.nul_fraction > 0.01 else "no ORCA banner or markers"
        return _finish(result, Outcome.UNKNOWN_ERROR, f"not an ORCA output ({kind})")

    echo = _input_echo(out.head)
    out = _without_input_echo(out)
    head, tail = out.head, out.tail
    both = head if out.whole else head + "\n" + tail
    if intents is None:
        intents = _echo_intents(out.path, echo)
    _fill_facts(result, out, echo, both)
    _fill_intent(result, intents)

    result.normal_termination = _NORMAL in tail
    result.error_lines = _error_lines(tail)
    if not result.normal_termination:
        return _classify_failure(result, both if out.whole else tail, head, stderr)
    chem = read_chemistry(out.path, head, tail, out.size, out.whole)
    _fill_chemistry(result, chem, imag_threshold, out.path, _last_base(out.path, echo))
    optimising = sum(1 for step in intents or () if step.optimises)
    return _classify_normal(result, out, optimising)


def _without_input_echo(out: OutputText) -> OutputText:
    """ORCA's own text: the echoed input lines blanked, and backward scans stopped where the echo
    ends. Real inputs quote ORCA in comments ("# ORCA error: The optimization did not converge but
    reached the maximum number of steps", GoodVibes' tests/orca6): that is not ORCA saying it."""
    end = out.head.find("****END OF INPUT****")
    echo_end = len(out.head[:end].encode("utf-8")) if end >= 0 else 0
    head = _ECHO_LINE.sub("", out.head)
    tail = head if out.whole else _ECHO_LINE.sub("", out.tail)
    return dataclasses.replace(out, head=head, tail=tail, echo_end=echo_end)


def _echo_intents(path: Path, echo: list[str]) -> list[StepIntent] | None:
    """The intents of the input as echoed in the output; None if the echo does not parse."""
    if not echo:
        return None
    try:
        return input_intents(path.with_suffix(".inp"), "\n".join(echo) + "\n")
    except (OrcaHpcError, ValueError, IndexError):
        return None  # a cut or odd echo: fall back to the keyword guess in _calc_kind


def _fill_intent(result: Classification, intents: list[StepIntent] | None) -> None:
    if not intents:
        return
    checks = [s.frequency_check for s in intents if s.freq]
    result.intent = checks[-1] if checks else None
    optimising = [s for s in intents if s.optimises]
    if optimising:
        # The block form (%method RunTyp Opt) and $new_job steps count too, not only "! Opt".
        last = optimising[-1]
        result.calc_kind = (
            "transition_state" if last.target == SADDLE else "optimisation" if last.target else "neb"
        )


def _last_base(path: Path, echo: list[str]) -> str | None:
    """The last job's files' name in the echoed input (``inputs.final_base``; None: not told). In a
    multi-job input ``<input>.xyz`` is then an earlier job's geometry, not the final one."""
    try:
        return final_base(path.with_suffix(".inp"), "\n".join(echo) + "\n")
    except OrcaHpcError:  # an echo the parser does not take, a %base naming another folder
        return None


def _fill_chemistry(
    result: Classification, chem: Chemistry, threshold: float, output: Path, base: str | None = None
) -> None:
    result.zpe, result.enthalpy = chem.thermo.zpe, chem.thermo.enthalpy
    result.gibbs, result.temperature = chem.thermo.gibbs, chem.thermo.temperature
    result.thermo_energy = chem.thermo.electronic
    result.s2 = chem.s2
    xyz = output.with_name(f"{base}.xyz") if base else output.with_suffix(".xyz")
    result.final_xyz = xyz.name if xyz.is_file() else None
    if chem.freqs is None:
        return
    imaginary = chem.freqs.imaginary(threshold)
    result.imag_threshold = threshold
    result.n_imaginary = len(imaginary)
    result.imaginary_freqs = [v for _, v in imaginary]
    result.imag_noise = chem.freqs.noise(threshold)
    result.lowest_freq = chem.freqs.lowest
    result.freq_offset = chem.freqs.offset


def _fill_facts(result: Classification, out: OutputText, echo: list[str], both: str) -> None:
    version = _VERSION.search(out.head)
    result.orca_version = version.group(1) if version else None
    result.calc_kind = _calc_kind(echo, both)
    result.nprocs_used = _nprocs(both, echo)
    # Multi-step inputs can run a small molecule first: its SCF is no reference for the last energy.
    multi_step = any(line.lower().startswith(("$new_job", "%compound")) for line in echo)
    result.first_scf_energy = None if multi_step else _first_scf_energy(out.head)

    energies = _FINAL_ENERGY.findall(out.tail)
    if energies:
        _set_energy(result, *energies[-1])
    scf = _SCF_CYCLES.findall(out.tail)
    result.scf_cycles = int(scf[-1]) if scf else None
    cycles = _OPT_CYCLE.findall(out.tail)
    result.opt_cycles = int(cycles[-1]) if cycles else None

    run_time = _RUN_TIME.search(out.tail)
    if run_time:
        d, h, m, s, ms = (int(x) for x in run_time.groups())
        result.run_time_s = d * 86400 + h * 3600 + m * 60 + s + ms / 1000

    requests = _MEMORY_NEEDED.findall(out.tail)
    if requests:
        # The last request's kind decides (MDCI's "by at least (X MB)" is an increment on top of
        # MaxCore); every process asks for its own amount, and the largest must be met.
        kind = "increment" if "by at least" in requests[-1][0].lower() else "target"
        same = [float(a) for w, a in requests if ("by at least" in w.lower()) == (kind == "increment")]
        result.memory_required_mb = max(same)
        result.memory_request = kind
    else:
        estimates = _MEMORY_ESTIMATE.findall(out.tail)
        if estimates:
            result.memory_required_mb = max(float(x) for x in estimates)
            result.memory_request = "target"
    where = _ERROR_TERMINATION.findall(out.tail)
    result.error_module = where[-1] if where else None


# A success needs no retry; a suspicious result needs a person, not the same run again.
_NOT_A_FAILURE = frozenset({Outcome.SUCCESS, Outcome.SUSPICIOUS_RESULT})


def _set_energy(result: Classification, value: str, rest: str) -> None:
    result.energy = _to_float(value)
    if result.energy is not None:
        result.energy_converged = "not fully converged" not in rest
        result.energy_source = "output"


def _finish(
    result: Classification, outcome: Outcome, message: str, retryable: bool | None = None
) -> Classification:
    result.outcome = outcome
    result.message = message
    if retryable is None:
        retryable = outcome not in NOT_RETRYABLE and outcome not in _NOT_A_FAILURE
    result.retryable = retryable
    return result


def _decisive_line(text: str, pattern: re.Pattern[str]) -> str:
    """The line around the last match of ``pattern``: what a person needs to see."""
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - we want the last one
        pass
    if last is None:
        return ""
    start = text.rfind("\n", 0, last.start()) + 1
    end = text.find("\n", last.end())
    line = text[start : end if end >= 0 else len(text)]
    return " ".join(line.split()).strip("=>*-! ")[:200]


def _last_match_at(pattern: re.Pattern[str], text: str) -> int:
    last = -1
    for m in pattern.finditer(text):
        last = m.start()
    return last


# Causes that name what went wrong; the one printed last ended the run. PARALLEL_ERROR (an error
# termination without a named cause) and UNKNOWN_ERROR are only what is left when none is printed.
_NAMED_CAUSES = (
    Outcome.OUT_OF_MEMORY,
    Outcome.TOO_MANY_PROCESSES,
    Outcome.SCF_NOT_CONVERGED,
    Outcome.WAVEFUNCTION_NOT_CONVERGED,
)
_MODULE_ERROR = re.compile(r"Error\s*\(ORCA_(\w+)\)\s*:?\s*(\S[^\n]*)")


def _classify_failure(result: Classification, text: str, head: str, stderr: str = "") -> Classification:
    res = dict(_CAUSE_RES)
    pattern = res[Outcome.INPUT_ERROR]
    search_in = head if pattern.search(head) else text  # input errors are printed before the echo
    if pattern.search(search_in):
        return _finish(
            result, Outcome.INPUT_ERROR, _input_error_message(search_in, _decisive_line(search_in, pattern))
        )
    env = environment_cause(stderr, text)
    if env is not None:
        result.reason = env.reason
        return _finish(result, Outcome.ENVIRONMENT_ERROR, env.message)
    latest: tuple[int, Outcome] | None = None
    for outcome in _NAMED_CAUSES:
        at = _last_match_at(res[outcome], text)
        if at < 0 or (outcome in _FATAL_ONLY_IF_ABORTED and not _ABORTED.search(text)):
            # ORCA 5/6 go on after a nearly converged SCF; without an abort the run was killed later.
            continue
        if latest is None or at > latest[0]:
            latest = (at, outcome)
    if latest is not None:
        outcome = latest[1]
        line = _decisive_line(text, res[outcome])
        if outcome is Outcome.OUT_OF_MEMORY and result.memory_required_mb is not None and "MB" not in line:
            line = f"{line} (ORCA asked for {result.memory_required_mb:g} MB)"
        return _finish(result, outcome, line)
    pattern = res[Outcome.PARALLEL_ERROR]
    if pattern.search(text):
        line = _decisive_line(text, pattern)
        if "full pathname" in line:
            # Retrying the same job script cannot help: the site config must call ORCA by path.
            line = f"{line} (fix the site's ORCA path)"
            return _finish(result, Outcome.PARALLEL_ERROR, line, retryable=False)
        if result.error_module:
            line = f"ORCA finished by error termination in {result.error_module}"
            said = _MODULE_ERROR.findall(text)
            # A module that printed its own error line named a cause we do not know: quote it.
            line += f": {said[-1][1].strip()[:160]}" if said else " (no cause printed)"
        return _finish(result, Outcome.PARALLEL_ERROR, line)
    pattern = res[Outcome.UNKNOWN_ERROR]
    if pattern.search(text):
        return _finish(result, Outcome.UNKNOWN_ERROR, _decisive_line(text, pattern))
    return _finish(
        result,
        Outcome.TRUNCATED,
        "no termination line (killed: walltime, node failure, scancel?); "
        f"output stops at: {_last_line(text)}",
    )


def _input_error_message(text: str, line: str) -> str:
    if "INPUT ERROR" in line or "UNRECOGNIZED" in line:
        # The offending keyword is on the line after the banner.
        m = re.search(r"UNRECOGNIZED OR DUPLICATED KEYWORD\S* IN SIMPLE INPUT LINE\s*\n\s*(\S[^\n]*)", text)
        if m:
            return f"unrecognized or duplicated keyword(s) in the simple input line: {m.group(1).strip()}"
    return line


def _classify_normal(result: Classification, out: OutputText, optimising_steps: int = 0) -> Classification:
    if result.energy is None and not out.whole:
        # Frequency and property runs print the final energy before long analysis sections.
        found = scan_backwards(out.path, _FINAL_ENERGY, out.size, ENERGY_SCAN_LIMIT_BYTES)
        if found:
            _set_energy(result, found[1], found[2])
    _prefer_property_energy(result, out.path)
    if result.calc_kind in ("optimisation", "transition_state", "neb"):
        verdict = _opt_verdict(out)
        if verdict is None:
            return _finish(
                result,
                Outcome.OPT_NOT_CONVERGED,
                "terminated normally but without 'THE OPTIMIZATION HAS CONVERGED'",
            )
        if "did not converge" in verdict or (optimising_steps > 1 and _earlier_opt_failed(out)):
            return _finish(
                result,
                Outcome.OPT_NOT_CONVERGED,
                "the optimization did not converge but reached the maximum number of optimization cycles",
            )
    if result.energy_converged is False:
        wavefunction = "Wavefunction not fully converged" in out.tail
        outcome = Outcome.WAVEFUNCTION_NOT_CONVERGED if wavefunction else Outcome.SCF_NOT_CONVERGED
        return _finish(result, outcome, "terminated normally but the final energy is marked not converged")
    if result.energy is None and result.calc_kind != "molecular_dynamics":
        return _finish(
            result,
            Outcome.NO_FINAL_ENERGY,
            "terminated normally but printed no FINAL SINGLE POINT ENERGY (no result to use)",
        )
    wrong_modes = _frequency_verdict(result)
    if wrong_modes is not None:
        return _finish(result, *wrong_modes)
    if result.energy is not None:
        why = energy_is_suspicious(result.energy, result.first_scf_energy)
        if why:
            return _finish(result, Outcome.SUSPICIOUS_RESULT, why)
    return _finish(result, Outcome.SUCCESS, "")


def _frequency_verdict(result: Classification) -> tuple[Outcome, str] | None:
    """A failure when the frequencies contradict what the input asked for; None when they fit."""
    n = result.n_imaginary
    if n is None and result.intent is not None:
        # Frequencies were asked for (the last frequency step's check) but none were printed: the
        # thermochemistry and the stationary-point check a COMPLETED job promises are missing.
        return (
            Outcome.NO_FREQUENCIES,
            "terminated normally but printed no VIBRATIONAL FREQUENCIES although the input asks for them",
        )
    if n is None or result.intent not in (MINIMUM, SADDLE):
        return None  # no frequencies asked for, or a plain Freq: reported only
    values = ", ".join(f"{v:.2f}" for v in result.imaginary_freqs or [])
    below = f" (|v| >= {result.imag_threshold:g} cm**-1)"
    if result.intent == MINIMUM and n > 0:
        return (
            Outcome.IMAGINARY_MODES,
            f"a minimum was asked for but has {n} imaginary mode(s){below}: {values}",
        )
    if result.intent == SADDLE and n != 1:
        found = f"{n} imaginary modes{below}" + (f": {values}" if values else "")
        return Outcome.TS_MODE_COUNT, f"a transition state needs exactly 1 imaginary mode, found {found}"
    return None


def _earlier_opt_failed(out: OutputText) -> bool:
    """Whether any optimisation of a multi-step run hit its cycle limit. ORCA goes on to the next
    $new_job (or compound step) after one did, so the last verdict (a later step converging) does not
    speak for the earlier ones; the whole file is searched, at memory speed."""
    text = out.head if out.whole else out.tail
    if _OPT_VERDICTS[-1] in text:
        return True
    if out.whole:
        return False
    return find_last_literal(out.path, (_OPT_VERDICTS[-1],), out.size, out.size - out.echo_end) is not None


def _opt_verdict(out: OutputText) -> str | None:
    """The last optimisation verdict line; searched backwards past the tail if need be."""
    found = None
    for found in _OPT_DONE.finditer(out.tail):  # noqa: B007 - we want the last one
        pass
    if found is not None:
        return found.group(0)
    if out.whole:
        return None
    return find_last_literal(out.path, _OPT_VERDICTS, out.size, out.size - out.echo_end)


def _prefer_property_energy(result: Classification, output: Path) -> None:
    """Property files carry the final energy at full precision; only trusted after a normal end."""
    prop = property_energy(output)
    if prop is None and result.energy is None:
        prop = property_energy_orca4(output)
    if prop is None:
        return
    if result.energy is not None and abs(prop.energy - result.energy) > PROPERTY_AGREEMENT_EH:
        # Not this output's final energy: the file of an earlier $new_job or compound step (a later
        # step with its own %base writes <that base>.property.*), so neither its energy nor its flag.
        return
    result.energy = prop.energy
    result.energy_source = prop.source
    if prop.converged is not None:
        result.energy_converged = prop.converged
    if result.orca_version is None and prop.version:
        result.orca_version = prop.version
