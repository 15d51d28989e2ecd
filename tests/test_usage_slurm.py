"""Usage recorded from sacct, the `usage` report and right-sizing, on the real local SLURM cluster.

The jobs allocate a known amount of memory, burn a known CPU time and run at least a known time (the
emulator's ``alloc_mb``, ``cpu_s`` and ``sleep``); what reconcile records and what the report suggests
are checked against those numbers. The cluster samples memory every 5 s (JobAcctGatherFrequency), so
each job runs longer than that.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from e2e import cli, new_campaign, orca_input, reconcile_until_done, show, write_inputs

pytestmark = pytest.mark.slurm

ALLOC_MB, CPU_S, SLEEP_S = 300, 2, 8
# The batch step also holds bash, the runner and Python itself: its RSS is the allocation plus those.
OVERHEAD_MB = 200
DIRECTIVE = f"alloc_mb={ALLOC_MB} cpu_s={CPU_S} sleep={SLEEP_S}"


def test_usage_is_recorded_reported_and_right_sizes_the_next_job(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path, overrides="\n[rightsize]\nenabled = true\nmin_evidence = 3\n")
    paths = write_inputs(
        tmp_path / "in",
        {f"w{i}.inp": orca_input(directive=DIRECTIVE, extra=f"# conformer {i}\n") for i in range(3)},
    )
    cli(camp, "submit", *paths)
    final = reconcile_until_done(camp)
    assert final["counts"] == {"COMPLETED": 3}

    uses = []
    for row in final["jobs"]:
        [attempt] = show(camp, row["id"])["attempts"]
        use = attempt["usage"]
        assert use is not None, attempt
        assert use["elapsed_s"] >= SLEEP_S
        assert use["cpu_time_s"] >= CPU_S
        assert ALLOC_MB <= use["max_rss_mb"] <= ALLOC_MB + OVERHEAD_MB
        # what SLURM was asked for: the site's 2000 MB per process, 1 process, 30 minutes
        assert (use["requested_mem_mb"], use["cpus"], use["time_limit_s"]) == (2000, 1, 1800)
        assert use["node"]
        uses.append(use)

    report = json.loads(cli(camp, "usage", "--json", "--no-reconcile").stdout)
    assert (report["schema"], report["kind"]) == (1, "usage")
    rows = {r["id"]: r for r in report["jobs"]}
    assert len(rows) == 3
    for row, use in zip(final["jobs"], uses, strict=True):
        r = rows[row["id"]]
        assert r["cpu_efficiency"] == pytest.approx(use["cpu_time_s"] / use["elapsed_s"], abs=1e-3)
        assert r["core_hours_wasted"] == 0 and r["core_hours"] == pytest.approx(
            use["elapsed_s"] / 3600, abs=1e-6
        )
        assert r["mem_efficiency"] == pytest.approx(use["max_rss_mb"] / 2000, abs=1e-3)
    [group] = report["groups"]
    assert (group["jobs"], group["time_samples"], group["mem_samples"]) == (3, 3, 3)
    assert group["enough_evidence"] and group["atoms"] == "3-4" and group["processes"] == 1
    longest, largest = max(u["elapsed_s"] for u in uses), max(u["max_rss_mb"] for u in uses)
    # +20 %, + the site's 30 s warning, which SLURM may send 60 s early
    walltime = math.ceil((longest * 1.2 + 30 + 60) / 60)
    memory = math.ceil(largest * 1.2 / 100) * 100
    assert (group["suggested_walltime_min"], group["suggested_mem_mb"]) == (walltime, memory)
    assert memory >= ALLOC_MB * 1.2

    # A fourth job of the same group is submitted with the suggestion, and says why.
    [fourth] = write_inputs(tmp_path / "in", {"w9.inp": orca_input(directive=DIRECTIVE, extra="# 9\n")})
    [submitted] = json.loads(cli(camp, "submit", "--json", fourth).stdout)["submitted"]
    cli(camp, "cancel", submitted["id"])  # its numbers are what this test needs, not its run
    [attempt] = show(camp, submitted["id"])["attempts"]
    [fix] = attempt["corrections"]
    assert fix["handler"] == "rightsize" and "3 took" in fix["why"]
    spec = json.loads((Path(attempt["folder"]) / "spec.json").read_text())
    # the input had no %maxcore: ORCA gets the suggested memory (1 process), the job that / 0.8
    assert (spec["time_min"], spec["maxcore_mb"], spec["mem_mb"]) == (
        walltime,
        memory,
        math.ceil(memory / 0.8),
    )
