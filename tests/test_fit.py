"""The node is known: requests beyond it are refused with the numbers, or fitted to it (`--fit`).

Fast tests of the arithmetic, the messages, scontrol parsing and the check's comparison; then, on the
real local cluster, a real public ORCA input and a `! PAL40` input refused, fitted, and run to the end.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from e2e import cli, ledger_bytes, new_campaign, reconcile_until_done, show, write_inputs
from hypothesis import given
from hypothesis import strategies as st

from orca_hpc.config.campaign import Campaign, load_campaign
from orca_hpc.config.site import SiteConfig, job_memory_mb, load_site
from orca_hpc.controller.check import check_campaign
from orca_hpc.controller.fit import fit_request, with_node_facts
from orca_hpc.controller.submit import submit
from orca_hpc.errors import InputFileError, UserError
from orca_hpc.orca.inputs import parse_input
from orca_hpc.scheduler import scheduler_for
from orca_hpc.scheduler.fake import FakeScheduler
from orca_hpc.scheduler.nodes import Node, Partition, parse_pairs, partition_of

WATER = "O 0 0 0.1\nH 0 0.75 -0.47\nH 0 -0.75 -0.47\n"
BIG = f"! B3LYP def2-SVP PAL40\n%maxcore 8000\n* xyz 0 1\n{WATER}*\n"
# A real public input (cclib's ORCA 6 CCSD water): a multi-line %pal block and %MaxCore.
REAL = "cclib__basicORCA6.0__water_ccsd.inp"


def _site(**values: object) -> SiteConfig:
    base = dataclasses.replace(load_site("local-slurm"), max_walltime_min=240)
    return dataclasses.replace(base, **values)


# ---------------------------------------------------------------- arithmetic and messages


def test_a_request_that_fits_is_not_touched() -> None:
    fitted = fit_request(_site(), 8, 1600, 30, fit=True)
    assert (fitted.nprocs, fitted.maxcore_mb, fitted.time_min, fitted.corrections) == (8, 1600, 30, [])


def test_refusal_names_every_excess_with_its_numbers() -> None:
    with pytest.raises(UserError) as err:
        fit_request(_site(), 40, 8000, 300, fit=False)
    message = str(err.value)
    assert "\n" not in message
    assert "40 processes" in message and "8 cores" in message
    assert f"needs {job_memory_mb(8000, 40)} MB" in message and "allows 16000 MB" in message
    assert "05:00:00" in message and "04:00:00" in message
    assert "--fit" in message


def test_fit_caps_processes_then_scales_maxcore_and_records_why() -> None:
    fitted = fit_request(_site(), 40, 8000, 300, fit=True)
    assert (fitted.nprocs, fitted.time_min) == (8, 240)
    assert fitted.maxcore_mb == 1600  # 16000 MB x 0.8 / 8 processes
    changes = [c["change"] for c in fitted.corrections]
    assert changes == ["nprocs 40 -> 8", "%maxcore 8000 -> 1600 MB", "--time 300 -> 240 min"]
    assert all(c["handler"] == "fit" and c["why"] for c in fitted.corrections)
    assert "8 cores" in fitted.corrections[0]["why"]


def test_fewer_processes_may_fit_the_memory_without_lowering_maxcore() -> None:
    fitted = fit_request(_site(), 40, 1000, 30, fit=True)
    assert (fitted.nprocs, fitted.maxcore_mb) == (8, 1000)
    assert [c["change"] for c in fitted.corrections] == ["nprocs 40 -> 8"]


@given(
    cores=st.integers(1, 128),
    max_mem=st.integers(1, 2_000_000),
    nprocs=st.integers(1, 256),
    maxcore=st.integers(1, 100_000),
)
def test_a_fitted_request_is_the_largest_that_the_node_takes(
    cores: int, max_mem: int, nprocs: int, maxcore: int
) -> None:
    site = _site(cores_per_node=cores, nprocs=1, max_mem_mb=max_mem)
    try:
        fitted = fit_request(site, nprocs, maxcore, 30, fit=True)
    except UserError:  # only when not even 1 MB per process fits
        assert job_memory_mb(1, min(nprocs, cores)) > max_mem
        return
    assert fitted.nprocs == min(nprocs, cores)
    assert fitted.maxcore_mb is not None and 1 <= fitted.maxcore_mb <= maxcore
    assert job_memory_mb(fitted.maxcore_mb, fitted.nprocs) <= max_mem
    if fitted.maxcore_mb < maxcore:  # lowered: one MB more would break the memory rule
        assert job_memory_mb(fitted.maxcore_mb + 1, fitted.nprocs) > max_mem
    assert fit_request(site, fitted.nprocs, fitted.maxcore_mb, 30, fit=False).corrections == []


def test_a_site_cannot_default_to_more_processes_than_a_node_has(tmp_path: Path) -> None:
    text = Path(load_site("local-slurm").source or "").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("nprocs = 1\n", "nprocs = 12\n", 1))
    with pytest.raises(InputFileError, match=r"nprocs: 12 processes are more than cores_per_node = 8"):
        load_site(bad)
    bad.write_text(text.replace("submit_throttle_s = 0\n", 'submit_throttle_s = 0\nfit_to_node = "yes"\n'))
    with pytest.raises(InputFileError, match="fit_to_node: expected a boolean"):
        load_site(bad)


# ---------------------------------------------------------------- scontrol and the check

# Captured from the local test cluster (slurm 22.05), with a drained second node added.
PARTITIONS = (
    "PartitionName=debug AllowGroups=ALL Default=YES DefaultTime=NONE MaxNodes=UNLIMITED MaxTime=02:00:00 "
    "MinNodes=0 MaxCPUsPerNode=UNLIMITED Nodes=vm,vm2 State=UP TotalCPUs=8 MaxMemPerNode=UNLIMITED\n"
    "PartitionName=long Default=NO MaxTime=7-00:00:00 Nodes=big MaxCPUsPerNode=32 MaxMemPerNode=64G\n"
)
NODES = (
    "NodeName=vm Arch=x86_64 CoresPerSocket=8  CPUAlloc=0 CPUEfctv=8 CPUTot=8 CPULoad=0.63 "
    "OS=Linux 6.18.44-fc-v782 #1 SMP PREEMPT_DYNAMIC @0  RealMemory=16000 AllocMem=0 FreeMem=22650 "
    "State=IDLE ThreadsPerCore=1 Partitions=debug  BootTime=2026-11-29T17:54:59\n"
    "NodeName=vm2 CPUTot=16 RealMemory=32000 MemSpecLimit=2000 State=IDLE+DRAIN Partitions=debug\n"
    "NodeName=big CPUEfctv=62 CPUTot=64 RealMemory=512000 State=MIXED Partitions=long,other\n"
)


def test_scontrol_lines_are_read_with_blanks_in_values() -> None:
    row = parse_pairs(NODES.splitlines()[0])
    assert row["OS"] == "Linux 6.18.44-fc-v782 #1 SMP PREEMPT_DYNAMIC @0"
    assert (row["CPUTot"], row["RealMemory"], row["State"]) == ("8", "16000", "IDLE")


def test_the_smallest_node_of_the_partition_counts() -> None:
    debug = partition_of(PARTITIONS, NODES, None)  # the default partition
    assert debug is not None and debug.name == "debug" and debug.max_time_min == 120
    assert [n.name for n in debug.nodes] == ["vm", "vm2"] and not debug.nodes[1].usable
    assert debug.smallest() is not None and debug.smallest()[:2] == (8, 16000)  # type: ignore[index]
    long = partition_of(PARTITIONS, NODES, "long")
    assert long is not None and long.max_time_min == 7 * 24 * 60
    assert long.smallest()[:2] == (32, 64 * 1024)  # type: ignore[index]  # partition caps, CPUEfctv
    assert partition_of(PARTITIONS, NODES, "nosuch") is None


class _Cluster(FakeScheduler):
    def __init__(self, partition: Partition) -> None:
        super().__init__()
        self._partition = partition

    def partition(self) -> Partition:
        return self._partition


def test_the_check_reports_declarations_beyond_the_node(tmp_path: Path) -> None:
    camp = new_campaign(
        tmp_path,
        overrides='[overrides.slurm]\ncores_per_node = 16\nmax_mem_mb = 32000\nwalltime = "03:00:00"\n',
    )
    cluster = _Cluster(Partition("debug", 120, (Node("vm", 8, 16000, "IDLE"),)))
    report = check_campaign(load_campaign(camp), cluster)
    problems = "\n".join(report.problems)
    assert len(report.problems) == 4, problems
    assert "cores_per_node = 16 but the nodes of partition debug have 8 (scontrol CPUTot)" in problems
    assert "max_mem_mb = 32000 but the nodes of partition debug have 16000 MB" in problems
    assert "walltime 03:00:00 is longer than partition debug's MaxTime 02:00:00" in problems
    assert "max_walltime is 04:00:00 but partition debug's MaxTime is 02:00:00" in problems
    # The shipped site as it is, on a partition whose MaxTime is its max_walltime: nothing to say.
    cluster = _Cluster(Partition("debug", 240, (Node("vm", 8, 16000, "IDLE"),)))
    sound = check_campaign(load_campaign(new_campaign(tmp_path, "ok")), cluster)
    assert sound.problems == [], sound.problems
    assert "cores_per_node = 8 (the nodes have 8)" in sound.passed


def test_the_campaign_setting_fits_and_no_fit_refuses(tmp_path: Path) -> None:
    camp = new_campaign(tmp_path, overrides="[overrides.slurm]\nfit_to_node = true\n")
    [path] = write_inputs(tmp_path / "in", {"big.inp": BIG})
    script = cli(camp, "render", path).output
    assert "--ntasks=8" in script and "--mem=16000M" in script
    refused = cli(camp, "render", "--no-fit", path, expect=1).output
    assert "big.inp" in refused and "40 processes" in refused


# ---------------------------------------------------------------- the real cluster


@pytest.mark.slurm
def test_submit_refuses_then_fit_runs_on_the_node(tmp_path: Path, shared_orca: Path) -> None:
    # The real input's %pal nprocs 4 / %MaxCore 700 meets a campaign declaring 2 cores and 1000 MB.
    camp = new_campaign(tmp_path, overrides="[overrides.slurm]\ncores_per_node = 2\nmax_mem_mb = 1000\n")
    real = (shared_orca / REAL).read_text()
    paths = write_inputs(tmp_path / "in", {"water_ccsd.inp": real, "big.inp": BIG})
    before = ledger_bytes(camp)
    refused = cli(camp, "submit", *paths, expect=1).output
    assert "2 problems, nothing was submitted" in refused
    assert (
        "water_ccsd.inp: asks for more" in refused and "4 processes (%pal) but a node has 2 cores" in refused
    )
    assert f"%maxcore 700 MB x 4 processes needs {job_memory_mb(700, 4)} MB" in refused
    assert "big.inp: asks for more" in refused and "40 processes" in refused
    assert ledger_bytes(camp) == before

    submitted = json.loads(cli(camp, "submit", "--fit", "--json", *paths).stdout)
    assert len(submitted["submitted"]) == 2
    done = reconcile_until_done(camp)
    assert [j["state"] for j in done["jobs"]] == ["COMPLETED", "COMPLETED"]
    for job in done["jobs"]:
        record = show(camp, job["id"])
        [attempt] = record["attempts"]
        changes = {c["change"]: c for c in attempt["corrections"]}
        assert all(c["handler"] == "fit" for c in attempt["corrections"])
        before_procs = 4 if job["name"] == "water_ccsd" else 40
        before_core = 700 if job["name"] == "water_ccsd" else 8000
        assert f"nprocs {before_procs} -> 2" in changes
        assert f"%maxcore {before_core} -> 400 MB" in changes  # 1000 MB x 0.8 / 2
        folder = Path(attempt["folder"])
        ran = parse_input(folder / f"{job['name']}.inp")
        assert (ran.nprocs, ran.maxcore) == (2, 400)
        spec = json.loads((folder / "spec.json").read_text())
        assert (spec["nprocs"], spec["maxcore_mb"], spec["mem_mb"]) == (2, 400, job_memory_mb(400, 2))
    text = (Path(show(camp, done["jobs"][0]["id"])["attempts"][0]["folder"]) / "water_ccsd.inp").read_text()
    assert "ccsd" in text.lower() and "nprocs 2" in text  # the real input, edited in place
    human = cli(camp, "show", "--no-reconcile", done["jobs"][1]["id"]).output
    assert "correction [fit] nprocs 40 -> 2: a node has 2 cores" in human


class _NodeOf8(FakeScheduler):
    """A scheduler that knows its partition: one node of 8 CPUs and 16000 MB, MaxTime 2 h."""

    def partition(self) -> Partition:
        return Partition("debug", 120, (Node("n1", 8, 16000, "IDLE"),))


def _undeclared(tmp_path: Path) -> Campaign:
    camp = load_campaign(new_campaign(tmp_path))
    site = dataclasses.replace(camp.site, cores_per_node=None, max_mem_mb=None, max_walltime_min=None)
    return dataclasses.replace(camp, site=site)


def test_an_undeclared_node_is_asked_of_the_scheduler(tmp_path: Path) -> None:
    camp = _undeclared(tmp_path)
    [big] = write_inputs(tmp_path / "in", {"big.inp": BIG})
    before = ledger_bytes(camp.root)
    refused = r"big.inp: asks for more.*40 processes \(%pal\) but a node has 8 cores"
    with pytest.raises(UserError, match=refused):
        submit(camp, [Path(big)], scheduler=_NodeOf8())
    assert ledger_bytes(camp.root) == before
    report = submit(camp, [Path(big)], fit=True, scheduler=_NodeOf8())
    [job] = camp.ledger().snapshot().all_jobs()
    assert len(report.submitted) == 1 and job.latest.corrections[0]["change"] == "nprocs 40 -> 8"
    # A scheduler that knows nothing of its nodes (local, fake) leaves the site as it is.
    assert with_node_facts(camp, FakeScheduler()).site.cores_per_node is None


@pytest.mark.slurm
def test_an_undeclared_site_is_refused_what_the_real_node_cannot_run(tmp_path: Path) -> None:
    camp = _undeclared(tmp_path)
    [big] = write_inputs(tmp_path / "in", {"big.inp": BIG})
    node = scheduler_for(camp).partition()
    assert node is not None and node.smallest() is not None
    cpus = node.smallest()[0]  # type: ignore[index]
    with pytest.raises(UserError, match=rf"40 processes \(%pal\) but a node has {cpus} cores"):
        submit(camp, [Path(big)])
    assert camp.ledger().snapshot().all_jobs() == []


def test_an_undeclared_max_walltime_is_the_partitions_even_where_the_node_is_declared(tmp_path: Path) -> None:
    """A site that declares its node but not max_walltime: the partition's MaxTime is the limit
    (submit and the retries with more time both ask `with_node_facts`); before, the partition was
    asked only when the node was undeclared, so no limit was known."""

    class Limited(FakeScheduler):
        def partition(self) -> Partition:
            return Partition(name="debug", max_time_min=60, nodes=())

    camp = load_campaign(new_campaign(tmp_path))
    camp = dataclasses.replace(camp, site=dataclasses.replace(camp.site, max_walltime_min=None))
    assert camp.site.cores_per_node is not None and camp.site.max_mem_mb is not None
    known = with_node_facts(camp, Limited()).site
    assert (known.max_walltime_min, known.cores_per_node) == (60, camp.site.cores_per_node)
    assert with_node_facts(camp, FakeScheduler()).site.max_walltime_min is None  # nothing known there
