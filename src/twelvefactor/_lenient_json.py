"""Find and read the JSON a language model meant to write.

The JSON half of :mod:`twelvefactor.parsing` (:mod:`._reply` finds where the answer is); it knows
nothing about schemas.

- :func:`scan` walks a region and returns every top-level ``{...}`` / ``[...]`` value in it. Clean JSON
  goes through the C decoder; anything else through :func:`parse_at`, a hand-written, iterative (no
  recursion, so 5000 ``[`` cannot blow the stack) and tolerant reader: comments, trailing and missing
  commas, single/curly quotes, Python triple-quoted strings, unquoted keys, unquoted values as people
  write them (``John Smith``, ``**high**``, ``5 km``, ``12,111``), Python literals, raw control characters
  in strings, and truncation (marked, never dropped: see :class:`Parsed`).
- :func:`fallback_values` reads answers written without JSON (``add(a=1, b=2)``, ``key: value`` lines);
  the caller uses it only when a region holds no JSON at all.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from typing import Any, NoReturn

MAX_DEPTH = 200
MAX_CANDIDATES = 200


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a valid JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):
        raise ValueError(f"{text[:20]} is out of range")
    return value


_INF = float("inf")
# json.loads(..., parse_constant=...) builds a new decoder per call; one shared decoder keeps the
# fast path at C speed and refuses NaN/Infinity (and 1e999) like the lenient reader does.
DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


class LenientError(Exception):
    """The text at ``pos`` cannot be read as JSON, even leniently."""

    def __init__(self, pos: int, reason: str, *, fatal: bool = False) -> None:
        super().__init__(reason)
        self.pos = pos
        self.start = pos  # where the attempt began; scan() fills it in
        self.reason = reason
        self.fatal = fatal  # no other start can do better (nesting too deep): stop scanning


class TooMessy(Exception):
    """Scanning gave up: the text is too malformed (or too deep) to read in linear time."""

    def __init__(self, reason: str = "the output is too malformed to read") -> None:
        super().__init__(reason)
        self.reason = reason


# Plain slotted classes, not dataclasses: generating a dataclass costs ~0.3 ms of import time each.


class Parsed:
    """One JSON value read from the text.

    ``truncated`` is set when the text ended inside the value. Nothing is dropped then: every container
    the end of the text left open is an :class:`OpenDict` or :class:`OpenList`, and the scalar it cut is
    a :class:`Cut`, so that the schema can decide what may be kept (see ``_coerce.Shape.settle``).
    """

    __slots__ = ("value", "start", "end", "truncated")

    def __init__(self, value: Any, start: int, end: int, truncated: bool = False) -> None:
        self.value, self.start, self.end = value, start, end
        self.truncated = truncated

    def __repr__(self) -> str:
        return f"Parsed({self.value!r}, {self.start}, {self.end}, truncated={self.truncated})"


class Cut:
    """A scalar the end of the text cut off: ``"I added 1 and`` or ``2`` (which may have been ``25``).

    ``text`` is what was read of it, or None when nothing was (``"note":`` at the very end).
    Immutable, so copies of a value share it.
    """

    __slots__ = ("text",)

    def __init__(self, text: str | None = None) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Cut({self.text!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> Cut:
        return self


class OpenDict(dict[str, Any]):
    """An object the end of the text left open: more members could have followed."""

    __slots__ = ()


class OpenList(list[Any]):
    """An array the end of the text left open: more items could have followed."""

    __slots__ = ()


_UNFINISHED = (Cut, OpenDict, OpenList)


def unfinished(value: Any) -> bool:
    """Whether the end of the text cut ``value`` (a closed value never holds an unfinished one)."""
    return isinstance(value, _UNFINISHED)


def holds_unfinished(value: Any) -> bool:
    """Whether ``value`` or anything inside it is unfinished (a deep check, iterative)."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, _UNFINISHED):
            return True
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return False


def finished_part(value: Any) -> Any:
    """``value`` without what the end of the text cut: the members and items it left unfinished.

    Only for telling what a failed candidate was meant as (a copy of the answer cut off by max tokens
    is the same step); never for an answer.
    """
    if isinstance(value, list):
        return [finished_part(v) if isinstance(v, dict) else v for v in value if not isinstance(v, Cut | OpenList)]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not unfinished(v)}
    return value


