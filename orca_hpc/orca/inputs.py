"""Parse and validate ORCA input files, and edit them for resources and corrections.

The parser accepts what ORCA accepts: ``!`` lines in any case, ``#`` comments (to the end of the line or
to a second ``#``), ``%block ... end`` with nested sub-blocks (``%scf Shift ... end end``), one-line
blocks (``%maxcore``, ``%moinp``, ``%base``, ``%pointcharges``), coordinates as ``* xyz|int|gzmt q m ...
*``, ``* xyzfile|gzmtfile|pdbfile q m name`` or ``%coords``, and several jobs separated by ``$new_job``.
It rejects what ORCA would reject, as ``InputFileError`` ("file:line: problem").

Which setting wins (ORCA reads the simple input first, then the blocks, later values overriding earlier):
- ``%pal nprocs`` beats ``! PALn`` wherever they stand; among several of one kind the last wins.
- ``%maxcore``: the last one wins.
- ``$new_job``: a later job keeps the previous job's nprocs, maxcore, geometry, charge and multiplicity
  unless it sets its own. ``OrcaInput.nprocs`` is the largest over all jobs (what SLURM must provide).

The edit functions are pure text transforms: they keep everything else (comments, case, layout,
line endings) and return new text, which the caller may re-parse.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from orca_hpc.errors import InputFileError, UserError
from orca_hpc.orca.xyz import (
    ATOMIC_NUMBERS,
    NUMBER_PATTERN,
    element_symbol,
    is_number,
    parse_float,
    spin_problem,
)

# One-line blocks: "%name value", no "end".
_ONE_LINERS = frozenset({"maxcore", "moinp", "base", "pointcharges"})

# Sub-blocks that need their own "end" (or other closer), per enclosing context. ORCA knows which keys
# open a sub-block; a sub-block missing here still parses, because a stray "end" or text right after
# a block is taken as that block's continuation (see _Parser._continue_block).
_SUBBLOCKS: dict[str, dict[str, str]] = {
    "scf": {"shift": "end"},
    "geom": {
        key: "end"
        for key in (
            "constraints",
            "scan",
            "modify_internal",
            "hybrid_hess",
            "ts_mode",
            "fragments",
            "connectfragments",
            "hess_internal",
            "ts_active_atoms",
            "invertconstraints",
        )
    },
    "freq": {"hybrid_hess": "end"},
    "coords": {"coords": "end", "pardef": "end"},
    "basis": {},  # filled by _BASIS_SUB_RE
    "mrci": {"newblock": "end"},
    "rocis": {"newblock": "end"},
    "newblock": {"refs": "end"},
    "casscf": {"rel": "end", "ptsettings": "end"},
    "qmmm": {"qmatoms": "end", "activeatoms": "end", "qm2atoms": "end"},
    "compound": {"new_step": "step_end"},
}
_BASIS_SUB_RE = re.compile(r"^(new|add)\w*(gto|ecp)$")
# Inside these, everything up to the closer is opaque (a compound step holds a whole input).
_OPAQUE = frozenset({"new_step"})

# Point charges and dummy atoms: no electrons of their own.
_NOT_ATOMS = frozenset({"Q", "DA"})
_INLINE_KINDS = {"xyz": "xyz", "int": "int", "internal": "int", "gzmt": "gzmt"}
_FILE_KINDS = frozenset({"xyzfile", "gzmtfile", "pdbfile"})

_MINIMUM_KEYWORDS = frozenset(
    {
        "opt",
        "copt",
        "zopt",
        "gdiis-opt",
        "gdiis-copt",
        "gdiis-zopt",
        "looseopt",
        "normalopt",
        "tightopt",
        "verytightopt",
        "crudeopt",
        "sloppyopt",
        "l-opt",
        "l-normalopt",
        "l-tightopt",
        "l-looseopt",
        "l-crudeopt",
        "opth",
    }
)
_SADDLE_KEYWORDS = frozenset({"optts", "l-optts", "scants", "neb-ts", "zoom-neb-ts", "fast-neb-ts"})
_NEB_CI_KEYWORDS = frozenset({"neb-ci", "zoom-neb-ci", "fast-neb-ci"})
# Every optimisation keyword, minimum or transition state (NEB runs are flagged apart).
_TS_OPT_KEYWORDS = frozenset({"optts", "l-optts", "scants"})
_OPT_KEYWORDS = _MINIMUM_KEYWORDS | _TS_OPT_KEYWORDS
_FREQ_KEYWORDS = frozenset({"freq", "numfreq", "anfreq"})
_PAL_RE = re.compile(r"^pal(\d{1,18})$", re.IGNORECASE)  # PAL9999... (5,000 digits) is not a count
_TOKEN_RE = re.compile(r'"[^"]*"?|=|[^\s"=]+')
# Block options whose quoted value names a file ORCA reads.
_FILE_KEYS = frozenset(
    {
        "inhessname",
        "moinp",
        "orcafffilename",
        "neb_end_xyzfile",
        "neb_ts_xyzfile",
        "guessfile",
        "xyzfile",
        "hessname",
    }
)


@dataclass(frozen=True, slots=True)
class Span:
    """Text position: 0-based line indices, columns in the raw line; end is exclusive."""

    start_line: int
    start_col: int
    end_line: int
    end_col: int


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 2x, and tokens are never changed
class _Tok:
    text: str
    line: int  # 0-based
    col: int
    end: int
    first: bool  # first token on its line


@dataclass(slots=True)
class Option:
    key: str
    value: str
    line: int  # 1-based
    span: Span  # key through value
    value_span: Span | None


@dataclass
class Block:
    name: str  # lowercase, without "%"
    raw: str
    line: int  # 1-based line of the "%"
    span: Span
    options: list[Option] = field(default_factory=list)
    one_liner: bool = False

    def get(self, key: str) -> str | None:
        """The last value given for ``key`` (case-insensitive), None if absent."""
        found = None
        for opt in self.options:
            if opt.key.lower() == key.lower():
                found = opt.value
        return found

    @property
    def values(self) -> dict[str, str]:
        """Simple key -> value pairs (keys lowercase; the last occurrence wins)."""
        return {opt.key.lower(): opt.value for opt in self.options}


@dataclass(frozen=True)
class FileRef:
    kind: str  # xyzfile, gzmtfile, pdbfile, moinp, pointcharges, inhessname, ...
    name: str
    line: int
    job: int


@dataclass(slots=True)
class KeywordLine:
    """A ``!`` line. Its keywords are found again from the line's text when asked: kept as objects,
    the keywords of a large input took ~200 bytes of memory per input byte."""

    line: int  # 1-based
    code: str  # the line with comments blanked (``_strip_comments``: columns as in the raw line)
    bang_col: int = 0  # where the keywords start (the first "!")

    def words(self) -> Iterator[tuple[str, int, int]]:
        """(keyword, start column, end column) of each keyword, the "!"s taken off."""
        for match in _TOKEN_RE.finditer(self.code, self.bang_col):
            text, col = match.group(), match.start()
            while text.startswith("!"):
                text, col = text[1:], col + 1
            if text:
                yield text, col, match.end()

    @property
    def tokens(self) -> list[tuple[str, Span]]:
        index = self.line - 1
        return [(text, Span(index, col, index, end)) for text, col, end in self.words()]


@dataclass
class Job:
    index: int
    line: int  # 1-based first line of the job (the $new_job line for later jobs)
    keyword_lines: list[KeywordLine] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    coord_kind: str | None = None  # xyz, int, gzmt, xyzfile, gzmtfile, pdbfile, coords
    coord_line: int | None = None
    coord_span: Span | None = None
    charge: int | None = None
    multiplicity: int | None = None
    natoms: int = 0  # inline atoms (0 for file coordinates)
    elements: list[str] = field(default_factory=list)
    files: list[FileRef] = field(default_factory=list)
    nprocs: int | None = None  # effective (own setting, else the previous job's)
    maxcore: int | None = None  # effective, MB per process
    base: str | None = None
    inherits_geometry: bool = False
    end_line: int = 0  # 0-based index of the last line of the job

    @property
    def keywords(self) -> list[str]:
        return [text for kl in self.keyword_lines for text, _start, _end in kl.words()]

    @property
    def keywords_lower(self) -> frozenset[str]:
        return frozenset(kw.lower() for kw in self.keywords)

    def block(self, name: str) -> Block | None:
        """The last block of that name (blocks repeat; later values win)."""
        named = self.blocks_named(name)
        return named[-1] if named else None

    def blocks_named(self, name: str) -> list[Block]:
        return [b for b in self.blocks if b.name == name.lower()]

    def option(self, block: str, key: str) -> str | None:
        value = None
        for b in self.blocks_named(block):
            value = b.get(key) if b.get(key) is not None else value
        return value

    @property
    def flags(self) -> frozenset[str]:
        """What the job computes: opt, ts, freq, numfreq, sp, engrad, irc, neb, md, scan, moread."""
        kws = self.keywords_lower
        flags = set()
        runtyp = (self.option("method", "runtyp") or "").lower()
        if kws & _OPT_KEYWORDS or runtyp == "opt":
            flags.add("opt")
        if kws & _TS_OPT_KEYWORDS:
            flags.add("ts")
        if kws & _FREQ_KEYWORDS:
            flags.add("freq")
        if "numfreq" in kws:
            flags.add("numfreq")
        if kws & {"engrad", "numgrad"} or runtyp == "gradient":
            flags.add("engrad")
        if "irc" in kws:
            flags.add("irc")
        if any(kw.startswith("neb") for kw in kws):
            flags.add("neb")
        if "md" in kws or self.block("md"):
            flags.add("md")
        if "scants" in kws or self.option("geom", "scan") is not None or runtyp == "scan":
            flags.add("scan")
        if "moread" in kws:
            flags.add("moread")
        if not flags - {"moread"} or "sp" in kws or "energy" in kws:
            flags.add("sp")
        return frozenset(flags)


@dataclass
class OrcaInput:
    path: Path
    jobs: list[Job]
    crlf: bool = False

    @property
    def first(self) -> Job:
        return self.jobs[0]

    @property
    def nprocs(self) -> int:
        """Processes the run needs: the largest over its jobs (1 when none is given)."""
        return max((job.nprocs or 1) for job in self.jobs)

    @property
    def maxcore(self) -> int | None:
        """MB per process: the largest over its jobs, None when ORCA's default applies."""
        values = [job.maxcore for job in self.jobs if job.maxcore is not None]
        return max(values) if values else None

    @property
    def keywords_lower(self) -> frozenset[str]:
        return self.first.keywords_lower

    @property
    def flags(self) -> frozenset[str]:
        return frozenset().union(*(job.flags for job in self.jobs))

    @property
    def files(self) -> list[FileRef]:
        return [ref for job in self.jobs for ref in job.files]


