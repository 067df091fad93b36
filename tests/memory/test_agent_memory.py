"""An agent with a memory, end to end: what one thread remembers another thread of the same user sees in
its prompt's memory section; forgetting takes it out at the next recall; a stored thread renders the same
window on replay whatever memory holds now; the budget cuts; the model writes only its own scope."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from twelvefactor import Agent, FunctionModel, Thread, UserMessage, arun, run
from twelvefactor.errors import UserError
from twelvefactor.events import CustomEvent, Error, MemoryRecalled, ModelCall, ToolResult
from twelvefactor.memory import InMemoryBackend, Memory, memory_scope
from twelvefactor.messages import Message
from twelvefactor.store import SQLiteStore, ThreadStore, memory_backend_for

FACT_ID = re.compile(r"f_[0-9a-f]{16}")
HEADING = "Facts you remember from earlier threads:"


def scripted(*steps: dict[str, Any] | Callable[[Sequence[Message]], dict[str, Any]]) -> FunctionModel:
    """A model that takes the given steps in order (a step may read the messages it was sent)."""
    queue = list(steps)

    def reply(messages: Sequence[Message]) -> dict[str, Any]:
        step = queue.pop(0)
        return step(messages) if callable(step) else step

    return FunctionModel(reply)


def done(message: str = "ok") -> dict[str, Any]:
    return {"intent": "done_for_now", "message": message}


def memory_section(agent: Agent, thread: Thread) -> str:
    """The system message's memory section as the model would read it ("" when there is none)."""
    system = agent.render(thread)[0].content
    return system.split(HEADING + "\n", 1)[1] if HEADING in system else ""


def launch(agent: Agent, message: str, *scopes: str) -> Thread:
    return Thread.new(UserMessage(content=message), *(memory_scope(s) for s in scopes), agent=agent.name)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "app.db") as opened:
        yield opened


@pytest.fixture
def memory(store: SQLiteStore) -> Memory:
    return Memory(memory_backend_for(store))


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThreadStore]:
    if request.param == "sqlite":
        with SQLiteStore(tmp_path / "app.db") as opened:
            yield opened
    else:
        from twelvefactor.store.postgres import PostgresStore

        with PostgresStore(request.getfixturevalue("pg_url")) as opened:
            yield opened


def agent_with(memory: Memory, model: FunctionModel, **options: Any) -> Agent:
    return Agent("assistant", tools=memory.tools(), memory=memory, model=model, **options)


def test_a_fact_remembered_in_one_thread_is_in_the_next_threads_prompt_for_the_same_user(
    any_store: ThreadStore,
) -> None:
    store, memory = any_store, Memory(memory_backend_for(any_store))
    first = agent_with(memory, scripted({"intent": "remember", "text": "Alice prefers metric units"}, done()))
    a = run(first, launch(first, "use metric from now on", "user:alice"), store=store)
    (result,) = [e for e in a.events if isinstance(e, ToolResult)]
    assert result.result["scope"] == "user:alice" and result.result["text"] == "Alice prefers metric units"
    assert memory_section(first, a) == "- Alice prefers metric units"  # recalled again after `remember`

    seen: list[str] = []

    def answer(messages: Sequence[Message]) -> dict[str, Any]:
        seen.append(messages[0].content)
        return done("12 km")

    second = agent_with(memory, scripted(answer))
    b = run(second, launch(second, "how far is it?", "user:alice"), store=store)
    assert memory_section(second, b) == "- Alice prefers metric units"
    assert f"{HEADING}\n- Alice prefers metric units" in seen[0]  # what the model was really sent
    (recalled,) = [e for e in b.events if isinstance(e, MemoryRecalled)]
    assert [f.text for f in recalled.facts] == ["Alice prefers metric units"]

    third = agent_with(memory, scripted(done()))
    c = run(third, launch(third, "how far is it?", "user:bob"), store=store)
    assert memory_section(third, c) == "" and HEADING not in third.render(c)[0].content
    assert not any(isinstance(e, MemoryRecalled) for e in c.events)


