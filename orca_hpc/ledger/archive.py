"""The archive of finished jobs: ``archive.jsonl`` plus a rebuildable index.

``archive.jsonl`` is append-only, one job per line (the ``ledger.records`` format with an
``id`` key). The latest line for an id wins, and a job that is in ``ledger.json`` (active)
overrides any archive line for it. A line may carry ``"v": N`` (its schema version); without
it the line is version 1. A torn last line (writer killed mid-append) is skipped with a
warning and cut off by the next append (its job is still active in ``ledger.json``, because the
archive is always appended before ``ledger.json`` is replaced).

``archive.index.json`` is a cache so that lookups never read the whole archive:
``{"v": 3, "size": bytes covered, "ids": {id: line offset}, "sha": {sha256: [ids]},
"name": {name: [ids]}, "max": highest id number, "st": {id: state}, "wf": any line a workflow step}``
(the states count a campaign's finished jobs without reading the archive: ``status --summary``).
When the archive has grown past ``size`` only the new tail is read; when the index is missing,
damaged or does not fit the archive it is rebuilt from scratch.

Every line is validated (``orca_hpc.ledger.validate``) when it is indexed or read: a damaged line
(not the torn tail) raises ``LedgerCorrupt`` naming the file and the line, so nothing is written
over a campaign whose history cannot be read; ``scan`` (``ledger check``) lists them instead.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orca_hpc.atomic import append_durable, atomic_write_bytes
from orca_hpc.errors import LedgerCorrupt
from orca_hpc.ledger.records import compact_json
from orca_hpc.ledger.schema import SCHEMA_VERSION, migrate_line
from orca_hpc.ledger.validate import job_problems, summarize

log = logging.getLogger("orca_hpc.ledger.store")

INDEX_VERSION = 3  # 2: lines validated when indexed, and the highest id kept; 3: states, "wf"


def _dumps(obj: Any) -> str:
    return compact_json(obj)  # the records' encoder, made once (json.dumps makes one per line)


class ArchiveScan:
    """Result of reading the whole archive (for ``all_jobs`` and ``ledger check``)."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.lines = 0
        self.bad_lines: list[int] = []  # 1-based line numbers that did not parse (not the torn tail)
        self.problems: list[str] = []  # what is wrong with them
        self.torn_tail = False


