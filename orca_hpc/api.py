"""orca-hpc as a library: drive a campaign from a notebook or a script, as the CLI does.

    import orca_hpc

    camp = orca_hpc.open_campaign("~/conformers")        # a str or a Path; a sub-folder works too
    camp.submit(["inputs"], method="r2SCAN-3c Opt")       # files, folders, quoted globs
    camp.reconcile()                                      # what cron does
    import pandas as pd
    table = pd.DataFrame(camp.results())                  # one plain dict per job

Everything returns plain dicts and lists with the public names of ``docs/json.md`` (pandas reads them
as they are). Errors are the CLI's: ``orca_hpc.errors.UserError`` for bad input (one line, nothing
changed) and ``TemporaryFailure`` when the ledger is busy or the scheduler cannot be reached.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from orca_hpc.config.campaign import Campaign, find_campaign_root, init_campaign, load_campaign
from orca_hpc.controller.select import Selector, select_jobs
from orca_hpc.errors import TemporaryFailure, UserError, one_line

PathLike = str | os.PathLike[str]


def _selector(refs: Iterable[str], state: str | Iterable[str] | None, name: str | None) -> Selector:
    states = (state,) if isinstance(state, str) else tuple(state or ())
    selector = Selector(tuple(refs), tuple(s.upper() for s in states), name, False)
    return Selector(everything=True) if selector.empty else selector


def _skipped(skipped: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Jobs a filter chose but an action left alone, by the public names (not bare tuples)."""
    return [{"id": job_id, "state": state} for job_id, state in skipped]


