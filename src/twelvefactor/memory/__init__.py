"""Memory: facts kept across threads, scoped per user, tenant, agent or globally (context engineering).

A :class:`Memory` is what an agent is given (``Agent(memory=memory, tools=memory.tools())``): a backend
(``InMemoryBackend``; ``SQLiteMemoryBackend`` and ``PostgresMemoryBackend`` in the thread store's own database,
which ``twelvefactor.memory_backend_for(store)`` picks), the scopes a thread reads (``thread_scopes``: the
launcher's ``memory_scope`` events, the agent, ``global``) and the intents the model may use (``remember``,
``recall``, ``forget``). Code writes deterministically with ``Memory.remember`` / ``forget``. What a thread
saw is recorded as its ``memory`` event, so the window is the same on every replay.
"""

from __future__ import annotations

from twelvefactor.memory.facts import (
    GLOBAL,
    MAX_FACT_CHARS,
    MemoryBackend,
    StoredFact,
    check_scope,
)
from twelvefactor.memory.inmemory import InMemoryBackend
from twelvefactor.memory.memory import Memory, ScopesFunction
from twelvefactor.memory.postgres import PostgresDatabase, PostgresMemoryBackend
from twelvefactor.memory.scopes import SCOPE_EVENT, launch_scopes, memory_scope, thread_scopes
from twelvefactor.memory.sqlite import SQLiteMemoryBackend

__all__ = [
    "GLOBAL",
    "MAX_FACT_CHARS",
    "SCOPE_EVENT",
    "InMemoryBackend",
    "Memory",
    "MemoryBackend",
    "PostgresDatabase",
    "PostgresMemoryBackend",
    "SQLiteMemoryBackend",
    "ScopesFunction",
    "StoredFact",
    "check_scope",
    "launch_scopes",
    "memory_scope",
    "thread_scopes",
]
