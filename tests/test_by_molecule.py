"""Results per molecule (`results --by molecule`) and progress per step (`status`), from chain jobs.

The table is checked on plain rows (no ledger), with thermochemistry and energies read by the
classifier from real ORCA outputs (tests/fixtures/orca/), and the Boltzmann arithmetic against values
worked out by hand. The CLI tests build a campaign whose ledger holds chain jobs with finished
attempts made from the same real outputs.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from e2e import cli

from orca_hpc.atomic import atomic_write_bytes
from orca_hpc.attempt.folder import RESULT_NAME, AttemptResult
from orca_hpc.config.campaign import Campaign, init_campaign
from orca_hpc.controller.by_molecule import (
    Chain,
    StepRun,
    chain_of,
    molecule_tables,
    progress_line,
    step_order,
    step_progress,
)
from orca_hpc.controller.submit import submit
from orca_hpc.ledger.records import Job
from orca_hpc.ledger.states import JobState
from orca_hpc.orca.classify import classify_output
from orca_hpc.scheduler.fake import FakeScheduler

FIXTURES = Path(__file__).parent / "fixtures" / "orca"
# One molecule (divinylbenzene), its steps from real runs: conformer 1 from ORCA 5, conformer 2 from
# ORCA 6 (the single points cross over, so the two differ by a few kcal/mol).
REAL = {
    1: {
        "opt": "cclib__basicORCA5.0__dvb_gopt.out",
        "freq": "cclib__basicORCA5.0__dvb_ir.out",
        "sp": "cclib__basicORCA6.0__dvb_sp_dft.out",
    },
    2: {
        "opt": "cclib__basicORCA6.0__dvb_gopt.out",
        "freq": "cclib__basicORCA6.0__dvb_ir.out",
        "sp": "cclib__basicORCA4.2__dvb_sp.out",
    },
}
KCAL = 627.509474


def _chemistry(output: Path) -> tuple[float | None, dict[str, Any]]:
    """What `results` reads for a finished attempt of this output (energy, chemistry columns)."""
    found = classify_output(output).to_dict()
    return found["energy"], {
        "zpe_Eh": found["zpe"],
        "enthalpy_Eh": found["enthalpy"],
        "gibbs_Eh": found["gibbs"],
        "temperature_K": found["temperature"],
        "n_imaginary": found["n_imaginary"],
        "final_xyz": None,
        "intent": found["intent"],
        "calc_kind": found["calc_kind"],
        "thermo_energy_Eh": found["thermo_energy"],
    }


def _run(job: str, molecule: str, conformer: int, step: str, after: str | None, state: str = "COMPLETED",
         energy: float | None = None, **chemistry: Any) -> StepRun:  # fmt: skip
    return StepRun(job, state, Chain(molecule, conformer, step, after), energy, chemistry)


def _chain(molecule: str, conformer: int, *steps: tuple[str, str, str]) -> list[StepRun]:
    """One conformer's COMPLETED steps ``(job id, step, fixture output)``, each after the one before."""
    runs, after = [], None
    for job, step, name in steps:
        energy, chemistry = _chemistry(FIXTURES / name)
        runs.append(StepRun(job, "COMPLETED", Chain(molecule, conformer, step, after), energy, chemistry))
        after = job
    return runs


def test_two_conformers_one_kcal_apart_weigh_as_worked_out_by_hand() -> None:
    # G = E + (G - E) of the frequency step; 1 kcal/mol apart at 298.15 K. By hand:
    # kB T = 1.987204e-3 * 298.15 = 0.592485 kcal/mol, exp(-1 / 0.592485) = 0.184930,
    # weights 1 / 1.184930 = 0.84394 and 0.184930 / 1.184930 = 0.15606.
    e, t = -100.0, 298.15
    runs = [
        _run("j1", "m", 1, "freq", None, energy=e, gibbs_Eh=e + 0.05, temperature_K=t),
        # Its electronic energy is 1.26 kcal/mol higher, its free energy 1.0: G ranks, not E.
        _run("j2", "m", 2, "freq", None, energy=e + 0.002, gibbs_Eh=e + 0.05 + 1 / KCAL, temperature_K=t),
    ]
    (table,) = molecule_tables(runs)
    first, second = table.conformers
    assert table.ranked_by == "free_energy" and table.best_conformer == 1 and first.best
    assert second.relative_kcal_mol == pytest.approx(1.0, abs=1e-9)
    assert first.boltzmann_weight == pytest.approx(0.84394, abs=1e-5)
    assert second.boltzmann_weight == pytest.approx(0.15606, abs=1e-5)
    # At 350 K the same gap weighs less: kB T = 0.695521, exp(-1 / 0.695521) = 0.237421 -> 0.80811.
    warm = [dataclasses.replace(r, chemistry={**r.chemistry, "temperature_K": 350.0}) for r in runs]
    (table,) = molecule_tables(warm)
    assert table.temperature_K == 350.0 and table.temperature_source == "frequency step"
    assert table.conformers[0].boltzmann_weight == pytest.approx(0.80811, abs=1e-5)


