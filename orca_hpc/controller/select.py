"""Which jobs a person means: one selector for every command (`status`, `show`, `results`, `retry`,
`cancel`) and the Python functions.

A selection is job references (ids like ``j000042`` or job names) and filters (``--state``,
``--name GLOB``, ``--all``). References and filters combine: with references, the filters narrow
them; without, the filters choose from every job. An unknown reference is an error with a
did-you-mean; a name that several jobs share either selects them all (commands that only show) or
is an error that lists them (commands that change jobs, where a guess would be costly).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from orca_hpc.errors import UserError
from orca_hpc.ledger.records import Job, job_id_number
from orca_hpc.ledger.states import FINISHED, JobState
from orca_hpc.ledger.store import LedgerView

_JOB_ID = re.compile(r"^j\d+$")
_SHOWN = 8  # jobs named in an error message before "and N more"


@dataclass(frozen=True)
class Selector:
    """What a person asked for; empty means nothing (``everything`` says so explicitly)."""

    refs: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    name_glob: str | None = None
    everything: bool = False
    molecule: str | None = None  # workflow jobs of this molecule (every step and conformer)

    @property
    def empty(self) -> bool:
        return not (self.refs or self.states or self.name_glob or self.everything or self.molecule)

    def describe(self) -> str:
        """How the selection reads in a message, e.g. ``--state PENDING --name 'conf*'``."""
        parts = list(self.refs)
        parts += [f"--state {s.upper()}" for s in self.states]
        if self.name_glob is not None:
            parts.append(f"--name {self.name_glob!r}")
        if self.molecule is not None:
            parts.append(f"--molecule {self.molecule!r}")
        if self.everything:
            parts.append("--all")
        return " ".join(parts) or "(nothing)"


@dataclass
class Selection:
    """The jobs selected, by id, each once; ``by_ref`` holds the ids a person named one by one
    (an action refuses those in the wrong state; jobs chosen by a filter are skipped instead)."""

    jobs: list[Job] = field(default_factory=list)
    by_ref: set[str] = field(default_factory=set)

    @property
    def ids(self) -> list[str]:
        return [job.id for job in self.jobs]


def _states(values: Iterable[str]) -> set[JobState]:
    out = set()
    for value in values:
        try:
            out.add(JobState(value.upper()))
        except ValueError:
            known = ", ".join(s.value for s in JobState)
            raise UserError(f"unknown state {value!r} (known: {known})") from None
    return out


def _unknown(ref: str, candidates: Sequence[str]) -> UserError:
    import difflib  # only for a mistyped job: every status loads this module

    close = difflib.get_close_matches(ref, candidates, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return UserError(f"no job {ref!r} in this campaign (neither a job id nor a job name){hint}")


def _listing(jobs: Sequence[Job]) -> str:
    shown = ", ".join(f"{j.id} ({j.state.value})" for j in jobs[:_SHOWN])
    more = f" and {len(jobs) - _SHOWN} more" if len(jobs) > _SHOWN else ""
    return shown + more


def select_jobs(view: LedgerView, selector: Selector, *, many_per_name: bool = True) -> Selection:
    """The jobs of ``view`` that ``selector`` chooses, by id.

    ``many_per_name``: a name shared by several jobs selects them all; when False, such a name is a
    ``UserError`` that lists the jobs (use their ids, or ``--name``). An empty selector selects nothing.
    """
    wanted = _states(selector.states)
    selection = Selection()
    picked: dict[str, Job] = {}
    every: list[Job] | None = None

    def all_jobs() -> list[Job]:
        nonlocal every
        if every is None:
            every = view.all_jobs()
        return every

    for ref in selector.refs:
        matches: list[Job]
        if _JOB_ID.match(ref):
            try:
                matches = [view.get(ref)]
            except UserError:
                matches = view.by_name(ref)  # a job may be named like an id
        else:
            matches = view.by_name(ref)
        if not matches:
            names = sorted({j.name for j in all_jobs()} | {j.id for j in all_jobs()})
            raise _unknown(ref, names)
        if len(matches) > 1 and not many_per_name:
            raise UserError(
                f"{len(matches)} jobs are named {ref!r}: {_listing(matches)}; "
                "name one by its id, or all of them with --name"
            )
        for job in matches:
            picked[job.id] = job
            selection.by_ref.add(job.id)
    filtered = selector.states or selector.name_glob is not None or selector.molecule is not None
    if not selector.refs and (selector.everything or filtered):
        # Only active states: the hot ledger has them all, the archive need not be read.
        active_only = wanted and not (wanted & FINISHED)
        for job in view.jobs_by_state(*wanted) if active_only else all_jobs():
            picked[job.id] = job
    jobs = sorted(picked.values(), key=lambda j: job_id_number(j.id))
    selection.jobs = [
        j
        for j in jobs
        if (not wanted or j.state in wanted)
        and (selector.name_glob is None or fnmatch.fnmatchcase(j.name, selector.name_glob))
        and (selector.molecule is None or (j.chain is not None and j.chain["molecule"] == selector.molecule))
    ]
    if selector.molecule is not None and not selection.jobs and not selector.refs:
        molecules = sorted({j.chain["molecule"] for j in all_jobs() if j.chain is not None})
        if selector.molecule not in molecules:
            import difflib

            close = difflib.get_close_matches(selector.molecule, molecules, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise UserError(f"no molecule {selector.molecule!r} in this campaign's workflow jobs{hint}")
    return selection
