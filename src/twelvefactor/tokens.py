"""Counting tokens offline: the one estimator budgets use, per model family (factor 3).

A model that can count its own tokens exactly says so with ``count_tokens(text)`` (the local llama.cpp
model does, with its own tokenizer); every other model gets a calibrated estimate for its family, read
off the model's name. The estimate splits text the way byte-pair tokenizers pre-split it (words,
numbers, runs of punctuation, line breaks) and charges each piece by the family's calibration, so prose,
JSON and XML blocks are all counted closely enough to keep a budget, without any vocabulary file.
Every model call records this count beside the provider's (``ModelCall.estimated_input_tokens``), so
the error is visible per call.

No tokenizer is downloaded: OpenAI's and Anthropic's vocabularies ship in no maintained package (tiktoken
fetches its files at first use), so those families are estimated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

__all__ = ["Family", "TokenCounter", "count_tokens", "counter_for", "estimate_tokens", "family_of"]


@runtime_checkable
class TokenCounter(Protocol):
    """Anything that counts the tokens of a text: a model with its own tokenizer, or a :class:`Family`."""

    def count_tokens(self, text: str) -> int: ...


# What byte-pair tokenizers split first: letters (with the space before them), digits, punctuation runs,
# line breaks. Each piece then costs what the family's calibration says.
_PIECES = re.compile(r" ?[^\W\d_]+| ?\d+| ?[^\w\s]+|\s+|_+")


@dataclass(frozen=True)
class Family:
    """A calibrated estimate for one tokenizer family.

    ``word_chars``: letters one token covers in a long word (short words are one token);
    ``digits``: digits one token covers (tokenizers group 1 to 3); ``punct_chars``: punctuation
    characters one token covers in a run (``"},``, ``</``).
    """

    name: str
    word_chars: float = 6.0
    digits: int = 3
    punct_chars: float = 1.6

    def count_tokens(self, text: str) -> int:
        return _estimate(text, self.word_chars, self.digits, self.punct_chars)


@lru_cache(maxsize=64)
def _charge(kind: str, length: int, word_chars: float, digits: int, punct_chars: float) -> int:
    if kind == "w":
        return 1 if length <= word_chars + 1 else 1 + int((length - 1) / word_chars)
    if kind == "d":
        return -(-length // digits)
    if kind == "p":
        return max(1, round(length / punct_chars))
    return 1


def _estimate(text: str, word_chars: float, digits: int, punct_chars: float) -> int:
    if not text:
        return 0
    total = 0
    for piece in _PIECES.findall(text):
        head = piece.lstrip(" ")
        if not head:
            # spaces and tabs run into the next piece; a line break (or a run of them) is one token
            total += 1 if "\n" in piece else (len(piece) // 4)
            continue
        first = head[0]
        if first.isalpha():
            total += _charge("w", len(head), word_chars, digits, punct_chars)
        elif first.isdigit():
            total += _charge("d", len(head), word_chars, digits, punct_chars)
        elif first.isspace():
            total += 1
        else:
            total += _charge("p", len(head), word_chars, digits, punct_chars)
    return total


# "llama" is calibrated against the local model's own tokenizer (SmolLM2's, through llama.cpp) on
# context-window text: XML blocks, JSON lines, prose, code and a whole default prompt all land within 7%
# (tests/test_tokens.py holds the bound). OpenAI's and Anthropic's vocabularies cannot be read offline,
# so their figures start from llama's and follow what is published of them (o200k groups digits in
# threes and covers longer words); each call's provider count beside the estimate shows their error.
FAMILIES: dict[str, Family] = {
    "llama": Family("llama", word_chars=6.0, digits=1, punct_chars=2.2),
    "openai": Family("openai", word_chars=7.0, digits=3, punct_chars=2.2),
    "anthropic": Family("anthropic", word_chars=6.0, digits=3, punct_chars=2.0),
    "generic": Family("generic", word_chars=6.0, digits=1, punct_chars=2.2),
}
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("openai", "openai"),
    ("gpt", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("anthropic", "anthropic"),
    ("claude", "anthropic"),
    ("local", "llama"),
    ("llama", "llama"),
    ("smollm", "llama"),
    ("qwen", "llama"),
)

DEFAULT_FAMILY = FAMILIES["generic"]


@lru_cache(maxsize=256)
def family_of(model_name: str | None) -> Family:
    """The estimate for a model name (``"openai:gpt-4o"``, ``"claude-…"``, ``"local:smollm2"``): generic if unknown."""
    name = (model_name or "").lower()
    for prefix, family in _PREFIXES:
        if name.startswith(prefix):
            return FAMILIES[family]
    return DEFAULT_FAMILY


def counter_for(model: object | None) -> TokenCounter:
    """How to count tokens for ``model``: its own ``count_tokens`` if it has one, else its family's estimate."""
    if model is not None and callable(getattr(model, "count_tokens", None)):
        return model  # type: ignore[return-value]
    return family_of(getattr(model, "name", None))


def count_tokens(text: str, model: object | None = None) -> int:
    """Tokens of ``text`` for ``model`` (exact where the model can count, else its family's estimate)."""
    return counter_for(model).count_tokens(text)


def estimate_tokens(text: str) -> int:
    """The generic estimate, for code that knows no model (``count_tokens(text, model)`` is closer)."""
    return DEFAULT_FAMILY.count_tokens(text)
