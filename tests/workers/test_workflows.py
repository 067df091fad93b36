"""Workflows served by the worker: sub-agents as threads of their own, parents woken, timers kept."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import pytest

from twelvefactor import (
    Agent,
    Flow,
    HumanResponse,
    ScriptedModel,
    SQLiteStore,
    Thread,
    Tool,
    ToolCall,
    Wait,
    workflow,
)
from twelvefactor.store.base import ThreadStore
from twelvefactor.workers import Worker

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Verdict(Tool):
    """Give the pipeline your verdict."""

    intent: Literal["verdict"] = "verdict"
    go: bool


def reviewer() -> Agent:
    script = [
        {"intent": "request_human_input", "question": "Is the freeze over?"},
        {"intent": "verdict", "go": True},
    ]
    return Agent("reviewer", tools=[Verdict], model=ScriptedModel(script))


async def until(store: ThreadStore, thread_id: str, status: str, seconds: float = 10.0) -> Thread:
    for _ in range(int(seconds / 0.02)):
        thread = store.load(thread_id)
        if thread.status == status:
            return thread
        await asyncio.sleep(0.02)
    raise AssertionError(f"thread {thread_id} is {store.load(thread_id).status}, not {status}")


async def test_a_sub_agent_asking_a_person_pauses_the_served_workflow_which_resumes_when_it_is_done(
    tmp_path: Path,
) -> None:
    agent = reviewer()
    ran: list[str] = []

    @workflow(agents=[agent])
    def gate(wf: Flow) -> str:
        verdict = wf.agent(agent, "review release 1.4", output=Verdict)
        wf.step(lambda: ran.append("after"), name="after", effect="idempotent")
        return "go" if verdict.go else "stop"

    with SQLiteStore(tmp_path / "t.db") as store:
        worker = Worker(store, {"gate": gate}, concurrency=2)  # the sub-agent is served with its workflow
        assert set(worker.agents) == {"gate", "reviewer"}
        await worker.start(recover=False)
        try:
            parent = gate.new_thread("ship")
            store.create(parent)
            worker.submit(parent.id)
            parent = await until(store, parent.id, "waiting")
            wait = parent.events[-1]
            assert isinstance(wait, Wait) and wait.thread_id is not None
            child = await until(store, wait.thread_id, "waiting")
            assert child.parent_id == parent.id and child.agent == "reviewer"
            assert child.pending_request is not None

            store.respond(child.id, HumanResponse(request_id=child.pending_request.call_id, text="yes"))
            worker.submit(child.id)  # as the API does after an answer
            parent = await until(store, parent.id, "done")
        finally:
            await worker.stop(timeout=5)
        assert parent.events[-1].message == "go"  # type: ignore[attr-defined]
        assert ran == ["after"]
        assert store.load(child.id).status == "done"


async def test_a_durable_timer_wakes_its_thread_and_survives_a_restart_of_the_worker(tmp_path: Path) -> None:
    @workflow
    def later(wf: Flow) -> str:
        wf.sleep(0.6)
        return "woke"

    path = tmp_path / "t.db"
    with SQLiteStore(path) as store:
        first = Worker(store, {"later": later})
        await first.start(recover=False)
        thread = later.new_thread()
        store.create(thread)
        first.submit(thread.id)
        await until(store, thread.id, "waiting")
        await first.stop(timeout=1)  # the process goes away while the timer runs

    with SQLiteStore(path) as store:
        second = Worker(store, {"later": later}, scan_s=0.2)  # a new process: the scan finds the timer
        await second.start(recover=True)
        try:
            done = await until(store, thread.id, "done")
        finally:
            await second.stop(timeout=1)
    assert done.events[-1].message == "woke"  # type: ignore[attr-defined]
    assert [e.intent for e in done.events if isinstance(e, ToolCall)] == ["sleep"]


async def test_an_agent_used_as_a_tool_runs_as_its_own_thread_and_its_question_pauses_the_parent() -> None:
    from twelvefactor import MemoryStore

    helper = Agent(
        "helper",
        model=ScriptedModel(
            [
                {"intent": "request_human_input", "question": "which region?"},
                {"intent": "done_for_now", "message": "eu-west"},
            ]
        ),
    )
    boss = Agent(
        "boss",
        tools=[helper.as_tool(name="ask_helper")],
        model=ScriptedModel(
            [{"intent": "ask_helper", "task": "pick a region"}, {"intent": "done_for_now", "message": "ok"}]
        ),
    )
    store = MemoryStore()
    worker = Worker(store, {"boss": boss})
    assert set(worker.agents) == {"boss", "helper"}  # served with the agent that uses it
    await worker.start(recover=False)
    try:
        parent = boss.new_thread("go")
        store.create(parent)
        worker.submit(parent.id)
        parent = await until(store, parent.id, "waiting")
        wait = parent.events[-1]
        assert isinstance(wait, Wait) and wait.thread_id is not None
        child = await until(store, wait.thread_id, "waiting")
        assert child.pending_request is not None
        store.respond(child.id, HumanResponse(request_id=child.pending_request.call_id, text="EU"))
        worker.submit(child.id)
        parent = await until(store, parent.id, "done")
    finally:
        await worker.stop(timeout=5)
    result = [e for e in parent.events if e.type == "tool_result"]
    assert result[0].result == "eu-west"  # type: ignore[attr-defined]
