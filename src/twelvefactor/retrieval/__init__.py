"""Retrieval as a context source: document collections searched by BM25 (SQLite FTS5, PostgreSQL full
text), by vectors, or both fused; found passages enter a thread as events with their sources.

    from twelvefactor.retrieval import Collection, Document, SQLiteIndex, prefetch

    docs = Collection("handbook", SQLiteIndex("app.db"))
    docs.add([Document(id="refunds.md", text=open("refunds.md").read())])
    agent = Agent("support", tools=[docs.tool()], prefetch=[prefetch(docs)])

``PostgresIndex`` (the ``postgres`` extra) and vectors (``SQLiteIndex(embed=wordllama_embedder())``,
the ``retrieval-vector`` extra) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twelvefactor.retrieval.collection import Backend, Collection, SearchMode, first_user_message, prefetch
from twelvefactor.retrieval.documents import Document, Passage, chunk_text, passages_of
from twelvefactor.retrieval.sqlite import SQLiteIndex
from twelvefactor.retrieval.vectors import Embed, fuse, wordllama_embedder

if TYPE_CHECKING:
    from twelvefactor.retrieval.postgres import PostgresIndex


def __getattr__(name: str) -> Any:
    if name == "PostgresIndex":  # psycopg loads only for those who use PostgreSQL
        from twelvefactor.retrieval.postgres import PostgresIndex

        return PostgresIndex
    raise AttributeError(f"module 'twelvefactor.retrieval' has no attribute {name!r}")


__all__ = [
    "Backend",
    "Collection",
    "Document",
    "Embed",
    "Passage",
    "PostgresIndex",
    "SQLiteIndex",
    "SearchMode",
    "chunk_text",
    "first_user_message",
    "fuse",
    "passages_of",
    "prefetch",
    "wordllama_embedder",
]
