"""Change notifications: which threads just changed, for live views (SSE) in this process.

``NotifyingStore`` wraps the store every write goes through (API and worker alike) and wakes the
waiters of a thread after each successful write. On PostgreSQL, other processes' writes arrive through
``changefeed.ChangeFeed``; elsewhere the waiters' periodic re-read picks them up, so a live view is never
stuck, only a little later. A model reply streaming in (``deltas.py``) wakes only the waiters that asked
for it (``wait(..., streamed=True)``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from twelvefactor.events import Event, HumanResponse
from twelvefactor.store.base import FINISHED, ThreadStore, ThreadSummary
from twelvefactor.thread import Status, Thread

ChangeListener = Callable[[Thread], None]
_T = TypeVar("_T")
Wake = Literal["written", "streamed"]
"""Why a waiter woke: the thread was written, or (only for those that asked) a model reply streamed."""


class _Waiter:
    __slots__ = ("event", "streamed", "why")

    def __init__(self, streamed: bool) -> None:
        self.event = asyncio.Event()
        self.streamed = streamed  # also woken by a model reply streaming in
        self.why: Wake | None = None


class Notifier:
    """Per-thread wake-ups that any thread may trigger and asyncio tasks may await.

    Listeners (e.g. outbound webhooks) get every written thread, on the writer's thread: they must be
    quick and thread-safe (hand the work to a queue).
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: defaultdict[str, set[_Waiter]] = defaultdict(set)
        self.listeners: list[ChangeListener] = []

    def changed(self, thread: Thread) -> None:
        """A write produced ``thread``: tell the listeners, wake the waiters."""
        for listener in self.listeners:
            listener(thread)
        self.notify(thread.id)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self, thread_id: str) -> None:
        """Thread-safe: wake everyone waiting on ``thread_id``."""
        self._post(thread_id, "written")

    def notify_streamed(self, thread_id: str) -> None:
        """Thread-safe: wake those waiting on ``thread_id`` that follow its model replies as they stream."""
        self._post(thread_id, "streamed")

    def _post(self, thread_id: str, why: Wake) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(self._wake, thread_id, why)

    def _wake(self, thread_id: str, why: Wake) -> None:
        for waiter in self._waiters.get(thread_id, ()):
            if why == "written" or waiter.streamed:
                waiter.why = "written" if waiter.why == "written" else why
                waiter.event.set()

    async def wait(self, thread_id: str, timeout: float, *, streamed: bool = False) -> Wake | None:
        """Wait for a change to ``thread_id``: why it woke (a write wins), None on timeout.

        With ``streamed``, a model reply streaming in on the thread wakes it too (``"streamed"``).
        """
        waiter = _Waiter(streamed)
        self._waiters[thread_id].add(waiter)
        try:
            await asyncio.wait_for(waiter.event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(thread_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[thread_id]
        return waiter.why


class NotifyingStore:
    """A ThreadStore that tells a Notifier about every write it makes."""

    def __init__(self, store: ThreadStore, notifier: Notifier) -> None:
        self.inner = store
        self.notifier = notifier

    def create(self, thread: Thread) -> Thread:
        result = self.inner.create(thread)
        self.notifier.changed(result)
        return result

    def save(self, thread: Thread, expected_version: int) -> Thread:
        result = self.inner.save(thread, expected_version)
        self.notifier.changed(result)
        return result

    def load(self, thread_id: str) -> Thread:
        return self.inner.load(thread_id)

    def call_without_waiting(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> tuple[bool, _T | None]:
        """The inner store's no-wait path (see ``SQLiteStore.call_without_waiting``), if it has one."""
        attempt = getattr(self.inner, "call_without_waiting", None)
        if attempt is None:
            return False, None
        return attempt(fn, *args, **kwargs)  # type: ignore[no-any-return]

    def list(
        self, *, agent: str | None = None, status: Status | None = None, limit: int = 100, offset: int = 0
    ) -> builtins.list[ThreadSummary]:
        return self.inner.list(agent=agent, status=status, limit=limit, offset=offset)

    def respond(self, thread_id: str, response: HumanResponse) -> Thread:
        result = self.inner.respond(thread_id, response)
        self.notifier.changed(result)
        return result

    def append(
        self,
        thread_id: str,
        events: Event | Sequence[Event],
        expected_version: int | None = None,
        *,
        rebase: bool = False,
    ) -> Thread:
        result = self.inner.append(thread_id, events, expected_version, rebase=rebase)
        self.notifier.changed(result)
        return result

    def delete(self, thread_id: str) -> bool:
        deleted = self.inner.delete(thread_id)
        if deleted:
            self.notifier.notify(thread_id)  # live views re-read, find no thread and end
        return deleted

    def prune(
        self,
        *,
        older_than: datetime,
        agent: str | None = None,
        statuses: Iterable[Status] = FINISHED,
        limit: int = 1000,
    ) -> int:
        return self.inner.prune(older_than=older_than, agent=agent, statuses=statuses, limit=limit)

    def claim(self, thread_id: str, owner: str, ttl_s: float) -> bool:
        return self.inner.claim(thread_id, owner, ttl_s)

    def release(self, thread_id: str, owner: str) -> None:
        self.inner.release(thread_id, owner)

    def heartbeat(self, owner: str, thread_ids: Iterable[str], ttl_s: float) -> set[str]:
        return self.inner.heartbeat(owner, thread_ids, ttl_s)

    def expired_leases(self, limit: int = 100) -> builtins.list[str]:
        return self.inner.expired_leases(limit)

    def lease_of(self, thread_id: str) -> tuple[str, float] | None:
        return self.inner.lease_of(thread_id)

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
