"""Is the store usable for writing? ``/healthz`` asks, and ``create_app`` refuses to start when it is not.

A read-only database file (or directory, or a full disk) opens and reads fine, so a server on one
would report healthy while every write fails. The probe writes: for SQLite, ``BEGIN IMMEDIATE`` (takes
the write lock), rewrite ``PRAGMA user_version`` with its own value (touches the file), ``ROLLBACK``.
A store of another kind can offer a ``check_writable()`` method; memory stores are always writable.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from twelvefactor.errors import StoreNotWritable, UserError
from twelvefactor.store.sqlite import SQLiteStore

__all__ = ["StoreNotWritable", "check_writable", "innermost"]


def innermost(store: Any) -> Any:
    """The store under any wrappers (NotifyingStore and its like keep theirs in ``.inner``)."""
    while hasattr(store, "inner"):
        store = store.inner
    return store


def check_writable(store: Any) -> None:
    """Raise :class:`StoreNotWritable` (one line, saying what to check) unless ``store`` can be written now."""
    inner = innermost(store)
    own_check = getattr(inner, "check_writable", None)
    try:
        if callable(own_check):
            own_check()
        elif isinstance(inner, SQLiteStore):
            _probe_sqlite(inner)
    except (sqlite3.Error, OSError, UserError) as exc:
        where = getattr(inner, "path", type(inner).__name__)
        raise StoreNotWritable(
            f"the database {where!r} is not writable ({' '.join(str(exc).split())}): check the permissions of"
            " the file and its directory, free disk space, and that no other program holds it read-only"
        ) from exc


def _probe_sqlite(store: SQLiteStore) -> None:
    # The store's own connection and lock: the probe sees exactly what the store's writes would.
    with store._lock:
        conn = store._open_conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            conn.execute(f"PRAGMA user_version = {int(version)}")
        finally:
            conn.execute("ROLLBACK")
