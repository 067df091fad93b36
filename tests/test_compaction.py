"""Context budgets and compaction: what the model sees stays under budget, each compaction is an event,
and a replay renders the same window."""

from __future__ import annotations

import json
from typing import Any

import pytest

from twelvefactor import Agent, FunctionModel, Thread, run, tool
from twelvefactor.compaction import ContextBudget, DropOldEvents, ShortenToolResults, Summarize
from twelvefactor.context import ChatFormat, shown_items
from twelvefactor.events import Compaction, Error, HumanRequest, ModelCall, ToolCall, ToolResult, UserMessage
from twelvefactor.messages import Message
from twelvefactor.sent import sent_messages
from twelvefactor.store.sqlite import SQLiteStore

PAGE = "lorem ipsum dolor sit amet " * 80  # ~2,100 characters, ~440 tokens


@tool(effect="read_only")
def read_page(n: int) -> str:
    """Read page n of the manual."""
    return f"page {n}: {PAGE}"


def _paging_model(pages: int, calls: list[list[Message]] | None = None) -> FunctionModel:
    """Reads pages 1..pages, then says done: one step per call, read off the last tool result."""

    def step(messages: list[Message]) -> dict[str, Any]:
        if calls is not None:
            calls.append(messages)
        text = messages[-1].content
        last = text.rsplit("page ", 1)[-1].split(":", 1)[0] if "<tool_result>" in text else "0"
        n = int(last) if last.isdigit() else 0
        if n >= pages:
            return {"intent": "done_for_now", "message": f"read {pages} pages"}
        return {"intent": "read_page", "n": n + 1}

    return FunctionModel(step, name="function:pager")


def _pairs_whole(thread: Thread) -> None:
    """No replacement covers a tool call without its result, or a result without its call."""
    events = thread.events
    for event in events:
        if isinstance(event, Compaction):
            for r in event.replacements:
                inside = events[r.first : r.last + 1]
                calls = {e.call_id for e in inside if isinstance(e, ToolCall)}
                results = {e.call_id for e in inside if isinstance(e, ToolResult)}
                if r.last > r.first:
                    assert calls == results, (r, calls ^ results)


def test_shortened_results_keep_the_window_under_budget_and_each_compaction_is_an_event() -> None:
    budget = ContextBudget(max_tokens=4_000, compaction=[ShortenToolResults(keep_last=3, max_chars=120)])
    agent = Agent("pager", tools=[read_page], model=_paging_model(30), budget=budget, max_steps=40)
    thread = run(agent, agent.new_thread("Read the manual, pages 1 to 30."))

    assert thread.status == "done"
    compactions = [e for e in thread.events if isinstance(e, Compaction)]
    assert compactions, "a 30-page thread is over 4,000 tokens: something was compacted"
    assert all(c.policy == "shorten_tool_results" and c.tokens_after < c.tokens_before for c in compactions)
    assert all(c.tokens_after <= budget.max_tokens for c in compactions)
    assert compactions[0].tokens_after <= budget.target_tokens
    # Hysteresis: compacting down to the target, not to the limit, so not at every step.
    calls = [e for e in thread.events if isinstance(e, ModelCall)]
    assert len(compactions) < len(calls) / 3
    assert max(c.estimated_input_tokens or 0 for c in calls) <= budget.max_tokens
    # The window shows the pointer, and the last results in full.
    window = agent.window(thread)
    text = "\n".join(m.content for m in window.messages)
    assert "the full result is event" in text
    assert text.count(PAGE) >= 3
    _pairs_whole(thread)


def test_a_replay_renders_the_window_each_call_was_sent() -> None:
    budget = ContextBudget(max_tokens=3_000, compaction=[ShortenToolResults(keep_last=2, max_chars=100)])
    agent = Agent("pager", tools=[read_page], model=_paging_model(15), budget=budget)
    thread = run(agent, agent.new_thread("Read pages 1 to 15."))
    assert any(isinstance(e, Compaction) for e in thread.events)

    # Through JSON (a store, another process): every call's window renders again, byte for byte.
    loaded = Thread.model_validate_json(thread.model_dump_json())
    fresh = Agent("pager", tools=[read_page], model=_paging_model(15), budget=budget)
    for index, event in enumerate(loaded.events):
        if isinstance(event, ModelCall):
            assert fresh.render(loaded.at(index)) == sent_messages(loaded, index)


