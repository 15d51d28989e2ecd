"""The scheduler boundary: the only package that talks to SLURM (or runs jobs locally).

``base.Scheduler`` is the interface the controller uses: submit an array script, query many jobs at
once, find jobs by submission token, cancel. ``slurm`` implements it with sbatch/squeue/sacct/scancel,
``local`` on this machine, ``fake`` in memory for tests. ``script`` renders the job script from the
Jinja2 templates. ``scheduler_for(site)`` makes the choice, once.
"""
