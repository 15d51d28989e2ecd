"""How one ORCA attempt ended: the classifier's vocabulary."""

from __future__ import annotations

from enum import Enum

# An imaginary frequency smaller than this (cm**-1) is numerical noise, not a mode (IMAGINARY_MODES,
# TS_MODE_COUNT): the default of the site's `[chemistry] imag_threshold_cm1`. Here, not in chemistry.py,
# so that loading a site config does not compile the output readers' patterns.
DEFAULT_IMAG_THRESHOLD_CM1 = 20.0


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
    UNKNOWN_ERROR = "unknown_error"

    def __str__(self) -> str:
        return self.value


# Retrying cannot help these: the input itself is wrong.
NOT_RETRYABLE = frozenset({Outcome.INPUT_ERROR})
