"""Scalars as people write them: numbers with separators and units, values wrapped in markup, and the
values a reply names in prose.

Schema-free helpers for :mod:`twelvefactor._coerce`: the shapes of numbers, booleans and choices
(enums, literals) call them with what they accept. Every reader here returns ``None`` (or nothing
found) rather than guess: ``12,11`` is no number, ``1/0`` neither, and a prose reply that names two
different values, or negates the one it names (``not TWO``), has no single reading.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any


class _Patterns:
    """Compiled on first use: ``import twelvefactor`` pays nothing for them (see ``_lenient_json``)."""

    # 12,111 / -2,000.00 / 1,234.5e3 / 42 / 42. / .5 ; a currency sign before, one unit word or % after.
    number = cached_property(
        lambda _: re.compile(
            r"(?P<sign>[-+]?)[$€£¥]?[ \t]*"
            r"(?P<digits>\d{1,3}(?:,\d{3})+(?!\d)|\d+(?!,\d)|(?=\.\d))"
            r"(?P<fraction>\.\d*)?(?P<exponent>[eE][-+]?\d+)?"
            r"(?:[ \t]*(?P<unit>%|[^\W\d]{1,20}\.?))?"
        )
    )
    ratio = cached_property(lambda _: re.compile(r"(?P<num>[-+]?\d+)[ \t]*/[ \t]*(?P<den>\d+)"))
    # A number in prose: no letter or digit glued to its left ("v2", "A4"), a whole group of digits.
    prose_number = cached_property(
        lambda _: re.compile(r"(?<![\w.,/])[-+]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:/\d+)?(?![\w/]|[.,]\d)")
    )
    word = cached_property(lambda _: re.compile(r"[^\W_]+"))
    next_word = cached_property(lambda _: re.compile(r"[ \t]*([^\W\d_]+)"))
    camel = cached_property(lambda _: re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+"))
    negation = cached_property(lambda _: re.compile(r"(?:\bnot|n't|\bnever|\bneither|\bnor)\W{0,4}$", re.I))


_RE = _Patterns()

_WRAPPERS = ("***", "**", "__", "*", "_", "`", '"', "'", "\u201c", "\u201d", "\u2018", "\u2019")
_TRAILING = ".!?,;:"
_BOOLS = {"true": True, "false": False, "yes": True, "no": False}
_MULTIPLIERS = frozenset(
    {"k", "m", "b", "bn", "mn", "mm", "mil", "thousand", "million", "billion", "trillion", "hundred", "dozen",
     "lakh", "crore", "thousands", "millions", "billions", "hundreds", "dozens"}
)  # fmt: skip


def clean(text: str) -> str:
    """``"**TWO**."`` -> ``TWO``: whitespace, wrapping markup or quotes and trailing punctuation removed."""
    value = text.strip()
    for _ in range(3):  # `**"TWO"**`: a few layers, never a loop over the text
        before = value
        value = value.rstrip(_TRAILING).strip()
        for mark in _WRAPPERS:
            if len(value) > 2 * len(mark) and value.startswith(mark) and value.endswith(mark):
                value = value[len(mark) : -len(mark)].strip()
                break
        if value == before:
            break
    return value


def read_number(text: str, kind: type) -> int | float | Decimal | None:
    """The number ``text`` writes (``12,111``, ``-2,000.00``, ``1/5``, ``42.``, ``5 km``, ``50%``), as
    ``kind`` (int, float or Decimal), or None when it writes no number or more than one.

    A percent sign is a unit like any other: ``50%`` is 50, as written. An int target accepts a number
    with a zero fraction only (``12.0``); pydantic refuses what is left.
    """
    value = clean(text)
    m = _RE.ratio.fullmatch(value)
    if m is not None:
        den = int(m.group("den"))
        if den == 0:
            return None
        num = int(m.group("num"))
        if kind is Decimal:
            return Decimal(num) / Decimal(den)
        return num // den if kind is int and num % den == 0 else num / den
    m = _RE.number.fullmatch(value)
    if m is None or not (m.group("digits") or m.group("fraction")):
        return None
    if (m.group("unit") or "").rstrip(".").lower() in _MULTIPLIERS:
        return None  # "5 million" is no 5, and "5 m" may be metres or millions
    digits = m.group("sign") + (m.group("digits") or "0").replace(",", "")
    fraction = (m.group("fraction") or "").rstrip(".")
    exponent = m.group("exponent") or ""
    try:
        if kind is Decimal:
            return Decimal(digits + fraction + exponent)
        if kind is int and not exponent and not fraction.strip(".0"):
            return int(digits)
        return float(digits + fraction + exponent)
    except (ValueError, InvalidOperation):  # more digits than int() takes
        return None


def numbers_in(text: str, kind: type) -> Prose:
    """The distinct numbers a prose reply writes (``The total is 12,111 dollars.``)."""
    prose = Prose()
    for m in _RE.prose_number.finditer(text):
        unit = _RE.next_word.match(text, m.end())
        multiplied = unit is not None and unit.group(1).lower() in _MULTIPLIERS  # "5 million"
        written = text[m.start() : unit.end()] if multiplied and unit is not None else m.group()
        number = None if multiplied else read_number(written, kind)
        # A number this reader cannot take (1/0, 5 million) still counts as one more reading, as written.
        prose.add(number if number is not None else written, _negated(text, m.start()))
    return prose


def bools_in(text: str) -> Prose:
    """The distinct booleans a prose reply writes: true/false, yes/no, in any case."""
    prose = Prose()
    for m in _RE.word.finditer(text):
        value = _BOOLS.get(m.group().lower())
        if value is not None:
            prose.add(value, _negated(text, m.start()))
    return prose


class Names:
    """The names of a set of choices, for finding them in prose.

    A name is matched on whole words, in any case and with any separators (``dark blue``, ``Dark-Blue``
    and ``DARK_BLUE`` all name ``DARK_BLUE``), the longest name first where names overlap (``dark blue``
    names ``DARK_BLUE``, not ``DARK``). A one-letter name matches in its own case only.
    """

    __slots__ = ("folded", "prefixes", "longest", "letters")

    def __init__(self, folded: dict[str, Any], names: Iterable[str]) -> None:
        names = list(names)
        self.folded = folded  # name, lower case without separators -> value
        self.prefixes = {key[:k] for key in folded for k in range(1, len(key) + 1)}
        self.longest = max((len(_RE.camel.findall(name)) for name in names), default=1)
        # One-letter names (multiple choice: A, B, C, D) match in their own case only: "a" is a word.
        self.letters = frozenset(name for name in names if len(name) == 1)

    def mentioned(self, text: str) -> Prose:
        prose = Prose()
        words = list(_RE.word.finditer(text))
        k = 0
        while k < len(words):
            found = self._match_at(text, words, k)
            if found is None:
                k += 1
                continue
            value, used = found
            prose.add(value, _negated(text, words[k].start()))
            k += used
        return prose

    def _match_at(self, text: str, words: list[re.Match[str]], k: int) -> tuple[Any, int] | None:
        """The longest name starting at word ``k``, and how many words it spans."""
        key = ""
        best: tuple[Any, int] | None = None
        for used in range(1, min(self.longest, len(words) - k) + 1):
            word = words[k + used - 1]
            if used > 1 and text[words[k + used - 2].end() : word.start()] not in _JOINS:
                break  # "dark. Blue" are two words, not one name
            key += word.group().lower()
            if key not in self.prefixes:
                break
            if key in self.folded and (len(key) > 1 or word.group() in self.letters):
                best = self.folded[key], used
        return best


_JOINS = frozenset({" ", "_", "-", "\t", "  "})


class Prose:
    """The distinct values a prose reply names, in order, and whether any mention was negated."""

    __slots__ = ("values", "negated")

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.negated = False

    def add(self, value: Any, negated: bool) -> None:
        self.negated |= negated
        if not any(value is seen or (type(value) is type(seen) and value == seen) for seen in self.values):
            self.values.append(value)


def _negated(text: str, start: int) -> bool:
    """``not TWO``, ``isn't true``: the words just before a mention deny it."""
    return _RE.negation.search(text, max(0, start - 12), start) is not None
