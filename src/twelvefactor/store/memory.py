"""MemoryStore: the ThreadStore contract in a dict, for tests and embedded single-process use."""

from __future__ import annotations

import builtins
import itertools
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import ClassVar, Self

from twelvefactor.errors import ConflictError, ThreadNotFound, UserError
from twelvefactor.events import Event, HumanResponse
from twelvefactor.store.base import (
    FINISHED,
    ThreadSummary,
    as_events,
    check_page,
    check_prune,
    check_repeat,
    check_save,
    duplicate_key_error,
    idempotency_key,
    rebased,
    unapplied,
    utcnow,
)
from twelvefactor.thread import Status, Thread, reduce
from twelvefactor.thread import respond as apply_response


@dataclass
class _Entry:
    thread: Thread
    created_at: datetime
    updated_at: datetime
    order: int
    keys: dict[str, Event] = field(default_factory=dict)


class MemoryStore:
    """Threads in process memory behind one lock. Same semantics as SQLiteStore, nothing durable.

    Threads and events are immutable, so the store keeps the caller's objects rather than copies.
    """

    blocking: ClassVar[bool] = False  # its calls never wait on I/O: the async face makes them in place

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[str, _Entry] = {}
        self._order = itertools.count()
        self._closed = False
        self._leases: dict[str, tuple[str, float]] = {}

    def create(self, thread: Thread) -> Thread:
        with self._lock:
            self._check_open()
            existing = self._threads.get(thread.id)
            if existing is not None:
                raise ConflictError(thread.id, 0, existing.thread.version)
            self._insert(thread)
            return thread

    def save(self, thread: Thread, expected_version: int) -> Thread:
        check_save(thread, expected_version)
        with self._lock:
            self._check_open()
            entry = self._threads.get(thread.id)
            if entry is None:
                if expected_version != 0:
                    raise ConflictError(thread.id, expected_version, None)
                self._insert(thread)
                return thread
            if entry.thread.version != expected_version:
                raise ConflictError(thread.id, expected_version, entry.thread.version)
            new_keys = self._new_keys(thread.id, entry, thread.events[expected_version:])
            entry.thread = thread
            entry.keys.update(new_keys)
            entry.updated_at = utcnow()
            return thread

    def load(self, thread_id: str) -> Thread:
        with self._lock:
            self._check_open()
            return self._entry(thread_id).thread

    def list(
        self,
        *,
        agent: str | None = None,
        status: Status | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[ThreadSummary]:
        check_page(limit, offset)
        with self._lock:
            self._check_open()
            entries = sorted(self._threads.values(), key=lambda e: (e.created_at, e.order), reverse=True)
        rows: builtins.list[ThreadSummary] = []
        skip = offset
        for entry in entries:
            if len(rows) >= limit:
                break
            thread = entry.thread
            if agent is not None and thread.agent != agent:
                continue
            derived = thread.status
            if status is not None and derived != status:
                continue
            if skip:
                skip -= 1
                continue
            rows.append(
                ThreadSummary(
                    id=thread.id,
                    agent=thread.agent,
                    status=derived,
                    version=thread.version,
                    created_at=entry.created_at,
                    updated_at=entry.updated_at,
                    parent_id=thread.parent_id,
                    forked_at=thread.forked_at,
                )
            )
        return rows

    def respond(self, thread_id: str, response: HumanResponse) -> Thread:
        with self._lock:
            self._check_open()
            entry = self._entry(thread_id)
            key = idempotency_key(response)
            if key is not None and key in entry.keys:
                check_repeat(thread_id, key, entry.keys[key], response)
                return entry.thread
            return self._append(entry, (response,), apply_response(entry.thread, response))

    def append(
        self,
        thread_id: str,
        events: Event | Sequence[Event],
        expected_version: int | None = None,
        *,
        rebase: bool = False,
    ) -> Thread:
        new = as_events(events)
        with self._lock:
            self._check_open()
            entry = self._entry(thread_id)
            fresh = unapplied(thread_id, new, entry.keys.get)
            if new and not fresh:
                return entry.thread  # a redelivery: a no-op whatever version the sender last saw
            thread = entry.thread
            kept = tuple(rebased(thread, fresh, expected_version, rebase))
            if not kept:
                return thread
            for event in kept:
                thread = reduce(thread, event)
            return self._append(entry, kept, thread)

    def delete(self, thread_id: str) -> bool:
        """Remove the thread, its lease and its idempotency keys; False if there is no such thread."""
        with self._lock:
            self._check_open()
            return self._remove(thread_id)

    def prune(
        self,
        *,
        older_than: datetime,
        agent: str | None = None,
        statuses: Iterable[Status] = FINISHED,
        limit: int = 1000,
    ) -> int:
        """Delete up to ``limit`` finished threads last updated before ``older_than``, oldest first."""
        wanted = check_prune(older_than, statuses, limit)
        with self._lock:
            self._check_open()
            stale = sorted(
                (entry for entry in self._threads.values() if entry.updated_at < older_than),
                key=lambda e: (e.updated_at, e.order),
            )
            victims = [
                entry.thread.id
                for entry in stale
                if (agent is None or entry.thread.agent == agent) and entry.thread.status in wanted
            ][:limit]
            for thread_id in victims:
                self._remove(thread_id)
            return len(victims)

    def claim(self, thread_id: str, owner: str, ttl_s: float) -> bool:
        now = time.time()
        with self._lock:
            held = self._leases.get(thread_id)
            if held is not None and held[0] != owner and held[1] > now:
                return False
            self._leases[thread_id] = (owner, now + ttl_s)
            return True

    def release(self, thread_id: str, owner: str) -> None:
        with self._lock:
            if self._leases.get(thread_id, ("", 0.0))[0] == owner:
                del self._leases[thread_id]

    def heartbeat(self, owner: str, thread_ids: Iterable[str], ttl_s: float) -> set[str]:
        now = time.time()
        held: set[str] = set()
        with self._lock:
            for thread_id in thread_ids:
                current = self._leases.get(thread_id)
                if current is None or current[0] == owner or current[1] <= now:
                    self._leases[thread_id] = (owner, now + ttl_s)
                    held.add(thread_id)
        return held

    def expired_leases(self, limit: int = 100) -> builtins.list[str]:
        now = time.time()
        with self._lock:
            expired = sorted((at, thread_id) for thread_id, (_, at) in self._leases.items() if at <= now)
        return [thread_id for _, thread_id in expired[:limit]]

    def lease_of(self, thread_id: str) -> tuple[str, float] | None:
        with self._lock:
            return self._leases.get(thread_id)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._threads.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise UserError("this MemoryStore is closed; open a new store")

    def _entry(self, thread_id: str) -> _Entry:
        entry = self._threads.get(thread_id)
        if entry is None:
            raise ThreadNotFound(thread_id)
        return entry

    def _remove(self, thread_id: str) -> bool:
        if self._threads.pop(thread_id, None) is None:
            return False
        self._leases.pop(thread_id, None)
        return True

    def _insert(self, thread: Thread) -> None:
        keys = self._new_keys(thread.id, None, thread.events)
        now = utcnow()
        self._threads[thread.id] = _Entry(thread, now, now, next(self._order), keys)

    @staticmethod
    def _new_keys(thread_id: str, entry: _Entry | None, events: tuple[Event, ...]) -> dict[str, Event]:
        keys: dict[str, Event] = {}
        for event in events:
            key = idempotency_key(event)
            if key is None:
                continue
            if key in keys or (entry is not None and key in entry.keys):
                raise duplicate_key_error(thread_id, key)
            keys[key] = event
        return keys

    @classmethod
    def _append(cls, entry: _Entry, events: tuple[Event, ...], thread: Thread) -> Thread:
        entry.keys.update(cls._new_keys(thread.id, entry, events))
        entry.thread = thread
        entry.updated_at = utcnow()
        return thread
