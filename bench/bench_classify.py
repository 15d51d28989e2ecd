"""Benchmark: classify a ~500 KB real ORCA output and a synthetic multi-GB one; wall time and peak memory.

    python bench/bench_classify.py [--size-gb 2] [--keep]

Each classification runs in a fresh subprocess so `ru_maxrss` (peak resident memory) belongs to it
alone; the interpreter and imports alone take some MB, shown as the baseline. The big file is
written in streaming fashion (head of a real ORCA 6 optimisation, its optimisation cycles repeated,
its real ending) into a temporary folder and removed afterwards unless --keep is given.
The worst case for the big file is also measured: the converged banner removed (same length), so
the classifier must scan the whole file backwards before it can say `opt_not_converged`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "orca"
FIXTURE = FIXTURES / "cclib__basicORCA6.0__dvb_gopt.out"
BANNER = b"THE OPTIMIZATION HAS CONVERGED"
LIMIT_MB = 100.0

_CHILD = r"""
import json, resource, sys, time, tracemalloc
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from orca_hpc.orca.classify import classify_output
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
path = sys.argv[1]
tracemalloc.start()
t0 = time.perf_counter()
if path != "-":
    c = classify_output(path)
wall = time.perf_counter() - t0
_, traced_peak = tracemalloc.get_traced_memory()
print(json.dumps({
    "wall_s": wall,
    "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "baseline_mb": baseline / 1024,
    "traced_peak_mb": traced_peak / 2**20,
    "outcome": c.outcome.value if path != "-" else None,
    "energy": c.energy if path != "-" else None,
}))
"""


def _parts(data: bytes) -> tuple[bytes, bytes, bytes]:
    """Head (to the first optimisation cycle), middle (the cycles before the banner), tail (the rest)."""
    first_cycle = data.index(b"GEOMETRY OPTIMIZATION CYCLE")
    first_cycle = data.rfind(b"\n", 0, first_cycle) + 1
    banner = data.index(BANNER)
    banner_line = data.rfind(b"\n", 0, data.rfind(b"HURRAY", 0, banner)) + 1
    return data[:first_cycle], data[first_cycle:banner_line], data[banner_line:]


def write_output(path: Path, size: int) -> int:
    """Write a synthetic output of about ``size`` bytes; returns the banner's byte offset."""
    head, middle, tail = _parts(FIXTURE.read_bytes())
    with path.open("wb") as fh:
        fh.write(head)
        written = len(head)
        while written + len(middle) + len(tail) < size:
            fh.write(middle)
            written += len(middle)
        banner_at = written + tail.index(BANNER)
        fh.write(tail)
    return banner_at


def measure(path: Path | str) -> dict[str, float | str | None]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)


def _line(name: str, size: int, m: dict[str, float | str | None]) -> str:
    return (
        f"{name:<34} {size / 2**20:>9.1f} MB  {m['outcome']!s:<18} wall {m['wall_s']:7.3f} s  "
        f"peak RSS {m['maxrss_mb']:6.1f} MB (baseline {m['baseline_mb']:.1f})  "
        f"traced peak {m['traced_peak_mb']:6.2f} MB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-classify-") as tmp:
        small = Path(tmp) / "medium.out"
        write_output(small, 600 * 1024)
        m = measure(small)
        print(_line("~500 KB optimisation (success)", small.stat().st_size, m))

        big = Path(tmp) / "big.out"
        banner_at = write_output(big, int(args.size_gb * 2**30))
        size = big.stat().st_size
        m = measure(big)
        print(_line(f"{args.size_gb:g} GB optimisation (success)", size, m))
        ok &= m["outcome"] == "success" and float(m["maxrss_mb"]) < LIMIT_MB

        with big.open("r+b") as fh:  # remove the banner in place: forces the full backward scan
            fh.seek(banner_at)
            fh.write(b"X" * len(BANNER))
        m = measure(big)
        print(_line(f"{args.size_gb:g} GB, no banner (worst case)", size, m))
        ok &= m["outcome"] == "opt_not_converged" and float(m["maxrss_mb"]) < LIMIT_MB
        if args.keep:
            print(f"kept: {small} {big}")
            input("press Enter to delete them ")
    if ok:
        print(f"OK: right outcomes, peak memory under {LIMIT_MB:g} MB")
    else:
        print(f"FAIL: wrong outcome or peak memory over {LIMIT_MB:g} MB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
