"""The chemistry of a finished attempt, read from its ``result.json`` for `results` and `show`.

The ledger keeps only the outcome and the final energy (it must stay small for 100,000 jobs); the
rest of what the classifier found (frequencies, thermochemistry, <S**2>, ORCA version, final
geometry) lives in the attempt's ``result.json`` and is read here when a person asks for it. Keys
carry their units, as the `results` columns do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orca_hpc.attempt.folder import AttemptResult, read_result

# The `results` columns read from result.json, in order, with the classification key each comes from.
CHEMISTRY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("zpe_Eh", "zpe"),
    ("enthalpy_Eh", "enthalpy"),
    ("gibbs_Eh", "gibbs"),
    ("temperature_K", "temperature"),
    ("n_imaginary", "n_imaginary"),
    ("lowest_freq_cm1", "lowest_freq"),
    ("s2", "s2"),
    ("orca_version", "orca_version"),
)


def _number(value: Any) -> float | None:
    # result.json is written by another program and may be hand-edited: a wrong type reads as absent.
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def chemistry_columns(folder: Path, result: AttemptResult | None) -> dict[str, Any]:
    """The `results` columns of one attempt: every key of ``CHEMISTRY_COLUMNS`` and ``final_xyz``
    (None where the run did not produce it; ``final_xyz`` is the geometry file's path)."""
    found = result.classification if result is not None else {}
    row: dict[str, Any] = {}
    for column, key in CHEMISTRY_COLUMNS:
        value = found.get(key)
        if key == "n_imaginary":
            row[column] = value if isinstance(value, int) and not isinstance(value, bool) else None
        elif key == "orca_version":
            row[column] = value if isinstance(value, str) else None
        else:
            row[column] = _number(value)
    name = found.get("final_xyz")
    # Only a file that came back to the attempt folder: the name alone would point nowhere.
    xyz = folder / name if isinstance(name, str) and name and "/" not in name else None
    row["final_xyz"] = str(xyz) if xyz is not None and xyz.is_file() else None
    return row


def frequency_verdict(classification: dict[str, Any]) -> str | None:
    """One line on the imaginary modes against what the input asked for; None without frequencies."""
    n = classification.get("n_imaginary")
    if not isinstance(n, int) or isinstance(n, bool):
        return None
    freqs = [f for f in classification.get("imaginary_freqs") or [] if isinstance(f, int | float)]
    values = f": {', '.join(f'{v:.2f}' for v in freqs)} cm**-1" if freqs else ""
    intent = classification.get("intent")
    if intent == "minimum":
        verdict = (
            "minimum: no imaginary mode (as asked)"
            if n == 0
            else f"minimum asked for, {n} imaginary mode(s){values}"
        )
    elif intent == "saddle":
        verdict = (
            f"transition state: exactly 1 imaginary mode (as asked){values}"
            if n == 1
            else f"transition state asked for, {n} imaginary mode(s){values}"
        )
    else:
        verdict = f"frequencies only (nothing asked of them): {n} imaginary mode(s){values}"
    noise = classification.get("imag_noise") or []
    threshold = classification.get("imag_threshold")
    if noise and isinstance(threshold, int | float):
        verdict += f"; {len(noise)} smaller negative mode(s) under {threshold:g} cm**-1 taken as noise"
    return verdict


def attempt_summary(folder: Path, outcome: str | None, reason: str | None) -> dict[str, Any]:
    """What `show` adds to one attempt from its result.json: the frequency verdict, thermochemistry,
    <S**2>, ORCA version, final geometry and, for an environment failure, its cause. Empty without a
    result file."""
    result = read_result(folder)
    if result is None:
        return {}
    summary: dict[str, Any] = {k: v for k, v in chemistry_columns(folder, result).items() if v is not None}
    verdict = frequency_verdict(result.classification)
    if verdict is not None:
        summary["frequencies"] = verdict
        freqs = result.classification.get("imaginary_freqs")
        if isinstance(freqs, list) and freqs:
            summary["imaginary_freqs_cm1"] = freqs
    if outcome == "environment_error":
        summary["environment"] = reason or result.reason or "unknown"
    return summary