def test_real_outputs_composite_free_energy_failed_and_unfinished_conformers() -> None:
    runs = []
    for n, steps in REAL.items():
        runs += _chain("dvb", n, *((f"j{n}{i}", step, name) for i, (step, name) in enumerate(steps.items())))
    # Conformer 3 failed at freq for good (no sp job was made); conformer 4 is still optimising.
    runs += _chain("dvb", 3, ("j30", "opt", REAL[1]["opt"]))
    runs += [_run("j31", "dvb", 3, "freq", "j30", state="PERMANENT_FAILED")]
    runs += [_run("j40", "dvb", 4, "opt", None, state="RUNNING")]
    (table,) = molecule_tables(runs)
    assert step_order(runs) == ["opt", "freq", "sp"]
    rows = {r.conformer: r for r in table.conformers}
    # The composite G from the numbers ORCA printed (FINAL SINGLE POINT ENERGY, Final Gibbs free
    # energy), copied from the outputs by hand.
    g1 = -382.055108392562 + (-381.91112705 - -382.055108614160)
    g2 = -382.050758039646 + (-381.91114546 - -382.055107107616)
    assert rows[1].free_energy_Eh == pytest.approx(g1, abs=1e-9)
    assert rows[2].free_energy_Eh == pytest.approx(g2, abs=1e-9)
    assert rows[1].high_level_step == "sp" and rows[1].thermo_step == "freq"
    assert rows[1].zpe_Eh == 0.17701962 and rows[1].enthalpy_Eh == -381.86823907
    assert rows[1].temperature_K == 298.15 and rows[1].n_imaginary == 0
    assert [s.energy_Eh for s in rows[1].steps] == [-382.055133372796, -382.05510861416, -382.055108392562]
    gap = (g2 - g1) * KCAL  # 2.72 kcal/mol
    assert table.best_conformer == 1 and rows[1].relative_kcal_mol == 0.0
    assert rows[2].relative_kcal_mol == pytest.approx(gap, abs=1e-6) and 2.5 < gap < 3.0
    assert rows[2].boltzmann_weight == pytest.approx(0.0100, abs=1e-4)  # exp(-2.72/0.5925) / (1 + ...)
    assert rows[1].boltzmann_weight + rows[2].boltzmann_weight == pytest.approx(1.0)
    # The failed and the unfinished conformer are listed, say why, and weigh nothing.
    assert rows[3].status == "failed" and rows[3].note == "freq PERMANENT_FAILED (j31)"
    assert rows[4].status == "unfinished" and rows[4].note == "at opt (RUNNING, j40)"
    assert rows[3].boltzmann_weight is None and rows[4].boltzmann_weight is None
    assert rows[3].steps[0].energy_Eh == -382.055133372796  # what it did finish is still shown
    assert step_progress(runs)[1].completed == 2 and step_progress(runs)[1].total == 3
    assert progress_line(step_progress(runs)) == "opt 3/4  freq 2/3  sp 2/2"