# --------------------------------------------------------------------------------------------------
# reading


_BOM = b"\xef\xbb\xbf"


def _decode(path: Path, data: bytes) -> str:
    if b"\x00" in data:
        raise InputFileError(path, "binary file, not an ORCA input (contains NUL bytes)")
    # What "utf-8-sig" gives (one leading BOM dropped, the rest UTF-8), without its codec's Python code
    # (~5 us a call, 10,000 inputs per submit). The error names the byte and line in the text after the
    # BOM, where the codec counts from.
    body = data[3:] if data.startswith(_BOM) else data
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        raise InputFileError(path, f"not UTF-8 text (byte 0x{body[exc.start]:02x})", line) from None


def _strip_comments(line: str) -> str:
    """The line with comments blanked out (same length, so columns still match the raw line)."""
    if "#" not in line:
        return line
    out = []
    in_comment = False
    in_quote = False
    for ch in line:
        if ch == "#" and not in_quote:
            in_comment = not in_comment
            out.append(" ")
        elif in_comment:
            out.append(" ")
        else:
            if ch == '"':
                in_quote = not in_quote
            out.append(ch)
    return "".join(out)


def _unquote(token: str) -> str:
    return token[1:-1] if len(token) >= 2 and token[0] == token[-1] == '"' else token.strip('"')


def _int_token(token: str) -> int | None:
    # At most 18 digits: a 5,000-digit "number" is not a process count (and int() refuses 4,300+).
    return int(token) if _INT_TOKEN.fullmatch(token) else None


_INT_TOKEN = re.compile(r"[+-]?\d{1,18}")


_LABEL_END = re.compile(r"[(:>]")
_INT_WORD = re.compile(r"[+-]?\d{1,9}")


@functools.lru_cache(maxsize=64)
def _words_pattern(*words: str) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)


# A "* xyz" atom line that is an element symbol and three plain numbers (``_inline_atoms``).
_PLAIN_XYZ_ATOM = re.compile(rf"[ \t]*([A-Za-z]{{1,2}})(?:[ \t]+(?:{NUMBER_PATTERN})){{3}}[ \t]*")
# Three plain numbers: one match for the common xyz atom line instead of three.
_THREE_NUMBERS = re.compile(rf"(?:{NUMBER_PATTERN})(?: (?:{NUMBER_PATTERN})){{2}}")


def _is_value(word: str) -> bool:
    return is_number(word) or "{" in word  # "{R}": a %paras parameter


def _coordinate_problem(kind: str, words: list[str], n: int, symbol: str) -> str | None:
    """Why ORCA would refuse atom line ``words`` (the ``n``-th atom) of a ``kind`` coordinate section,
    or None. A line cut short (a truncated file's last line) is refused here, not by ORCA on the node."""
    label = words[0]
    if kind == "xyz":
        # Embedding atoms ("Zr>") and point charges ("Q") carry a charge before the coordinates.
        at = 2 if (">" in label or symbol == "Q") else 1
        coords = words[at : at + 3]
        if _THREE_NUMBERS.fullmatch(" ".join(coords)):
            return None
        if len(coords) < 3:
            return f"atom line needs an element and 3 coordinates: {' '.join(words)!r}"
        for c in coords:
            if not _is_value(c):
                return f"bad coordinate {c!r} for atom {label!r}"
        return None
    # Z-matrices: "* int" lines carry 3 atom numbers and 3 values (zeros where unused); "* gzmt"
    # lines (atom, value) pairs: none for atom 1, one for atom 2, two for atom 3, three after.
    if kind == "int":
        atoms, values = words[1:4], words[4:7]
        if len(atoms) + len(values) < 6:
            return f"'* int' atom line needs an element, 3 atom numbers and 3 values: {' '.join(words)!r}"
    elif kind == "gzmt":
        wanted = min(n - 1, 3)
        atoms, values = words[1 : 2 * wanted : 2], words[2 : 2 * wanted + 1 : 2]
        if len(values) < wanted:
            return (
                f"'* gzmt' atom {n} needs an element and {wanted} atom number/value pair(s): "
                f"{' '.join(words)!r}"
            )
    else:
        return None
    for a in atoms:
        if not _INT_WORD.fullmatch(a):
            return f"bad atom number {a!r} for atom {label!r}"
    for v in values:
        if not _is_value(v):
            return f"bad value {v!r} for atom {label!r}"
    return None


def _merge_groups(line_toks: list[_Tok]) -> list[list[_Tok]]:
    """One line's words as groups: "print[ p_mos ]" is one key, "=" is dropped."""
    merged: list[list[_Tok]] = []
    open_bracket = False
    for tok in line_toks:
        if tok.text == "=":
            continue
        if open_bracket:
            merged[-1].append(tok)
        else:
            merged.append([tok])
        open_bracket = (open_bracket or "[" in tok.text) and "]" not in tok.text
    return merged