_QUOTES = {
    '"': '"',
    "'": "'",
    "\u201c": "\u201d\u201c",
    "\u201d": "\u201d\u201c",
    "\u2018": "\u2019\u2018",
    "\u2019": "\u2019\u2018",
}


class _Patterns:
    """Every regex of this module, compiled on first use (then a plain instance attribute): compiling
    them all costs ~1.5 ms, paid at import by every process, while clean JSON needs none of them."""

    # Scanning: only braces that can start a value; prose and code braces ("{{", "{\n{") are skipped.
    start = cached_property(
        lambda _: re.compile(
            r"""\{(?=\s*(?:["'\u201c\u201d\u2018\u2019}\w$@#]|//|/\*|```|\Z))"""
            r"""|\[(?=\s*(?:["'\u201c\u201d\u2018\u2019\]\[{\w$@#+\-.]|//|/\*|```|\Z))"""
        )
    )
    # Answers written without JSON.
    call = cached_property(lambda _: re.compile(r"\b([A-Za-z_][\w.]*)\(([^()]*)\)"))
    fence_line = cached_property(lambda _: re.compile(r"^[ \t]*```.*$", re.M))
    mapping_line = cached_property(lambda _: re.compile(r"[A-Za-z_\"'][\w\"' -]*:"))
    # The tolerant reader.
    ws = cached_property(lambda _: re.compile(r"(?:[\s\ufeff]+|//[^\n]*|/\*.*?(?:\*/|\Z)|#[^\n]*)*", re.S))
    number = cached_property(lambda _: re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"))
    number_tail = cached_property(lambda _: re.compile(r"[\d.eE+\-]*"))
    word = cached_property(lambda _: re.compile(r"[-+]?[A-Za-z_$@][\w$@\-.]*"))
    key_word = cached_property(lambda _: re.compile(r"[A-Za-z_$@\d][\w$@\-.]*"))
    # "Full name: ...": a key of a few words, only where a colon follows on the same line.
    spaced_key = cached_property(lambda _: re.compile(r"[^\W\d][\w$@\-.]*(?:[ \t]+[\w$@\-.]+){1,4}(?=[ \t]*[:=])"))
    # Where an unquoted member value goes on past its first word: the next chunk of the line.
    phrase_chunk = cached_property(lambda _: re.compile(r"([ \t]*)([^\s,}\]]+)"))
    # A key after a forgotten comma ("name: John age: 5"); "http://" is no key.
    key_ahead = cached_property(
        lambda _: re.compile(r"""(?:[A-Za-z_$@][\w$@\-.]*|"[^"\n]*"|'[^'\n]*')[ \t]*[:=](?![/\\=])""")
    )
    # 12,111 or -2,000.00 as a member value; ",111" cannot be a key when no colon follows it.
    thousands = cached_property(
        lambda _: re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d.])(?!,\d)(?![ \t]*[:=])")
    )
    # "a": 12, at the very end: 12 may go on as 12,345.
    thousands_cut = cached_property(lambda _: re.compile(r"(?:,\d{3})*,\d{0,3}\Z"))
    blank_tail = cached_property(lambda _: re.compile(r"[ \t]*\Z"))
    thousands_head = cached_property(lambda _: re.compile(r"[-+]?\d{1,3}(?:,\d{3})*"))

    stops = cached_property(lambda _: {q: re.compile("[\\\\" + re.escape(end) + "]") for q, end in _QUOTES.items()})
    triple_stops = cached_property(lambda _: {q * 3: re.compile(r"\\|" + q * 3) for q in "\"'"})


_RE = _Patterns()


# --- scanning a region --------------------------------------------------------------------------

_FAST_OK = frozenset(' \t\r\n"{}[]-0123456789tfn')
# A failed C decode formats an error message that counts lines from the start of the text; a few of
# them are cheap, one per brace of a long garbage text would be quadratic.
_FAST_FAILURES = 8
_MAX_FAILURES = 4096