def test_a_molecule_with_no_finished_conformer_and_one_without_thermochemistry() -> None:
    runs = [
        _run("j1", "stuck", 1, "opt", None, state="CANCELLED"),
        _run("j2", "stuck", 2, "opt", None, energy=-1.0),
        _run("j3", "stuck", 2, "sp", "j2", state="PENDING"),
        # No frequency step at all: ranked by the last electronic energy, at the default temperature.
        _run("j4", "plain", 1, "opt", None, energy=-2.0),
        _run("j5", "plain", 1, "sp", "j4", energy=-2.5),
        _run("j6", "plain", 2, "opt", None, energy=-2.0),
        _run("j7", "plain", 2, "sp", "j6", energy=-2.5 + 0.5 / KCAL),
    ]
    stuck, plain = molecule_tables(runs)
    assert stuck.best_conformer is None and stuck.ranked_by is None and stuck.note == "no finished conformer"
    assert [r.status for r in stuck.conformers] == ["cancelled", "unfinished"]
    assert stuck.conformers[0].note == "opt CANCELLED (j1)"
    assert plain.ranked_by == "electronic_energy" and plain.best_conformer == 1
    assert plain.temperature_K == 298.15 and plain.temperature_source == "default"
    assert plain.conformers[1].relative_kcal_mol == pytest.approx(0.5)
    assert plain.conformers[0].free_energy_Eh is None and plain.conformers[0].high_level_energy_Eh == -2.5
    # Thermochemistry without a usable temperature (a hand-edited result.json): G ranks, at 298.15 K.
    for kelvin in (None, 0.0, float("nan")):
        runs = [_run("j8", "hot", 1, "freq", None, energy=-3.0, gibbs_Eh=-2.9, temperature_K=kelvin)]
        runs += [_run("j9", "hot", 2, "freq", None, energy=-3.0, gibbs_Eh=-2.9 + 1 / KCAL)]
        (unknown,) = molecule_tables(runs)
        assert unknown.ranked_by == "free_energy" and unknown.temperature_source == "default"
        assert unknown.temperature_K == 298.15
        assert unknown.conformers[0].boltzmann_weight == pytest.approx(0.84394, abs=1e-5)


def test_a_conformer_stopped_by_its_gate_at_the_last_step_is_failed_and_weighs_nothing() -> None:
    # A one-step workflow (the opt-freq preset): the gate is checked after the last step, so the
    # stopped conformer's chain is as long as a finished one's; it is a saddle point, not a minimum.
    runs = [
        _run("j1", "m", 1, "opt", None, energy=-1.0, gibbs_Eh=-0.9, temperature_K=298.15, n_imaginary=0),
        _run("j2", "m", 2, "opt", None, energy=-1.1, gibbs_Eh=-1.0, temperature_K=298.15, n_imaginary=1),
    ]
    runs[1] = dataclasses.replace(runs[1], stop="gate no-imaginary: 1 imaginary mode(s)")
    (table,) = molecule_tables(runs)
    ok, saddle = table.conformers
    assert table.best_conformer == 1 and ok.boltzmann_weight == 1.0
    assert (saddle.status, saddle.boltzmann_weight, saddle.best) == ("failed", None, False)
    assert saddle.note == "opt stopped the chain (j2): gate no-imaginary: 1 imaginary mode(s)"


def test_a_conformer_with_an_imaginary_mode_is_no_minimum_and_weighs_nothing() -> None:
    """Without a gate, a frequency step that found an imaginary mode still finished; its G is no
    conformer's free energy (a saddle point; ORCA leaves the mode out of the partition function).

    Here it is 1 kcal/mol below the true minimum: weighed, it would be "best" with 0.84394 (the hand
    calculation of the first test). The real ORCA 5.0.4 output with one imaginary mode (a plain Freq:
    intent "report") gives the count and intent the table reads."""
    real = classify_output(FIXTURES / "truth" / "ReactionMechanismGenerator-ARC__orca_neg_freq_ts.out")
    assert (real.n_imaginary, real.intent) == (1, "report")
    e, t = -100.0, 298.15
    runs = [
        _run("j1", "m", 1, "freq", None, energy=e, gibbs_Eh=e + 0.05, temperature_K=t, n_imaginary=0),
        _run("j2", "m", 2, "freq", None, energy=e, gibbs_Eh=e + 0.05 - 1 / KCAL, temperature_K=t,
             n_imaginary=real.n_imaginary, intent=real.intent),
    ]  # fmt: skip
    (table,) = molecule_tables(runs)
    minimum, saddle = table.conformers
    assert table.best_conformer == 1 and minimum.boltzmann_weight == 1.0
    assert saddle.status == "finished" and saddle.boltzmann_weight is None
    assert saddle.relative_kcal_mol is None
    assert saddle.note == "freq: 1 imaginary mode(s), not a minimum: no weight"
    # Conformers of a transition state (OptTS asked for a saddle): exactly one imaginary mode is right,
    # and none is wrong.
    ts = [dataclasses.replace(r, chemistry={**r.chemistry, "intent": "saddle"}) for r in runs]
    (table,) = molecule_tables(ts)
    assert table.best_conformer == 2 and table.conformers[1].boltzmann_weight == 1.0
    wrong = "freq: 0 imaginary mode(s), not a transition state (1 wanted): no weight"
    assert table.conformers[0].note == wrong


