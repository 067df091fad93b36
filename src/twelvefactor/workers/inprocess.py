"""The in-process worker: advances threads on the event loop, a thousand at once if need be.

Each thread is advanced by a task running ``arun`` (``advance_on``): a model call is awaited, so a
thread waiting on a slow model holds no OS thread, and ``concurrency`` threads can wait on models at
once. How many calls may go to one model or provider at a time is ``calls``' business
(``EventLoopCalls(limits=...)``: a rate limit, not a pool size). Synchronous tools, models without
``acomplete``, workflows' code and the store run in ``calls``' bounded thread pools.

A worker holds a lease on every thread it has queued or is running (see ``leases.py``), renewed by a
heartbeat, so one thread is never advanced in two places at once, also
by two server processes on one database file. A thread whose lease is held elsewhere is retried
shortly: the holder may be finishing its last step.

Nothing is stranded:
- a transient store error (a database locked past its busy timeout) is retried with backoff;
- any other failure is recorded on the thread as a fatal error event (status failed);
- a thread whose holder died is taken over within about one lease length, by whichever live
  process sees its expired lease first (``sweep_s``), and threads running without any lease
  (a process killed right after a launch) are found by a slower full scan (``scan_s``);
- ``stop`` lets steps in flight finish for ``timeout`` seconds, then cancels the model calls still
  running (their threads are left as recorded, resumable) and gives the leases back.

Workflows are served beside agents: a workflow's sub-agent threads are queued as threads of their
own (each with its lease), a parent is woken when its sub-thread stops, and a durable timer wakes its
thread when due (scheduled here, and found again by the full scan after a restart).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from twelvefactor.agent import Agent
from twelvefactor.calls import EventLoopCalls
from twelvefactor.errors import ModelCancelled, ThreadNotFound
from twelvefactor.store.base import ThreadStore
from twelvefactor.thread import DeltaCallback
from twelvefactor.workers.advance import (
    advance_on,
    failed,
    failure_streak,
    record_failure,
    running_threads,
    still_needs_work,
    waiting_workflows,
)
from twelvefactor.workers.leases import DEFAULT_LEASE_S, Leases, new_owner
from twelvefactor.workflows.runner import Runnable, served

log = logging.getLogger("twelvefactor.worker")

T = TypeVar("T")


class Worker:
    """Advances submitted threads until each waits, finishes or fails."""

    def __init__(
        self,
        store: ThreadStore,
        agents: Mapping[str, Runnable],
        *,
        concurrency: int = 1000,
        calls: EventLoopCalls | None = None,
        on_delta: DeltaCallback | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        retry_s: float = 0.2,
        sweep_s: float | None = None,
        scan_s: float | None = None,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.agents: dict[str, Runnable] = served(agents)  # with each workflow's sub-agents
        self.concurrency = concurrency
        self._own_calls = calls is None
        self.calls = calls or EventLoopCalls()
        self.on_delta = on_delta
        self.lease_s = lease_s
        self.retry_s = retry_s
        self.sweep_s = sweep_s if sweep_s is not None else min(lease_s / 4, 0.5)
        self.scan_s = scan_s if scan_s is not None else max(30.0, lease_s * 10)
        self.owner = owner or new_owner("worker")
        self.leases = Leases(store, self.owner, lease_s)
        self._queue: asyncio.Queue[str] | None = None
        self._queued: set[str] = set()  # waiting in the queue or being advanced
        self._running: set[str] = set()
        self._again: set[str] = set()  # submitted while being advanced: look again afterwards
        self._failures: dict[str, int] = {}  # consecutive transient failures per thread
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sleeping: set[str] = set()  # workflow threads whose run ended on a durable timer

    async def start(self, *, recover: bool = True) -> None:
        """Start the pool; with ``recover``, pick up every thread left running (e.g. by a restart).

        Either way, threads orphaned later by a dead process are picked up as their leases expire.
        """
        self._queue = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self.leases.start()
        self._tasks = [asyncio.create_task(self._serve(), name=f"{self.owner}-{i}") for i in range(self.concurrency)]
        self._spawn(self._sweep())
        self._spawn(self._scan(first=recover))

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
        self.leases.want(thread_id)  # held from the next heartbeat on, while it waits in the queue
        self._queue.put_nowait(thread_id)

    def submit_threadsafe(self, thread_id: str) -> None:
        """``submit`` from a worker thread (a workflow queueing its sub-agent's thread)."""
        if self._loop is not None and not self._stopping.is_set():
            self._loop.call_soon_threadsafe(self.submit, thread_id)

    async def stop(self, timeout: float = 30.0) -> None:
        """Let the steps in flight finish for ``timeout`` s, then cancel their model calls; stop.

        Threads whose steps were cancelled are left exactly as recorded (resumable by any process),
        and every lease this worker held is given back.
        """
        self._stopping.set()
        for task in self._background:
            task.cancel()
        if self._queue is not None:
            for _ in self._tasks:
                self._queue.put_nowait("")  # wake idle workers
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            if pending:
                # An awaited call (an async model or tool) stops at once when its task is cancelled; a
                # synchronous one in a pool thread is told to stop by its model. Either way the thread is
                # left as recorded, resumable, as after a crash.
                cancelled = self._cancel_model_calls()
                for task in pending:
                    task.cancel()
                log.warning(
                    "stopping: cancelled %d thread advance(s) (%d synchronous model call(s)) after %.1f s",
                    len(pending),
                    cancelled,
                    timeout,
                )
                await asyncio.wait(pending, timeout=5.0)
        self._tasks = []
        if self._own_calls:
            self.calls.close()
        await asyncio.to_thread(self.leases.stop)
        for thread_id in list(self._queued):
            await asyncio.to_thread(self._release, thread_id)

    async def idle(self) -> None:
        """Wait until nothing is queued or running (tests and benchmarks)."""
        while self._queued or any(task.get_name() == "retry" for task in self._background):
            await asyncio.sleep(0.005)

    # --- the pool ---

    async def _serve(self) -> None:
        assert self._queue is not None
        while not self._stopping.is_set():
            thread_id = await self._queue.get()
            if not thread_id:
                continue
            self._running.add(thread_id)
            try:
                delay = await self._advance(thread_id)
            except Exception:  # noqa: BLE001 - one broken thread must not take the worker down
                log.exception("advancing thread %s failed", thread_id)
                delay = self.retry_s
            finally:
                self._running.discard(thread_id)
                self._queued.discard(thread_id)
            if thread_id in self._again:
                self._again.discard(thread_id)
                self.submit(thread_id)
            elif delay is not None and not self._stopping.is_set():
                # A durable timer is no retry: `idle` does not wait for it.
                name = "timer" if thread_id in self._sleeping else "retry"
                self._spawn(self._retry_later(thread_id, delay), name=name)
            self._sleeping.discard(thread_id)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str = "background") -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _retry_later(self, thread_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self.submit(thread_id)

    async def _sweep(self) -> None:
        """Take over threads whose lease expired: their holder died."""
        while not self._stopping.is_set():
            await asyncio.sleep(self.sweep_s)
            try:
                for thread_id in await asyncio.to_thread(self.store.expired_leases, 100):
                    self.submit(thread_id)
            except Exception:  # noqa: BLE001 - the next sweep tries again
                log.warning("looking for expired leases failed", exc_info=True)

    async def _scan(self, *, first: bool) -> None:
        """Every running thread of an agent served here, also those no process ever leased."""
        if not first:
            await asyncio.sleep(self.scan_s)
        while not self._stopping.is_set():
            try:
                for thread_id in await asyncio.to_thread(self._running_threads):
                    self.submit(thread_id)
                for thread_id, delay in await asyncio.to_thread(self._waiting_workflows):
                    if delay <= 0:
                        self.submit(thread_id)
                    elif delay < self.scan_s:
                        self._spawn(self._retry_later(thread_id, delay), name="timer")
            except Exception:  # noqa: BLE001 - the next scan tries again
                log.warning("scanning for running threads failed", exc_info=True)
            await asyncio.sleep(self.scan_s)

    def _running_threads(self) -> list[str]:
        return running_threads(self.store, self.agents)

    def _waiting_workflows(self) -> list[tuple[str, float]]:
        return waiting_workflows(self.store, self.agents)

    # --- one thread (a task on the event loop) ---

    async def _advance(self, thread_id: str) -> float | None:
        """Run the thread while it has work; the delay before trying it again, or None when done."""
        try:
            if not await self._in_store(self.leases.claim, thread_id):
                # Its holder is alive and advancing it, and looks again after it lets go (below); if it
                # dies, its lease expires and the sweep brings the thread back. No polling meanwhile.
                return None
        except Exception as exc:  # noqa: BLE001
            return await self._in_store(self._failed, thread_id, exc)
        try:
            delay = await self._run(thread_id)
            self._failures.pop(thread_id, None)
        except ThreadNotFound:
            return None
        except ModelCancelled:
            log.info("thread %s: model call cancelled; left resumable as recorded", thread_id)
            return None
        except Exception as exc:  # noqa: BLE001
            delay = await self._in_store(self._failed, thread_id, exc)
        finally:
            await asyncio.shield(self._in_store(self._release, thread_id))
        if delay is None and not self._stopping.is_set() and await self._in_store(self._still_needs_work, thread_id):
            # Something arrived after the run's last look and before the lease was free: another
            # process that appended it could not claim the thread and left it to us.
            delay = 0.0
        return delay

    async def _run(self, thread_id: str) -> float | None:
        """Advance the thread while it has work; the seconds until its timer is due, if it sleeps."""
        delay = await advance_on(
            self.calls,
            self.agents,
            self.store,
            thread_id,
            submit=self.submit_threadsafe,
            should_stop=lambda: self._should_stop(thread_id),
            on_delta=self.on_delta,
        )
        if delay is not None:
            self._sleeping.add(thread_id)  # every delay `advance` returns is a durable timer's
        return delay

    async def _in_store(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.calls.store(self.store, fn, *args)

    def _should_stop(self, thread_id: str) -> bool:
        # A lost lease: this process stalled past it and another took the thread over; let it go on.
        return self._stopping.is_set() or thread_id in self.leases.lost

    def _failed(self, thread_id: str, exc: Exception) -> float | None:
        """Retry a transient failure later with backoff; record any other on the thread."""
        count = failure_streak(self._failures, thread_id, exc)
        return failed(self.store, thread_id, exc, attempt=count, retry_s=self.retry_s)

    def _record_failure(self, thread_id: str, message: str) -> None:
        record_failure(self.store, thread_id, message)

    def _still_needs_work(self, thread_id: str) -> bool:
        return still_needs_work(self.agents, self.store, thread_id)

    def _release(self, thread_id: str) -> None:
        try:
            self.leases.release(thread_id)
        except Exception:  # noqa: BLE001 - the lease expires by itself
            log.warning("releasing the lease of thread %s failed", thread_id, exc_info=True)

    def _cancel_model_calls(self) -> int:
        cancelled = 0
        for agent in self.agents.values():
            if not isinstance(agent, Agent):
                continue
            cancel: Callable[[], int] | None = getattr(agent.model, "cancel", None)
            if callable(cancel):
                cancelled += int(cancel())
        return cancelled
