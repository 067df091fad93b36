"""The async face (astep/arun): the same loop as run(), with every outside call awaited."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pytest

from twelvefactor import Agent, MemoryStore, ModelResponse, ScriptedModel, SQLiteStore, Thread, Tool, reduce, run, tool
from twelvefactor.calls import EventLoopCalls
from twelvefactor.errors import UserError
from twelvefactor.events import Event, ToolResult, UserMessage
from twelvefactor.loop import arun
from twelvefactor.messages import Message
from twelvefactor.tools import Reconciled, ToolContext


def steps(*outputs: dict[str, Any]) -> list[str]:
    return [json.dumps(o) for o in outputs]


ADD_TWICE = steps(
    {"intent": "add", "a": 1, "b": 2},
    {"intent": "add", "a": 3, "b": 4},
    {"intent": "done_for_now", "message": "3 and 7"},
)


@tool(effect="read_only")
def add(a: int, b: int) -> int:
    """Add b to a."""
    return a + b


class AsyncScripted:
    """A model with only ``acomplete``-style behaviour that awaits: what an async provider looks like."""

    def __init__(
        self, outputs: Sequence[str], *, name: str = "async-scripted", permits: asyncio.Semaphore | None = None
    ):
        self.outputs = list(outputs)
        self._name = name
        self.permits = permits  # each call waits for one, when given
        self.in_flight = 0
        self.peak = 0
        self.loop_threads: set[str] = set()

    @property
    def name(self) -> str:
        return self._name

    def complete(self, messages: Sequence[Message]) -> ModelResponse:
        raise AssertionError("the async face must await acomplete, not call complete")

    async def acomplete(self, messages: Sequence[Message], **options: Any) -> ModelResponse:
        self.loop_threads.add(threading.current_thread().name)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.permits is not None:
                await asyncio.wait_for(self.permits.acquire(), 10)
            else:
                await asyncio.sleep(0)
            return ModelResponse(text=self.outputs.pop(0), model=self._name)
        finally:
            self.in_flight -= 1


def comparable(events: Sequence[Event]) -> list[dict[str, Any]]:
    """Events without what differs between two runs of the same script (times, latencies)."""
    out = []
    for event in events:
        data = event.model_dump(mode="json", exclude={"at", "latency_ms", "input_tokens", "output_tokens"})
        out.append(data)
    return out


def test_arun_records_the_same_events_as_run() -> None:
    sync_agent = Agent("calc", tools=[add], model=ScriptedModel(ADD_TWICE, name="async-scripted"))
    async_agent = Agent("calc", tools=[add], model=AsyncScripted(ADD_TWICE))
    by_run = run(sync_agent, sync_agent.new_thread("add"))
    by_arun = asyncio.run(arun(async_agent, async_agent.new_thread("add")))
    assert by_arun.status == by_run.status == "done"
    assert comparable(by_arun.events) == comparable(by_run.events)


def test_astep_is_one_decision_and_awaits_the_model() -> None:
    model = AsyncScripted(steps({"intent": "add", "a": 1, "b": 2}))
    agent = Agent("calc", tools=[add], model=model)
    thread, intent = asyncio.run(agent.astep(agent.new_thread("add")))
    assert intent is not None and intent.model_dump() == {"intent": "add", "a": 1, "b": 2}
    assert [e.type for e in thread.events] == ["user_message", "model_call"]
    assert model.loop_threads == {"MainThread"}  # awaited on the loop, not sent to a thread


def test_sync_tools_run_in_the_pool_and_async_tools_on_the_loop() -> None:
    where: dict[str, str] = {}

    @tool(effect="read_only")
    def blocking(x: int) -> int:
        """A synchronous tool."""
        where["blocking"] = threading.current_thread().name
        return x

    @tool(effect="read_only")
    async def awaiting(x: int) -> int:
        """An async tool."""
        await asyncio.sleep(0)
        where["awaiting"] = threading.current_thread().name
        return x * 10

    script = steps(
        {"intent": "blocking", "x": 1}, {"intent": "awaiting", "x": 2}, {"intent": "done_for_now", "message": "ok"}
    )
    agent = Agent("t", tools=[blocking, awaiting], model=AsyncScripted(script))
    thread = asyncio.run(arun(agent, agent.new_thread("go")))
    results = [e.result for e in thread.events if isinstance(e, ToolResult)]
    assert results == [1, 20]
    assert where["blocking"].startswith("twelvefactor-tool")
    assert where["awaiting"] == "MainThread"


def test_async_tools_and_async_run_methods_work_from_the_synchronous_face() -> None:
    class Fetch(Tool):
        """Fetch a page (async run with the context)."""

        intent: Literal["fetch"] = "fetch"
        url: str

        async def run(self, ctx: ToolContext) -> str:
            await asyncio.sleep(0)
            return f"{self.url} for {ctx.call_id}"

    @tool(effect="read_only")
    async def double(x: int) -> int:
        """Double x."""
        await asyncio.sleep(0)
        return 2 * x

    script = steps(
        {"intent": "fetch", "url": "u"}, {"intent": "double", "x": 4}, {"intent": "done_for_now", "message": "ok"}
    )
    agent = Agent("t", tools=[Fetch, double], model=ScriptedModel(script))
    thread = run(agent, agent.new_thread("go"))
    assert [e.result for e in thread.events if isinstance(e, ToolResult)] == ["u for call_2", 8]

    # run() called from inside a running event loop: the async tool gets a loop of its own in a thread.
    async def inside() -> Thread:
        again = Agent("t", tools=[Fetch, double], model=ScriptedModel(script))
        return run(again, again.new_thread("go"))

    assert [e.result for e in asyncio.run(inside()).events if isinstance(e, ToolResult)] == ["u for call_2", 8]


def test_a_thousand_runs_wait_on_the_model_at_once() -> None:
    """Concurrency without timing: every run must be inside the model at the same moment to finish."""
    count = 1000

    async def main() -> list[Thread]:
        permits = asyncio.Semaphore(0)
        model = AsyncScripted(steps(*[{"intent": "done_for_now", "message": "hi"}] * count), permits=permits)
        agent = Agent("many", model=model)
        store = MemoryStore()
        tasks = [asyncio.create_task(arun(agent, agent.new_thread(f"n{i}"), store=store)) for i in range(count)]
        for _ in range(200):
            if model.in_flight == count:
                break
            await asyncio.sleep(0.01)
        assert model.in_flight == count
        for _ in range(count):
            permits.release()
        return await asyncio.gather(*tasks)

    threads = asyncio.run(main())
    assert {t.status for t in threads} == {"done"}


def test_per_model_limits_bound_the_calls_in_flight() -> None:
    calls = EventLoopCalls(limits={"openai": 50, "slow": 3})
    assert calls.limit_key("slow") == "slow"
    assert calls.limit_key("openai:gpt-4o") == "openai"
    assert calls.limit_key("openai-compatible:x") is None

    async def main() -> AsyncScripted:
        model = AsyncScripted(steps(*[{"intent": "done_for_now", "message": "hi"}] * 12), name="slow")

        async def slow(messages: Sequence[Message], **options: Any) -> ModelResponse:
            model.in_flight += 1
            model.peak = max(model.peak, model.in_flight)
            assert calls.in_flight() == {"slow": model.in_flight}
            await asyncio.sleep(0.01)
            model.in_flight -= 1
            return ModelResponse(text=model.outputs.pop(0), model="slow")

        model.acomplete = slow  # type: ignore[method-assign]
        agent = Agent("limited", model=model)
        await asyncio.gather(*(arun(agent, agent.new_thread(str(i)), calls=calls) for i in range(12)))
        return model

    assert asyncio.run(main()).peak == 3
    with pytest.raises(UserError, match="at least 1"):
        EventLoopCalls(limits={"x": 0})
    with pytest.raises(UserError, match="'default_limit' must be at least 1"):
        EventLoopCalls(default_limit=0)  # a semaphore of 0: every model call would wait for ever


def test_a_model_without_acomplete_runs_in_a_thread_not_on_the_loop() -> None:
    seen: list[str] = []

    class Plain:
        name = "plain"

        def complete(self, messages: Sequence[Message]) -> ModelResponse:
            seen.append(threading.current_thread().name)
            return ModelResponse(text=json.dumps({"intent": "done_for_now", "message": "ok"}), model="plain")

    agent = Agent("plain", model=Plain())
    assert asyncio.run(arun(agent, agent.new_thread("hi"))).status == "done"
    assert seen and seen[0].startswith("twelvefactor-tool")


def test_cancelling_arun_keeps_what_was_recorded_and_run_resumes_it(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")

    async def main() -> str:
        permits = asyncio.Semaphore(1)  # the first call answers; the run is stopped inside the second
        model = AsyncScripted(ADD_TWICE, permits=permits)
        agent = Agent("calc", tools=[add], model=model)
        thread = agent.new_thread("add")
        task = asyncio.create_task(arun(agent, thread, store=store))
        while len(model.outputs) == len(ADD_TWICE) or model.in_flight == 0:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return thread.id

    thread_id = asyncio.run(main())
    stored = store.load(thread_id)
    assert [e.type for e in stored.events] == ["user_message", "model_call", "tool_call", "tool_result"]
    agent = Agent("calc", tools=[add], model=ScriptedModel(ADD_TWICE[1:]))
    resumed = run(agent, stored, store=store)
    assert resumed.status == "done"
    assert [e.result for e in resumed.events if isinstance(e, ToolResult)] == [3, 7]
    store.close()


def test_arun_with_sqlite_runs_a_sub_agent_in_its_own_stored_thread(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    helper = Agent("helper", model=AsyncScripted(steps({"intent": "done_for_now", "message": "42"})))
    boss = Agent(
        "boss",
        tools=[helper.as_tool()],
        model=AsyncScripted(
            steps({"intent": "helper", "task": "answer"}, {"intent": "done_for_now", "message": "it is 42"})
        ),
    )
    thread = asyncio.run(arun(boss, boss.new_thread("ask the helper"), store=store))
    assert thread.status == "done"
    assert [e.result for e in thread.events if isinstance(e, ToolResult)] == ["42"]
    children = [s for s in store.list() if s.id != thread.id]
    assert len(children) == 1 and store.load(children[0].id).status == "done"
    store.close()


def test_async_prefetch_hooks_and_reconcile_hooks_are_awaited() -> None:
    async def prefetch(thread: Thread) -> list[Event]:
        await asyncio.sleep(0)
        return [UserMessage(content="fetched before the first call")]

    async def check(to: str) -> Reconciled:
        await asyncio.sleep(0)
        return Reconciled.done(f"already sent to {to}")

    @tool(reconcile=check)
    def send(to: str) -> str:
        """Send a mail (irreversible)."""
        return f"sent to {to}"

    model = AsyncScripted(steps({"intent": "done_for_now", "message": "ok"}))
    agent = Agent("p", model=model, prefetch=[prefetch])
    thread = asyncio.run(arun(agent, agent.new_thread("hi")))
    assert any(isinstance(e, UserMessage) and e.content == "fetched before the first call" for e in thread.events)

    # A crash inside the irreversible call: the resumed run asks the async hook, which says it happened.
    from twelvefactor.events import ToolCall, ToolStarted

    crashed = Agent("m", tools=[send], model=AsyncScripted(steps({"intent": "done_for_now", "message": "ok"})))
    interrupted = crashed.new_thread("mail bob")
    for event in (
        ToolCall(call_id="call_1", intent="send", arguments={"to": "bob"}),
        ToolStarted(call_id="call_1", intent="send", attempt=1, call_key="x:call_1"),
    ):
        interrupted = reduce(interrupted, event)
    resumed = asyncio.run(arun(crashed, interrupted))
    assert [e.result for e in resumed.events if isinstance(e, ToolResult)] == ["already sent to bob"]
    assert resumed.status == "done"


def test_the_synchronous_face_starts_no_event_loop() -> None:
    """run() drives the loop's coroutines without an event loop, so it works inside one unchanged."""

    async def inside() -> Thread:
        agent = Agent("calc", tools=[add], model=ScriptedModel(ADD_TWICE))
        return run(agent, agent.new_thread("add"))

    assert asyncio.run(inside()).status == "done"
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()
