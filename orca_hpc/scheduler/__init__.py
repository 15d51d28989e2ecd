"""The scheduler boundary: the only package that talks to SLURM (or runs jobs locally).

``base.Scheduler`` is the interface the controller uses: submit an array script, query many jobs at
once, find jobs by submission token, cancel. ``slurm`` implements it with sbatch/squeue/sacct/scancel,
``local`` on this machine, ``fake`` in memory for tests. ``script`` renders the job script from the
Jinja2 templates. ``scheduler_for(site)`` makes the choice, once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from orca_hpc.config.secrets import secret_env_names
from orca_hpc.scheduler.base import ArrayRequest, JobRecord, Scheduler

if TYPE_CHECKING:
    from orca_hpc.config.campaign import Campaign
    from orca_hpc.config.site import SiteConfig

__all__ = ["ArrayRequest", "JobRecord", "Scheduler", "python_for_jobs", "scheduler_for"]


def python_for_jobs(site: SiteConfig | None = None) -> str:
    """The interpreter the jobs use: the site's ``[environment] python`` when the compute nodes see
    another one, else this one (which has orca_hpc installed, on a file system they share)."""
    if site is not None and site.job_python:
        return site.job_python
    return str(Path(sys.executable).absolute())


def scheduler_for(campaign: Campaign) -> Scheduler:
    """The campaign site's scheduler: the one place that chooses between SLURM and this machine."""
    site = campaign.site
    secrets = secret_env_names(campaign.config.get("mail"), site.mail)
    if site.scheduler == "local":
        from orca_hpc.scheduler.local import LocalScheduler

        return LocalScheduler(site, campaign.submitit_dir, python_for_jobs(site), secrets)
    from orca_hpc.scheduler.script import ScriptLayout
    from orca_hpc.scheduler.slurm import SlurmScheduler

    layout = ScriptLayout(
        campaign_dir=campaign.root,
        arrays_dir=campaign.arrays_dir,
        log_dir=campaign.state_dir / "slurm-logs",
        python=python_for_jobs(site),
        unset_env=secrets,
    )
    return SlurmScheduler(site, layout)
