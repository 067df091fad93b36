"""The worker when things go wrong: failures recorded, transient errors retried, orphaned threads
taken over within seconds, live leases respected, a bounded shutdown."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from twelvefactor import (
    Agent,
    Error,
    MemoryStore,
    Message,
    ModelResponse,
    ScriptedModel,
    SQLiteStore,
    Thread,
    UserMessage,
    tool,
)
from twelvefactor.errors import ModelCancelled
from twelvefactor.models.base import OutputSpec
from twelvefactor.workers import Worker

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


class FlakySQLiteStore(SQLiteStore):
    """Every other write first fails the way SQLite does when another process holds the lock too long."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    def save(self, thread: Thread, expected_version: int) -> Thread:
        if self.failures > 0:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return super().save(thread, expected_version)


async def test_a_transient_database_error_is_retried_and_the_thread_finishes(tmp_path: Path) -> None:
    store = FlakySQLiteStore(tmp_path / "t.db", failures=3)
    agent = Agent("a", model=ScriptedModel([{"intent": "done_for_now", "message": "ok"}] * 5))
    store.create(Thread.new(UserMessage(content="go"), agent="a", id="t"))
    worker = Worker(store, {"a": agent}, retry_s=0.02)
    await worker.start(recover=False)
    try:
        worker.submit("t")
        await wait_for(lambda: store.load("t").status != "running")
    finally:
        await worker.stop()
        store.close()
    assert store.failures == 0
    with SQLiteStore(tmp_path / "t.db") as check:
        assert check.load("t").status == "done"


async def test_an_unexpected_failure_is_recorded_on_the_thread_not_only_logged() -> None:
    class Exploding(MemoryStore):
        def save(self, thread: Thread, expected_version: int) -> Thread:
            if any(e.type == "done" for e in thread.events[expected_version:]):
                raise RuntimeError("disk on fire")
            return super().save(thread, expected_version)

    store = Exploding()
    agent = Agent("a", model=ScriptedModel([{"intent": "done_for_now", "message": "ok"}] * 3))
    store.create(Thread.new(UserMessage(content="go"), agent="a", id="t"))
    worker = Worker(store, {"a": agent}, retry_s=0.02)
    await worker.start(recover=False)
    try:
        worker.submit("t")
        await wait_for(lambda: store.load("t").status != "running")
    finally:
        await worker.stop()
    last = store.load("t").events[-1]
    assert isinstance(last, Error) and last.fatal
    assert "RuntimeError" in last.message and "disk on fire" in last.message


async def test_a_thread_orphaned_by_a_dead_process_is_taken_over_within_seconds(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    agent = Agent("a", model=ScriptedModel([{"intent": "done_for_now", "message": "ok"}]))
    with SQLiteStore(path) as dead:
        dead.create(Thread.new(UserMessage(content="go"), agent="a", id="t"))
        assert dead.claim("t", "dead-process", ttl_s=0.5)  # never renewed: kill -9
    store = SQLiteStore(path)
    worker = Worker(store, {"a": agent}, lease_s=0.5)
    await worker.start(recover=False)  # not the start-up scan: a live process notices on its own
    try:
        started = time.monotonic()
        await wait_for(lambda: store.load("t").status == "done", timeout=15)
        taken_over_s = time.monotonic() - started
    finally:
        await worker.stop()
        store.close()
    assert taken_over_s < 15


async def test_a_live_lease_is_kept_by_heartbeats_through_a_slow_tool(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    runs: list[float] = []

    @tool
    def slow() -> str:
        """Slow work."""
        runs.append(time.time())
        time.sleep(2.5)  # 2.5 lease lengths: only heartbeats (every 0.25 s) keep the lease
        return "ok"

    def agent() -> Agent:
        return Agent(
            "a", tools=[slow], model=ScriptedModel([{"intent": "slow"}, {"intent": "done_for_now", "message": "ok"}])
        )

    first, second = SQLiteStore(path), SQLiteStore(path)
    first.create(Thread.new(UserMessage(content="go"), agent="a", id="t"))
    one = Worker(first, {"a": agent()}, lease_s=1.0, owner="one")
    two = Worker(second, {"a": agent()}, lease_s=1.0, owner="two")
    await one.start(recover=False)
    await two.start(recover=True)
    try:
        one.submit("t")
        await wait_for(lambda: bool(runs))
        two.submit("t")  # e.g. a trigger arrived at the other process
        await wait_for(lambda: first.load("t").status == "done")
    finally:
        await one.stop()
        await two.stop()
        first.close()
        second.close()
    assert len(runs) == 1


async def test_stop_cancels_a_model_call_still_in_flight_after_the_grace_period() -> None:
    class Hanging:
        name = "hanging"

        def __init__(self) -> None:
            self.entered = threading.Event()
            self.cancelled = threading.Event()

        def complete(self, messages: Sequence[Message], *, output: OutputSpec | None = None) -> ModelResponse:
            self.entered.set()
            if self.cancelled.wait(30):
                raise ModelCancelled("cancelled")
            return ModelResponse(text='{"intent": "done_for_now", "message": "late"}', model=self.name)

        def cancel(self) -> int:
            self.cancelled.set()
            return 1

    model = Hanging()
    store = MemoryStore()
    store.create(Thread.new(UserMessage(content="go"), agent="a", id="t"))
    worker = Worker(store, {"a": Agent("a", model=model)})  # type: ignore[arg-type]
    await worker.start(recover=False)
    worker.submit("t")
    await wait_for(model.entered.is_set)
    started = time.monotonic()
    await worker.stop(timeout=0.3)
    assert time.monotonic() - started < 10
    assert model.cancelled.is_set()
    thread = store.load("t")
    assert thread.status == "running"  # left resumable, nothing recorded about the cancelled call
    assert [e.type for e in thread.events] == ["user_message"]
    assert store.claim("t", "someone-else", ttl_s=1)  # and its lease was given back