# A line up to this long is made into tokens at once; a longer one a token at a time.
_WHOLE_LINE = 4096
# Passed tokens are dropped in batches of this many (a list's front is costly to delete one by one).
_KEEP_PASSED_TOKENS = 4096


class _Parser:
    def __init__(self, path: Path, text: str, check_files: bool) -> None:
        self.path = path
        self.text = text
        self.lines = text.split("\n")
        self.check_files = check_files
        # Tokens are made a line at a time as the parser reaches them and dropped once it has passed
        # them: all of an 8 MB input's tokens at once took ~200 bytes of memory per input byte.
        self._toks: list[_Tok] = []  # the tokens from number self._base on
        self._base = 0
        self._next_line = 0  # the first line not tokenised yet
        self._line = 0  # the line being tokenised, its matches not made into tokens yet
        self._matches: Iterator[re.Match[str]] = iter(())
        self._first = True  # the next token is the first of its line
        self._whole = False  # the line being tokenised became tokens at once (it is short)
        self.pos = 0
        self.jobs: list[Job] = [Job(index=0, line=1)]
        self.items = 0  # keyword lines, blocks and coordinate sections seen
        self.last_block: Block | None = None  # the block right before the current token, if any

    def error(self, problem: str, line: int | None) -> InputFileError:
        return InputFileError(self.path, problem, line)

    # ---- token helpers
    def _tok(self, index: int) -> _Tok | None:
        """Token number ``index`` (never one the parser has passed by more than one), None after the
        last. Made a line at a time; a line longer than ``_WHOLE_LINE`` one token at a time (one line
        can be megabytes long)."""
        toks = self._toks
        while index - self._base >= len(toks):
            match = next(self._matches, None)
            if match is None:
                if self._next_line >= len(self.lines):
                    return None
                line = self._line = self._next_line
                self._next_line += 1
                code = _strip_comments(self.lines[line])
                self._whole = len(code) <= _WHOLE_LINE
                if self._whole:  # nearly every line: its tokens at once
                    toks.extend(
                        _Tok(m.group(), line, m.start(), m.end(), i == 0)
                        for i, m in enumerate(_TOKEN_RE.finditer(code))
                    )
                    continue
                self._matches = _TOKEN_RE.finditer(code)
                self._first = True
                continue
            toks.append(_Tok(match.group(), self._line, match.start(), match.end(), self._first))
            self._first = False
        return toks[index - self._base]

    def _peek(self) -> _Tok | None:
        passed = self.pos - self._base - 1  # the parser steps back at most one token
        if passed > _KEEP_PASSED_TOKENS:
            del self._toks[:passed]
            self._base += passed
        return self._tok(self.pos)

    def _current(self) -> _Tok:
        tok = self._peek()
        assert tok is not None  # callers have peeked at it already
        return tok

    def _line_rest(self, line: int) -> list[_Tok]:
        out = []
        while (tok := self._peek()) is not None and tok.line == line:
            out.append(tok)
            self.pos += 1
            if self._whole and self._line == line and self.pos - self._base >= len(self._toks):
                break  # the line's last token: the next line need not become tokens to show it
        return out

    # ---- top level
    def parse(self) -> OrcaInput:
        while (tok := self._peek()) is not None:
            low = tok.text.lower()
            if low.startswith("!"):
                self._keyword_line()
                self.last_block = None
            elif low.startswith("%"):
                self._block()
            elif low.startswith("*") and tok.first:
                self._coordinates()
                self.last_block = None
            elif low.startswith("$"):
                if low != "$new_job":
                    raise self.error(
                        f"unknown directive {tok.text!r}: ORCA knows only '$new_job' here", tok.line + 1
                    )
                self.pos += 1
                self.jobs[-1].end_line = tok.line - 1
                self.jobs.append(Job(index=len(self.jobs), line=tok.line + 1))
                self.last_block = None
            elif self.last_block is not None and not self.last_block.one_liner:
                self._continue_block(self.last_block)
            else:
                raise self.error(
                    f"unexpected text {tok.text!r} outside any block: ORCA expects a line starting with "
                    "'!', '%', '*' or '$new_job'",
                    tok.line + 1,
                )
        self.jobs[-1].end_line = len(self.lines) - 1
        return self._finish()

    def _keyword_line(self) -> None:
        first = self._current()
        code = _strip_comments(self.lines[first.line])
        self.jobs[-1].keyword_lines.append(KeywordLine(first.line + 1, code, first.col))
        self.items += 1
        self._restart_tokens(first.line + 1)  # the rest of the line is keywords, read when asked

    def _block(self) -> None:
        start = self._current()
        self.pos += 1
        name = start.text[1:].lower()
        if not name:
            nxt = self._peek()
            if nxt is None or nxt.line != start.line:
                raise self.error("'%' without a block name", start.line + 1)
            name = nxt.text.lower()
            self.pos += 1
        job = self.jobs[-1]
        self.items += 1
        nxt = self._peek()
        if name in _ONE_LINERS and nxt is not None and nxt.text == "=":
            self.pos += 1  # "%maxcore = 3000"
            nxt = self._peek()
        if name in _ONE_LINERS or (name == "compound" and nxt is not None and nxt.text.startswith('"')):
            if nxt is None or (nxt.text.startswith(("%", "!", "*", "$")) and nxt.first):
                raise self.error(f"%{name} needs a value", start.line + 1)
            self.pos += 1
            value = _unquote(nxt.text)
            span = Span(start.line, start.col, nxt.line, nxt.end)
            opt = Option(name, value, start.line + 1, span, Span(nxt.line, nxt.col, nxt.line, nxt.end))
            block = Block(name, self._slice(span), start.line + 1, span, [opt], one_liner=True)
            job.blocks.append(block)
            self.last_block = block
            return
        block = Block(name, "", start.line + 1, Span(start.line, start.col, start.line, start.end))
        job.blocks.append(block)
        self._block_body(block, start)
        self.last_block = block

    def _block_body(self, block: Block, opener: _Tok) -> None:
        """Consume tokens up to the block's closing "end", collecting its first-level options."""
        stack: list[tuple[str, str]] = [(block.name, "end")]
        # First-level options, a line at a time with one line of look-ahead (a key alone on its line
        # takes the next line's first word): never every token of a large block at once.
        line_toks: list[_Tok] = []
        pending: list[list[_Tok]] | None = None
        level1: list[Option] = []  # after the sub-blocks' options, as they always came

        def line_done() -> None:
            nonlocal line_toks, pending
            merged = _merge_groups(line_toks)
            line_toks = []
            if merged:
                if pending is not None:
                    self._option_line(block, pending, merged, level1)
                pending = merged

        sub_start: _Tok | None = None
        while True:
            tok = self._peek()
            if tok is None:
                raise self.error(
                    f"%{block.name} block opened here has no matching 'end' before the end of the file",
                    opener.line + 1,
                )
            ctx, closer = stack[-1]
            if len(stack) > 1 and tok.first and self._skip_lines(tok.line, ctx, closer):
                continue
            low = tok.text.lower()
            if ctx not in _OPAQUE and tok.first and low[:1] in ("!", "*", "$", "%") and low != "%":
                raise self.error(
                    f"%{block.name} block opened here has no matching 'end' before line {tok.line + 1}",
                    opener.line + 1,
                )
            self.pos += 1
            if low == closer:
                stack.pop()
                if not stack:
                    block.span = Span(block.span.start_line, block.span.start_col, tok.line, tok.end)
                    break
                if len(stack) == 1 and sub_start is not None:
                    value_span = Span(sub_start.line, sub_start.end, tok.line, tok.end)
                    self._add_option(block, [sub_start], value_span)
                    sub_start = None
                continue
            if ctx in _OPAQUE:
                continue
            opens = _SUBBLOCKS.get(ctx, {})
            if low in opens or (ctx == "basis" and _BASIS_SUB_RE.match(low)):
                stack.append((low, opens.get(low, "end")))
                if len(stack) == 2:
                    sub_start = tok
                continue
            if len(stack) == 1:
                if line_toks and tok.line != line_toks[-1].line:
                    line_done()
                line_toks.append(tok)
        block.raw = self._slice(block.span)
        if line_toks:
            line_done()
        if pending is not None:
            self._option_line(block, pending, None, level1)
        block.options.extend(level1)

    def _skip_lines(self, line: int, ctx: str, closer: str) -> bool:
        """Inside a sub-block (whose words are not options), go past the lines from ``line`` on that
        hold neither its closer, nor a nested opener, nor a directive, without a token object each
        (a %coords block can hold 100,000s of atoms). True when it skipped any."""
        opens = _SUBBLOCKS.get(ctx, {})
        index = line
        while index < len(self.lines):
            code = _strip_comments(self.lines[index])
            words = _TOKEN_RE.findall(code)
            if words:
                head = words[0]
                if ctx not in _OPAQUE and head[:1] in ("!", "*", "$", "%") and head != "%":
                    break
                # A cheap test first: most lines hold no such word at all.
                if _words_pattern(closer, *opens).search(code) and (
                    closer in (low := set(map(str.lower, words))) or not low.isdisjoint(opens)
                ):
                    break
            index += 1
        if index == line:
            return False
        self._restart_tokens(index)
        return True

    def _restart_tokens(self, line: int) -> None:
        """The next token is the first of ``line`` (what was looked ahead at is made again)."""
        self._toks.clear()
        self._matches = iter(())
        self._base, self._next_line = self.pos, line

    def _continue_block(self, block: Block) -> None:
        """Text right after a block: ORCA's sub-block we do not know, closed by a second "end"."""
        tok = self._current()
        if tok.text.lower() == "end":
            self.pos += 1
            block.span = Span(block.span.start_line, block.span.start_col, tok.line, tok.end)
            block.raw = self._slice(block.span)
            return
        # Find an "end" before the next directive; otherwise this is stray text ORCA would reject.
        scan = self.pos
        while (t := self._tok(scan)) is not None:
            if t.first and t.text[:1] in ("!", "*", "$", "%"):
                break
            if t.text.lower() == "end":
                self.pos = scan + 1
                block.span = Span(block.span.start_line, block.span.start_col, t.line, t.end)
                block.raw = self._slice(block.span)
                return
            scan += 1
        raise self.error(
            f"unexpected text {tok.text!r} outside any block: ORCA expects a line starting with "
            "'!', '%', '*' or '$new_job'",
            tok.line + 1,
        )

    def _slice(self, span: Span) -> str:
        if span.start_line == span.end_line:
            return self.lines[span.start_line][span.start_col : span.end_col]
        parts = [self.lines[span.start_line][span.start_col :]]
        parts += self.lines[span.start_line + 1 : span.end_line]
        parts.append(self.lines[span.end_line][: span.end_col])
        return "\n".join(p.rstrip("\r") for p in parts)

    def _add_option(
        self,
        block: Block,
        key_toks: list[_Tok],
        value_span: Span | None,
        value: str | None = None,
        into: list[Option] | None = None,
    ) -> None:
        key = "".join(t.text for t in key_toks)
        first = key_toks[0]
        if value is None:
            value = self._slice(value_span).strip() if value_span else ""
        end = value_span if value_span else Span(first.line, first.col, key_toks[-1].line, key_toks[-1].end)
        span = Span(first.line, first.col, end.end_line, end.end_col)
        (block.options if into is None else into).append(Option(key, value, first.line + 1, span, value_span))

    def _option_line(
        self,
        block: Block,
        merged: list[list[_Tok]],
        following: list[list[_Tok]] | None,
        into: list[Option],
    ) -> None:
        """The options of one line of a block (its word groups, ``_merge_groups``); ``following`` is
        the next line's groups, whose first a key alone on this line takes as its value."""
        if not merged:
            return  # its only word was the previous line's value
        if len(merged) == 1 and following is not None:
            # A key alone on its line takes the next word as its value, as ORCA reads tokens.
            value_group = following.pop(0)
            v0, v1 = value_group[0], value_group[-1]
            self._add_option(
                block,
                merged[0],
                Span(v0.line, v0.col, v1.line, v1.end),
                " ".join(t.text for t in value_group).rstrip(";"),
                into,
            )
            return
        simple = [g[0] for g in merged if len(g) == 1]
        pairs = (
            len(merged) > 2
            and len(merged) % 2 == 0
            and len(simple) == len(merged)
            and all(re.match(r"[A-Za-z_]", merged[i][0].text) for i in range(0, len(merged), 2))
            and all("," not in merged[i][0].text for i in range(1, len(merged), 2))
        )
        if pairs:
            for i in range(0, len(merged), 2):
                v = merged[i + 1][0]
                self._add_option(
                    block, merged[i], Span(v.line, v.col, v.line, v.end), v.text.rstrip(";"), into
                )
        else:
            rest = [t for g in merged[1:] for t in g]
            vspan = Span(rest[0].line, rest[0].col, rest[-1].line, rest[-1].end) if rest else None
            value = " ".join(t.text for t in rest).rstrip(";") if rest else ""
            self._add_option(block, merged[0], vspan, value, into)

    # ---- coordinates
    def _coordinates(self) -> None:
        start = self._current()
        header = self._line_rest(start.line)
        words = [t.text for t in header]
        words[0] = words[0][1:]
        if not words[0]:
            words = words[1:]
        lineno = start.line + 1
        job = self.jobs[-1]
        self.items += 1
        if job.coord_kind is not None:
            raise self.error(
                f"second coordinate section in this job (the first is at line {job.coord_line})", lineno
            )
        if not words:
            raise self.error("'*' without a coordinate type: expected e.g. '* xyz 0 1'", lineno)
        kind = words[0].lower()
        if kind not in _INLINE_KINDS and kind not in _FILE_KINDS:
            raise self.error(
                f"unknown coordinate type {words[0]!r}: ORCA knows xyz, int, gzmt, xyzfile, gzmtfile, "
                "pdbfile",
                lineno,
            )
        if len(words) < 3:
            raise self.error(f"'* {kind}' needs a charge and a multiplicity, e.g. '* {kind} 0 1'", lineno)
        charge, mult = _int_token(words[1]), _int_token(words[2])
        if charge is None:
            raise self.error(f"bad charge {words[1]!r}: must be an integer", lineno)
        if mult is None or mult < 1:
            raise self.error(f"bad multiplicity {words[2]!r}: must be a positive integer", lineno)
        job.coord_kind = _INLINE_KINDS.get(kind, kind)
        job.coord_line = lineno
        job.charge, job.multiplicity = charge, mult
        if kind in _FILE_KINDS:
            if len(words) < 4:
                raise self.error(f"'* {kind}' needs a file name after charge and multiplicity", lineno)
            name = _unquote(words[3])
            job.files.append(FileRef(kind, name, lineno, job.index))
            # The span ends after the file name: its token is the 4th word, one further on when the
            # "*" stands apart ("* xyzfile 0 1 x.xyz", not "*xyzfile 0 1 x.xyz"); ending before it,
            # set_xyzfile kept the old name after the new one.
            last = header[min(3 + (len(header) - len(words)), len(header) - 1)]
            job.coord_span = Span(start.line, start.col, last.line, last.end)
            return
        self._inline_atoms(job, start)

    def _inline_atoms(self, job: Job, start: _Tok) -> None:
        kind = job.coord_kind
        electrons: int | None = 0
        # Plain atom lines are read as words, without a token object each (an input can hold 100,000s
        # of atoms); the token loop below takes over at the closing "*" or anything else.
        index = start.line + 1
        lines = self.lines
        plain = _PLAIN_XYZ_ATOM.fullmatch if kind == "xyz" else None
        while index < len(lines):
            line = lines[index]
            # An element and three numbers, nothing else (the common line): one match instead of
            # words, and the same outcome as _atom_line's (an unknown element, a point charge "Q" and
            # every other line go the long way, which names the problem).
            if plain is not None and (m := plain(line)) is not None:
                symbol = element_symbol(m.group(1))
                if symbol is not None and symbol not in _NOT_ATOMS:
                    job.natoms += 1
                    job.elements.append(symbol)
                    electrons = None if electrons is None else electrons + ATOMIC_NUMBERS[symbol]
                    index += 1
                    continue
            words = _TOKEN_RE.findall(_strip_comments(line))
            if words:
                if words[0][:1] in ("!", "%", "$", "*") or words[-1] == "*":
                    break
                z = self._atom_line(job, words, index + 1)
                electrons = None if electrons is None or z is None else electrons + z
            index += 1
        self._restart_tokens(index)
        while True:
            tok = self._peek()
            if (
                tok is None
                or (tok.first and tok.text[:1] in ("!", "%", "$"))
                or (tok.first and tok.text.startswith("*") and tok.text != "*")
            ):
                where = "the end of the file" if tok is None else f"line {tok.line + 1}"
                raise self.error(
                    f"coordinate section '* {kind}' opened here is not closed by '*' before {where}",
                    start.line + 1,
                )
            if tok.text == "*":
                self.pos += 1
                job.coord_span = Span(start.line, start.col, tok.line, tok.end)
                break
            atom = self._line_rest(tok.line)
            words = [t.text for t in atom]
            if words and words[-1] == "*":
                # "*" closing on the same line as the last atom.
                self.pos -= 1
                words = words[:-1]
            z = self._atom_line(job, words, tok.line + 1)
            electrons = None if electrons is None or z is None else electrons + z
        if not job.natoms:
            raise self.error(f"coordinate section '* {kind}' has no atoms", start.line + 1)
        if electrons is not None and job.charge is not None and job.multiplicity is not None:
            problem = spin_problem(electrons, job.charge, job.multiplicity)
            if problem:
                raise self.error(problem, start.line + 1)

    def _atom_line(self, job: Job, words: list[str], lineno: int) -> int | None:
        """Validate one atom line; return the electrons it adds, None when that is not plain."""
        label = words[0]
        plain = True
        base = label if label.isalpha() else _LABEL_END.split(label, maxsplit=1)[0]
        if base != label:
            plain = ":" not in label and ">" not in label
        if base.upper() in _NOT_ATOMS:
            symbol, plain = base.upper(), False
        else:
            symbol = element_symbol(base) if base else None
            if symbol is None:
                raise self.error(f"unknown element {label!r}", lineno)
        job.natoms += 1
        job.elements.append(symbol)
        problem = _coordinate_problem(job.coord_kind or "", words, job.natoms, symbol)
        if problem:
            raise self.error(problem, lineno)
        # "Z = 0.5" (nuclear charge) or a ":" ghost in the extras make the electron count unknown.
        if job.coord_kind == "xyz" and any(w.lower() == "z" for w in words[4:]):
            plain = False
        if not plain or symbol in _NOT_ATOMS:
            return None
        return ATOMIC_NUMBERS[symbol]

    # ---- after the tokens
    def _finish(self) -> OrcaInput:
        if not self.items:
            raise self.error("not an ORCA input: no '!' keyword line, no '%' block, no coordinates", None)
        previous: Job | None = None
        for job in self.jobs:
            self._job_settings(job)
            if job.coord_kind is None:
                if previous is None:
                    raise self.error(
                        "no coordinates: add '* xyz charge mult ... *', '* xyzfile charge mult file.xyz' "
                        "or a %coords block",
                        (job.keyword_lines[0].line if job.keyword_lines else 1),
                    )
                job.inherits_geometry = True
                job.charge, job.multiplicity = previous.charge, previous.multiplicity
                job.natoms, job.elements = previous.natoms, list(previous.elements)
            if previous is not None:
                job.nprocs = job.nprocs if job.nprocs is not None else previous.nprocs
                job.maxcore = job.maxcore if job.maxcore is not None else previous.maxcore
            previous = job
        if self.check_files:
            self._check_files(self.jobs[0])
        return OrcaInput(self.path, self.jobs, crlf="\r\n" in self.text)

    def _job_settings(self, job: Job) -> None:
        for kl in job.keyword_lines:
            for kw, _start, _end in kl.words():
                match = _PAL_RE.match(kw)
                if match:
                    if int(match.group(1)) < 1:
                        raise self.error(f"{kw}: the number of processes must be at least 1", kl.line)
                    job.nprocs = int(match.group(1))
        pal_nprocs = None
        for block in job.blocks:
            if block.name == "pal":
                for opt in block.options:
                    if opt.key.lower() == "nprocs":
                        value = _int_token(opt.value)
                        if value is None or value < 1:
                            raise self.error(
                                f"%pal nprocs {opt.value!r}: must be a positive integer", opt.line
                            )
                        pal_nprocs = value
            elif block.name == "maxcore":
                value_f = parse_float(block.options[0].value)
                if value_f is None or not 0 < value_f < 1e15:  # inf from 400 digits is no size
                    raise self.error(
                        f"%maxcore {block.options[0].value!r}: must be a positive number of MB", block.line
                    )
                job.maxcore = int(value_f)
            elif block.name == "moinp":
                job.files.append(FileRef("moinp", block.options[0].value, block.line, job.index))
            elif block.name == "pointcharges":
                job.files.append(FileRef("pointcharges", block.options[0].value, block.line, job.index))
            elif block.name == "compound" and block.one_liner:
                # %compound "x.cmp": the script ORCA runs must travel with the input like any file it reads.
                job.files.append(FileRef("compound", block.options[0].value, block.line, job.index))
            elif block.name == "base":
                job.base = block.options[0].value
            elif block.name == "coords":
                self._coords_block(job, block)
            if block.name not in _ONE_LINERS:
                for opt in block.options:
                    if opt.key.lower() in _FILE_KEYS and opt.value.startswith('"'):
                        job.files.append(FileRef(opt.key.lower(), _unquote(opt.value), opt.line, job.index))
        if pal_nprocs is not None:
            job.nprocs = pal_nprocs

    def _coords_block(self, job: Job, block: Block) -> None:
        if job.coord_kind is not None:
            raise self.error(
                f"%coords and a coordinate section at line {job.coord_line} in the same job", block.line
            )
        job.coord_kind, job.coord_line, job.coord_span = "coords", block.line, block.span
        charge_s, mult_s = block.get("charge") or "0", block.get("mult") or "1"
        charge, mult = _int_token(charge_s), _int_token(mult_s)
        if charge is None:
            raise self.error(f"bad charge {charge_s!r} in %coords: must be an integer", block.line)
        if mult is None or mult < 1:
            raise self.error(
                f"bad multiplicity {mult_s!r} in %coords: must be a positive integer", block.line
            )
        job.charge, job.multiplicity = charge, mult
        coords = next((o for o in block.options if o.key.lower() == "coords"), None)
        if coords is None:
            return
        electrons: int | None = 0
        ctyp = (block.get("ctyp") or "xyz").lower()
        kind = "int" if ctyp in ("int", "internal") else ctyp
        for lineno, words in self._sub_block_lines(coords):
            label = _LABEL_END.split(words[0], maxsplit=1)[0]
            symbol = element_symbol(label)
            if symbol is None and label.upper() not in _NOT_ATOMS:
                raise self.error(f"unknown element {words[0]!r} in %coords", lineno)
            job.natoms += 1
            job.elements.append(symbol or label.upper())
            problem = _coordinate_problem(kind, words, job.natoms, symbol or label.upper())
            if problem:
                raise self.error(f"{problem} in %coords", lineno)
            plain = symbol is not None and label == words[0]
            electrons = None if electrons is None or not plain else electrons + ATOMIC_NUMBERS[symbol or "H"]
        if electrons is not None and job.natoms:
            problem = spin_problem(electrons, charge, mult)
            if problem:
                raise self.error(problem, block.line)

    def _sub_block_lines(self, option: Option) -> Iterator[tuple[int, list[str]]]:
        """(1-based line, words) of each non-empty line inside a sub-block option (``coords ... end``),
        read from the input's lines rather than a copy of the option's text."""
        span = option.value_span
        if span is None:
            return
        for index in range(span.start_line, span.end_line + 1):
            raw = self.lines[index]
            end = span.end_col if index == span.end_line else len(raw)
            start = span.start_col if index == span.start_line else 0
            words = _strip_comments(raw[:end])[start:].split()
            if index == span.end_line and words and words[-1].lower() == "end":
                words.pop()  # the sub-block's closer
            if words:
                yield index + 1, words

    def _check_files(self, job: Job) -> None:
        for ref in job.files:
            folder = self.path.parent
            if (ref.kind in _FILE_KINDS or ref.kind == "compound") and not (folder / ref.name).is_file():
                raise self.error(f"{ref.kind} {ref.name!r} not found (looked in {folder})", ref.line)
            if ref.kind == "xyzfile":
                problem = _xyz_file_problem(folder / ref.name)
                if problem:
                    raise self.error(f"xyzfile {ref.name!r}: {problem}", ref.line)


