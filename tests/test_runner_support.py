"""Support for the runner tests (no tests here): attempt dirs with spec.json, and a tiny fake ORCA.

The fake ORCA understands the emulator's ``# emulate:`` directives that the runner tests need
(``scf_fail``, ``crash``, ``sleep=S``) plus ``gbw_bytes=N`` and ``hess`` (writes ``<base>.hess``);
it also leaves scratch junk (``.tmp``, ``.densities``) so tests can check that it is never copied back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# A real, BSD-licensed successful ORCA 5 single point (see tests/fixtures/orca/PROVENANCE.md).
SUCCESS_OUTPUT = REPO / "tests" / "fixtures" / "orca" / "cclib__basicORCA5.0__dvb_sp.out"

FAKE_ORCA = r"""#!{python}
import os, signal, sys, time
inp = sys.argv[1]
base = inp.rsplit(".", 1)[0]
opts = {{}}
for line in open(inp):
    if line.strip().startswith("# emulate:"):
        for tok in line.split(":", 1)[1].replace(",", " ").split():
            key, _, value = tok.partition("=")
            opts[key] = value
print("fake ORCA", os.getpid(), flush=True)
print("files seen:", " ".join(sorted(os.listdir("."))), flush=True)
with open(base + ".gbw", "wb") as fh:
    fh.write(b"G" * int(opts.get("gbw_bytes") or 2000))
for junk in (".tmp", ".densities", ".bas0"):
    with open(base + junk, "wb") as fh:
        fh.write(b"j" * 1000)
for name in (base + ".xyz", base + "_trj.xyz"):
    with open(name, "w") as fh:
        fh.write("1\n\nH 0.0 0.0 0.0\n")
if "hess" in opts:
    with open(base + ".hess", "w") as fh:
        fh.write("$orca_hessian_file\n")
print("sys.stderr test line", file=sys.stderr, flush=True)
if "sleep" in opts:
    print("SCF ITERATIONS", flush=True)
    time.sleep(float(opts["sleep"]))
if "crash" in opts:
    print("  ITER       Energy", flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)
if "scf_fail" in opts:
    print("SCF NOT CONVERGED AFTER 125 CYCLES")
    print("ORCA finished by error termination in SCF")
    sys.exit(1)
success = {success!r}
if os.path.exists(success):
    sys.stdout.write(open(success).read())
else:
    print("FINAL SINGLE POINT ENERGY      -76.026760737428")
    print("                             ****ORCA TERMINATED NORMALLY****")
    print("TOTAL RUN TIME: 0 days 0 hours 0 minutes 1 seconds 0 msec")
"""

KEEP = ["*.out", "*.gbw", "*.xyz", "*_trj.xyz", "*.hess", "*.engrad", "*.property.txt", "*.property.json"]


def write_fake_orca(folder: Path, python: str = sys.executable) -> Path:
    path = folder / "fake-orca"
    path.write_text(FAKE_ORCA.format(python=python, success=str(SUCCESS_OUTPUT)))
    path.chmod(0o755)
    return path


def make_attempt(
    campaign_dir: Path,
    orca: str | Path,
    scratch_root: str | Path,
    *,
    directives: str = "",
    job_id: str = "j000001",
    attempt: int = 1,
    extra_inputs: dict[str, bytes] | None = None,
    campaign: str = "camp",
) -> Path:
    """A controller-shaped attempt dir: spec.json, the input and any extra inputs."""
    attempt_dir = campaign_dir / "jobs" / job_id / f"attempt-{attempt}"
    attempt_dir.mkdir(parents=True)
    text = "! HF STO-3G\n" + (f"# emulate: {directives}\n" if directives else "")
    text += "* xyz 0 1\nH 0.0 0.0 0.0\nH 0.0 0.0 0.74\n*\n"
    (attempt_dir / "h2_sp.inp").write_text(text)
    for name, data in (extra_inputs or {}).items():
        (attempt_dir / name).write_bytes(data)
    spec = {
        "spec_version": 1,
        "campaign": campaign,
        "job_id": job_id,
        "job_name": "h2 sp",
        "attempt": attempt,
        "input": "h2_sp.inp",
        "extra_inputs": sorted(extra_inputs or {}),
        "orca": str(orca),
        "scratch_root": str(scratch_root),
        "keep": KEEP,
    }
    (attempt_dir / "spec.json").write_text(json.dumps(spec))
    return attempt_dir
