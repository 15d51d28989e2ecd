"""Files that ship with orca-hpc (templates, site configs): inside the wheel, else the repository."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """``orca_hpc/<name>`` in an installed wheel, else ``<repository>/<name>`` in a source checkout."""
    packaged = PACKAGE_DIR / name
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / name