def _xyz_file_problem(path: Path) -> str | None:
    """Why ORCA could not take coordinates from this xyz file, by its shape only (empty, binary, no
    atom count, fewer atom lines than the count): ORCA would stop in every attempt. Atom labels are
    left to ORCA, which knows more of them than a plain element check."""
    try:
        data = _read_file(path)
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if b"\x00" in data:
        return "binary file, not an xyz file (contains NUL bytes)"
    lines = data.decode("utf-8-sig", "replace").splitlines()  # a Latin-1 comment line is no problem
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return "empty xyz file"
    count = _int_token(lines[first].split()[0])
    if count is None or count < 1:
        return (
            f"line {first + 1}: the first line must be the number of atoms, not {lines[first].strip()[:40]!r}"
        )
    atoms = sum(1 for line in lines[first + 2 : first + 2 + count] if len(line.split()) >= 4)
    if atoms < count:
        return f"line {first + 1}: the atom count says {count} but {atoms} atom line(s) follow"
    return None


def read_input(path: Path) -> str:
    """An input file's text as ``parse_input`` reads it (BOM dropped, line ends kept); one-line
    ``InputFileError`` when it cannot be read or is not UTF-8 text."""
    try:
        data = _read_file(path)
    except OSError as exc:
        raise InputFileError(path, f"cannot read input: {exc.strerror or exc}") from None
    return _decode(path, data)


