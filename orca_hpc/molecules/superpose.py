"""RMSD after optimal superposition, in pure Python (the core keeps its four dependencies).

Horn's quaternion method (J. Opt. Soc. Am. A 4, 629, 1987): the best rotation of one centred point
set onto another is the eigenvector of the largest eigenvalue of a symmetric 4x4 matrix built from
their 3x3 correlation matrix, and the minimal sum of squared distances is ``Ga + Gb - 2*lambda_max``.
Only the eigenvalue is needed, and a 4x4 symmetric matrix is diagonalised exactly enough by a few
Jacobi sweeps: no SVD, no reflection case to patch (a quaternion is always a proper rotation, so a
mirror image is not a duplicate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Point = tuple[float, float, float]


def _centred(points: Sequence[Point]) -> list[Point]:
    n = len(points)
    cx = sum(p[0] for p in points) / n
    cy = sum(p[1] for p in points) / n
    cz = sum(p[2] for p in points) / n
    return [(p[0] - cx, p[1] - cy, p[2] - cz) for p in points]


def _largest_eigenvalue(m: list[list[float]]) -> float:
    """Largest eigenvalue of a symmetric 4x4 matrix by cyclic Jacobi rotations (changes ``m``)."""
    size = len(m)
    scale = max(1.0, max(abs(v) for row in m for v in row))
    for _sweep in range(60):
        off = sum(m[i][j] ** 2 for i in range(size) for j in range(i + 1, size))
        if off <= (1e-14 * scale) ** 2:
            break
        for p in range(size - 1):
            for q in range(p + 1, size):
                if abs(m[p][q]) <= 1e-300:
                    continue
                theta = (m[q][q] - m[p][p]) / (2.0 * m[p][q])
                t = math.copysign(1.0, theta) / (abs(theta) + math.sqrt(theta * theta + 1.0))
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for k in range(size):  # columns p and q
                    mkp, mkq = m[k][p], m[k][q]
                    m[k][p] = c * mkp - s * mkq
                    m[k][q] = s * mkp + c * mkq
                for k in range(size):  # rows p and q
                    mpk, mqk = m[p][k], m[q][k]
                    m[p][k] = c * mpk - s * mqk
                    m[q][k] = s * mpk + c * mqk
    return max(m[i][i] for i in range(size))


def superposed_rmsd(a: Sequence[Point], b: Sequence[Point]) -> float:
    """RMSD between two equally long, equally ordered point sets after the best rotation and
    translation of one onto the other."""
    if len(a) != len(b):
        raise ValueError(f"point sets differ in length ({len(a)} and {len(b)})")
    n = len(a)
    if n == 0:
        return 0.0
    ca, cb = _centred(a), _centred(b)
    sxx = sxy = sxz = syx = syy = syz = szx = szy = szz = 0.0
    g = 0.0
    for (ax, ay, az), (bx, by, bz) in zip(ca, cb, strict=True):
        sxx += ax * bx
        sxy += ax * by
        sxz += ax * bz
        syx += ay * bx
        syy += ay * by
        syz += ay * bz
        szx += az * bx
        szy += az * by
        szz += az * bz
        g += ax * ax + ay * ay + az * az + bx * bx + by * by + bz * bz
    horn = [
        [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
        [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
        [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
        [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz],
    ]
    lam = _largest_eigenvalue(horn)
    return math.sqrt(max(0.0, (g - 2.0 * lam) / n))