def scan(text: str) -> tuple[list[Parsed], list[LenientError]]:
    """Every top-level JSON object or array in ``text``, in order, plus why other starts failed.

    Raises :class:`TooMessy` rather than silently stop early: an answer could hide further on.
    """
    found: list[Parsed] = []
    errors: list[LenientError] = []
    spent = 0
    budget = 20 * len(text) + 20_000
    fast_failures = 0
    pos = 0
    search = _RE.start.search
    while True:
        m = search(text, pos)
        if m is None:
            return found, errors
        if len(found) >= MAX_CANDIDATES or len(errors) >= _MAX_FAILURES or spent > budget:
            raise TooMessy
        i = m.start()
        if fast_failures < _FAST_FAILURES and text[i + 1 : i + 2] in _FAST_OK:
            try:
                value, end = DECODER.raw_decode(text, i)
            except (ValueError, RecursionError):
                fast_failures += 1
            else:
                found.append(Parsed(value, i, end))
                pos = end
                continue
        try:
            parsed = parse_at(text, i)
        except LenientError as err:
            if err.fatal:
                raise TooMessy(f"the JSON is {err.reason}") from None
            err.start = i
            errors.append(err)
            spent += err.pos - i + 1
            pos = i + 1
            continue
        if parsed.value or not parsed.truncated:  # a lone "{" (or '{"ke') at the end says nothing
            found.append(parsed)
        pos = max(parsed.end, i + 1)


def fallback_values(text: str) -> list[Parsed]:
    """Answers written without JSON: ``add(a=1, b=2)`` (Gemma's tool_code) or flat ``key: value`` lines."""
    calls: list[Parsed] = []
    for m in _RE.call.finditer(text):
        try:
            args = parse_at("{" + m.group(2) + "}", 0)
        except LenientError:
            continue
        if not args.truncated:
            name = m.group(1).rsplit(".", 1)[-1]
            calls.append(Parsed({"name": name, "arguments": args.value}, m.start(), m.end()))
    if calls:
        return calls
    body = _RE.fence_line.sub("", text).strip()
    if not _RE.mapping_line.match(body):
        return []
    wrapped = "{" + body + "\n}"
    try:
        parsed = parse_at(wrapped, 0, lines=True)
    except LenientError:
        return []
    return [parsed] if parsed.end == len(wrapped) and not parsed.truncated else []


def line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


# --- the tolerant reader ------------------------------------------------------------------------

_WORDS: dict[str, Any] = {
    "true": True, "false": False, "null": None,
    "True": True, "False": False, "None": None, "undefined": None,
}  # fmt: skip
_NOT_NUMBERS = frozenset({"NaN", "-NaN", "+NaN", "Infinity", "-Infinity", "+Infinity", "inf", "-inf"})
_ESCAPES = {
    '"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "'": "'",
    "\u201c": "\u201c", "\u201d": "\u201d", "\u2018": "\u2018", "\u2019": "\u2019",
}  # fmt: skip
_HEX_ESCAPES = {"u": 4, "x": 2, "U": 8}
_TRIPLES = {'"': '"""', "'": "'''"}
_AFTER_STRING = frozenset(",:}]")
_FENCE = "```"

# Reader states: what the next token must be.
_VALUE, _ELEMENT, _KEY, _COLON, _NEXT = range(5)


class _Frame:
    __slots__ = ("container", "key")

    def __init__(self, container: dict[str, Any] | list[Any]) -> None:
        self.container = container
        self.key: str | None = None


class _Incomplete(Exception):
    """The text ended inside a scalar; ``text`` is what was read of it when it is a quoted string (a
    word or number cut short says nothing yet: ``n`` may be ``null``, ``2`` may be ``25``)."""

    def __init__(self, text: str | None = None) -> None:
        super().__init__(text)
        self.text = text


