"""What ``submit`` was given, as input files: plain files, folders, quoted globs and ``--from-file``
lists, expanded once, with every problem collected (never only the first)."""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Sequence
from pathlib import Path

#: The inputs a folder contributes: ORCA inputs and molecules (with --method).
INPUT_SUFFIXES = (".inp", ".xyz")
_GLOB_CHARS = frozenset("*?[")


LIST_MAX_BYTES = 64 << 20  # ~600,000 paths: more is a mistake (or a device), not a list


def read_list_file(list_file: Path, base: Path) -> tuple[list[Path], list[str]]:
    """The paths in ``list_file`` (one a line; blank lines and ``#`` comments ignored; relative paths
    are relative to ``base``, the folder the command runs in, as in ``find ... > list``)."""
    try:
        # A bounded read: a pipe (`--from-file <(find ...)`) works, a device such as /dev/zero ends here
        # with one line instead of filling the memory.
        with list_file.open("rb") as fh:
            data = fh.read(LIST_MAX_BYTES + 1)
        if len(data) > LIST_MAX_BYTES:
            return [], [f"{list_file}: the list is larger than {LIST_MAX_BYTES >> 20} MiB; split it"]
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        return [], [f"{list_file}: cannot read the list: {why}"]
    paths = []
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            path = Path(entry)
            paths.append(path if path.is_absolute() else base / path)
    if not paths:
        return [], [f"{list_file}: the list names no input file"]
    return paths, []


def expand_inputs(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """Files as given; a folder gives its ``.inp`` and ``.xyz`` files (not its sub-folders: a campaign's
    own ``jobs/`` must never be submitted by accident); a path that does not exist but holds ``*``,
    ``?`` or ``[`` is a glob (quoted on the command line, or from a list). Returns the files, each
    once, in order, and one problem per path that gave none."""
    out: list[Path] = []
    problems: list[str] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        if path not in seen:
            seen.add(path)
            out.append(path)

    for path in paths:
        try:
            mode: int | None = os.stat(path).st_mode  # one stat per path: 10,000 inputs are common
        except (OSError, ValueError):
            mode = None
        if mode is not None and stat.S_ISDIR(mode):
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)
            if not found:
                problems.append(f"{path}: folder has no .inp or .xyz file")
            for file in found:
                add(file)
        elif mode is None and _GLOB_CHARS & set(str(path)):
            matches = sorted(Path(m) for m in glob.glob(str(path)) if Path(m).is_file())
            if not matches:
                problems.append(f"{path}: no file matches this pattern")
            for file in matches:
                add(file)
        elif mode is not None and not stat.S_ISREG(mode):
            # A FIFO (or a device, a socket) would block the read of validation forever, or never end.
            problems.append(f"{path}: not a regular file (a FIFO, device or socket is no input)")
        else:
            add(path)  # a missing file is reported, with every other problem, by validation
    return out, problems
