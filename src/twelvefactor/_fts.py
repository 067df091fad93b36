"""Untrusted text (a model's query, a user's message) as a safe SQLite FTS5 query.

FTS5 has its own query language (``NEAR(``, ``*``, ``-``, ``"``, ``:``, ``AND``/``OR``/``NOT``): text passed
to ``MATCH`` as is can fail to parse or mean something else. Here it becomes its words, each quoted as a
string (so none is an operator), joined with ``OR`` so BM25 ranks passages by how many they share.
"""

from __future__ import annotations

import re

MAX_TERMS = 32
_WORD = re.compile(r"\w+")


def fts5_terms(text: str, *, max_terms: int = MAX_TERMS) -> list[str]:
    """The distinct words of ``text`` (lower case, first ``max_terms``), in order."""
    seen: dict[str, None] = {}
    for match in _WORD.finditer(text.lower()):
        seen.setdefault(match.group(), None)
        if len(seen) >= max_terms:
            break
    return list(seen)


def fts5_query(text: str, *, max_terms: int = MAX_TERMS) -> str | None:
    """An FTS5 ``MATCH`` expression for ``text`` (None when it holds no word: match nothing)."""
    terms = fts5_terms(text, max_terms=max_terms)
    return " OR ".join(f'"{term}"' for term in terms) if terms else None