def parse_at(s: str, start: int, *, lines: bool = False) -> Parsed:
    """Read one value starting at ``s[start]`` leniently; raise :class:`LenientError` if impossible.

    ``lines``: the text is ``key: value`` lines wrapped in braces by :func:`fallback_values`, where a
    quoted value may be followed by a remark (``name: "Ada" is her name``).
    """
    stack: list[_Frame] = []
    state = _VALUE
    i = start
    n = len(s)
    skip = _RE.ws.match
    while True:
        i = skip(s, i).end()  # type: ignore[union-attr]  # the pattern matches the empty string
        if i >= n or s.startswith(_FENCE, i):
            return _close_truncated(stack, start, i, None)
        c = s[i]
        if state == _COLON:
            if c not in ":=":
                raise LenientError(i, f"expected ':' after key {stack[-1].key!r}")
            i += 1
            state = _VALUE
            continue
        if state == _NEXT:
            state, i = _after_value(stack, s, i, c)
            continue
        if state == _KEY:
            if c == "}":
                value: Any = stack.pop().container
                i += 1
            else:
                try:
                    key, i = _read_key(s, i, c)
                except _Incomplete:
                    return _close_truncated(stack, start, n, None)  # a key cut off names nothing
                stack[-1].key = key
                state = _COLON
                continue
        elif c == "{" or c == "[":
            if len(stack) >= MAX_DEPTH:
                raise LenientError(i, f"nested deeper than {MAX_DEPTH} levels", fatal=True)
            stack.append(_Frame({} if c == "{" else []))
            state = _KEY if c == "{" else _ELEMENT
            i += 1
            continue
        elif c == "]" and state == _ELEMENT and stack and isinstance(stack[-1].container, list):
            value = stack.pop().container
            i += 1
        else:
            try:
                # _VALUE with an open container: after a key's colon, an object member's value.
                member = state == _VALUE and bool(stack)
                value, i = _read_member_value(s, i, c, lines) if member else _read_scalar(s, i, c)
            except _Incomplete as cut:
                return _close_truncated(stack, start, n, Cut(cut.text))
        if not stack:
            return Parsed(value, start, i)
        top = stack[-1]
        if isinstance(top.container, dict):
            top.container[top.key or ""] = value
            top.key = None
        else:
            top.container.append(value)
        state = _NEXT


def _after_value(stack: list[_Frame], s: str, i: int, c: str) -> tuple[int, int]:
    """Handle what follows a value inside a container; return the new state and position."""
    top = stack[-1]
    is_obj = isinstance(top.container, dict)
    if c == ",":
        return (_KEY if is_obj else _ELEMENT), i + 1
    if c == ("}" if is_obj else "]"):
        # Reuse the _KEY / _ELEMENT close handling so closing lives in one place.
        return (_KEY if is_obj else _ELEMENT), i
    # Models drop commas between members, mostly at line ends; a value start here means one.
    if is_obj and (c in _QUOTES or _RE.key_word.match(s, i)):
        return _KEY, i
    if not is_obj and (c in _QUOTES or c in "{[-+." or c.isalnum()):
        return _ELEMENT, i
    expected = "',' or '}'" if is_obj else "',' or ']'"
    raise LenientError(i, f"expected {expected}, found {s[i : i + 12]!r}")


def _close_truncated(stack: list[_Frame], start: int, end: int, cut: Cut | None) -> Parsed:
    """The text ended inside a value: mark every open container and the cut scalar, drop nothing.

    What to keep is the schema's call (a model's missing fields may be optional, a list's missing
    items never are), made after coercion by ``Shape.settle``.
    """
    if not stack:
        raise LenientError(end, "the text ends before the value is complete")
    value: Any = cut
    for frame in reversed(stack):
        opened: OpenDict | OpenList
        if isinstance(frame.container, dict):
            opened = OpenDict(frame.container)
            if frame.key is not None:  # "note": at the very end: a member whose value never started
                opened[frame.key] = value if value is not None else Cut()
        else:
            opened = OpenList(frame.container)
            if value is not None:
                opened.append(value)
        value = opened
    return Parsed(value, start, end, truncated=True)


def _read_key(s: str, i: int, c: str) -> tuple[str, int]:
    if c in _QUOTES:
        key, i, closed = _read_string(s, i)
        if not closed:
            raise _Incomplete(key)
        return key, i
    m = _RE.key_word.match(s, i)
    if m is None:
        raise LenientError(i, f"expected a key or '}}', found {s[i : i + 12]!r}")
    if m.end() < len(s) and s[m.end()] in " \t":
        m = _RE.spaced_key.match(s, i) or m
    if m.end() >= len(s):
        raise _Incomplete
    return m.group(), m.end()