def test_a_correction_is_not_added_to_an_energy_at_another_geometry() -> None:
    """G - E belongs to the geometry the frequencies were computed on. In opt+freq (low) -> opt (high)
    -> sp, the sp runs on the high-level geometry: E(sp) + G(freq) - E(freq) is the free energy of no
    structure. By hand, conformer 1 would get -2.0 + (-1.95 - -1.0) = -2.95 Eh and rank first."""
    runs = []
    for n, shift in ((1, 0.0), (2, 1 / KCAL)):
        runs += [
            _run(f"j{n}1", "m", n, "optfreq", None, energy=-1.0, gibbs_Eh=-1.95 + shift, temperature_K=298.15,
                 n_imaginary=0, intent="minimum", calc_kind="optimisation"),
            _run(f"j{n}2", "m", n, "opthigh", f"j{n}1", energy=-2.0 + 2 * shift, calc_kind="optimisation"),
            _run(f"j{n}3", "m", n, "sp", f"j{n}2", energy=-2.0 + 2 * shift, calc_kind="single_point"),
        ]  # fmt: skip
    (table,) = molecule_tables(runs)
    assert all(r.free_energy_Eh is None for r in table.conformers)
    # No free energy anywhere: the high-level electronic energies rank (2 kcal/mol apart).
    assert table.ranked_by == "electronic_energy" and table.best_conformer == 1
    assert table.conformers[1].relative_kcal_mol == pytest.approx(2.0)
    # With the sp on the frequency step's own geometry (no opthigh), the composite stands.
    direct = [dataclasses.replace(r, chain=Chain("m", r.chain.conformer, "sp", r.job_id[:2] + "1"))
              for r in runs if r.chain.step == "sp"]  # fmt: skip
    (table,) = molecule_tables([r for r in runs if r.chain.step == "optfreq"] + direct)
    assert table.ranked_by == "free_energy"
    assert table.conformers[0].free_energy_Eh == pytest.approx(-2.0 + (-1.95 - -1.0), abs=1e-12)
    # A moved geometry for one conformer only: it is named, and not weighed against the others.
    mixed = [r for r in runs if r.chain.conformer == 1] + [r for r in runs if r.chain.step == "optfreq"][1:]
    mixed += [d for d in direct if d.chain.conformer == 2]
    (table,) = molecule_tables(mixed)
    moved, fine = table.conformers
    assert table.ranked_by == "free_energy" and table.best_conformer == 2 and fine.boltzmann_weight == 1.0
    assert moved.boltzmann_weight is None
    assert moved.note == (
        "opthigh moved the atoms after the frequency step optfreq: its thermal correction does not apply, "
        "no free energy: no weight"
    )


