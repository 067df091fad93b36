"""Memory: what an agent is given as ``Agent(memory=...)``: a backend, a thread's scopes, and the model's intents.

The loop asks ``recall_for(thread)`` before a run's first model call (and after ``remember`` or ``forget``)
and records the answer as the thread's ``memory`` event, which the window's memory section shows; code
writes facts with ``remember``/``forget``, the model with the intents of :meth:`Memory.tools`.

The model writes only scopes of the kinds in ``writable`` (default: ``user``), and only the thread's own
scope of that kind: it names a kind (``"user"``), never a scope, so no reply can reach another user's facts,
and ``global`` stays code's and people's unless ``writable`` names it.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Sequence
from functools import cached_property

from twelvefactor.errors import UserError
from twelvefactor.events import MemoryFact
from twelvefactor.memory.facts import MAX_PAGE, MemoryBackend, StoredFact, check_scope, scope_kind
from twelvefactor.memory.scopes import thread_scopes
from twelvefactor.memory.tools import memory_tools
from twelvefactor.thread import Thread
from twelvefactor.tools import Tool

__all__ = ["Memory", "ScopesFunction"]

ScopesFunction = Callable[[Thread], Sequence[str]]
"""Which scopes a thread reads, most important first (``thread_scopes`` by default)."""

_KIND = re.compile(r"global|[a-z][a-z0-9_]{0,31}")


class Memory:
    """Facts kept across threads, for ``Agent(memory=...)``.

    ``backend``: where the facts live (``memory_backend_for(store)``: the store's own database).
    ``scopes``: which scopes a thread reads, most important first. ``writable``: the scope kinds the model
    may write (a kind: ``user`` of ``user:alice``). ``limit``: at most this many facts reach a thread (the
    agent's ``memory_tokens`` then cuts the rendered section); ``search_limit``: at most this many come back
    from the model's ``recall``.
    """

    def __init__(
        self,
        backend: MemoryBackend,
        *,
        scopes: ScopesFunction = thread_scopes,
        writable: Sequence[str] = ("user",),
        limit: int = 50,
        search_limit: int = 10,
    ) -> None:
        if isinstance(writable, str):
            raise UserError(f"writable is a list of scope kinds, e.g. ({writable!r},), not one string")
        bad = [kind for kind in writable if _KIND.fullmatch(kind) is None]
        if bad:
            raise UserError(f"writable names scope kinds ('user', 'tenant', 'global'…), not {bad[0]!r}")
        for name, value in (("limit", limit), ("search_limit", search_limit)):
            if not 1 <= value <= MAX_PAGE:
                raise UserError(f"Memory {name} must be 1 to {MAX_PAGE}, got {value!r}")
        self.backend = backend
        self.scopes = scopes
        self.writable: tuple[str, ...] = tuple(dict.fromkeys(writable))
        self.limit = limit
        self.search_limit = search_limit

    def __repr__(self) -> str:
        return f"Memory({self.backend!r}, writable={self.writable!r}, limit={self.limit})"

    # --- what a thread sees ---

    def scopes_for(self, thread: Thread) -> tuple[str, ...]:
        """The scopes ``thread`` reads, checked, each once, most important first."""
        return tuple(dict.fromkeys(check_scope(scope) for scope in self.scopes(thread)))

    def writable_for(self, thread: Thread) -> tuple[str, ...]:
        """The thread's scopes whose kind the model may write, in the order of ``scopes_for``."""
        return tuple(scope for scope in self.scopes_for(thread) if scope_kind(scope) in self.writable)

    def recall_for(self, thread: object) -> tuple[MemoryFact, ...]:
        """The facts ``thread`` sees (the loop records them): its scopes in order, each newest first, at most
        ``limit`` in all."""
        if not isinstance(thread, Thread):
            raise UserError(f"recall_for takes a Thread, got {type(thread).__name__}")
        found: list[MemoryFact] = []
        for scope in self.scopes_for(thread):
            left = self.limit - len(found)
            if left <= 0:
                break
            found += [fact.as_fact() for fact in self.backend.facts([scope], limit=left)]
        return tuple(found)

    def recall(self, query: str, *, scopes: Sequence[str], limit: int | None = None) -> builtins.list[StoredFact]:
        """The facts of ``scopes`` that share words with ``query`` (any text: it is never parsed as syntax)."""
        return self.backend.search(query, scopes, limit=limit or self.search_limit)

    # --- deterministic writes, from code ---

    def remember(
        self, text: str, *, scope: str, key: str | None = None, source_thread: str | None = None
    ) -> StoredFact:
        """Keep a fact in ``scope``; with ``key``, replace the scope's fact of that key (an upsert)."""
        return self.backend.put(scope, text, key=key, source_thread=source_thread)

    def forget(self, fact_id: str) -> bool:
        """Remove a fact; False if there was none."""
        return self.backend.delete(fact_id)

    def facts(self, scope: str | None = None, *, limit: int = 100, offset: int = 0) -> builtins.list[StoredFact]:
        """The facts of ``scope`` (None: every scope), newest first."""
        return self.backend.facts(None if scope is None else [scope], limit=limit, offset=offset)

    # --- the model's intents ---

    @cached_property
    def _tools(self) -> tuple[type[Tool], ...]:
        return memory_tools(self)

    def tools(self) -> tuple[type[Tool], ...]:
        """``remember``, ``recall`` and ``forget`` (the same classes on every call): add them to the agent's tools."""
        return self._tools
