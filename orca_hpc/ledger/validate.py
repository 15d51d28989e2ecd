"""What a sound ledger is: the one set of rules that every load, every save and ``ledger check`` apply.

A ledger or archive that breaks any rule here is refused before anything is written (a hand edit,
a damaged disk, an old file): the commands that would act on it could otherwise crash half-way, reuse
a job id, or write a damaged generation over the good backup. Each function returns the problems it
found as short phrases (``"job j000001: name is int, not a string"``), so a caller can name all of
them on one line.

The rules follow ``orca_hpc.ledger.records`` (the keys) and the writer:

* job ids are ``j`` + at least 6 digits (``format_job_id``); ``meta.next_id`` is an int above every
  id in ``ledger.json`` and in the archive (an id is never handed out twice);
* every key of a job and an attempt is known and has its type; numbers are finite ints/floats, never
  booleans; strings that become paths, SLURM arguments or file names hold no control characters;
* a job's folder is ``jobs/<id>`` and attempt n's is ``jobs/<id>/attempt-<n>``, numbered 1, 2, ...
  (they are written to: a hand-edited ``../..`` must not send a write elsewhere);
* every job past CREATED that is still active has an attempt (finished jobs of the old prototype
  schema may lack one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from orca_hpc.ledger.records import USAGE_KEYS
from orca_hpc.ledger.states import JobState

JOB_ID = re.compile(r"j[0-9]{6,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_STATES = frozenset(s.value for s in JobState)
_FINISHED = frozenset(s.value for s in JobState if s.finished)
MAX_PROBLEMS = 10  # a message names this many; the rest are counted

# key -> (types, may hold control characters?)
_STR = (str,)
_JOB_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": (_STR, False),
    "st": (_STR, False),
    "name": (_STR, True),  # from a file name: shown escaped (``orca_hpc.cli.common.printable``)
    "inp": (_STR, True),  # the user's own file's path: Linux allows any byte but NUL (checked apart)
    "sha": (_STR, False),
    "site": (_STR, False),
    "rc": ((int,), False),
    "nf": ((int,), False),
    "max": ((int,), False),
    "ct": (_STR, False),
    "ut": (_STR, False),
    "dir": (_STR, False),
    "att": ((list,), False),
    "ch": ((dict,), True),
    "x": ((dict,), True),
}
_JOB_REQUIRED = ("st", "name", "inp", "sha", "site", "max", "ct", "ut", "dir")
_ATTEMPT_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "n": ((int,), False),
    "tok": (_STR, False),
    "sid": (_STR, False),
    "sub": (_STR, False),
    "beg": (_STR, False),
    "end": (_STR, False),
    "sst": (_STR, False),
    "exit": ((str, int), False),
    "out": (_STR, False),
    "why": (_STR, False),
    "en": ((float, int), False),
    "msg": (_STR, True),  # a classifier's message quotes ORCA's output
    "fix": ((list,), True),
    "dir": (_STR, False),
    "free": ((bool,), False),
    "use": ((dict,), False),
}
_CHAIN_KEYS = ("mol", "conf", "step", "after")
_COUNTS = frozenset({"rc", "nf", "max", "n"})


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _value_problem(key: str, value: Any, types: tuple[type, ...], control_ok: bool) -> str | None:
    if isinstance(value, bool) and bool not in types:
        return f"{key} is a boolean"
    if not isinstance(value, types):
        wanted = " or ".join("string" if t is str else t.__name__ for t in types)
        return f"{key} is {_type_name(value)}, not {wanted}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{key} is {value}"
    if isinstance(value, int) and not isinstance(value, bool):
        if key in _COUNTS and value < 0:
            return f"{key} is negative"
        if abs(value) > 2**63:
            return f"{key} is out of range"
    if isinstance(value, str) and not control_ok and _CONTROL.search(value):
        return f"{key} holds control characters"
    if key == "inp" and isinstance(value, str) and "\x00" in value:
        return f"{key} holds a NUL character, which no file name has"
    return None


def json_problem(value: Any, where: str, depth: int = 0) -> str | None:
    """A nested JSON value (``x``, ``fix``, meta, outbox) that cannot be written back as JSON, or None."""
    if depth > 20:
        return f"{where} is nested too deeply"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} holds {value}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
        return f"{where} holds a number out of range"
    if isinstance(value, dict):
        for k, v in value.items():
            problem = json_problem(v, f"{where}.{k}", depth + 1)
            if problem:
                return problem
    if isinstance(value, list):
        for i, v in enumerate(value):
            problem = json_problem(v, f"{where}[{i}]", depth + 1)
            if problem:
                return problem
    return None


def job_problems(job_id: str, d: Any, *, archived: bool = False) -> list[str]:
    """What is wrong with one encoded job (a ``ledger.json`` value or, ``archived``, an archive line)."""
    if _plainly_sound(job_id, d, archived):
        return []
    return full_job_problems(job_id, d, archived=archived)


def full_job_problems(job_id: str, d: Any, *, archived: bool = False) -> list[str]:
    """`job_problems` by the full rules alone (the quick path is tested against them)."""
    where = f"job {job_id}"
    if not JOB_ID.fullmatch(job_id):
        return [f"{where}: not a job id (j and 6 or more digits)"]
    if not isinstance(d, dict):
        return [f"{where}: is {_type_name(d)}, not an object"]
    problems: list[str] = []
    for key, value in d.items():
        spec = _JOB_KEYS.get(key)
        if spec is None or (key == "id" and not archived):
            problems.append(f"{where}: unknown key {key!r}")
            continue
        problem = _value_problem(key, value, *spec) or json_problem(value, key)
        if problem:
            problems.append(f"{where}: {problem}")
    problems += [f"{where}: {key} is missing" for key in _JOB_REQUIRED if key not in d]
    if archived and d.get("id") != job_id:
        problems.append(f"{where}: id is {d.get('id')!r}")
    if problems:
        return problems
    if d["st"] not in _STATES:
        problems.append(f"{where}: unknown state {d['st']!r}")
    elif archived and d["st"] not in _FINISHED:
        problems.append(f"{where}: archived but {d['st']}")
    if d["dir"] != f"jobs/{job_id}":
        problems.append(f"{where}: dir is {d['dir']!r}, not 'jobs/{job_id}'")
    if "ch" in d:
        problems += _chain_problems(where, d["ch"])
    attempts = d.get("att", [])
    # CREATED: ``add_job`` records a job before its first attempt (in the same transaction).
    if not attempts and d["st"] not in _FINISHED and d["st"] != JobState.CREATED.value:
        problems.append(f"{where}: {d['st']} but has no attempt")
    for i, att in enumerate(attempts, 1):
        problems += _attempt_problems(f"{where} attempt {i}", att, i, d["dir"])
    return problems


def _chain_problems(where: str, ch: dict[str, Any]) -> list[str]:
    """A workflow job's link to its molecule and predecessor (``ch``; plain jobs have none)."""
    problems = [f"{where}: ch has unknown key {key!r}" for key in ch if key not in _CHAIN_KEYS]
    mol, conf, step, after = ch.get("mol"), ch.get("conf"), ch.get("step"), ch.get("after")
    if not isinstance(mol, str) or not mol or "\x00" in mol:
        problems.append(f"{where}: ch.mol is not a molecule name")
    if isinstance(conf, bool) or not isinstance(conf, int) or not 1 <= conf < 2**31:
        problems.append(f"{where}: ch.conf is not a conformer number from 1")
    if not isinstance(step, str) or not step or _CONTROL.search(step):
        problems.append(f"{where}: ch.step is not a step name")
    if after is not None and not (isinstance(after, str) and JOB_ID.fullmatch(after)):
        problems.append(f"{where}: ch.after is not a job id")
    return problems