class Archive:
    """Reads and appends ``archive.jsonl``. ``writable`` means the caller holds the ledger lock."""

    def __init__(self, state_dir: Path, *, writable: bool) -> None:
        self.path = Path(state_dir) / "archive.jsonl"
        self.index_path = Path(state_dir) / "archive.index.json"
        self._writable = writable
        self._index: dict[str, Any] | None = None
        self._index_dirty = False

    # -- reading --------------------------------------------------------------------------

    def _parse_line(self, raw: bytes) -> dict[str, Any] | None:
        return self._check_line(raw)[0]

    def _check_line(self, raw: bytes) -> tuple[dict[str, Any] | None, list[str]]:
        """(the migrated record, []) or (None, what is wrong with the line)."""
        try:
            d = json.loads(raw)
        except (ValueError, RecursionError) as err:
            return None, [f"not valid JSON ({str(err)[:80]})"]
        if not isinstance(d, dict) or not isinstance(d.get("id"), str):
            return None, ["not a job with an id"]
        version = d.get("v", 1)
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= SCHEMA_VERSION:
            return None, [f"unknown line version {str(version)[:20]!r}"]
        try:
            d = migrate_line(d)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            return None, [f"cannot migrate ({type(err).__name__})"]
        problems = job_problems(d["id"], d, archived=True)
        return (None, problems) if problems else (d, [])

    def _read_from(self, offset: int) -> tuple[bytes, int]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(offset)
                return fh.read(), offset
        except FileNotFoundError:
            return b"", offset

    def _iter_lines(
        self, data: bytes, base: int, scan: ArchiveScan | None = None
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield (offset, record) for each complete, valid line of ``data`` (read from offset ``base``)."""
        pos = 0
        lineno = 0
        end = len(data)
        while pos < end:
            nl = data.find(b"\n", pos)
            if nl < 0:
                self._torn(scan)
                break
            lineno += 1
            raw = data[pos:nl]
            if raw.strip():
                d, problems = self._check_line(raw)
                if d is None:
                    if scan is None:
                        raise LedgerCorrupt(
                            f"{self.path}: the line at byte {base + pos} is damaged ({summarize(problems)}); "
                            "edit or remove that line, then run `orca-hpc ledger check`"
                        )
                    scan.bad_lines.append(lineno)
                    scan.problems += [f"line {lineno}: {p}" for p in problems]
                else:
                    yield base + pos, d
            pos = nl + 1
        if scan is not None:
            scan.lines = lineno

    def _torn(self, scan: ArchiveScan | None) -> None:
        if scan is not None:
            scan.torn_tail = True
        # A reader without the lock may simply see an append in progress: not worth a warning.
        level = logging.WARNING if self._writable else logging.DEBUG
        log.log(level, "%s: last line is incomplete (a write was interrupted); ignored", self.path)

    def scan(self) -> ArchiveScan:
        """Read every line; latest line per id wins."""
        result = ArchiveScan()
        data, base = self._read_from(0)
        for _, d in self._iter_lines(data, base, result):
            result.jobs[d["id"]] = d
        return result

    # -- index ----------------------------------------------------------------------------

    def _empty_index(self) -> dict[str, Any]:
        return {
            "v": INDEX_VERSION,
            "size": 0,
            "ids": {},
            "sha": {},
            "name": {},
            "max": 0,
            "st": {},
            "wf": False,
        }

    def _index_add(self, index: dict[str, Any], offset: int, d: dict[str, Any]) -> None:
        job_id = d["id"]
        known = job_id in index["ids"]
        index["ids"][job_id] = offset
        index["max"] = max(index["max"], int(job_id[1:]))
        index["st"][job_id] = d["st"]
        if "ch" in d or "chain" in d.get("x", ()):  # a workflow step (older ledgers: in "x")
            index["wf"] = True
        if not known:
            if d.get("sha"):
                index["sha"].setdefault(d["sha"], []).append(job_id)
            if d.get("name") is not None:
                index["name"].setdefault(d["name"], []).append(job_id)

    def _load_index(self) -> dict[str, Any]:
        if self._index is not None:
            return self._index
        try:
            size_now = os.stat(self.path).st_size
        except FileNotFoundError:
            size_now = 0
        index: dict[str, Any] | None = None
        try:
            with open(self.index_path, "rb") as fh:
                index = json.load(fh)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, RecursionError):
            log.warning("%s is damaged; rebuilding it from %s", self.index_path, self.path.name)
        if (
            not isinstance(index, dict)
            or index.get("v") != INDEX_VERSION
            or not isinstance(index.get("size"), int)
            or index["size"] > size_now
            or not all(isinstance(index.get(k), dict) for k in ("ids", "sha", "name", "st"))
            or not isinstance(index.get("max"), int)
            or not isinstance(index.get("wf"), bool)
        ):
            index = self._empty_index()
        if index["size"] < size_now:
            data, base = self._read_from(index["size"])
            for offset, d in self._iter_lines(data, base):
                self._index_add(index, offset, d)
            nl = data.rfind(b"\n")
            last_end = base + nl + 1 if nl >= 0 else base
            index["size"] = last_end
            self._index_dirty = True
        self._index = index
        self.save_index()  # at once, so the next reader (even a snapshot) does not redo this
        return index

    def _rebuild_index(self) -> dict[str, Any]:
        self._index = self._empty_index()
        data, base = self._read_from(0)
        for offset, d in self._iter_lines(data, base):
            self._index_add(self._index, offset, d)
        nl = data.rfind(b"\n")
        self._index["size"] = nl + 1 if nl >= 0 else 0
        self._index_dirty = True
        self.save_index()
        return self._index

    def _read_at(self, offset: int) -> dict[str, Any] | None:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            return None  # a damaged index: the caller rebuilds it
        try:
            with open(self.path, "rb") as fh:
                fh.seek(offset)
                line = fh.readline()
        except FileNotFoundError:
            return None
        if not line.endswith(b"\n"):
            return None
        return self._parse_line(line)

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The latest archived record of ``job_id`` (with ``id``), or None."""
        for attempt in range(2):
            index = self._load_index() if attempt == 0 else self._rebuild_index()
            offset = index["ids"].get(job_id)
            if offset is None:
                return None
            d = self._read_at(offset)
            if d is not None and d["id"] == job_id:
                return d
        return None

    def ids_by_sha(self, sha: str) -> list[str]:
        return list(self._load_index()["sha"].get(sha, ()))

    def ids_by_name(self, name: str) -> list[str]:
        return list(self._load_index()["name"].get(name, ()))

    def ids(self) -> list[str]:
        return list(self._load_index()["ids"])

    def states(self) -> dict[str, str]:
        """Every archived job's state (its latest line's), by id, from the index."""
        return dict(self._load_index()["st"])

    def stale_states(self, scan: ArchiveScan) -> int:
        """How many jobs' states in the index file, as it is, differ from ``scan``'s (``ledger check``:
        the counts of ``status --summary`` trust them). 0 when there is no such index to trust."""
        try:
            with open(self.index_path, "rb") as fh:
                index = json.load(fh)
        except (OSError, ValueError, RecursionError):
            return 0
        try:
            size_now = os.stat(self.path).st_size
        except FileNotFoundError:
            size_now = 0
        if (
            not isinstance(index, dict)
            or index.get("v") != INDEX_VERSION
            or not isinstance(index.get("st"), dict)
            or index.get("size") != size_now
        ):
            return 0  # not used as it is: the next reader rebuilds it, or reads the lines it lacks
        covered = index["st"]
        scanned = {job_id: d["st"] for job_id, d in scan.jobs.items()}
        return sum(
            1 for job_id in covered.keys() | scanned.keys() if covered.get(job_id) != scanned.get(job_id)
        )

    def has_workflow_steps(self) -> bool:
        """Whether any archived job is (or was) a workflow step."""
        return bool(self._load_index()["wf"])

    def highest_id(self) -> int:
        """The highest job id number in the archive (0 when empty): ids below it are taken."""
        return int(self._load_index()["max"])

    # -- writing (lock held) --------------------------------------------------------------

    def _cut_torn_tail(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return
        try:
            size = os.fstat(fd).st_size
            if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
                return
            # Find the last newline, reading backwards in chunks.
            pos = size
            keep = 0
            while pos > 0:
                start = max(0, pos - 65536)
                chunk = os.pread(fd, pos - start, start)
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    keep = start + nl + 1
                    break
                pos = start
            log.warning(
                "%s: removing an incomplete last line (%d bytes) left by an interrupted write",
                self.path,
                size - keep,
            )
            os.ftruncate(fd, keep)
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, records: list[dict[str, Any]]) -> int | None:
        """Append job records (each with ``id``) durably; returns the archive's new size (None when
        there was nothing to append). Raises OSError on failure (nothing left)."""
        if not records:
            return None
        assert self._writable, "archive append without the ledger lock"
        self._cut_torn_tail()
        lines = [_dumps(r) for r in records]
        data = ("\n".join(lines) + "\n").encode("utf-8")
        start = append_durable(self.path, data)
        if self._index is not None and self._index["size"] == start:
            offset = start
            for record, line in zip(records, lines, strict=True):
                self._index_add(self._index, offset, record)
                offset += len(line.encode("utf-8")) + 1
            self._index["size"] = offset
            self._index_dirty = True
        return start + len(data)

    def save_index(self) -> None:
        """Write the index cache if it changed (best effort: it can always be rebuilt).

        Safe without the lock too: any complete index whose ``size`` is within the archive is
        valid, and the write is an atomic rename, so racing writers cannot produce a bad one.
        """
        if not (self._index_dirty and self._index is not None):
            return
        try:
            atomic_write_bytes(self.index_path, _dumps(self._index).encode("utf-8"), 0o644, durable=False)
            self._index_dirty = False
        except OSError as err:
            # A read-only reader (someone else's campaign) simply cannot cache: not worth a warning.
            level = logging.WARNING if self._writable else logging.DEBUG
            log.log(level, "could not write %s: %s", self.index_path, err.strerror or err)