def test_forget_takes_a_fact_out_at_the_next_recall_and_replay_renders_the_stored_window(
    store: SQLiteStore, memory: Memory
) -> None:
    memory.remember("Alice is allergic to peanuts", scope="user:alice")
    memory.remember("Alice lives in Lyon", scope="user:alice", key="city")
    before = agent_with(memory, scripted(done()))
    b = run(before, launch(before, "what should I cook?", "user:alice"), store=store)
    window_b = before.render(store.load(b.id))
    assert memory_section(before, b) == "- Alice lives in Lyon\n- Alice is allergic to peanuts"

    def forget_what_recall_found(messages: Sequence[Message]) -> dict[str, Any]:
        (fact_id,) = set(FACT_ID.findall(messages[-1].content.split("intent: recall")[-1]))
        return {"intent": "forget", "fact_id": fact_id}

    agent = agent_with(
        memory, scripted({"intent": "recall", "query": "peanuts?"}, forget_what_recall_found, done("forgotten"))
    )
    d = run(agent, launch(agent, "I am not allergic any more", "user:alice"), store=store)
    results = [e.result for e in d.events if isinstance(e, ToolResult)]
    assert results[0] == [{"id": results[0][0]["id"], "scope": "user:alice", "text": "Alice is allergic to peanuts"}]
    assert results[1] == f"forgot fact {results[0][0]['id']!r}"
    recalls = [[f.text for f in e.facts] for e in d.events if isinstance(e, MemoryRecalled)]
    assert recalls == [["Alice lives in Lyon", "Alice is allergic to peanuts"], ["Alice lives in Lyon"]]
    assert memory_section(agent, d) == "- Alice lives in Lyon"
    # The window of each model call is the one the model saw: the first still shows the fact.
    calls = [i for i, e in enumerate(d.events) if isinstance(e, ModelCall)]
    assert "peanuts" in memory_section(agent, d.at(calls[0])) and "peanuts" not in memory_section(agent, d.at(calls[2]))
    # A stored thread renders the same window on replay, whatever memory holds now.
    assert before.render(store.load(b.id)) == window_b
    assert "peanuts" in memory_section(before, store.load(b.id))


def test_the_memory_budget_cuts_facts_from_the_end(memory: Memory) -> None:
    for n in range(30):
        memory.remember(f"fact number {n} about the user's many preferences", scope="user:alice")
    unlimited = agent_with(memory, scripted(done()))
    full = memory_section(unlimited, run(unlimited, launch(unlimited, "hi", "user:alice")))
    assert len(full.splitlines()) == 30 and full.splitlines()[0].startswith("- fact number 29 ")
    tight = agent_with(memory, scripted(done()), memory_tokens=40)
    cut = memory_section(tight, run(tight, launch(tight, "hi", "user:alice"))).splitlines()
    assert 1 <= len(cut) < 30 and cut == full.splitlines()[: len(cut)]  # the newest first, the rest cut
    few = Memory(memory.backend, limit=3)
    assert [f.text[:16] for f in few.recall_for(launch(tight, "hi", "user:alice"))] == [
        "fact number 29 a",
        "fact number 28 a",
        "fact number 27 a",
    ]


def test_scopes_come_in_order_user_agent_global_and_only_from_before_the_first_model_call(memory: Memory) -> None:
    memory.remember("the office closes at 6pm", scope="global")
    memory.remember("answer in French", scope="agent:assistant")
    memory.remember("Alice is a manager", scope="user:alice")
    memory.remember("Mallory is an admin", scope="user:mallory")
    agent = agent_with(memory, scripted(done()))
    thread = run(agent, launch(agent, "hi", "user:alice"))
    assert memory_section(agent, thread) == "- Alice is a manager\n- answer in French\n- the office closes at 6pm"
    # A scope event that arrives later (a webhook, an appended event) moves no thread into another's memory.
    late = Thread.new(*thread.events, memory_scope("user:mallory"), agent="assistant")
    assert memory.scopes_for(late) == ("user:alice", "agent:assistant", "global")
    with pytest.raises(UserError, match="without a string 'scope'"):
        memory.scopes_for(Thread.new(CustomEvent.model_validate({"type": "memory_scope", "scope": 3})))
    with pytest.raises(UserError, match="is not 'global' or 'kind:name'"):
        memory.scopes_for(Thread.new(CustomEvent.model_validate({"type": "memory_scope", "scope": "user:a b"})))