def test_a_summary_replaces_the_middle_and_keeps_the_opening_and_the_tail() -> None:
    asked: list[str] = []

    def summarizer(messages: list[Message]) -> str:
        asked.append(messages[-1].content)
        return "Pages 1 to N were read; all said lorem ipsum."

    budget = ContextBudget(max_tokens=3_500, compaction=[Summarize(FunctionModel(summarizer), keep_last=4)])
    agent = Agent("pager", tools=[read_page], model=_paging_model(20), budget=budget, max_steps=30)
    thread = run(agent, agent.new_thread("Read pages 1 to 20."))

    assert thread.status == "done"
    summaries = [e for e in thread.events if isinstance(e, Compaction)]
    assert summaries and all(c.policy == "summarize" and c.model == "function:summarizer" for c in summaries)
    assert all(c.input_tokens and c.output_tokens for c in summaries)
    assert "<tool_result>" in asked[0] and "page 1:" in asked[0]
    # The task is never summarised away; the summary is a block of its own; pairs stay whole.
    window_text = "\n".join(m.content for m in agent.window(thread).messages)
    assert "Read pages 1 to 20." in window_text
    assert "<summary>\nPages 1 to N were read" in window_text
    _pairs_whole(thread)
    # A later summary swallows the earlier one: one summary block in the window.
    assert window_text.count("<summary>") == 1


def test_over_budget_after_every_policy_asks_a_person_and_sends_nothing() -> None:
    sent: list[list[Message]] = []
    budget = ContextBudget(max_tokens=300, compaction=[ShortenToolResults(keep_last=0, max_chars=50)])
    agent = Agent("pager", tools=[read_page], model=_paging_model(3, sent), budget=budget)
    thread = agent.new_thread("Please read: " + "a very long task description " * 100)
    thread = run(agent, thread)

    assert thread.status == "waiting" and not sent
    error = next(e for e in thread.events if isinstance(e, Error))
    assert error.source == "budget" and "over this agent's budget of 300" in error.message
    assert isinstance(thread.events[-1], HumanRequest) and thread.events[-1].escalation


def test_under_budget_nothing_is_compacted_and_every_call_says_where_its_tokens_went() -> None:
    agent = Agent(
        "pager",
        tools=[read_page],
        model=_paging_model(2),
        budget=ContextBudget(max_tokens=100_000, compaction=[DropOldEvents()]),
    )
    thread = run(agent, agent.new_thread("Read pages 1 to 2."))
    assert not any(isinstance(e, Compaction) for e in thread.events)
    for index, event in enumerate(thread.events):
        if isinstance(event, ModelCall):
            assert event.context_tokens is not None
            assert set(event.context_tokens) == {"prompt", "memory", "retrieval", "history", "schema"}
            assert sum(event.context_tokens.values()) == event.estimated_input_tokens
            assert event.context_tokens["history"] > 0 and event.context_tokens["schema"] > 0
            assert agent.window(thread.at(index)).total == event.estimated_input_tokens


def test_dropping_old_events_leaves_a_pointer_and_the_pending_tail() -> None:
    budget = ContextBudget(max_tokens=2_500, compaction=[DropOldEvents(keep_last=4)])
    agent = Agent("pager", tools=[read_page], model=_paging_model(12), budget=budget)
    thread = run(agent, agent.new_thread("Read pages 1 to 12."))
    assert thread.status == "done"
    text = "\n".join(m.content for m in agent.window(thread).messages)
    assert "are not shown: dropped to keep the context budget" in text
    assert "Read pages 1 to 12." in text
    _pairs_whole(thread)


def test_a_chat_format_window_puts_the_summary_in_a_user_turn() -> None:
    budget = ContextBudget(max_tokens=3_000, compaction=[Summarize(FunctionModel(lambda m: "short summary"))])
    agent = Agent("pager", tools=[read_page], model=_paging_model(12), budget=budget, context_format=ChatFormat())
    thread = run(agent, agent.new_thread("Read pages 1 to 12."))
    assert thread.status == "done"
    messages = agent.render(thread)
    summary = [m for m in messages if "<summary>" in m.content]
    assert summary and summary[0].role == "user"
    roles = [m.role for m in messages]
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False)), "no two turns of one role in a row"


def test_a_failing_summariser_loses_nothing_and_the_next_policy_runs() -> None:
    from twelvefactor.errors import ModelError

    def broken(messages: list[Message]) -> str:
        raise ModelError("summariser down")

    budget = ContextBudget(
        max_tokens=3_000,
        compaction=[Summarize(FunctionModel(broken)), ShortenToolResults(keep_last=2, max_chars=80)],
    )
    agent = Agent("pager", tools=[read_page], model=_paging_model(12), budget=budget)
    thread = run(agent, agent.new_thread("Read pages 1 to 12."))
    assert thread.status == "done"
    assert {c.policy for c in thread.events if isinstance(c, Compaction)} == {"shorten_tool_results"}


