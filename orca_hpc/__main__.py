"""`python -m orca_hpc` is `orca-hpc`."""

from .cli import main

main()