def _read_member_value(s: str, i: int, c: str, lines: bool) -> tuple[Any, int]:
    """An object member's value: a scalar as :func:`_read_scalar` reads it, or, written without
    quotes, the rest of its line as people write it (``John Smith``, ``**high**``, ``5 km``, ``1/4``,
    ``12,111``) up to a comma, a closing bracket, a comment or the next key."""
    if c in _QUOTES:
        return _read_line_string(s, i) if lines else _read_scalar(s, i, c)
    m = _RE.thousands.match(s, i)
    if m is not None:
        value: Any = m.group()
        end = m.end()
        if end >= len(s):
            raise _Incomplete  # 12,345 may go on as 12,345,678
    elif c == "*" or (c.isalpha() and not c.isascii()):
        value, end = _NO_WORD, i  # **high** or Zoë: no first word _read_scalar knows
    else:
        value, end = _read_scalar(s, i, c)
    if _RE.thousands_cut.match(s, end) and _RE.thousands_head.fullmatch(s, i, end):
        raise _Incomplete  # "a": 12, at the very end: 12 may go on as 12,345
    phrase_end = _phrase_end(s, end)
    words = phrase_end > end or value is _NO_WORD or (isinstance(value, str) and m is None)
    if words and _RE.blank_tail.match(s, phrase_end):  # a match, not a slice: the text may be 10 MB
        raise _Incomplete  # words at the very end: the next one may have been cut
    if phrase_end == end and value is not _NO_WORD:
        return value, end
    if phrase_end == i:
        raise LenientError(i, f"unexpected character {c!r}")
    return _unemphasized(s[i:phrase_end]), phrase_end


_NO_WORD: Any = object()


def _phrase_end(s: str, j: int) -> int:
    """Where an unquoted value that may go on past ``s[j]`` ends (see :func:`_read_member_value`)."""
    pos = j
    chunk = _RE.phrase_chunk.match
    while True:
        m = chunk(s, pos)
        if m is None:
            return pos
        gap, word = m.group(1), m.group(2)
        if word.startswith(_FENCE) or (gap and word.startswith(("//", "/*", "#"))):
            return pos  # a comment or the closing fence
        if gap and _RE.key_ahead.match(s, m.start(2)):
            return pos  # the next key, after a forgotten comma
        pos = m.end()


def _unemphasized(text: str) -> str:
    """``**John**`` -> ``John``: markdown emphasis around a whole unquoted value is markup, not text."""
    for mark in ("***", "**", "*", "__", "_"):
        inner = text[len(mark) : -len(mark)]
        if len(text) > 2 * len(mark) and text.startswith(mark) and text.endswith(mark) and mark not in inner:
            return inner
    return text


def _read_line_string(s: str, i: int) -> tuple[str, int]:
    """A quoted value of a ``key: value`` line, which may be followed by a remark to the line's end."""
    text, end, closed = _read_string(s, i, remarks=True)
    if not closed:
        raise _Incomplete(text)
    return text, end


def _read_scalar(s: str, i: int, c: str) -> tuple[Any, int]:
    """A string, number or literal at ``s[i]``; :class:`_Incomplete` if the text may have cut it."""
    if c in _QUOTES:
        text, i, closed = _read_string(s, i)
        if not closed:
            raise _Incomplete(text)
        return text, i
    m = _RE.word.match(s, i)
    if m is not None:
        word = m.group()
        if word in _NOT_NUMBERS:
            raise LenientError(i, f"{word} is not a valid JSON value")
        if m.end() >= len(s):
            raise _Incomplete
        if word in _WORDS:
            return _WORDS[word], m.end()
        if word[0] in "-+":
            raise LenientError(i, f"unexpected {word!r}")
        return word, m.end()  # a bare word: YAML-ish output such as {intent: add}
    m = _RE.number.match(s, i)
    # "100" at the very end may have been "1000", "1e" was "1e+16": only a character that cannot
    # continue the number proves it complete.
    if _RE.number_tail.match(s, m.end() if m else i).end() >= len(s):  # type: ignore[union-attr]
        raise _Incomplete
    if m is None:
        raise LenientError(i, f"unexpected character {c!r}")
    return _number(m.group(), i), m.end()


def _number(text: str, pos: int) -> int | float:
    try:
        if "." in text or "e" in text or "E" in text:  # no generator: a million numbers pass here
            value = float(text)
            if value in (_INF, -_INF):
                raise LenientError(pos, f"number {text[:20]!r} is out of range")
            return value
        return int(text)
    except ValueError:  # more digits than int() accepts
        raise LenientError(pos, "number has too many digits") from None