def test_a_frequency_job_followed_by_a_single_point_in_the_same_step(tmp_path: Path) -> None:
    """A step whose input runs Freq and then a $new_job single point (a template can): its final energy
    is the single point's, its G the frequency job's. The composite must subtract the E(el) ORCA's
    thermochemistry started from, not the step's final energy (that gave G back, at the wrong level).

    Stand-in for such an output: the real ORCA 6.0 B3LYP dvb_ir output followed by the real ORCA 6.0 HF
    dvb_sp_hf output. By hand from the printed numbers: E(HF) = -379.768962914202 (FINAL SINGLE POINT
    ENERGY), G = -381.91114546 and E(el) = -382.05510711 (its thermochemistry), so
    G(composite) = -379.768962914202 + (-381.91114546 - -382.05510711) = -379.625001264202 Eh."""
    both = tmp_path / "freq_then_sp.out"
    parts = ("cclib__basicORCA6.0__dvb_ir.out", "cclib__basicORCA6.0__dvb_sp_hf.out")
    both.write_text("".join((FIXTURES / name).read_text(errors="replace") for name in parts))
    energy, chemistry = _chemistry(both)
    assert energy == -379.768962914202 and chemistry["gibbs_Eh"] == -381.91114546
    assert chemistry["thermo_energy_Eh"] == -382.05510711
    (table,) = molecule_tables([StepRun("j1", "COMPLETED", Chain("m", 1, "freqsp"), energy, chemistry)])
    (row,) = table.conformers
    assert row.free_energy_Eh == pytest.approx(-379.625001264202, abs=1e-9)
    # The same with a real ORCA 6.1 composite input (B3LYP Opt Freq, then $new_job RI-B2PLYP single
    # point; excerpt of GoodVibes' tests/orca6/18_propane_linked_composite_dh.out): G - E(el) =
    # -118.95880295 - -119.03737495 = 0.07857200 Eh (ORCA's own G-E(el) line), so
    # G = -119.046732649048 + 0.07857200 = -118.968160649048 Eh, 5.87 kcal/mol below the B3LYP G.
    energy, chemistry = _chemistry(
        FIXTURES / "truth" / "patonlab-GoodVibes__orca6__18_propane_linked_composite_dh.excerpt.out"
    )
    assert (energy, chemistry["gibbs_Eh"], chemistry["thermo_energy_Eh"]) == (
        -119.046732649048,
        -118.95880295,
        -119.03737495,
    )
    (table,) = molecule_tables(
        [StepRun("j1", "COMPLETED", Chain("propane", 1, "composite"), energy, chemistry)]
    )
    assert table.conformers[0].free_energy_Eh == pytest.approx(-118.968160649048, abs=1e-9)
    # One job per step (the usual case): the step's own G, exactly.
    energy, chemistry = _chemistry(FIXTURES / "cclib__basicORCA6.0__dvb_ir.out")
    (table,) = molecule_tables([StepRun("j1", "COMPLETED", Chain("m", 1, "freq"), energy, chemistry)])
    assert table.conformers[0].free_energy_Eh == -381.91114546


def test_free_energies_at_different_temperatures_are_not_weighed_together() -> None:
    """G(350 K) and G(298.15 K) differ by -(S)(51.85 K), tens of kcal/mol for a molecule: a conformer
    whose G is at another temperature than the molecule's gets no weight (it got 0.84 before, by the
    first test's hand calculation, weighed at 298.15 K)."""
    e = -100.0
    runs = [
        _run("j1", "m", 1, "freq", None, energy=e, gibbs_Eh=e + 0.05, temperature_K=298.15),
        _run("j2", "m", 2, "freq", None, energy=e, gibbs_Eh=e + 0.05 - 1 / KCAL, temperature_K=350.0),
    ]
    (table,) = molecule_tables(runs)
    assert table.temperature_K == 298.15
    assert table.note == "frequency steps at different temperatures (298.15, 350 K)"
    first, second = table.conformers
    assert first.boltzmann_weight == 1.0 and second.boltzmann_weight is None
    assert second.note == "G at 350 K, not at the molecule's 298.15 K: no weight"
    # The temperature most conformers share wins, whichever conformer comes first.
    third = _run("j3", "m", 3, "freq", None, energy=e, gibbs_Eh=e + 0.05, temperature_K=350.0)
    (table,) = molecule_tables([runs[0], runs[1], third])
    assert table.temperature_K == 350.0 and table.conformers[0].boltzmann_weight is None
    assert table.conformers[1].boltzmann_weight == pytest.approx(0.80811, abs=1e-5)  # 1 kcal/mol at 350 K


def test_step_order_follows_the_after_links_not_the_job_ids() -> None:
    # The sp jobs were made with lower ids than a late opt (a remade conformer): links decide.
    runs = [
        _run("j1", "m", 1, "sp", "j3"),
        _run("j2", "m", 1, "freq", "j4"),
        _run("j3", "m", 1, "freq", "j4"),
        _run("j4", "m", 1, "opt", None),
    ]
    assert step_order(runs) == ["opt", "freq", "sp"]
    assert progress_line(step_progress([])) == ""


