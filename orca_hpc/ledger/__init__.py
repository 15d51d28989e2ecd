"""The ledger: the single source of truth for every job and attempt of a campaign.

One JSON file of active jobs under a file lock, written atomically with the previous generation
kept, plus an append-only archive of finished jobs (``archive``). ``states`` is the job state machine;
``records`` the typed job and attempt records. Compute nodes never write the ledger.
"""

from orca_hpc.ledger.store import Ledger, Transaction

__all__ = ["Ledger", "Transaction"]