class CampaignHandle:
    """One campaign folder. Every method opens the ledger afresh: other processes (cron, a colleague's
    terminal) may change it between calls, and the file lock keeps them apart."""

    def __init__(self, campaign: Campaign) -> None:
        self._campaign = campaign

    @property
    def root(self) -> Path:
        return self._campaign.root

    @property
    def name(self) -> str:
        return self._campaign.name

    @property
    def site(self) -> str:
        return self._campaign.site.name

    def __repr__(self) -> str:
        return f"<orca-hpc campaign {self.name!r} at {self.root} (site {self.site})>"

    def _fresh(self) -> Campaign:
        # The config may have been edited (a fixed ORCA path): read it again, like every CLI command.
        self._campaign = load_campaign(self._campaign.root)
        return self._campaign

    # ---------------------------------------------------------------- acting

    def check(self) -> dict[str, list[str]]:
        """`orca-hpc check`: ``{"problems": [...], "notes": [...], "passed": [...]}``."""
        from orca_hpc.controller.check import check_campaign

        report = check_campaign(self._fresh())
        return {"problems": report.problems, "notes": report.notes, "passed": report.passed}

    def submit(
        self,
        inputs: Iterable[PathLike],
        *,
        method: str | None = None,
        charge: int = 0,
        mult: int = 1,
        force: bool = False,
        fit: bool | None = None,
        check: bool = True,
    ) -> dict[str, Any]:
        """Validate, record and submit inputs (files, folders, quoted globs), exactly once; the
        ``submit --json`` document. The first submit to a site runs ``check()`` (``check=False``
        skips it) and raises ``UserError`` naming every problem. ``fit``: as ``submit --fit``/``--no-fit``
        (None: the site's ``fit_to_node``)."""
        from orca_hpc.controller.check import first_submit_problems, remember_check
        from orca_hpc.controller.public import submit_document
        from orca_hpc.controller.submit import submit

        campaign = self._fresh()
        paths = [Path(os.path.expanduser(os.fspath(p))).absolute() for p in inputs]
        checked = False
        if check:  # the site's problems and the inputs' own, as the CLI lists them
            problems, checked = first_submit_problems(
                campaign,
                lambda: submit(
                    campaign, paths, method=method, charge=charge, mult=mult, fit=fit, dry_run=True
                ),
            )
            if problems:
                raise UserError(one_line(problems))
        # What is accepted but probably not meant (--method given for .inp inputs) as the CLI says it.
        heed = lambda message: warnings.warn(message, stacklevel=3)  # noqa: E731
        done = submit(
            campaign, paths, method=method, charge=charge, mult=mult, force=force, fit=fit, warn=heed
        )
        if checked:
            remember_check(campaign)
        return submit_document(done)

    def reconcile(self, *, resume: bool = False) -> dict[str, Any]:
        """One reconcile, then owed mail (one quick try); the ``reconcile --json`` document."""
        from orca_hpc.controller.public import reconcile_document
        from orca_hpc.controller.reconcile import reconcile
        from orca_hpc.notify.outbox import deliver_campaign_outbox

        campaign = self._fresh()
        report = reconcile(campaign, resume=resume)
        try:
            deliver_campaign_outbox(campaign, quick=True)
        except UserError as err:  # a bad [mail] table must not hide what reconcile did
            warnings.warn(f"mail not sent: {err}", stacklevel=2)
        return reconcile_document(report)

    def retry(
        self,
        *refs: str,
        state: str | Iterable[str] | None = None,
        name: str | None = None,
        input: PathLike | None = None,
    ) -> dict[str, Any]:
        """Retry jobs (ids or names; or ``state``/``name`` filters); an edited input is noticed.
        ``{"retried": [id], "skipped": [{"id", "state"}], "submitted": [{"id", "name", "slurm_job_id"}],
        "edited": [id], "held": N, "xyz_changed": [id]}`` (``xyz_changed``: made from an .xyz edited since,
        rerun as recorded: give those a corrected input with ``input=``)."""
        from orca_hpc.controller.actions import retry_selected

        replacement = Path(os.fspath(input)).absolute() if input is not None else None
        selector = _selector(refs, state, name)
        if selector.everything:
            raise UserError("name the jobs to retry: ids or names, state= or name=")
        report = retry_selected(self._fresh(), selector, replacement=replacement)
        submitted = [{"id": i, "name": n, "slurm_job_id": sid} for i, n, sid in report.submitted]
        return {"retried": report.done, "skipped": _skipped(report.skipped), "submitted": submitted,
                "edited": report.edited, "held": report.held, "xyz_changed": report.xyz_changed}  # fmt: skip

    def cancel(
        self, *refs: str, state: str | Iterable[str] | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """Cancel jobs (ids or names; or ``state``/``name`` filters); one scheduler call for all.
        ``{"cancelled": [id], "skipped": [{"id", "state"}]}``."""
        from orca_hpc.controller.actions import cancel_selected

        selector = _selector(refs, state, name)
        if selector.everything:
            raise UserError("name the jobs to cancel: ids or names, state= or name=")
        report = cancel_selected(self._fresh(), selector)
        return {"cancelled": report.done, "skipped": _skipped(report.skipped)}

    # ---------------------------------------------------------------- looking

    def _reconciled(self, reconcile: bool) -> Campaign:
        campaign = self._fresh()
        if reconcile:
            from orca_hpc.controller.reconcile import reconcile as run

            try:
                run(campaign)
            except TemporaryFailure as err:  # show what the ledger knows, as the CLI does
                warnings.warn(f"not reconciled: {err}", stacklevel=3)
        return campaign

    def _chosen(
        self, refs: tuple[str, ...], state: str | Iterable[str] | None, name: str | None, reconcile: bool
    ) -> tuple[Path, list[Any]]:
        campaign = self._reconciled(reconcile)
        view = campaign.ledger().snapshot()
        return campaign.root, select_jobs(view, _selector(refs, state, name)).jobs

    def jobs(
        self,
        *refs: str,
        state: str | Iterable[str] | None = None,
        name: str | None = None,
        reconcile: bool = True,
    ) -> list[dict[str, Any]]:
        """Every chosen job with all its attempts and corrections (``show --json``'s records)."""
        from orca_hpc.controller.public import job_record

        root, chosen = self._chosen(refs, state, name, reconcile)
        return [job_record(j, root) for j in chosen]

    def results(
        self,
        *refs: str,
        state: str | Iterable[str] | None = None,
        name: str | None = None,
        reconcile: bool = True,
    ) -> list[dict[str, Any]]:
        """One row per job with its energy and chemistry (``results --json``'s rows, units in names)."""
        from orca_hpc.controller.public import result_row

        root, chosen = self._chosen(refs, state, name, reconcile)
        return [result_row(root, j, chemistry=True) for j in chosen]

    def counts(self, *, reconcile: bool = True) -> dict[str, int]:
        """How many jobs are in each state."""
        return self._reconciled(reconcile).ledger().snapshot().state_counts()


def open_campaign(path: PathLike = ".") -> CampaignHandle:
    """The campaign ``path`` is in (the folder itself or the nearest parent with ``orca-hpc.toml``)."""
    start = Path(os.path.expanduser(os.fspath(path)))
    root = find_campaign_root(start)
    if root is None:
        raise UserError(f"{start.absolute()}: no orca-hpc.toml here or in any parent folder")
    return CampaignHandle(load_campaign(root))


def create_campaign(path: PathLike, site: str, *, name: str | None = None) -> CampaignHandle:
    """``orca-hpc init PATH --site SITE``: a new campaign folder (its site is checked by ``submit``)."""
    return CampaignHandle(init_campaign(Path(os.path.expanduser(os.fspath(path))), site, name))
