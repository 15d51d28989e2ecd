"""How one ORCA attempt ended: the classifier's vocabulary, and its verdict (``Classification``).

The verdict's record lives here, not in ``classify.py``, so that the controller's strict reader of
``result.json`` knows its fields without importing the classifier (~25 regular expressions compiled
at import: a cost the first ``status`` after a mass completion paid for nothing).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum

# An imaginary frequency smaller than this (cm**-1) is numerical noise, not a mode (IMAGINARY_MODES,
# TS_MODE_COUNT): the default of the site's `[chemistry] imag_threshold_cm1`. Here, not in chemistry.py,
# so that loading a site config does not compile the output readers' patterns.
DEFAULT_IMAG_THRESHOLD_CM1 = 20.0

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the runner imports this)
if TYPE_CHECKING:
    from typing import Any


class Outcome(str, Enum):
    """How one ORCA attempt ended (the classifier's vocabulary)."""

    SUCCESS = "success"
    SCF_NOT_CONVERGED = "scf_not_converged"
    OPT_NOT_CONVERGED = "opt_not_converged"
    OUT_OF_MEMORY = "out_of_memory"
    TOO_MANY_PROCESSES = "too_many_processes"
    WAVEFUNCTION_NOT_CONVERGED = "wavefunction_not_converged"
    INPUT_ERROR = "input_error"
    PARALLEL_ERROR = "parallel_error"
    # The machine, not the chemistry (MPI start-up, ORCA missing, disk full): see orca/environment.py.
    ENVIRONMENT_ERROR = "environment_error"
    TRUNCATED = "truncated"
    SUSPICIOUS_RESULT = "suspicious_result"
    # Terminated normally, but chemically wrong or empty (issue 13):
    IMAGINARY_MODES = "imaginary_modes"  # a minimum (Opt ... Freq) with imaginary modes
    TS_MODE_COUNT = "ts_mode_count"  # a transition state without exactly one imaginary mode
    NO_FINAL_ENERGY = "no_final_energy"  # "terminated normally" without FINAL SINGLE POINT ENERGY
    NO_FREQUENCIES = "no_frequencies"  # Freq/NumFreq/AnFreq asked for, no frequency list printed
    UNKNOWN_ERROR = "unknown_error"

    def __str__(self) -> str:
        return self.value


# Retrying cannot help these: the input itself is wrong.
NOT_RETRYABLE = frozenset({Outcome.INPUT_ERROR})


@dataclass
class Classification:
    file: str
    outcome: Outcome
    retryable: bool
    message: str = ""
    error_lines: list[str] = field(default_factory=list)
    orca_version: str | None = None
    calc_kind: str | None = None
    energy: float | None = None
    energy_converged: bool | None = None
    energy_source: str | None = None  # "output" or the property file's name
    first_scf_energy: float | None = None
    scf_cycles: int | None = None
    opt_cycles: int | None = None
    memory_required_mb: float | None = None
    # "target": ORCA named the MaxCore it needs (SCF); "increment": MaxCore must grow by that much (MDCI).
    memory_request: str | None = None
    error_module: str | None = None  # the module named in "ORCA finished by error termination in X"
    reason: str | None = None  # environment_error only: mpi, orca_missing, disk_full
    nprocs_used: int | None = None
    run_time_s: float | None = None
    normal_termination: bool = False
    # The chemistry (issue 13): what the input asked for and what the frequencies say.
    intent: str | None = None  # minimum, saddle, report (of the last frequency step), or None
    n_imaginary: int | None = None  # negative modes at or beyond imag_threshold (cm**-1)
    imaginary_freqs: list[float] | None = None  # those modes' values, cm**-1
    imag_noise: list[float] | None = None  # negative modes below the threshold: reported, not counted
    imag_threshold: float | None = None
    lowest_freq: float | None = None  # cm**-1
    freq_offset: int | None = None  # byte offset of the last VIBRATIONAL FREQUENCIES (for the handler)
    zpe: float | None = None  # Eh
    enthalpy: float | None = None  # Eh
    gibbs: float | None = None  # Eh
    temperature: float | None = None  # K
    # Eh: the electronic energy the thermochemistry block starts from ("Electronic energy"). Not always
    # ``energy``: in a multi-job input (freq, then $new_job sp) ``energy`` is the later job's.
    thermo_energy: float | None = None
    s2: float | None = None  # <S**2>
    final_xyz: str | None = None  # <base>.xyz next to the output, when ORCA wrote one

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        for key in ("energy", "first_scf_energy"):
            value = data[key]
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = None  # JSON has no NaN/inf
        return data