class _WithChain:
    def __init__(self, chain: Any, extra: Any = None) -> None:
        self.chain, self.extra = chain, extra or {}


def test_chain_of_reads_the_field_a_record_or_the_extras_and_refuses_nonsense() -> None:
    wanted = Chain("water", 2, "freq", "j000001")
    raw = {"molecule": "water", "conformer": 2, "step": "freq", "after": "j000001"}
    assert chain_of(_WithChain(raw)) == wanted
    assert chain_of(_WithChain(wanted)) == wanted
    assert chain_of(_WithChain(None, {"chain": raw})) == wanted
    assert chain_of(_WithChain({**raw, "after": None})) == Chain("water", 2, "freq", None)
    for bad in ({**raw, "conformer": 0}, {**raw, "conformer": True}, {**raw, "step": ""}, "text"):
        assert chain_of(_WithChain(bad)) is None
    assert chain_of(_WithChain(None)) is None


# ---------------------------------------------------------------- through the CLI


def _set_chain(job: Job, chain: dict[str, Any]) -> None:
    job.chain = chain


def _finish(campaign: Campaign, job: Job, output: Path) -> None:
    """The job's attempt folder gets a real output and the result.json the runner would write."""
    folder = campaign.root / job.latest.dir
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(output, folder / "job.out")
    (folder / "job.xyz").write_text("1\n\nC 0 0 0\n")
    found = classify_output(folder / "job.out")
    classification = {**found.to_dict(), "final_xyz": "job.xyz"}
    result = AttemptResult(outcome=found.outcome.value, energy=found.energy, classification=classification)
    atomic_write_bytes(folder / RESULT_NAME, json.dumps(result.to_dict()).encode(), 0o600)
    job.latest.energy, job.latest.outcome = found.energy, found.outcome.value


def _workflow_campaign(tmp_path: Path) -> tuple[Path, dict[tuple[int, str], str]]:
    """dvb: conformers 1 and 2 finished through opt, freq, sp (real outputs); conformer 3 failed at
    freq. water: one conformer, its opt running. And one plain job."""
    campaign = init_campaign(tmp_path / "camp", "local-slurm")
    plan = [(1, "opt"), (1, "freq"), (1, "sp"), (2, "opt"), (2, "freq"), (2, "sp"), (3, "opt"), (3, "freq")]
    plan += [(1, "water-opt"), (0, "plain")]
    paths = []
    for i, _ in enumerate(plan):
        path = tmp_path / "in" / f"in{i}.inp"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"! HF def2-SVP\n* xyz 0 1\nH 0 0 0\nH 0 0 0.74\n*\n# {i}\n")
        paths.append(path)
    ids = [job_id for job_id, _n, _s in submit(campaign, paths, scheduler=FakeScheduler()).submitted]
    made: dict[tuple[int, str], str] = {}
    with campaign.ledger().transaction() as txn:
        for (conformer, step), job_id in zip(plan, ids, strict=True):
            job = txn.get(job_id)
            if step == "plain":
                continue
            if step == "water-opt":
                _set_chain(job, {"molecule": "water", "conformer": 1, "step": "opt", "after": None})
                txn.set_state(job, JobState.RUNNING)
                continue
            after = made.get((conformer, {"freq": "opt", "sp": "freq"}.get(step, "")))
            _set_chain(job, {"molecule": "dvb", "conformer": conformer, "step": step, "after": after})
            made[(conformer, step)] = job_id
            txn.set_state(job, JobState.RUNNING)
            if conformer == 3 and step == "freq":
                txn.set_state(job, JobState.FAILED)
                txn.set_state(job, JobState.PERMANENT_FAILED)
                continue
            _finish(campaign, job, FIXTURES / REAL[1 if conformer == 3 else conformer][step])
            txn.set_state(job, JobState.COMPLETED)
    return campaign.root, made


def _by_molecule(camp: Path, *args: str) -> Any:
    return cli(camp, "results", "--by", "molecule", "--no-reconcile", *args)


