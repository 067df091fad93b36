"""The in-process worker: what it must not lose while a thread is being advanced."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from twelvefactor import (
    Agent,
    EventLoopCalls,
    HumanResponse,
    MemoryStore,
    ModelResponse,
    ScriptedModel,
    SQLiteStore,
    Thread,
    UserMessage,
)
from twelvefactor.workers import Worker

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class AnswerWhileReleasing(MemoryStore):
    """Answers the thread's question at the worst moment: after the worker decided there is nothing to
    do (the thread was waiting) and before its run ends — and submits the thread, as the API does."""

    blocking = True  # it waits for the event loop, so its calls must run off it (as SQLite's do)

    def __init__(self) -> None:
        super().__init__()
        self.worker: Worker | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.answered = False

    def release(self, thread_id: str, owner: str) -> None:
        thread = self.load(thread_id)
        pending = thread.pending_request
        if not self.answered and pending is not None:
            self.answered = True
            self.respond(thread_id, HumanResponse(request_id=pending.call_id, text="12 and 30"))
            submitted = threading.Event()
            assert self.loop is not None and self.worker is not None
            worker = self.worker
            self.loop.call_soon_threadsafe(lambda: (worker.submit(thread_id), submitted.set()))
            assert submitted.wait(5)
        super().release(thread_id, owner)


async def test_a_thread_submitted_while_it_is_being_advanced_is_advanced_again() -> None:
    store = AnswerWhileReleasing()
    agent = Agent(
        "asker",
        model=ScriptedModel(
            [
                {"intent": "request_human_input", "question": "which numbers?"},
                {"intent": "done_for_now", "message": "42"},
            ]
        ),
    )
    worker = Worker(store, {"asker": agent}, concurrency=2)
    store.worker, store.loop = worker, asyncio.get_running_loop()
    store.create(Thread.new(UserMessage(content="add"), agent="asker", id="t"))
    await worker.start(recover=False)
    try:
        worker.submit("t")
        for _ in range(500):
            if store.load("t").status == "done":
                break
            await asyncio.sleep(0.01)
    finally:
        await worker.stop()
    assert store.answered
    assert store.load("t").status == "done"


async def test_a_thread_whose_lease_is_held_elsewhere_is_retried_until_it_is_free() -> None:
    store = MemoryStore()
    agent = Agent("done", model=ScriptedModel([{"intent": "done_for_now", "message": "ok"}]))
    store.create(Thread.new(UserMessage(content="go"), agent="done", id="t"))
    # A lease far longer than the test: "not touched while it lives" holds however slow the machine is.
    assert store.claim("t", "another-process", ttl_s=60)
    worker = Worker(store, {"done": agent}, retry_s=0.05, lease_s=0.4)
    await worker.start(recover=False)
    try:
        worker.submit("t")
        await asyncio.sleep(0.1)
        assert store.load("t").status == "running"  # not touched while the other lease lives
        assert store.claim("t", "another-process", ttl_s=0)  # its holder dies: the lease is expired from now
        for _ in range(1000):  # taken over once the lease expired
            if store.load("t").status == "done":
                break
            await asyncio.sleep(0.01)
    finally:
        await worker.stop()
    assert store.load("t").status == "done"


async def test_a_thread_of_an_agent_not_served_here_fails_with_a_clear_error() -> None:
    store = MemoryStore()
    store.create(Thread.new(UserMessage(content="go"), agent="ghost", id="t"))
    worker = Worker(store, {})
    await worker.start(recover=False)
    try:
        worker.submit("t")
        for _ in range(200):
            if store.load("t").status != "running":
                break
            await asyncio.sleep(0.01)
    finally:
        await worker.stop()
    thread = store.load("t")
    assert thread.status == "failed"
    assert "no agent named 'ghost' is served here" in thread.events[-1].message  # type: ignore[attr-defined]


class GatedModel:
    """Replies only once ``count`` calls are in flight at the same moment: a worker that advanced fewer
    threads at once (a small pool) would never get there."""

    name = "gated"

    def __init__(self, count: int) -> None:
        self.count = count
        self.in_flight = 0
        self.all_in = asyncio.Event()

    def complete(self, messages: object) -> ModelResponse:
        raise AssertionError("the worker awaits acomplete")

    async def acomplete(self, messages: object, **options: object) -> ModelResponse:
        self.in_flight += 1
        if self.in_flight == self.count:
            self.all_in.set()
        await asyncio.wait_for(self.all_in.wait(), 20)
        return ModelResponse(text='{"intent": "done_for_now", "message": "ok"}', model="gated")


async def test_the_worker_keeps_a_thousand_threads_waiting_on_the_model_at_once(tmp_path: Path) -> None:
    count = 1000
    store = SQLiteStore(tmp_path / "w.db")
    model = GatedModel(count)
    agent = Agent("gated", model=model)
    ids = [f"t{i}" for i in range(count)]
    for thread_id in ids:
        store.create(Thread.new(UserMessage(content="hi"), agent="gated", id=thread_id))
    worker = Worker(store, {"gated": agent})
    await worker.start(recover=False)
    try:
        for thread_id in ids:
            worker.submit(thread_id)
        await asyncio.wait_for(worker.idle(), 30)
    finally:
        await worker.stop()
    assert model.all_in.is_set()
    assert {store.load(i).status for i in ids} == {"done"}
    store.close()


async def test_model_limits_hold_across_the_threads_of_a_worker() -> None:
    peak = 0
    in_flight = 0

    class Slow:
        name = "openai:gpt-test"

        def complete(self, messages: object) -> ModelResponse:
            raise AssertionError("the worker awaits acomplete")

        async def acomplete(self, messages: object, **options: object) -> ModelResponse:
            nonlocal peak, in_flight
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return ModelResponse(text='{"intent": "done_for_now", "message": "ok"}', model="gpt-test")

    store = MemoryStore()
    agent = Agent("limited", model=Slow())
    worker = Worker(store, {"limited": agent}, calls=EventLoopCalls(limits={"openai": 4}))
    for i in range(40):
        store.create(Thread.new(UserMessage(content="hi"), agent="limited", id=f"t{i}"))
    await worker.start(recover=False)
    try:
        for i in range(40):
            worker.submit(f"t{i}")
        await asyncio.wait_for(worker.idle(), 30)
    finally:
        await worker.stop()
    assert {store.load(f"t{i}").status for i in range(40)} == {"done"}
    assert peak == 4


async def test_stop_cancels_an_awaited_model_call_after_the_grace_and_leaves_the_thread_resumable() -> None:
    started = asyncio.Event()

    class Hanging:
        name = "hanging"

        def complete(self, messages: object) -> ModelResponse:
            raise AssertionError("the worker awaits acomplete")

        async def acomplete(self, messages: object, **options: object) -> ModelResponse:
            started.set()
            await asyncio.sleep(3600)
            raise AssertionError("never answers")

    store = MemoryStore()
    agent = Agent("hangs", model=Hanging())
    store.create(Thread.new(UserMessage(content="hi"), agent="hangs", id="t"))
    worker = Worker(store, {"hangs": agent})
    await worker.start(recover=False)
    worker.submit("t")
    await asyncio.wait_for(started.wait(), 5)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await worker.stop(timeout=0.2)
    assert loop.time() - began < 3  # not the model's hour, nor a second grace period
    thread = store.load("t")
    assert [e.type for e in thread.events] == ["user_message"] and thread.status == "running"
    agent.model = ScriptedModel([{"intent": "done_for_now", "message": "back"}])
    again = Worker(store, {"hangs": agent})
    await again.start(recover=True)  # the lease was given back: a restarted worker takes it at once
    try:
        await asyncio.wait_for(again.idle(), 10)
        for _ in range(200):
            if store.load("t").status == "done":
                break
            await asyncio.sleep(0.01)
    finally:
        await again.stop()
    assert store.load("t").status == "done"