# The quick path: every save checks each job it changed (10,000 per large submit, three times), and
# nearly all of them are the writer's own plain jobs. ``_plainly_sound`` says yes only when each rule
# above holds in its simplest form; anything else (an unusual type, a nested value, any doubt) answers
# no, and the full rules run and name the problems. So it never accepts what they refuse.
_MAX_INT = 2**63
_PLAIN_JOB_STR = frozenset(k for k, (t, c) in _JOB_KEYS.items() if t == _STR and not c and k != "id")
_PLAIN_JOB_COUNT = frozenset(k for k, (t, _c) in _JOB_KEYS.items() if t == (int,))
_PLAIN_ATT_STR = frozenset(k for k, (t, c) in _ATTEMPT_KEYS.items() if str in t and not c)
# Written in place by plain_attempt_strings' callers: one plain string each, with no rule but its type
# (not ``dir``: an attempt's folder has its one form, checked with the job's id and the attempt's number).
_IN_PLACE_ATT_STR = _PLAIN_ATT_STR - {"dir"}
_CREATED = JobState.CREATED.value


def plainly_sound(job_id: str, d: Any) -> bool:
    """True only when ``job_problems(job_id, d)`` finds nothing, told quickly (False: ask it).

    Every value it accepts is of an exact JSON type (str keys, no tuples, finite numbers), so writing
    ``d`` as JSON and reading it back gives ``d`` again: a save may check the dict it encodes instead
    of decoding what it wrote."""
    return _plainly_sound(job_id, d, False)


