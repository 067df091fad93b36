"""Thread stores: where threads live between steps, processes and deployments.

``open_store(url)`` picks a backend from configuration, so the same agent code runs on an embedded
SQLite file or (later) PostgreSQL without changes.
"""

from __future__ import annotations

from twelvefactor.errors import StoreCorruptionError, UserError
from twelvefactor.store.base import ThreadStore, ThreadSummary
from twelvefactor.store.memory import MemoryStore
from twelvefactor.store.sqlite import SQLiteStore

__all__ = [
    "MemoryStore",
    "SQLiteStore",
    "StoreCorruptionError",
    "ThreadStore",
    "ThreadSummary",
    "open_store",
]

_FORMS = (
    "'sqlite:///relative/path.db', 'sqlite:////absolute/path.db', 'sqlite:///:memory:', 'memory://' or a bare file path"
)


def open_store(url: str) -> ThreadStore:
    """Open the store a URL names.

    Accepted: ``sqlite:///path.db`` (three slashes, then the path: ``sqlite:////abs/path.db`` is
    absolute), ``sqlite:///:memory:``, ``memory://``, or a bare path to a SQLite file.
    """
    if url == "memory://":
        return MemoryStore()
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and "?" not in path:
            return SQLiteStore(path)
    elif "://" not in url and url.strip():
        return SQLiteStore(url)
    raise UserError(f"cannot open a thread store from {url!r}: use {_FORMS}")