def _read_file(path: Path) -> bytes:
    """The file's bytes, as ``Path.read_bytes`` reads them (the same system calls fail the same way),
    without a file object: that cost as much as the read itself, once per input of a submit."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, os.fstat(fd).st_size + 1)]  # a buffer of the file's size, not more
        while chunks[-1]:  # until the end: the file may have grown, or not know its size (a pipe)
            chunks.append(os.read(fd, 1 << 16))
        return chunks[0] if len(chunks) == 2 else b"".join(chunks)
    finally:
        os.close(fd)


def parse_input(path: Path, text: str | None = None, *, check_files: bool = True) -> OrcaInput:
    """Parse and validate an ORCA input; ``text`` overrides reading ``path`` (which still names it).

    ``check_files``: the first job's ``xyzfile``/``gzmtfile``/``pdbfile`` must exist next to the input
    (later jobs may read files that earlier jobs write).
    """
    path = path if isinstance(path, Path) else Path(path)
    if text is None:
        text = read_input(path)  # its bytes are not held through the parse
    else:
        if "\x00" in text:
            raise InputFileError(path, "binary file, not an ORCA input (contains NUL bytes)")
        text = text.removeprefix("\ufeff")
    return _Parser(path, text, check_files).parse()


def referenced_files(parsed: OrcaInput) -> list[Path]:
    """Files the input reads (coordinates, orbitals, Hessians, point charges), next to the input.

    Files named by later ``$new_job`` sections may be written by earlier jobs; they are listed when
    they exist already.
    """
    folder = parsed.path.parent
    out: list[Path] = []
    for ref in parsed.files:
        candidate = Path(ref.name) if Path(ref.name).is_absolute() else folder / ref.name
        if ref.job > 0 and not candidate.exists():
            continue
        if candidate not in out:
            out.append(candidate)
    return out


# --------------------------------------------------------------------------------------------------
# editing

_EDIT_PATH = Path("<input>")


def _parse_for_edit(text: str) -> OrcaInput:
    return parse_input(_EDIT_PATH, text, check_files=False)


class _Editor:
    """Collects replacements on the original text and applies them from the bottom up."""

    def __init__(self, text: str, parsed: OrcaInput) -> None:
        self.lines = text.split("\n")
        self.eol = "\r" if parsed.crlf else ""
        self.edits: list[tuple[Span, str, bool]] = []

    def replace(self, span: Span, new: str, drop_blank: bool = True) -> None:
        self.edits.append((span, new, drop_blank))

    def insert_line(self, before_line: int, new: str) -> None:
        """Insert whole lines (``new`` without trailing newline) before the 0-based line index."""
        body = "\n".join(part + self.eol for part in new.split("\n"))
        self.edits.append((Span(before_line, 0, before_line, 0), body + "\n", False))

    def result(self) -> str:
        # Bottom-up so earlier positions stay valid; at one position, replace before inserting lines.
        def key(i: int) -> tuple[int, int, int, int]:
            span = self.edits[i][0]
            is_insert = span.start_line == span.end_line and span.start_col == span.end_col
            return (span.start_line, span.start_col, 0 if is_insert else 1, i)

        order = sorted(range(len(self.edits)), key=key, reverse=True)
        lines = self.lines
        for i in order:
            span, new, drop_blank = self.edits[i]
            if span.start_line >= len(lines):
                lines.append("")
            head = lines[span.start_line][: span.start_col]
            tail = lines[span.end_line][span.end_col :] if span.end_line < len(lines) else ""
            joined = head + new + tail
            if drop_blank and not joined.strip() and not new:
                lines[span.start_line : span.end_line + 1] = []
            else:
                lines[span.start_line : span.end_line + 1] = joined.split("\n")
        return "\n".join(lines)


def _jobs(parsed: OrcaInput, job: int | None) -> list[Job]:
    if job is None:
        return parsed.jobs
    if not 0 <= job < len(parsed.jobs):
        raise UserError(f"the input has {len(parsed.jobs)} job(s); there is no job {job}")
    return [parsed.jobs[job]]


def _settings_line(job: Job) -> int:
    """0-based line index where new settings of a job go: after its last keyword line, else its start."""
    if job.keyword_lines:
        return job.keyword_lines[-1].line  # 1-based last keyword line == 0-based index of the next line
    return job.line if job.index > 0 else 0


def _check_value(what: str, value: str) -> str:
    value = str(value)
    if not value.strip() or any(ch in value for ch in '\n\r"#'):
        raise UserError(f"{what} {value!r} cannot be written into an ORCA input")
    return value


def set_resources(text: str, nprocs: int, maxcore_mb: int, parsed: OrcaInput | None = None) -> str:
    """Set ``%pal nprocs`` and ``%maxcore`` in every job, removing old ones and ``PALn`` keywords.
    ``parsed``: ``text`` already parsed (submit has it; a large input is then not parsed twice)."""
    if nprocs < 1 or maxcore_mb < 1:
        raise UserError(f"nprocs ({nprocs}) and maxcore ({maxcore_mb} MB) must be positive")
    parsed = parsed or _parse_for_edit(text)
    editor = _Editor(text, parsed)
    for job in parsed.jobs:
        pal_kept = False
        for block in job.blocks:
            others = [o for o in block.options if o.key.lower() != "nprocs"]
            if block.name == "pal" and others:
                # Keep the user's other %pal settings; only the process count changes.
                for opt in block.options:
                    if opt.key.lower() == "nprocs" and opt.value_span is not None:
                        editor.replace(opt.value_span, str(int(nprocs)), drop_blank=False)
                        pal_kept = True
                if not pal_kept:
                    editor.replace(block.span, "")
            elif block.name in ("pal", "maxcore"):
                editor.replace(block.span, "")
        for kl in job.keyword_lines:
            _remove_tokens(editor, kl, lambda kw: bool(_PAL_RE.match(kw)))
        new = ([] if pal_kept else [f"%pal nprocs {int(nprocs)} end"]) + [f"%maxcore {int(maxcore_mb)}"]
        editor.insert_line(_settings_line(job), "\n".join(new))
    return editor.result()


def _remove_tokens(editor: _Editor, kl: KeywordLine, predicate: Callable[[str], bool]) -> None:
    """Remove keywords from a "!" line; a line left with only "!" goes entirely."""
    words = list(kl.words())  # no Span per keyword: most lines lose none (submit asks of every input)
    doomed = [(start, end) for kw, start, end in words if predicate(kw)]
    if not doomed:
        return
    line = kl.line - 1
    if len(doomed) == len(words):
        editor.replace(Span(line, kl.bang_col, line, doomed[-1][1]), "")
        return
    for start, end in doomed:
        # Take the whitespace before the keyword with it.
        raw = editor.lines[line]
        col = start
        while col > 0 and raw[col - 1] in " \t" and raw[col - 2 : col - 1] != "!":
            col -= 1
        editor.replace(Span(line, col, line, end), "")


def add_keywords(text: str, *keywords: str, job: int | None = None) -> str:
    """Add simple-input keywords (not duplicating present ones, any case) to every job or one job."""
    parsed = _parse_for_edit(text)
    editor = _Editor(text, parsed)
    for j in _jobs(parsed, job):
        present = set(j.keywords_lower)
        new = []
        for kw in keywords:
            kw = _check_value("keyword", kw.strip().lstrip("!").strip())
            if any(ch.isspace() for ch in kw):
                raise UserError(f"keyword {kw!r} must be one word")
            if kw.lower() not in present:
                new.append(kw)
                present.add(kw.lower())
        if not new:
            continue
        if j.keyword_lines and j.keyword_lines[-1].tokens:
            last = j.keyword_lines[-1].tokens[-1][1]
            at = Span(last.end_line, last.end_col, last.end_line, last.end_col)
            editor.replace(at, " " + " ".join(new))
        else:
            editor.insert_line(_settings_line(j), "! " + " ".join(new))
    return editor.result()


def remove_keywords(text: str, *keywords: str, job: int | None = None) -> str:
    """Remove simple-input keywords (any case) from every job or one job."""
    doomed = {kw.strip().lstrip("!").lower() for kw in keywords}
    parsed = _parse_for_edit(text)
    editor = _Editor(text, parsed)
    for j in _jobs(parsed, job):
        for kl in j.keyword_lines:
            _remove_tokens(editor, kl, lambda kw: kw.lower() in doomed)
    return editor.result()


def set_block_option(text: str, block: str, key: str, value: str, *, job: int | None = None) -> str:
    """Set ``key value`` in ``%block`` (replacing the value that counts, else adding it, else a new block).

    A sub-block is set the same way: ``set_block_option(t, "scf", "Shift", "Shift 0.1 ErrOff 0.1 end")``.
    """
    name = _check_value("block name", block.strip().lstrip("%")).lower()
    key = _check_value("option", key)
    value = str(value)
    if any(ch in value for ch in "\n\r#") or (value.count('"') % 2):
        raise UserError(f"value {value!r} cannot be written into an ORCA input")
    if name in _ONE_LINERS:
        raise UserError(f"%{name} has no options; use set_resources or set_moread")
    parsed = _parse_for_edit(text)
    editor = _Editor(text, parsed)
    for j in _jobs(parsed, job):
        blocks = j.blocks_named(name)
        target = None
        for b in blocks:
            for opt in b.options:
                if opt.key.lower() == key.lower():
                    target = opt
        if target is not None:
            if target.value_span is not None:
                vs = target.value_span
                # A sub-block's value starts right after its opener word: keep them apart.
                glued = vs.start_line == target.span.start_line and vs.start_col == (
                    target.span.start_col + len(target.key)
                )
                editor.replace(vs, (" " if glued else "") + value, drop_blank=False)
            else:
                editor.replace(target.span, f"{key} {value}", drop_blank=False)
            continue
        if blocks:
            b = blocks[-1]
            end_line, end_col = b.span.end_line, b.span.end_col
            raw = editor.lines[end_line]
            end_start = end_col - 3
            if b.span.start_line != end_line and not raw[:end_start].strip():
                editor.insert_line(end_line, f"  {key} {value}")
            else:
                editor.replace(
                    Span(end_line, end_start, end_line, end_start), f"{key} {value} ", drop_blank=False
                )
            continue
        editor.insert_line(_settings_line(j), f"%{name}\n  {key} {value}\nend")
    return editor.result()


def set_moread(text: str, gbw_name: str) -> str:
    """Start the first job from the orbitals in ``gbw_name``: ``! MORead`` + ``%moinp "gbw_name"``."""
    gbw_name = _check_value("orbital file name", gbw_name)
    text = add_keywords(text, "MORead", job=0)
    parsed = _parse_for_edit(text)
    editor = _Editor(text, parsed)
    job = parsed.jobs[0]
    moinps = job.blocks_named("moinp")
    for block in moinps[:-1]:
        editor.replace(block.span, "")
    if moinps:
        editor.replace(moinps[-1].span, f'%moinp "{gbw_name}"', drop_blank=False)
    else:
        editor.insert_line(_settings_line(job), f'%moinp "{gbw_name}"')
    for block in job.blocks_named("scf"):
        for opt in block.options:
            if opt.key.lower() == "moinp" and opt.value_span is not None:
                editor.replace(opt.value_span, f'"{gbw_name}"', drop_blank=False)
    return editor.result()


def set_xyzfile(text: str, xyz_name: str) -> str:
    """Replace the first job's coordinates by ``* xyzfile q m xyz_name``, keeping charge and multiplicity."""
    xyz_name = _check_value("xyz file name", xyz_name)
    if any(ch.isspace() for ch in xyz_name):
        raise UserError(f"xyz file name {xyz_name!r} must not contain spaces (ORCA reads one word)")
    parsed = _parse_for_edit(text)
    job = parsed.jobs[0]
    if job.coord_span is None:
        raise UserError("the input has no coordinate section to replace")
    editor = _Editor(text, parsed)
    editor.replace(job.coord_span, f"* xyzfile {job.charge} {job.multiplicity} {xyz_name}", drop_blank=False)
    return editor.result()