def plain_attempt_strings(values: Mapping[str, Any]) -> bool:
    """True only when each value passes the full rules of its attempt key, told quickly: keys that hold
    one plain string (SLURM's state, ids, times), strings without control characters."""
    for key, value in values.items():
        if key not in _IN_PLACE_ATT_STR or type(value) is not str:
            return False
    return not _CONTROL.search("".join(values.values()))


def _plain_json(value: Any, depth: int) -> bool:
    """A nested value of exact JSON types that ``json_problem`` finds nothing wrong with."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return abs(value) <= _MAX_INT
    if kind is float:
        return math.isfinite(value)
    if depth >= 20:
        return False
    if kind is dict:
        return all(type(k) is str and _plain_json(v, depth + 1) for k, v in value.items())
    if kind is list:
        return all(_plain_json(v, depth + 1) for v in value)
    return False


def _plainly_sound(job_id: str, d: Any, archived: bool) -> bool:
    if type(d) is not dict or not JOB_ID.fullmatch(job_id):
        return False
    if archived and d.get("id") != job_id:
        return False
    plain: list[str] = []  # strings that may hold no control character: searched once, joined
    for key, value in d.items():
        kind = type(value)
        if kind is str:
            if key in _PLAIN_JOB_STR:
                plain.append(value)
            elif key == "inp":
                if "\x00" in value:
                    return False
            elif key != "name" and not (key == "id" and archived):  # "id" equals job_id (checked above)
                return False
        elif kind is int:
            if key not in _PLAIN_JOB_COUNT or not 0 <= value <= _MAX_INT:
                return False
        elif kind is list and key == "att":
            job_dir = d.get("dir")
            for n, att in enumerate(value, 1):
                if not _plain_attempt(att, n, job_dir, plain):
                    return False
        elif kind is dict and key == "x":
            if not _plain_json(value, 0):
                return False
        elif kind is dict and key == "ch":  # a workflow step's link (every job of a workflow has one)
            if not _plain_chain(value):
                return False
        else:
            return False
    for key in _JOB_REQUIRED:
        if key not in d:
            return False
    state = d["st"]  # a string by now
    if state not in (_FINISHED if archived else _STATES) or d["dir"] != f"jobs/{job_id}":
        return False
    if _CONTROL.search("".join(plain)):
        return False
    return bool(d.get("att")) or state in _FINISHED or state == _CREATED


def _plain_chain(ch: dict[str, Any]) -> bool:
    """``ch`` as `_chain_problems` accepts it, in its simplest form."""
    for key, value in ch.items():
        kind = type(value)
        if key == "mol":
            if kind is not str or not value or "\x00" in value:
                return False
        elif key == "conf":
            if kind is not int or not 1 <= value < 2**31:
                return False
        elif key == "step":
            if kind is not str or not value or _CONTROL.search(value):
                return False
        elif key == "after":
            if value is not None and (kind is not str or not JOB_ID.fullmatch(value)):
                return False
        else:
            return False
    return "mol" in ch and "conf" in ch and "step" in ch


def _plain_attempt(a: Any, n: int, job_dir: Any, plain: list[str]) -> bool:
    if type(a) is not dict or a.get("n") != n or type(a.get("n")) is not int or type(a.get("tok")) is not str:
        return False
    for key, value in a.items():
        kind = type(value)
        if kind is str:
            if key in _PLAIN_ATT_STR:
                plain.append(value)
            elif key != "msg":
                return False
        elif kind is int:
            if key not in ("n", "exit", "en") or not -_MAX_INT <= value <= _MAX_INT:
                return False
        elif kind is float:
            if key != "en" or not math.isfinite(value):
                return False
        elif value is None:
            if key not in _ATTEMPT_KEYS or key in ("n", "tok", "free"):
                return False
        elif kind is bool:
            if key != "free":
                return False
        elif kind is list and key == "fix":
            # depth 2: as deep as the full rules see it, through the job's "att" list
            if not all(type(f) is dict for f in value) or not _plain_json(value, 2):
                return False
        elif kind is dict and key == "use":  # every finished attempt has one: keep them on this path
            for k, v in value.items():
                if k == "node" and type(v) is str:
                    plain.append(v)
                elif k not in USAGE_KEYS or type(v) is not int or not 0 <= v < 2**53:
                    return False
        else:
            return False
    return a.get("dir") in (None, "", f"{job_dir}/attempt-{n}")


def _attempt_problems(where: str, a: Any, n: int, job_dir: str) -> list[str]:
    if not isinstance(a, dict):
        return [f"{where}: is {_type_name(a)}, not an object"]
    problems = []
    for key, value in a.items():
        spec = _ATTEMPT_KEYS.get(key)
        if spec is None:
            problems.append(f"{where}: unknown key {key!r}")
            continue
        if value is None and key not in ("n", "tok", "free"):  # written as absent, read as None
            continue
        problem = _value_problem(key, value, *spec) or json_problem(value, key)
        if problem:
            problems.append(f"{where}: {problem}")
    if "n" not in a or "tok" not in a:
        problems.append(f"{where}: n or tok is missing")
    elif a["n"] != n:
        problems.append(f"{where}: numbered {a['n']}")
    if isinstance(a.get("fix"), list) and not all(isinstance(f, dict) for f in a["fix"]):
        problems.append(f"{where}: fix is not a list of objects")
    if isinstance(a.get("use"), dict):
        problems += [f"{where}: use.{p}" for p in usage_problems(a["use"])]
    if a.get("dir") not in (None, "", f"{job_dir}/attempt-{n}"):
        problems.append(f"{where}: dir is {a['dir']!r}, not '{job_dir}/attempt-{n}'")
    return problems


def usage_problems(use: dict[str, Any]) -> list[str]:
    """What is wrong with an attempt's ``use``: known keys, whole numbers from 0, a plain node name."""
    problems = []
    for key, value in use.items():
        if key == "node":
            if not isinstance(value, str) or _CONTROL.search(value):
                problems.append("node is not a plain string")
        elif key not in USAGE_KEYS:
            problems.append(f"{key} is not a usage key")
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
            problems.append(f"{key} is {str(value)[:20]!r}, not a whole number from 0")
    return problems