def _read_string(s: str, i: int, *, remarks: bool = False) -> tuple[str, int, bool]:
    """Read a quoted string starting at ``s[i]``: (text, end, closed).

    ``remarks``: a quote followed by plain text to the end of its line (no quote, comma or bracket in
    it) closes the string, and that text is skipped as a remark (``name: "Ada" is her name``).
    """
    if s.startswith(_TRIPLES.get(s[i], "\0"), i):
        return _read_triple(s, i)
    n = len(s)
    stop = _RE.stops[s[i]]
    parts: list[str] = []
    j = i + 1
    while True:
        m = stop.search(s, j)
        if m is None:
            parts.append(s[j:])
            return "".join(parts), n, False
        k = m.start()
        parts.append(s[j:k])
        if s[k] == "\\":
            if _escape_cut(s, k):
                return "".join(parts), n, False
            text, j = _escape(s, k)
            parts.append(text)
            continue
        if _closes_string(s, k + 1):
            return "".join(parts), k + 1, True
        if remarks:
            line_end = _remark_end(s, k + 1, s[i])
            if line_end is not None:
                return "".join(parts), line_end, True
        # An unescaped quote inside the text (`"He said "hi" to me"`): keep it as a character.
        parts.append(s[k])
        j = k + 1


def _read_triple(s: str, i: int) -> tuple[str, int, bool]:
    """A Python triple-quoted string, as models write code: it ends at the first unescaped run of three
    quotes, or at the last three of a longer run (the content itself may end in a quote)."""
    n = len(s)
    triple = s[i : i + 3]
    stop = _RE.triple_stops[triple]
    parts: list[str] = []
    j = i + 3
    while True:
        m = stop.search(s, j)
        if m is None:
            parts.append(s[j:])
            return "".join(parts), n, False
        k = m.start()
        parts.append(s[j:k])
        if s[k] == "\\":
            if _escape_cut(s, k):
                return "".join(parts), n, False
            text, j = _escape(s, k)
            parts.append(text)
            continue
        end = k + 3
        while end < n and s[end] == triple[0]:
            end += 1
        parts.append(s[k : end - 3])
        return "".join(parts), end, True


def _remark_end(s: str, j: int, quote: str) -> int | None:
    """The end of the line after ``s[j]`` if the rest of it is a remark after a closed value."""
    line_end = s.find("\n", j)
    if line_end == -1:
        line_end = len(s)
    rest = s[j:line_end]
    if rest[:1] not in (" ", "\t") or any(ch in rest for ch in _QUOTES[quote] + ",}]"):
        return None
    return line_end


def _closes_string(s: str, j: int) -> bool:
    n = len(s)
    k = j
    while k < n and s[k] in " \t\r\n":
        k += 1
    if k >= n or s[k] in _AFTER_STRING or s.startswith(_FENCE, k) or s.startswith("//", k):
        return True
    # A line break after the quote: a comma forgotten at the end of a line, not a quote in the text.
    return "\n" in s[j:k]


def _escape_cut(s: str, k: int) -> bool:
    """Whether the end of the text cuts the escape at ``s[k]`` (a backslash): four hex digits of which
    two were written, or the first half of a surrogate pair whose second half may follow."""
    n = len(s)
    if k + 1 >= n:
        return True
    width = _HEX_ESCAPES.get(s[k + 1], 0)
    if k + 2 + width > n:
        return all(ch in _HEX_DIGITS for ch in s[k + 2 :])  # what there is of it is hex
    if s[k + 1] == "u" and k + 12 > n and "\\u".startswith(s[k + 6 : k + 8]):
        code = _hex(s, k + 2, 4)
        return code is not None and 0xD800 <= code < 0xDC00
    return False


def _escape(s: str, k: int) -> tuple[str, int]:
    """Decode the escape at ``s[k] == '\\'``; return its text and the index after it."""
    c = s[k + 1]
    width = _HEX_ESCAPES.get(c, 0)
    code = _hex(s, k + 2, width) if width else None
    if code is None:
        simple = _ESCAPES.get(c)
        # An unknown escape (a Windows path, a regex) keeps its backslash.
        return (simple if simple is not None else "\\" + c), k + 2
    if c == "u" and 0xD800 <= code < 0xDC00 and s.startswith("\\u", k + 6):
        low = _hex(s, k + 8, 4)
        if low is not None and 0xDC00 <= low < 0xE000:
            return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), k + 12
    # \xNN and \UNNNNNNNN come from models writing Python literals; a lone surrogate is no character.
    if code > 0x10FFFF or 0xD800 <= code < 0xE000:
        return "\ufffd", k + 2 + width
    return chr(code), k + 2 + width


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _hex(s: str, i: int, width: int) -> int | None:
    digits = s[i : i + width]
    if len(digits) != width or not all(ch in _HEX_DIGITS for ch in digits):
        return None
    return int(digits, 16)