def set_file_ref(text: str, ref: FileRef, new_name: str) -> str:
    """Make the reference ``ref`` (from ``parse_input(...).files``) name ``new_name`` instead.

    Any kind, in any ``$new_job`` step: ``* xyzfile q m NAME``, ``%moinp "NAME"``,
    ``%pointcharges "NAME"``, ``InHessName "NAME"`` and the other file options. The name is replaced
    on the reference's own line, quoted where it was quoted; nothing else changes.
    """
    new_name = _check_value("file name", new_name)
    lines = text.split("\n")
    index = ref.line - 1
    if not 0 <= index < len(lines):
        raise UserError(f"line {ref.line}: no such line in the input")
    line = lines[index]
    quoted = f'"{ref.name}"'
    if quoted in line:
        lines[index] = line.replace(quoted, f'"{new_name}"', 1)
    else:
        if any(ch.isspace() for ch in new_name):
            raise UserError(f"file name {new_name!r} must not contain spaces (ORCA reads one word)")
        # A bare word (``* xyzfile 0 1 sub/x.xyz``): only a whole word, not part of a longer one.
        bare = re.compile(r'(?<![^\s"])' + re.escape(ref.name) + r'(?![^\s"])')
        new_line, count = bare.subn(lambda _m: new_name, line, count=1)
        if not count:
            raise UserError(f"line {ref.line}: {ref.name!r} not found where the input names it")
        lines[index] = new_line
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# intent: what each job (``$new_job`` step) asks for, so a finished run can be judged chemically

