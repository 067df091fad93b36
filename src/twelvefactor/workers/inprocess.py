"""The in-process worker: an asyncio pool that advances threads, each step in a worker thread.

Agent code is synchronous (a model call, a tool), so each run goes to a thread while the event loop
keeps serving HTTP. A worker claims a thread's lease in the store before running it, so one thread is
never advanced in two places at once, also by two server processes on one database file. A thread
whose lease is held elsewhere is retried shortly: the holder may be finishing its last step.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping

from twelvefactor.agent import Agent
from twelvefactor.errors import ConflictError, ThreadNotFound
from twelvefactor.events import Error
from twelvefactor.loop import Stop, next_action, run
from twelvefactor.store.base import ThreadStore
from twelvefactor.thread import Thread, reduce

log = logging.getLogger("twelvefactor.worker")


class Worker:
    """Advances submitted threads until each waits, finishes or fails."""

    def __init__(
        self,
        store: ThreadStore,
        agents: Mapping[str, Agent],
        *,
        concurrency: int = 4,
        lease_s: float = 60.0,
        retry_s: float = 0.2,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.agents = dict(agents)
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.retry_s = retry_s
        self.owner = owner or f"worker-{uuid.uuid4().hex[:8]}"
        self._queue: asyncio.Queue[str] | None = None
        self._queued: set[str] = set()  # waiting in the queue or being advanced
        self._running: set[str] = set()
        self._again: set[str] = set()  # submitted while being advanced: look again afterwards
        self._tasks: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.Task[None]] = set()
        self._stopping = threading.Event()

    async def start(self, *, recover: bool = True) -> None:
        """Start the pool; with ``recover``, pick up every thread left running (e.g. by a restart)."""
        self._queue = asyncio.Queue()
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self._serve(), name=f"{self.owner}-{i}") for i in range(self.concurrency)]
        if recover:
            for summary in await asyncio.to_thread(self._running_threads):
                self.submit(summary)

    def _running_threads(self) -> list[str]:
        ids: list[str] = []
        offset = 0
        while True:
            page = self.store.list(status="running", limit=500, offset=offset)
            ids.extend(s.id for s in page if s.agent in self.agents)
            if len(page) < 500:
                return ids
            offset += 500

    def submit(self, thread_id: str) -> None:
        """Queue a thread to be advanced (no-op if it is already queued)."""
        if self._queue is None or self._stopping.is_set():
            return
        if thread_id in self._running:
            # The run in flight may already have decided there is nothing to do (it read the thread
            # before this change): advance it once more when that run ends, or the change is lost.
            self._again.add(thread_id)
            return
        if thread_id in self._queued:
            return
        self._queued.add(thread_id)
        self._queue.put_nowait(thread_id)

    async def stop(self, timeout: float = 30.0) -> None:
        """Finish the steps in flight (or leave their threads resumable), then stop."""
        self._stopping.set()
        for task in self._retries:
            task.cancel()
        if self._queue is not None:
            for _ in self._tasks:
                self._queue.put_nowait("")  # wake idle workers
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
        self._tasks = []

    async def idle(self) -> None:
        """Wait until nothing is queued or running (tests and benchmarks)."""
        while self._queued or self._retries:
            await asyncio.sleep(0.005)

    async def _serve(self) -> None:
        assert self._queue is not None
        while not self._stopping.is_set():
            thread_id = await self._queue.get()
            if not thread_id:
                continue
            self._running.add(thread_id)
            try:
                retry = await asyncio.to_thread(self._advance, thread_id)
            except Exception:  # noqa: BLE001 - one broken thread must not take the worker down
                log.exception("advancing thread %s failed", thread_id)
                retry = False
            finally:
                self._running.discard(thread_id)
                self._queued.discard(thread_id)
            if thread_id in self._again:
                self._again.discard(thread_id)
                self.submit(thread_id)
            elif retry and not self._stopping.is_set():
                task = asyncio.create_task(self._retry_later(thread_id))
                self._retries.add(task)
                task.add_done_callback(self._retries.discard)

    async def _retry_later(self, thread_id: str) -> None:
        await asyncio.sleep(self.retry_s)
        self.submit(thread_id)

    def _advance(self, thread_id: str) -> bool:
        """Run the thread while it has work; True if it should be retried later (lease held elsewhere)."""
        if not self.store.claim(thread_id, self.owner, self.lease_s):
            return self._still_needs_work(thread_id)
        try:
            while not self._stopping.is_set():
                thread = self.store.load(thread_id)
                agent = self.agents.get(thread.agent or "")
                if agent is None:
                    self._fail_unknown_agent(thread)
                    return False
                if isinstance(next_action(agent, thread), Stop):
                    return False
                try:
                    run(agent, thread, store=self.store, should_stop=self._renew(thread_id))
                except ConflictError:
                    continue  # an event arrived meanwhile (a trigger, a response): reload and go on
        except ThreadNotFound:
            return False
        finally:
            self.store.release(thread_id, self.owner)
        return False

    def _renew(self, thread_id: str) -> Callable[[], bool]:
        renewed_at = time.monotonic()

        def should_stop() -> bool:
            nonlocal renewed_at
            if time.monotonic() - renewed_at > self.lease_s / 3:
                renewed_at = time.monotonic()
                if not self.store.claim(thread_id, self.owner, self.lease_s):
                    return True  # lost the lease (we stalled past its expiry): stop, someone else goes on
            return self._stopping.is_set()

        return should_stop

    def _still_needs_work(self, thread_id: str) -> bool:
        try:
            thread = self.store.load(thread_id)
        except ThreadNotFound:
            return False
        agent = self.agents.get(thread.agent or "")
        return agent is not None and not isinstance(next_action(agent, thread), Stop)

    def _fail_unknown_agent(self, thread: Thread) -> None:
        message = f"no agent named {thread.agent!r} is served here (serving: {', '.join(self.agents) or 'none'})"
        if thread.status == "running":
            failed = reduce(thread, Error(source="agent", message=message, fatal=True))
            self.store.save(failed, expected_version=thread.version)
