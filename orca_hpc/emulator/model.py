"""Deterministic numbers for the ORCA emulator: energies, geometry steps, frequencies and files.

Everything is a pure function of the molecule so repeated runs agree to the last digit, which lets
tests compare energies across attempts (a restarted optimisation continues from a lower energy).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from orca_hpc.emulator.inputs import Atom

_SYMBOLS = (  # noqa: SIM905 (one line per period reads better than 86 quoted strings)
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm "
    "Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn"
).split()
ATOMIC_NUMBER = {s: z for z, s in enumerate(_SYMBOLS, start=1)}
# Roughly the Hartree-Fock limit of the free atoms: enough to make energies look right.
_REFERENCE = {
    "H": -0.4998, "He": -2.8617, "Li": -7.4327, "Be": -14.5730, "B": -24.5291, "C": -37.6886,
    "N": -54.4009, "O": -74.8094, "F": -99.4093, "Ne": -128.5471, "Na": -161.8589, "Mg": -199.6146,
    "Al": -241.8767, "Si": -288.8543, "P": -340.7187, "S": -397.5049, "Cl": -459.4820, "Ar": -526.8175,
}  # fmt: skip


def atomic_number(symbol: str) -> int:
    return ATOMIC_NUMBER.get(symbol, 6)


def reference_energy(symbol: str) -> float:
    if symbol in _REFERENCE:
        return _REFERENCE[symbol]
    z = atomic_number(symbol)
    return -0.5 * z**2.2


def energy(atoms: Sequence[Atom], charge: int = 0) -> float:
    """Sum of atomic reference energies, a small bonding term from the geometry, and the charge."""
    total = sum(reference_energy(a.symbol) for a in atoms)
    for i, a in enumerate(atoms):
        for b in atoms[i + 1 :]:
            r = math.dist((a.x, a.y, a.z), (b.x, b.y, b.z))
            # Both terms fall as atoms approach, so each emulated optimisation step (a contraction)
            # lowers the energy a little.
            total += 0.001 * r - 0.05 * math.exp(-r / 2)
    return total + 0.3 * charge


def electrons(atoms: Sequence[Atom], charge: int) -> int:
    return sum(atomic_number(a.symbol) for a in atoms) - charge


def basis_functions(atoms: Sequence[Atom]) -> int:
    return sum(1 if a.symbol in ("H", "He") else 5 for a in atoms)


def relax(atoms: Sequence[Atom], factor: float = 0.998) -> list[Atom]:
    """One emulated optimisation step: pull every atom slightly towards the centroid."""
    n = max(len(atoms), 1)
    cx = sum(a.x for a in atoms) / n
    cy = sum(a.y for a in atoms) / n
    cz = sum(a.z for a in atoms) / n
    return [
        Atom(a.symbol, cx + (a.x - cx) * factor, cy + (a.y - cy) * factor, cz + (a.z - cz) * factor)
        for a in atoms
    ]


def frequencies(atoms: Sequence[Atom]) -> list[float]:
    n = 3 * len(atoms)
    zero = 5 if len(atoms) == 2 else 6
    real = [150.0 + (3500.0 - 150.0) * (i / max(n - zero - 1, 1)) ** 1.3 for i in range(max(n - zero, 0))]
    return [0.0] * min(zero, n) + [round(f, 2) for f in real]


def xyz_text(atoms: Sequence[Atom], base: str, e: float) -> str:
    lines = [str(len(atoms)), f"Coordinates from ORCA-job {base} E {e:.12f}"]
    lines += [f"  {a.symbol:<2s} {a.x:20.12f} {a.y:20.12f} {a.z:20.12f}" for a in atoms]
    return "\n".join(lines) + "\n"


def blob(kind: str, atoms: Sequence[Atom], e: float, size: int = 8192) -> bytes:
    """Binary stand-in for .gbw / .densities: a header, then deterministic pseudo-random bytes."""
    seed = f"{kind}:{e:.12f}:" + ";".join(f"{a.symbol}{a.x:.6f}{a.y:.6f}{a.z:.6f}" for a in atoms)
    digest = hashlib.sha256(seed.encode()).digest()
    body = (digest * (size // len(digest) + 1))[:size]
    return f"ORCA-EMULATOR {kind} v1\0".encode() + body


def property_txt(
    base: str, e: float, atoms: Sequence[Atom], charge: int, mult: int, status: str, version: str = "6.0.1"
) -> str:
    bar = "*" * 49
    lines = [
        bar,
        f"******************* ORCA {version} ******************",
        bar,
        "$Calculation_Status",
        "   &GeometryIndex 1",
        "   &ListStatus       OUT",
        f'   &VERSION [&Type "String"] "{version}"',
        '   &PROGNAME [&Type "String"] "LeanSCF"',
        f'   &STATUS [&Type "String"] "{status}"',
        "$End",
        "$Geometry",
        "   &GeometryIndex 1",
        "   &ListStatus       OUT",
        f'   &NATOMS [&Type "Integer"] {len(atoms)}',
        '   &NCORELESSECP [&Type "Integer"] 0',
        '   &NGHOSTATOMS [&Type "Integer"] 0',
        f'   &CARTESIAN [&Type "Coordinates", &Dim({len(atoms)},4), &Units "Bohr"]',
    ]
    lines += [
        f"              {a.symbol:<2s} {a.x / 0.52917721092:20.12f} {a.y / 0.52917721092:20.12f} "
        f"{a.z / 0.52917721092:20.12f}"
        for a in atoms
    ]
    lines += [
        "$End",
        "$SCF_Energy",
        "   &GeometryIndex 1",
        "   &ListStatus       OUT",
        f'   &SCF_ENERGY [&Type "Double"] {e: .16e}',
        "$End",
        "$Calculation_Info",
        "   &GeometryIndex 1",
        "   &ListStatus       OUT",
        f'   &MULT [&Type "Integer"] {mult}',
        f'   &CHARGE [&Type "Integer"] {charge}',
        f'   &NUMOFELECTRONS [&Type "Integer"] {electrons(atoms, charge)}',
        f'   &BASENAME [&Type "String"] "{base}"',
        "$End",
    ]
    return "\n".join(lines) + "\n"