MINIMUM = "minimum"  # an optimised geometry with no imaginary mode
SADDLE = "saddle"  # a transition state: exactly one imaginary mode
REPORT = "report"  # frequencies of a given geometry: counted and reported, never judged


@dataclass(frozen=True)
class StepIntent:
    """What one job of an input asks for."""

    step: int  # 0-based job index
    optimises: bool  # geometry optimisation, TS search or NEB: needs a convergence banner
    target: str | None  # MINIMUM, SADDLE, or None (no stationary point asked for)
    freq: bool  # computes frequencies
    neb: bool  # a NEB run (converges with "THE NEB OPTIMIZATION HAS CONVERGED")

    @property
    def frequency_check(self) -> str | None:
        """What this step's frequencies must show: MINIMUM, SADDLE, REPORT, or None (no frequencies)."""
        if not self.freq:
            return None
        return self.target or REPORT


def step_intent(job: Job) -> StepIntent:
    """The job's intent from its ``!`` keywords and ``%method RunTyp`` (the block form of ``! Opt``)."""
    return _intent(job.index, job.keywords_lower, (job.option("method", "runtyp") or "").strip('"').lower())


def _intent(step: int, kws: frozenset[str], runtyp: str) -> StepIntent:
    neb = any(kw.startswith(("neb", "zoom-neb", "fast-neb")) for kw in kws)
    target: str | None = None
    if kws & _SADDLE_KEYWORDS or runtyp == "optts":
        target = SADDLE
    elif kws & _MINIMUM_KEYWORDS or runtyp in ("opt", "geom"):
        target = MINIMUM
    # A plain NEB or NEB-CI converges a path, not a stationary point one can check with frequencies.
    optimises = target is not None or neb or bool(kws & _NEB_CI_KEYWORDS)
    freq = bool(kws & _FREQ_KEYWORDS)
    return StepIntent(step, optimises, target, freq, neb)


