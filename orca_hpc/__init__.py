"""orca-hpc: run ORCA calculations on SLURM clusters, unattended.

From Python (notebooks, scripts): ``orca_hpc.open_campaign(path)`` and ``orca_hpc.create_campaign(path,
site)`` give a campaign to submit to, reconcile and read results from (``orca_hpc.api``). They are
imported on first use, so ``import orca_hpc`` (and every CLI command) stays fast.
"""

from __future__ import annotations

# typing.TYPE_CHECKING without importing typing: the runner imports this once per array task.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


__version__ = "0.1.0"
__all__ = ["CampaignHandle", "__version__", "create_campaign", "open_campaign"]


def __getattr__(name: str) -> Any:
    if name in ("open_campaign", "create_campaign", "CampaignHandle"):
        from orca_hpc import api

        return getattr(api, name)
    raise AttributeError(f"module 'orca_hpc' has no attribute {name!r}")
