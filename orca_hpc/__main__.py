"""`python -m orca_hpc` is `orca-hpc`."""

from orca_hpc.cli import main

main()
