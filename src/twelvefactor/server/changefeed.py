"""Live updates across processes: other processes' writes, heard on PostgreSQL's change feed.

``NotifyingStore`` tells this process's ``Notifier`` about the writes this process makes. On PostgreSQL
every write also announces itself to the database (``store/changes.py``: a NOTIFY on commit), and
``ChangeFeed`` listens for those on a connection of its own: for each write another process made (a
``twelvefactor worker``, another web process) it loads the thread once and calls ``Notifier.changed``,
the path a local write takes, so SSE streams wake at once and the webhook and contacts listeners see
workers' writes too (the delivery log keeps one message per episode and endpoint whichever process adds
it first, so every process may see every write).

A dropped connection (PostgreSQL restarted) is reconnected with backoff; after a reconnect the feed
catches up on the threads updated since it last knew itself connected (``updated_at`` on the database's
clock, minus a margin for writes in flight), so nothing written while it was away is missed. Writes seen
already (this process's own, or announced twice) are skipped by version.

SQLite has no such feed: several processes on one SQLite file keep the live views' periodic re-read
(``stream_poll_s``), and a worker's writes reach webhooks through the sweeps only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from twelvefactor._backoff import backoff_s
from twelvefactor.errors import StoreBusyError, ThreadNotFound
from twelvefactor.server.bus import Notifier
from twelvefactor.store import changes
from twelvefactor.thread import Thread

if TYPE_CHECKING:
    import psycopg

    from twelvefactor.store.postgres import PostgresStore

__all__ = ["ChangeFeed"]

log = logging.getLogger("twelvefactor.changefeed")

APPLICATION_NAME = "twelvefactor-changefeed"
_SEEN_MAX = 10_000
_CATCH_UP_LIMIT = 10_000
_RETRY_S = 1.0


class ChangeFeed:
    """Listens on PostgreSQL for other processes' writes and hands each to ``notifier`` (see module doc).

    ``ping_s``: how often an idle connection is checked (and the moment it was last known alive noted);
    ``margin_s``: how far before that moment a catch-up looks (a write's ``updated_at`` is its
    transaction's start); ``backoff_s``/``max_backoff_s``: reconnect waits.
    """

    def __init__(
        self,
        store: PostgresStore,
        notifier: Notifier,
        *,
        ping_s: float = 5.0,
        margin_s: float = 10.0,
        backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        concurrency: int = 8,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.ping_s = ping_s
        self.margin_s = margin_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.caught_up = 0  # threads handed on by catch-ups (tests, ops)
        self._seen: OrderedDict[str, int] = OrderedDict()  # thread id -> the latest version this process knows
        self._seen_lock = threading.Lock()  # saw() runs on writers' threads
        self._pending: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(concurrency)
        self._alive_at: datetime | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # --- what this process already knows ---

    def saw(self, thread: Thread) -> None:
        """Notifier listener: this process knows ``thread`` at this version (any thread may call it)."""
        self._note(thread.id, thread.version)

    def _note(self, thread_id: str, version: int) -> bool:
        """Record a version; False if it (or a later one) was known already."""
        with self._seen_lock:
            known = self._seen.get(thread_id)
            if known is not None and version <= known:
                return False
            self._seen[thread_id] = version
            self._seen.move_to_end(thread_id)
            if len(self._seen) > _SEEN_MAX:
                self._seen.popitem(last=False)
            return True

    def _newer(self, thread_id: str, version: int) -> bool:
        with self._seen_lock:
            known = self._seen.get(thread_id)
        return known is None or version > known

    # --- lifecycle ---

    async def start(self) -> None:
        """Listen in the background (returns at once; ``connected`` is set once listening)."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._listen(), name="changefeed-listen"),
            asyncio.create_task(self._process(), name="changefeed-process"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.connected.clear()

    # --- the connection ---

    async def _listen(self) -> None:
        import psycopg

        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.store.url,
                    autocommit=True,
                    connect_timeout=max(2, int(self.store.timeout_s)),
                    application_name=APPLICATION_NAME,  # pg_stat_activity tells it from the store's pool
                ) as conn:
                    await conn.execute(f"LISTEN {changes.CHANNEL}")  # our constant, not a value
                    await self._catch_up(conn)
                    failures = 0
                    self.connected.set()
                    await self._receive(conn)
            except psycopg.Error as err:
                if self.connected.is_set() or failures == 0:  # once per outage, not per attempt
                    log.warning("change feed not listening on %s (%s): reconnecting", self.store.where, err)
                self.connected.clear()
            except Exception:  # noqa: BLE001 - a bug here must not silence the feed for good
                log.exception("change feed failed on %s: reconnecting", self.store.where)
                self.connected.clear()
            self.reconnects += 1
            await asyncio.sleep(backoff_s(failures, initial_s=self.backoff_s, max_s=self.max_backoff_s))
            failures += 1

    async def _catch_up(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Listening now: queue what was written since we last knew ourselves connected, then note the time."""
        since = self._alive_at
        if since is not None:
            cursor = await conn.execute(
                changes.CHANGED_SINCE_SQL, (since - timedelta(seconds=self.margin_s), _CATCH_UP_LIMIT)
            )
            for thread_id, version in await cursor.fetchall():
                if self._queue(thread_id, version):
                    self.caught_up += 1
        await self._mark_alive(conn)

    async def _mark_alive(self, conn: psycopg.AsyncConnection[Any]) -> None:
        row = await (await conn.execute("SELECT now()")).fetchone()
        if row is not None:
            self._alive_at = row[0]

    async def _receive(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            unknown = False
            # Notifications that arrive while a query below runs wait in psycopg's backlog for the next round.
            async for note in conn.notifies(timeout=self.ping_s):
                change = changes.parse(note.payload)
                if change is None:
                    continue
                if change.thread_id == changes.UNKNOWN:
                    unknown = True  # an id too long to announce: look for it by time
                elif change.origin != self.store.origin:  # our own writes reached the notifier already
                    self._queue(change.thread_id, change.version)
            if unknown:
                await self._catch_up(conn)
            else:
                await self._mark_alive(conn)  # a round trip proves the connection, and notes when

    # --- handing changes to the notifier ---

    def _queue(self, thread_id: str, version: int) -> bool:
        if version == changes.DELETED:
            with self._seen_lock:
                self._seen.pop(thread_id, None)
            self.notifier.notify(thread_id)  # live views re-read, find no thread and end
            return True
        if not self._newer(thread_id, version) or self._pending.get(thread_id, -1) >= version:
            return False
        self._pending[thread_id] = version
        self._wake.set()
        return True

    async def _process(self) -> None:
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                batch, self._pending = self._pending, {}
                for thread_id, version in batch.items():
                    await self._limit.acquire()
                    task = asyncio.create_task(self._hand_on(thread_id, version))
                    running.add(task)
                    task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()

    async def _hand_on(self, thread_id: str, version: int) -> None:
        try:
            if not self._newer(thread_id, version):
                return  # this process wrote or loaded it meanwhile
            if all(listener == self.saw for listener in self.notifier.listeners):
                self.notifier.notify(thread_id)  # only live views care: they re-read it themselves
                return
            try:
                thread = await asyncio.to_thread(self.store.load, thread_id)
            except ThreadNotFound:
                self.notifier.notify(thread_id)
                return
            except StoreBusyError:  # the database is restarting, say: try again shortly
                asyncio.get_running_loop().call_later(_RETRY_S, self._queue, thread_id, version)
                return
            if self._note(thread.id, thread.version):
                # The path a local write takes: the webhook and contacts listeners, then the waiters.
                await asyncio.to_thread(self.notifier.changed, thread)
        except Exception:  # noqa: BLE001 - one thread that cannot be loaded must not stop the feed
            log.exception("change feed could not hand on thread %s", thread_id)
        finally:
            self._limit.release()