def head_problems(doc: Mapping[str, Any]) -> list[str]:
    """What is wrong with a ``ledger.json``'s top level (its jobs are checked one by one)."""
    problems = []
    generation = doc.get("generation", 0)
    if isinstance(generation, bool) or not isinstance(generation, int) or not 0 <= generation < 2**63:
        problems.append(f"generation is {generation!r}")
    meta = doc.get("meta")
    if not isinstance(meta, dict):
        problems.append(f"meta is {_type_name(meta)}, not an object")
    else:
        next_id = meta.get("next_id")
        if isinstance(next_id, bool) or not isinstance(next_id, int) or not 1 <= next_id < 10**12:
            problems.append(f"meta.next_id is {str(next_id)[:20]!r}, not a whole number from 1")
        problem = json_problem(meta, "meta")
        if problem:
            problems.append(problem)
    outbox = doc.get("outbox")
    if not isinstance(outbox, list) or not all(isinstance(item, dict) for item in outbox):
        problems.append("outbox is not a list of objects")
    else:
        problem = json_problem(outbox, "outbox")
        if problem:
            problems.append(problem)
    if not isinstance(doc.get("jobs"), dict):
        problems.append(f"jobs is {_type_name(doc.get('jobs'))}, not an object")
    return problems


def counter_problem(next_id: int, highest_active: int, highest_archived: int) -> str | None:
    """``meta.next_id`` must be above every id handed out, or the next submit reuses one."""
    highest = max(highest_active, highest_archived)
    if next_id <= highest:
        where = "the archive" if highest_archived >= highest_active else "ledger.json"
        return f"meta.next_id {next_id} is not above job j{highest:06d} in {where} (an id would be reused)"
    return None


def summarize(problems: list[str]) -> str:
    """Problems on one line: the first ``MAX_PROBLEMS`` and how many more."""
    shown = "; ".join(problems[:MAX_PROBLEMS])
    more = len(problems) - MAX_PROBLEMS
    return shown + (f"; and {more} more" if more > 0 else "")