def test_results_by_molecule_and_status_steps_through_the_cli(tmp_path: Path) -> None:
    camp, made = _workflow_campaign(tmp_path)
    document = json.loads(_by_molecule(camp, "--json").stdout)
    assert document["schema"] == 1 and document["kind"] == "results_by_molecule"
    assert document["steps"] == ["opt", "freq", "sp"]
    dvb, water = document["molecules"]
    assert (dvb["molecule"], dvb["best_conformer"], dvb["ranked_by"]) == ("dvb", 1, "free_energy")
    assert (dvb["conformers_total"], dvb["conformers_finished"], dvb["temperature_K"]) == (3, 2, 298.15)
    one, two, three = dvb["conformers"]
    g1 = -382.055108392562 + (-381.91112705 - -382.055108614160)  # from the outputs' text
    assert one["free_energy_Eh"] == pytest.approx(g1, abs=1e-9) and one["best"] is True
    assert one["boltzmann_weight"] + two["boltzmann_weight"] == pytest.approx(1.0)
    assert [s["job"] for s in one["steps"]] == [made[(1, s)] for s in ("opt", "freq", "sp")]
    assert Path(one["final_xyz"]).is_file() and Path(one["final_xyz"]).parent.parent.name == made[(1, "sp")]
    assert three["status"] == "failed" and three["boltzmann_weight"] is None
    assert three["note"] == f"freq PERMANENT_FAILED ({made[(3, 'freq')]})"
    assert water["best_conformer"] is None and water["conformers"][0]["status"] == "unfinished"

    rows = list(csv.DictReader(io.StringIO(_by_molecule(camp, "--csv").output)))
    assert [(r["molecule"], r["conformer"], r["status"]) for r in rows] == [
        ("dvb", "1", "finished"),
        ("dvb", "2", "finished"),
        ("dvb", "3", "failed"),
        ("water", "1", "unfinished"),
    ]
    assert float(rows[0]["free_energy_Eh"]) == one["free_energy_Eh"]
    assert float(rows[1]["boltzmann_weight"]) == two["boltzmann_weight"]
    assert float(rows[0]["sp_energy_Eh"]) == -382.055108392562 and rows[2]["sp_job"] == ""
    assert rows[2]["freq_state"] == "PERMANENT_FAILED"

    # A selection narrows to the molecules of the chosen jobs (each still from all its jobs).
    only = json.loads(_by_molecule(camp, "--json", "--state", "RUNNING").stdout)
    assert [m["molecule"] for m in only["molecules"]] == ["water"]
    # ... but not the steps: the campaign's, so a script's columns do not depend on what was chosen.
    assert only["steps"] == document["steps"]
    header = _by_molecule(camp, "--csv").output.splitlines()[0]
    assert _by_molecule(camp, "--csv", "--state", "RUNNING").output.splitlines()[0] == header
    assert _by_molecule(camp, "--csv", "--state", "CANCELLED").output.splitlines() == [header]
    text = _by_molecule(camp).output
    assert "dvb: 2/3 conformers finished, best 1, by free energy, weights at 298.15 K" in text

    state = json.loads(cli(camp, "status", "--json", "--no-reconcile").stdout)
    assert state["steps"] == [
        {"step": "opt", "completed": 3, "total": 4},
        {"step": "freq", "completed": 2, "total": 3},
        {"step": "sp", "completed": 2, "total": 2},
    ]
    assert "steps: opt 3/4  freq 2/3  sp 2/2" in cli(camp, "status", "--no-reconcile", "--summary").output


def test_a_campaign_without_workflows_says_so(tmp_path: Path) -> None:
    camp = init_campaign(tmp_path / "camp", "local-slurm").root
    assert "no workflow jobs" in _by_molecule(camp).output
    header = _by_molecule(camp, "--csv").output.splitlines()  # the columns, without rows
    assert header == ["molecule,ranked_by,weights_temperature_K,conformer,status,note,best,free_energy_Eh,"
                      "relative_kcal_mol,boltzmann_weight,high_level_step,high_level_energy_Eh,thermo_step,"
                      "zpe_Eh,enthalpy_Eh,gibbs_Eh,temperature_K,n_imaginary,final_xyz"]  # fmt: skip
    empty = json.loads(_by_molecule(camp, "--json").stdout)
    assert empty["molecules"] == [] and empty["steps"] == []
    assert json.loads(cli(camp, "status", "--json", "--no-reconcile").stdout)["steps"] == []
    assert "steps:" not in cli(camp, "status", "--no-reconcile").output
