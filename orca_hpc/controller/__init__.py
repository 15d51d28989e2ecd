"""The controller on the login node: submission, reconcile, recovery and the person's actions.

``submit`` validates inputs, records them in the ledger and hands arrays to the scheduler exactly
once; ``reconcile`` compares the ledger with the scheduler and the result files, decides how each
attempt ended (``ending``) and makes the next attempt with a recorded correction (``recovery``);
``actions`` holds retry and cancel. The controller is the only package that uses the ledger, the
scheduler and ORCA knowledge together; the CLI only parses and prints.
"""
