"""The compute-node side: one array task runs one attempt.

``python -m orca_hpc.runner`` reads the attempt's spec (``orca_hpc.attempt``), copies its input to
private node-local scratch, runs ORCA by absolute path, streams the output back, saves restart files
on SLURM's walltime warning, classifies the output and writes the attempt's result file. It never
touches the ledger and never calls the scheduler, and it imports as little as it can: it starts once
per task.
"""
