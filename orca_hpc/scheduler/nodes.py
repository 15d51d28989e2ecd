"""What a partition's nodes really have, from ``scontrol show partition/node -o``: pure parsing.

`orca-hpc check` compares the site's declarations (``[slurm] cores_per_node``, ``max_mem_mb``,
``walltime``, ``max_walltime``) with this. A job may land on any node of its partition, so what counts
is the smallest node: its usable CPUs (``CPUEfctv``, SLURM's CPUs minus specialised cores, else
``CPUTot``) and memory (``RealMemory`` minus ``MemSpecLimit``), both capped by the partition's
``MaxCPUsPerNode`` and ``MaxMemPerNode``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orca_hpc.config.site import parse_walltime

# "Key=value" pairs on one line; a value may hold blanks (OS=Linux 6.1 #1 SMP), so a value runs up
# to the next " Key=".
_PAIR_START = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/.]*)=")
_UNLIMITED = ("UNLIMITED", "INFINITE", "NONE", "")
# Node states in which no job starts (scontrol prints e.g. IDLE+DRAIN, DOWN*, MIXED).
_UNUSABLE = ("DOWN", "DRAIN", "FAIL", "NOT_RESPONDING", "FUTURE", "POWERED_DOWN", "INVAL")


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int  # usable by jobs
    memory_mb: int  # usable by jobs
    state: str

    @property
    def usable(self) -> bool:
        return not any(word in self.state.upper() for word in _UNUSABLE)


@dataclass(frozen=True)
class Partition:
    name: str
    max_time_min: int | None  # MaxTime; None: unlimited
    nodes: tuple[Node, ...]
    max_cpus_per_node: int | None = None
    max_mem_per_node_mb: int | None = None

    def smallest(self) -> tuple[int, int, Node] | None:
        """(cpus, memory MB, the node with fewest CPUs) any job of the partition can count on; None
        without nodes."""
        if not self.nodes:
            return None
        cpus = min(n.cpus for n in self.nodes)
        memory = min(n.memory_mb for n in self.nodes)
        if self.max_cpus_per_node is not None:
            cpus = min(cpus, self.max_cpus_per_node)
        if self.max_mem_per_node_mb is not None:
            memory = min(memory, self.max_mem_per_node_mb)
        return cpus, memory, min(self.nodes, key=lambda n: n.cpus)


def parse_pairs(line: str) -> dict[str, str]:
    """One ``scontrol ... -o`` line -> {key: value}."""
    starts = list(_PAIR_START.finditer(line))
    out = {}
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(line)
        out[match.group(1)] = line[match.end() : end].strip()
    return out


def _number(value: str | None) -> int | None:
    """An integer field; None when unlimited or absent. Memory may carry a unit suffix (M, G, T)."""
    if value is None or value.upper() in _UNLIMITED:
        return None
    match = re.fullmatch(r"(\d+)([MGT]?)", value.strip())
    if not match:
        return None
    return int(match.group(1)) * {"": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[match.group(2)]


def parse_partition(text: str, name: str | None) -> dict[str, str] | None:
    """The fields of partition ``name`` (None: the default partition) in ``scontrol show partition -o``."""
    rows = [parse_pairs(line) for line in text.splitlines() if line.strip()]
    for row in rows:
        if row.get("PartitionName") == name if name is not None else row.get("Default") == "YES":
            return row
    return None


def parse_nodes(text: str, partition: str) -> tuple[Node, ...]:
    """The nodes of ``partition`` in ``scontrol show node -o``."""
    nodes = []
    for line in text.splitlines():
        row = parse_pairs(line)
        if "NodeName" not in row or partition not in row.get("Partitions", "").split(","):
            continue
        cpus = _number(row.get("CPUEfctv")) or _number(row.get("CPUTot")) or 0
        memory = (_number(row.get("RealMemory")) or 0) - (_number(row.get("MemSpecLimit")) or 0)
        nodes.append(Node(row["NodeName"], cpus, max(memory, 0), row.get("State", "")))
    return tuple(nodes)


def partition_of(partition_text: str, node_text: str, name: str | None) -> Partition | None:
    """The partition ``name`` (None: the default one) with its nodes; None when SLURM has no such."""
    row = parse_partition(partition_text, name)
    if row is None:
        return None
    found = row.get("PartitionName", name or "")
    max_time = row.get("MaxTime", "UNLIMITED")
    try:
        max_time_min = None if max_time.upper() in _UNLIMITED else parse_walltime(max_time)
    except ValueError:
        max_time_min = None
    return Partition(
        name=found,
        max_time_min=max_time_min,
        nodes=parse_nodes(node_text, found),
        max_cpus_per_node=_number(row.get("MaxCPUsPerNode")),
        max_mem_per_node_mb=_number(row.get("MaxMemPerNode")),
    )