def test_compactions_survive_the_store(tmp_path: Any) -> None:
    budget = ContextBudget(max_tokens=3_000, compaction=[ShortenToolResults(keep_last=2, max_chars=100)])
    agent = Agent("pager", tools=[read_page], model=_paging_model(12), budget=budget)
    with SQLiteStore(tmp_path / "t.db") as store:
        thread = store.create(agent.new_thread("Read pages 1 to 12."))
        thread = run(agent, thread, store=store)
        loaded = store.load(thread.id)
    assert loaded == thread
    assert agent.render(loaded) == agent.render(thread)
    data = json.loads(loaded.model_dump_json())
    assert any(e["type"] == "compaction" and e["replacements"] for e in data["events"])


def test_replacements_render_in_place_and_later_runs_swallow_earlier_ones() -> None:
    from twelvefactor.events import Replacement

    events = [UserMessage(content=f"m{i}") for i in range(6)]
    one = Compaction(
        policy="p", replacements=(Replacement(first=2, last=2, text="short m2"),), tokens_before=9, tokens_after=8
    )
    thread = Thread.new(*events, one)
    items = shown_items(thread.events)
    assert [i.index for i in items] == [0, 1, 2, 3, 4, 5]
    assert items[2].replacement is not None and items[2].event is events[2]
    run_ = Compaction(
        policy="p", replacements=(Replacement(first=1, last=3, text="m1-m3"),), tokens_before=8, tokens_after=4
    )
    items = shown_items((*thread.events, run_))
    assert [(i.index, i.last) for i in items] == [(0, 0), (1, 3), (4, 4), (5, 5)]
    gone = Compaction(policy="p", replacements=(Replacement(first=4, last=4),), tokens_before=4, tokens_after=3)
    assert [i.index for i in shown_items((*thread.events, run_, gone))] == [0, 1, 5]


@pytest.mark.parametrize("bad", [{"max_tokens": 0}, {"max_tokens": 10, "target": 0}, {"max_tokens": 10, "target": 2}])
def test_a_budget_that_cannot_work_is_refused(bad: dict[str, Any]) -> None:
    from twelvefactor.errors import UserError

    with pytest.raises(UserError, match="ContextBudget"):
        ContextBudget(**bad)


def test_a_summary_still_comes_after_results_were_shortened() -> None:
    # Shortened results are still the results of their calls: the summary's span may end after them.
    budget = ContextBudget(
        max_tokens=3_000,
        compaction=[
            ShortenToolResults(keep_last=3, max_chars=100),
            Summarize(FunctionModel(lambda m: "Pages so far: lorem ipsum."), keep_last=6),
        ],
    )
    agent = Agent("pager", tools=[read_page], model=_paging_model(40), budget=budget, max_steps=60)
    thread = run(agent, agent.new_thread("Read pages 1 to 40."))
    assert thread.status == "done"
    policies = [e.policy for e in thread.events if isinstance(e, Compaction)]
    assert "shorten_tool_results" in policies and "summarize" in policies
    _pairs_whole(thread)
    # The window stays about the same size from the first compaction on (it does not grow with the thread).
    windows = [e.estimated_input_tokens or 0 for e in thread.events if isinstance(e, ModelCall)]
    assert max(windows[len(windows) // 2 :]) <= budget.max_tokens


def test_threads_show_prints_each_calls_window_and_each_compaction(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from twelvefactor.cli import app

    budget = ContextBudget(max_tokens=3_000, compaction=[ShortenToolResults(keep_last=2, max_chars=100)])
    agent = Agent("pager", tools=[read_page], model=_paging_model(12), budget=budget)
    db = tmp_path / "t.db"
    with SQLiteStore(db) as store:
        thread = run(agent, store.create(agent.new_thread("Read pages 1 to 12.")), store=store)
    result = CliRunner().invoke(app, ["threads", "show", thread.id, "--db", str(db)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    first = next(e for e in thread.events if isinstance(e, ModelCall))
    assert f"window {first.estimated_input_tokens} tokens estimated: prompt" in result.output
    compaction = next(e for e in thread.events if isinstance(e, Compaction))
    assert f"shorten_tool_results: {compaction.tokens_before}→{compaction.tokens_after} tokens" in result.output
