"""InMemoryBackend: facts in a dict behind a lock, for tests, embedded use and MemoryStore.

Search is a simple ranked match: facts that share more of the query's words come first (the words as
``_fts.fts5_terms`` splits them, the same for every backend), then the newest.
"""

from __future__ import annotations

import builtins
import itertools
import threading
from collections.abc import Sequence

from twelvefactor._fts import fts5_terms
from twelvefactor.errors import FactNotFound
from twelvefactor.memory.facts import (
    StoredFact,
    check_edit,
    check_page,
    check_put,
    duplicate_key,
    new_fact_id,
    now,
    scopes_to_read,
)

__all__ = ["InMemoryBackend"]


class InMemoryBackend:
    """Facts in process memory: nothing durable, nothing shared with another process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._facts: dict[str, StoredFact] = {}
        self._order: dict[str, int] = {}  # id -> when last written: the tie-break among equal timestamps
        self._ticks = itertools.count()

    def put(self, scope: str, text: str, *, key: str | None = None, source_thread: str | None = None) -> StoredFact:
        scope, text, key = check_put(scope, text, key)
        with self._lock:
            same = next(
                (
                    f
                    for f in self._facts.values()
                    if f.scope == scope and (f.key == key if key is not None else f.text == text)
                ),
                None,
            )
            if same is not None and key is None:
                return same
            moment = now()
            if same is not None:
                fact = same.model_copy(update={"text": text, "updated_at": moment, "source_thread": source_thread})
            else:
                fact = StoredFact(
                    id=new_fact_id(),
                    scope=scope,
                    text=text,
                    key=key,
                    created_at=moment,
                    updated_at=moment,
                    source_thread=source_thread,
                )
            self._write(fact)
            return fact

    def get(self, fact_id: str) -> StoredFact:
        with self._lock:
            fact = self._facts.get(fact_id)
        if fact is None:
            raise FactNotFound(fact_id)
        return fact

    def edit(
        self, fact_id: str, *, text: str | None = None, scope: str | None = None, key: str | None = None
    ) -> StoredFact:
        with self._lock:
            old = self._facts.get(fact_id)
            if old is None:
                raise FactNotFound(fact_id)
            changes = check_edit(text, scope, key)
            new_scope, new_key = changes.get("scope", old.scope), changes.get("key", old.key)
            if new_key is not None and any(
                f.id != fact_id and f.scope == new_scope and f.key == new_key for f in self._facts.values()
            ):
                raise duplicate_key(new_scope, new_key)
            fact = old.model_copy(update={**changes, "updated_at": now()})
            self._write(fact)
            return fact

    def delete(self, fact_id: str) -> bool:
        with self._lock:
            self._order.pop(fact_id, None)
            return self._facts.pop(fact_id, None) is not None

    def facts(
        self, scopes: Sequence[str] | None = None, *, limit: int = 100, offset: int = 0
    ) -> builtins.list[StoredFact]:
        check_page(limit, offset)
        wanted = None if scopes is None else set(scopes_to_read(scopes))
        with self._lock:
            found = [f for f in self._facts.values() if wanted is None or f.scope in wanted]
            found.sort(key=lambda f: (f.updated_at, self._order[f.id]), reverse=True)
        return found[offset : offset + limit]

    def search(self, query: str, scopes: Sequence[str], *, limit: int = 10) -> builtins.list[StoredFact]:
        check_page(limit, 0)
        terms = set(fts5_terms(query))
        wanted = set(scopes_to_read(scopes))
        if not terms or not wanted:
            return []
        with self._lock:
            scored = []
            for fact in self._facts.values():
                if fact.scope in wanted:
                    shared = len(terms.intersection(fts5_terms(fact.text, max_terms=10_000)))
                    if shared:
                        scored.append((shared, fact.updated_at, self._order[fact.id], fact))
        scored.sort(key=lambda row: row[:3], reverse=True)
        return [row[3] for row in scored[:limit]]

    def scopes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for fact in self._facts.values():
                counts[fact.scope] = counts.get(fact.scope, 0) + 1
        return dict(sorted(counts.items()))

    def close(self) -> None:
        """Nothing to release; the facts stay until the object goes."""

    def _write(self, fact: StoredFact) -> None:
        self._facts[fact.id] = fact
        self._order[fact.id] = next(self._ticks)
