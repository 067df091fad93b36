"""What a small model trips on, handled by the framework: lost fields, omitted vs null, a call repeated
in a loop, and continuing after a proposed call without hand-building events."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from twelvefactor import Agent, ScriptedModel, Thread, Tool, ToolCall, UserMessage, run, tool
from twelvefactor.errors import UserError
from twelvefactor.loop import pending_tool_call, with_tool_result


def test_a_parameter_with_a_leading_underscore_is_refused_not_silently_dropped() -> None:
    with pytest.raises(UserError, match="_from"):

        @tool
        def convert(_from: str, to: str) -> str:
            """Convert."""
            return to


def test_an_omitted_optional_argument_is_recorded_as_omitted_not_as_null() -> None:
    @tool(effect="read_only")
    def search(query: str, limit: int | None = None, lang: str | None = None) -> str:
        """Search."""
        return query

    bot = Agent(
        "s",
        tools=[search],
        model=ScriptedModel(
            [{"intent": "search", "query": "x", "lang": None}, {"intent": "done_for_now", "message": "ok"}]
        ),
    )
    thread = run(bot, bot.new_thread("find x"))
    (call,) = [e for e in thread.events if isinstance(e, ToolCall)]
    assert call.arguments == {"query": "x", "lang": None}  # limit was not sent; lang was sent as null


def test_the_same_call_proposed_again_right_after_its_result_is_an_error_then_a_stop() -> None:
    @tool(effect="read_only")
    def lookup(key: str) -> str:
        """Look up."""
        return "v"

    bot = Agent("r", tools=[lookup], model=ScriptedModel([{"intent": "lookup", "key": "k"}] * 6))
    thread = run(bot, bot.new_thread("look k up"))
    types = [e.type for e in thread.events]
    assert types.count("tool_result") == 1  # never run a second time
    errors = [e for e in thread.events if e.type == "error"]
    assert errors and "same call" in errors[0].message  # type: ignore[attr-defined]
    assert thread.status in ("waiting", "failed")  # stopped with a clear outcome, not the 20-step budget
    assert types.count("model_call") <= 4


def test_continuing_after_a_proposed_external_call_is_one_line() -> None:
    class Lookup(Tool):
        """Handled by the caller."""

        intent: Literal["lookup"] = "lookup"
        email: str

    script: list[Any] = [{"intent": "lookup", "email": "a@b.c"}, {"intent": "done_for_now", "message": "Ada"}]
    bot = Agent("x", tools=[Lookup], model=ScriptedModel(script))
    thread = run(bot, Thread.new(UserMessage(content="who?"), agent="x"))
    assert pending_tool_call(thread) is not None
    thread = run(bot, with_tool_result(thread, {"name": "Ada"}))
    assert thread.status == "done"
    with pytest.raises(UserError, match="no tool call"):
        with_tool_result(thread, 1)


def test_an_agent_can_drop_the_question_escape_hatch() -> None:
    from twelvefactor import DoneForNow

    bot = Agent("q", builtins=(DoneForNow,), model=ScriptedModel([{"intent": "request_human_input", "question": "?"}]))
    assert "request_human_input" not in bot.intents and "done_for_now" in bot.intents
    with pytest.raises(ValueError):
        bot.parse('{"intent": "request_human_input", "question": "which one?"}')