def test_the_model_writes_only_its_own_users_scope(memory: Memory) -> None:
    other = memory.remember("Mallory's secret plan", scope="user:mallory")
    agent = agent_with(
        memory,
        scripted(
            {"intent": "remember", "text": "everyone must obey", "scope": "global"},  # not a kind it may name
            {"intent": "forget", "fact_id": other.id},  # another user's fact
            {"intent": "remember", "text": "Alice likes tea", "scope": "user", "key": "drink"},
            done(),
        ),
    )
    thread = run(agent, launch(agent, "hi", "user:alice"))
    errors = [e for e in thread.events if isinstance(e, Error)]
    assert len(errors) == 1 and errors[0].source == "parse" and "'user'" in errors[0].message
    results = [e.result for e in thread.events if isinstance(e, ToolResult)]
    assert results[0] == f"no fact {other.id!r} in the memory you may change: nothing to forget"
    assert results[1]["scope"] == "user:alice"
    assert memory.backend.get(other.id) == other
    assert [f.scope for f in memory.facts()] == ["user:alice", "user:mallory"]
    assert memory.facts("global") == []


def test_a_thread_without_a_writable_scope_is_told_so_and_nothing_is_kept() -> None:
    memory = Memory(InMemoryBackend())
    agent = agent_with(memory, scripted({"intent": "remember", "text": "a fact"}, done()))
    thread = run(agent, launch(agent, "hi"))  # no memory_scope: agent and global only, neither writable
    (error,) = [e for e in thread.events if isinstance(e, Error)]
    assert error.source == "tool"
    assert error.message.endswith(
        "this thread has no scope you may write to remember in (yours: none); nothing was kept"
    )
    assert memory.facts() == []
    agents_too = Memory(memory.backend, writable=("user", "agent"))
    agent = agent_with(agents_too, scripted({"intent": "remember", "text": "a fact", "scope": "agent"}, done()))
    run(agent, launch(agent, "hi"))
    assert [(f.scope, f.source_thread is not None) for f in memory.facts()] == [("agent:assistant", True)]


def test_remember_run_again_after_a_crash_keeps_one_fact(memory: Memory) -> None:
    remember, _, _ = memory.tools()
    assert (remember.effect, remember.changes_memory) == ("idempotent", True)
    from twelvefactor.tools import ToolContext, execute

    thread = launch(agent_with(memory, scripted()), "hi", "user:alice")
    ctx = ToolContext(thread.id, "call_1", "remember", thread=thread)
    first = execute(remember(text="Alice likes tea"), ctx)
    again = execute(
        remember(text="Alice likes tea"), ToolContext(thread.id, "call_1", "remember", attempt=2, thread=thread)
    )
    assert first == again and len(memory.facts()) == 1


def test_the_async_face_gives_memory_tools_their_thread(memory: Memory) -> None:
    agent = agent_with(memory, scripted({"intent": "remember", "text": "Alice likes tea"}, done()))
    thread = asyncio.run(arun(agent, launch(agent, "hi", "user:alice")))
    assert memory_section(agent, thread) == "- Alice likes tea"


def test_memory_settings_are_checked() -> None:
    backend = InMemoryBackend()
    with pytest.raises(UserError, match="writable is a list of scope kinds"):
        Memory(backend, writable="user")
    with pytest.raises(UserError, match="not 'user:alice'"):
        Memory(backend, writable=("user:alice",))
    with pytest.raises(UserError, match="limit must be 1 to 1000"):
        Memory(backend, limit=0)
    with pytest.raises(UserError, match="recall_for takes a Thread"):
        Memory(backend).recall_for("t1")
