"""The memory backend that lives in a thread store's own database: one database for threads and facts.

``memory_backend_for(store)`` is how the server and your code get the same facts: a SQLiteStore's file (its
own tables beside the threads), a PostgresStore's database (on the store's connection pool), or for a
MemoryStore and a ``:memory:`` SQLite database (which no second connection can see) facts in process
memory. One backend per store object, so every caller in the process shares it.
"""

from __future__ import annotations

import threading
import weakref

from twelvefactor.errors import UserError
from twelvefactor.memory import InMemoryBackend, MemoryBackend, PostgresMemoryBackend, SQLiteMemoryBackend
from twelvefactor.store.memory import MemoryStore
from twelvefactor.store.sqlite import SQLiteStore

__all__ = ["memory_backend_for"]

_backends: weakref.WeakKeyDictionary[object, MemoryBackend] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def memory_backend_for(store: object) -> MemoryBackend:
    """The memory backend kept in ``store``'s database (the same object on every call for one store)."""
    from twelvefactor.store.postgres import PostgresStore

    if not isinstance(store, PostgresStore | SQLiteStore | MemoryStore):
        raise UserError(
            f"no memory backend for a {type(store).__name__}: pass Memory a backend yourself (InMemoryBackend,"
            " SQLiteMemoryBackend(path) or PostgresMemoryBackend(store))"
        )
    with _lock:
        backend = _backends.get(store)
        if backend is None:
            backend = _backends[store] = _open(store)
        return backend


def _open(store: object) -> MemoryBackend:
    from twelvefactor.store.postgres import PostgresStore

    if isinstance(store, PostgresStore):
        return PostgresMemoryBackend(store)
    if isinstance(store, SQLiteStore):
        private = store.path == ":memory:" or store.path.startswith("file::memory:")
        return InMemoryBackend() if private else SQLiteMemoryBackend(store.path, busy_timeout_s=store.busy_timeout_s)
    return InMemoryBackend()  # a MemoryStore
