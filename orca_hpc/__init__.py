"""orca-hpc: run ORCA calculations on SLURM clusters, unattended."""

__version__ = "0.1.0"
