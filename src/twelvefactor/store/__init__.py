"""Thread stores: where threads live between steps, processes and deployments.

``open_store(url)`` picks a backend from configuration, so the same agent code runs on an embedded
SQLite file or on PostgreSQL without changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twelvefactor.errors import StoreCorruptionError, UserError
from twelvefactor.store.base import ThreadStore, ThreadSummary
from twelvefactor.store.facts import memory_backend_for
from twelvefactor.store.memory import MemoryStore
from twelvefactor.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from twelvefactor.store.postgres import PostgresStore

__all__ = [
    "MemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "StoreCorruptionError",
    "ThreadStore",
    "ThreadSummary",
    "memory_backend_for",
    "open_store",
]

_FORMS = (
    "'sqlite:///relative/path.db', 'sqlite:////absolute/path.db', 'sqlite:///:memory:', 'memory://',"
    " 'postgresql://user:password@host:port/dbname' or a bare file path"
)


def __getattr__(name: str) -> Any:
    # PostgresStore's module (and psycopg, which it imports only when a store opens) loads on first use.
    if name == "PostgresStore":
        from twelvefactor.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'twelvefactor.store' has no attribute {name!r}")


def open_store(url: str) -> ThreadStore:
    """Open the store a URL names.

    Accepted: ``sqlite:///path.db`` (three slashes, then the path: ``sqlite:////abs/path.db`` is
    absolute), ``sqlite:///:memory:``, ``memory://``, ``postgresql://...`` or ``postgres://...`` (a
    libpq connection URL; needs the ``postgres`` extra), or a bare path to a SQLite file.
    """
    if url == "memory://":
        return MemoryStore()
    if url.startswith(("postgresql://", "postgres://")):
        from twelvefactor.store.postgres import PostgresStore

        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and "?" not in path:
            return SQLiteStore(path)
    elif "://" not in url and url.strip():
        return SQLiteStore(url)
    raise UserError(f"cannot open a thread store from {url!r}: use {_FORMS}")
