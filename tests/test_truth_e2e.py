"""Issue 13 on the real local SLURM cluster, one job of each case, in one campaign."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from e2e import cli, new_campaign, orca_input, show, status, write_inputs

pytestmark = pytest.mark.slurm

INPUTS = {
    # A minimum with an imaginary mode: displaced along it, TightOpt (the emulator's "fixed" condition).
    "imag_min.inp": orca_input("B3LYP def2-SVP Opt Freq", directive="imaginary_unless=TightOpt"),
    # A TS search that ends on two modes: displaced along the second, re-run; then exactly one.
    "ts_two.inp": orca_input(
        "B3LYP def2-SVP OptTS Freq", directive="imaginary n_imaginary=2 imaginary_unless=TightOpt"
    ),
    # An optimisation asked for in a block, at max cycles: restarted from its last geometry.
    "runtyp_opt.inp": orca_input(
        "B3LYP def2-SVP", directive="opt_maxcycles_unless=Restart", extra="%method RunTyp Opt end\n"
    ),
    # The machine, not the chemistry: rerun unchanged, never counted.
    "mpi.inp": orca_input(directive="mpi_error"),
    "disk.inp": orca_input(directive="disk_full"),
    # Converges only with KDIIS, a rung the default max_retries = 3 reaches on the last chance.
    "scf_hard.inp": orca_input(directive="scf_fail_unless=KDIIS"),
}
ENVIRONMENT = {"mpi": "mpi", "disk": "disk_full"}


def test_trust_the_end_state_on_the_cluster(tmp_path: Path) -> None:
    # High enough that the two environment jobs never pause the campaign here.
    camp = new_campaign(tmp_path, overrides="\n[overrides.retry]\npause_after_environment_failures = 1000\n")
    cli(camp, "submit", *write_inputs(tmp_path / "in", INPUTS))
    deadline = time.monotonic() + 300
    while True:
        cli(camp, "reconcile")
        jobs = {j["name"]: j for j in status(camp)["jobs"]}
        chemistry_done = all(jobs[n]["state"] == "COMPLETED" for n in jobs if n not in ENVIRONMENT)
        environment_seen = all(jobs[n]["attempts"] >= 2 for n in ENVIRONMENT)
        if chemistry_done and environment_seen:
            break
        assert all(j["state"] != "PERMANENT_FAILED" for j in jobs.values()), jobs
        assert time.monotonic() < deadline, jobs
        time.sleep(1.0)
    assert status(camp)["paused"] is None
    cli(camp, "cancel", *(jobs[n]["id"] for n in ENVIRONMENT))  # they would rerun for ever, unchanged

    def record(name: str) -> dict:
        return show(camp, jobs[name]["id"])

    def handlers(att: dict) -> set[str]:
        """Which handlers made this attempt (one may record several changes)."""
        return {c["handler"] for c in att.get("corrections", [])}

    imag = record("imag_min")
    assert [a.get("outcome") for a in imag["attempts"]] == ["imaginary_modes", "success"]
    assert handlers(imag["attempts"][1]) == {"imaginary_modes"}
    assert imag["attempts"][1]["summary"]["frequencies"] == "minimum: no imaginary mode (as asked)"
    assert imag["attempts"][0]["summary"]["n_imaginary"] == 1

    ts = record("ts_two")
    assert [a.get("outcome") for a in ts["attempts"]] == ["ts_mode_count", "success"]
    assert handlers(ts["attempts"][1]) == {"imaginary_modes"}
    assert ts["attempts"][1]["summary"]["frequencies"].startswith(
        "transition state: exactly 1 imaginary mode"
    )

    opt = record("runtyp_opt")
    assert [a.get("outcome") for a in opt["attempts"]] == ["opt_not_converged", "success"]
    assert handlers(opt["attempts"][1]) == {"opt"}
    assert "restart.xyz" in (camp / opt["attempts"][1]["folder"] / "runtyp_opt.inp").read_text()

    scf = record("scf_hard")
    assert [a.get("outcome") for a in scf["attempts"]] == ["scf_not_converged"] * 3 + ["success"]
    assert scf["retries"] == 3 and all(handlers(a) == {"scf"} for a in scf["attempts"][1:])
    last = (camp / scf["attempts"][3]["folder"] / "scf_hard.inp").read_text()
    assert "Shift 0.1" in last and "KDIIS" in last  # the strongest rung, reached within max_retries

    for name, reason in ENVIRONMENT.items():
        env = record(name)
        assert env["state"] == "CANCELLED" and env["retries"] == 0  # never counted against max_retries
        first = env["attempts"][0]
        assert first["outcome"] == "environment_error" and first["summary"]["environment"] == reason
        assert handlers(env["attempts"][1]) == {"environment"}
    final = status(camp)["counts"]
    assert final == {"CANCELLED": 2, "COMPLETED": 4}
