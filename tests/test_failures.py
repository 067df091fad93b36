"""What the loop does when advancing a thread goes wrong: every failure ends as an event on the thread,
a tool's result is never thrown away by a concurrent append, and the step budget counts per thread."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from twelvefactor import (
    Agent,
    CustomEvent,
    Done,
    Error,
    FunctionModel,
    MemoryStore,
    Message,
    ScriptedModel,
    SQLiteStore,
    Thread,
    ToolCall,
    ToolResult,
    UserMessage,
    run,
    tool,
)
from twelvefactor.store import ThreadStore


def _fatal(thread: Thread) -> Error:
    last = thread.events[-1]
    assert isinstance(last, Error), thread.events
    assert last.fatal
    return last


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    with MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "t.db") as opened:
        yield opened


# --- 1. a failure is always recorded ---


def test_a_model_adapter_bug_fails_the_thread_with_a_recorded_error(store: ThreadStore) -> None:
    def broken(messages: Sequence[Message]) -> str:
        raise KeyError("choices")

    agent = Agent("a", model=FunctionModel(broken))
    thread = run(agent, agent.new_thread("hi"), store=store)
    assert thread.status == "failed"
    error = _fatal(thread)
    assert error.source == "agent"
    assert "KeyError" in error.message and "choices" in error.message
    assert store.load(thread.id) == thread  # recorded, not only returned


def test_an_undefined_prompt_variable_fails_the_thread_naming_the_variable(store: ThreadStore) -> None:
    agent = Agent("a", model=ScriptedModel([]), prompt="Hello {{ customer_name }}\n{{ context }}")
    thread = run(agent, agent.new_thread("hi"), store=store)
    assert thread.status == "failed"
    assert "customer_name" in _fatal(thread).message
    assert store.load(thread.id).status == "failed"


def test_a_recorded_tool_call_whose_intent_the_agent_no_longer_has_fails_clearly(store: ThreadStore) -> None:
    agent = Agent("a", model=ScriptedModel([]))
    thread = Thread.new(
        UserMessage(content="go"), ToolCall(call_id="call_1", intent="deploy_v1", arguments={}), agent="a"
    )
    thread = run(agent, thread, store=store)
    assert thread.status == "failed"
    message = _fatal(thread).message
    assert "deploy_v1" in message and "'a'" in message
    assert store.load(thread.id).status == "failed"


def test_model_output_with_a_lone_surrogate_is_saved_or_failed_never_stranded(tmp_path: Any) -> None:
    agent = Agent("a", model=ScriptedModel(['{"intent": "done_for_now", "message": "hi \\ud83d"}']))
    with SQLiteStore(tmp_path / "t.db") as store:
        thread = run(agent, agent.new_thread("hi"), store=store)
        stored = store.load(thread.id)
    assert stored.status in ("done", "failed")
    assert stored == thread


# --- 2. a tool's result is never thrown away ---


def test_a_trigger_arriving_while_a_tool_runs_keeps_the_result_and_runs_the_tool_once(store: ThreadStore) -> None:
    runs: list[str] = []

    @tool
    def deploy(env: str) -> str:
        """Deploy."""
        runs.append(env)
        store.append(thread_id, CustomEvent(type="pager", text="disk 91%"))
        return f"deployed to {env}"

    agent = Agent(
        "a",
        tools=[deploy],
        model=ScriptedModel(
            [{"intent": "deploy", "env": "prod"}, {"intent": "done_for_now", "message": "deployed, and saw the page"}]
        ),
    )
    thread = agent.new_thread("deploy to prod")
    thread_id = thread.id
    thread = run(agent, thread, store=store)
    assert runs == ["prod"]
    stored = store.load(thread_id)
    assert stored == thread
    types = [e.type for e in stored.events]
    assert types.count("tool_result") == 1
    # The result comes after the trigger (re-based), and the model saw both before it finished.
    assert types.index("pager") < types.index("tool_result") < types.index("done")


def test_fifty_concurrent_appends_never_lose_a_result_nor_rerun_a_tool(tmp_path: Any) -> None:
    runs: list[int] = []
    started = threading.Event()

    @tool
    def step(n: int) -> int:
        """One step."""
        runs.append(n)
        started.set()
        return n * 10

    script: list[str | dict[str, Any]] = [{"intent": "step", "n": i} for i in range(5)]
    script.append({"intent": "done_for_now", "message": "ok"})

    def model(messages: Sequence[Message]) -> dict[str, Any]:
        return script[sum(m.content.count("<tool_result>") for m in messages[-1:])]  # type: ignore[return-value]

    # Every tick that lands during a model call has the model asked again (it must see new input): room for that.
    agent = Agent("a", tools=[step], model=FunctionModel(model), max_steps=500)
    with SQLiteStore(tmp_path / "t.db") as store:
        thread = agent.new_thread("go")
        store.create(thread)

        def pester() -> None:
            started.wait(10)
            for i in range(50):
                store.append(thread.id, CustomEvent(type="tick", n=i))

        pesterer = threading.Thread(target=pester)
        pesterer.start()
        try:
            final = run(agent, thread, store=store)
        finally:
            pesterer.join(30)
        final = store.load(thread.id)
        while final.status == "running":  # ticks that landed after the last step: run on
            final = run(agent, final, store=store)
        stored = store.load(thread.id)
    assert sorted(runs) == list(range(5)), runs
    results = [e for e in stored.events if isinstance(e, ToolResult)]
    assert sorted(r.result for r in results) == [0, 10, 20, 30, 40]  # type: ignore[type-var]
    assert isinstance(stored.events[-1], Done) or stored.status == "done"


# --- 4. the step budget is per thread ---


def test_the_step_budget_counts_model_steps_across_runs_of_a_thread_fed_by_triggers(store: ThreadStore) -> None:
    agent = Agent("a", model=ScriptedModel([{"intent": "done_for_now", "message": "seen"}] * 10), max_steps=3)
    thread = run(agent, agent.new_thread("watch the alerts"), store=store)
    for i in range(5):
        thread = store.append(thread.id, CustomEvent(type="alert", n=i))
        thread = run(agent, thread, store=store)
        if thread.status == "failed":
            break
    assert thread.status == "failed"
    error = _fatal(thread)
    assert error.source == "budget"
    assert sum(e.type == "model_call" for e in thread.events) == 3


def test_a_person_speaking_gives_the_thread_a_fresh_budget(store: ThreadStore) -> None:
    agent = Agent("a", model=ScriptedModel([{"intent": "done_for_now", "message": "ok"}] * 10), max_steps=2)
    thread = run(agent, agent.new_thread("one"), store=store)
    for text in ("two", "three", "four"):
        thread = store.append(thread.id, UserMessage(content=text))
        thread = run(agent, thread, store=store)
    assert thread.status == "done"
