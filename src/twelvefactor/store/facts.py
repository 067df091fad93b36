"""The memory backend that lives in a thread store's own database: one database for threads and facts.

``memory_backend_for(store)`` is how the server and your code reach the same facts: a SQLiteStore's file (its
own tables beside the threads), a PostgresStore's database (on the store's connection pool), or for a
MemoryStore and a ``:memory:`` SQLite database (which no second connection can see) facts in process memory,
one backend per store object so that every caller in the process shares them.
"""

from __future__ import annotations

import threading
import weakref

from twelvefactor.errors import UserError
from twelvefactor.memory import InMemoryBackend, MemoryBackend, PostgresMemoryBackend, SQLiteMemoryBackend
from twelvefactor.store.memory import MemoryStore
from twelvefactor.store.sqlite import SQLiteStore

__all__ = ["memory_backend_for"]

# Facts that live only in this process, by the store they belong to. The values never refer to their store,
# so an entry goes with its store.
_in_process: weakref.WeakKeyDictionary[object, InMemoryBackend] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def memory_backend_for(store: object) -> MemoryBackend:
    """The memory backend kept in ``store``'s database (for an in-memory store, the same object on every call)."""
    from twelvefactor.store.postgres import PostgresStore

    if isinstance(store, PostgresStore):
        return PostgresMemoryBackend(store)
    if isinstance(store, SQLiteStore) and not (store.path == ":memory:" or store.path.startswith("file::memory:")):
        return SQLiteMemoryBackend(store.path, busy_timeout_s=store.busy_timeout_s)
    if not isinstance(store, SQLiteStore | MemoryStore):
        raise UserError(
            f"no memory backend for a {type(store).__name__}: pass Memory a backend yourself (InMemoryBackend,"
            " SQLiteMemoryBackend(path) or PostgresMemoryBackend(store))"
        )
    with _lock:
        backend = _in_process.get(store)
        if backend is None:
            backend = _in_process[store] = InMemoryBackend()
        return backend