_STEP_RUNTYP = re.compile(r'\bruntyp\s*=?\s*"?([\w-]+)', re.IGNORECASE)


_SCRIPT_STEP = re.compile(r"^\s*New_Step\b(.*?)^\s*Step_End\b", re.IGNORECASE | re.MULTILINE | re.DOTALL)
COMPOUND_SCRIPT_MAX_BYTES = 1 << 20


def _compound_step_texts(job: Job, folder: Path | None) -> list[str]:
    """The bodies of the ``New_Step`` ... ``Step_End`` of the job's ``%compound`` script: inline, or
    in the script file next to the input (``%compound "x.cmp"``, which travels with it) when
    ``folder`` is given and the file is there."""
    texts: list[str] = []
    for block in job.blocks_named("compound"):
        if not block.one_liner:
            texts += [o.value for o in block.options if o.key.lower() == "new_step"]
            continue
        if folder is None:
            continue
        try:
            fd = os.open(folder / block.options[0].value, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO: no wait
        except OSError:
            continue  # not there (yet): judged by the job's own keywords
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
            script = os.read(fd, COMPOUND_SCRIPT_MAX_BYTES).decode("utf-8", "replace") if regular else ""
        except OSError:
            script = ""
        finally:
            os.close(fd)
        texts += [m.group(1) for m in _SCRIPT_STEP.finditer(script)]
    return texts


def _compound_steps(job: Job, folder: Path | None = None) -> list[tuple[StepIntent, bool]]:
    """(intent, inherits the previous step's geometry) of each step of the job's ``%compound``
    script: the calculations are there, not on the job's own keyword line, whose keywords ORCA
    passes on to every step. Empty without such a script."""
    steps: list[tuple[StepIntent, bool]] = []
    for text in _compound_step_texts(job, folder):
        words = set(job.keywords_lower)
        own_geometry = False
        for line in text.splitlines():
            code = _strip_comments(line).strip()
            if code.startswith("!"):
                words.update(word.lower() for word in code[1:].split())
            own_geometry = own_geometry or code.startswith("*")
        runtyp = _STEP_RUNTYP.search(text)
        kind = runtyp.group(1).lower() if runtyp else ""
        steps.append((_intent(job.index, frozenset(words), kind), not own_geometry))
    return steps


def job_intents(parsed: OrcaInput, folder: Path | None = None) -> list[StepIntent]:
    """One intent per job, or per step of a job's ``%compound`` script (inline, or its file in
    ``folder``). A frequency-only job (or step) that inherits its geometry from an optimising one
    (``$new_job`` or ``New_Step`` without new coordinates) checks that one's stationary point, not
    just reports."""
    out: list[StepIntent] = []
    for job in parsed.jobs:
        # A %compound script's steps are what runs (each with the job's index: edits go to the job).
        inherits = job.inherits_geometry or _reads_earlier_geometry(parsed, job)
        steps = _compound_steps(job, folder) or [(step_intent(job), inherits)]
        for intent, inherits in steps:
            if intent.freq and intent.target is None and inherits and out:
                previous = next((s for s in reversed(out) if s.target is not None), None)
                if previous is not None and previous.step == out[-1].step:
                    intent = StepIntent(intent.step, False, previous.target, True, False)
            out.append(intent)
    return out


def _reads_earlier_geometry(parsed: OrcaInput, job: Job) -> bool:
    """A later job whose coordinates are ``* xyzfile q m <base>.xyz`` of an earlier job: the geometry
    that job wrote (each job writes ``<its %base, else the input's name>.xyz``). ORCA's linked Opt ->
    Freq with ``%base`` (GoodVibes' tests/orca6/03_acetone_linked_opt_freq.inp) reads it this way: its
    frequencies check the optimised point as much as a job without coordinates does."""
    if job.index == 0 or job.coord_kind != "xyzfile":
        return False
    names = [ref.name for ref in job.files if ref.kind == "xyzfile" and ref.line == job.coord_line]
    if not names:
        return False
    written = {
        f"{(earlier.base or parsed.path.stem).strip(chr(34))}.xyz".lower()
        for earlier in parsed.jobs[: job.index]
    }
    return Path(names[0].strip(chr(34))).name.lower() in written


_MULTI_OR_BASE = re.compile(r"^[ \t]*(\$new_job|%[ \t]*base\b)", re.IGNORECASE | re.MULTILINE)


def final_base(path: Path, text: str) -> str:
    """The base name ORCA gave the last job's files (``<base>.xyz``, ``.gbw``, ``.hess``): the input's
    name, unless a ``%base`` names them. In a multi-job input (``$new_job``) the last job's files are
    the final ones: ``<input>.xyz`` is then an earlier job's (an intermediate geometry). The last job's
    own ``%base`` or the input's name decides (a last job that would inherit an earlier job's
    ``%base`` is not followed: workflows refuse such steps, ``config.workflow``)."""
    if not _MULTI_OR_BASE.search(text):
        return path.stem  # the inputs of preset method lines: one regex, no parse
    last = parse_input(path, text, check_files=False).jobs[-1]
    base = (last.base or "").strip().strip('"').strip() or path.stem
    if "/" in base or "\\" in base or base in (".", ".."):
        raise InputFileError(path, f"%base {base!r} names a file outside the attempt folder")
    return base


def input_intents(path: Path, text: str | None = None) -> list[StepIntent]:
    """``job_intents`` of an input file (or of ``text``); files it names need not exist."""
    return job_intents(parse_input(path, text, check_files=False), path.parent)
