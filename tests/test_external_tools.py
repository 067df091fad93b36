"""A tool without run() is handed back to the caller, who completes it: in code, over REST, or from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from typer.testing import CliRunner

from twelvefactor import Agent, MemoryStore, NotWaitingError, ScriptedModel, SQLiteStore, Tool, run, tool
from twelvefactor.cli import app
from twelvefactor.loop import complete_tool_call, pending_tool_call


class LookupCustomer(Tool):
    """Look a customer up in the CRM (your code does it)."""

    intent: Literal["lookup_customer"] = "lookup_customer"
    email: str


@tool(effect="read_only")
def ping() -> str:
    """Ping."""
    return "pong"


def agent() -> Agent:
    script: list[Any] = [
        {"intent": "lookup_customer", "email": "a@example.com"},
        {"intent": "done_for_now", "message": "found"},
    ]
    return Agent("crm", tools=[LookupCustomer, ping], model=ScriptedModel(script))


def test_a_caller_completes_an_external_call_and_the_run_goes_on() -> None:
    store, bot = MemoryStore(), agent()
    thread = run(bot, bot.new_thread("who is a@example.com?"), store=store)
    call = pending_tool_call(thread)
    assert call is not None and call.intent == "lookup_customer"
    completed = complete_tool_call(store, thread.id, call.call_id, result={"name": "Ada"}, agent=bot)
    assert completed.events[-1].type == "tool_result"
    # A redelivered completion is a no-op; a different one is refused.
    assert complete_tool_call(store, thread.id, call.call_id, result={"name": "Ada"}).version == completed.version
    with pytest.raises(NotWaitingError):
        complete_tool_call(store, thread.id, call.call_id, result={"name": "Bob"})
    assert run(bot, completed, store=store).status == "done"


def test_an_error_completes_it_too_and_the_model_sees_it() -> None:
    store, bot = MemoryStore(), agent()
    thread = run(bot, bot.new_thread("who?"), store=store)
    call = pending_tool_call(thread)
    assert call is not None
    failed = complete_tool_call(store, thread.id, call.call_id, error="CRM down\nretry later")
    last = failed.events[-1]
    assert last.type == "error" and last.message == "CRM down retry later"  # type: ignore[attr-defined]


def test_a_tool_the_agent_runs_itself_cannot_be_completed_from_outside() -> None:
    store, bot = MemoryStore(), agent()
    from twelvefactor import Thread, ToolCall, UserMessage

    thread = store.create(
        Thread.new(UserMessage(content="x"), ToolCall(call_id="c1", intent="ping"), agent="crm", id="t")
    )
    with pytest.raises(NotWaitingError, match="runs it itself"):
        complete_tool_call(store, thread.id, "c1", result="pong", agent=bot)


def test_the_cli_completes_it(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    bot = agent()
    with SQLiteStore(db) as store:
        thread = run(bot, bot.new_thread("and b@example.com?"), store=store)
        call = pending_tool_call(thread)
        assert call is not None
    out = CliRunner().invoke(app, ["threads", "complete", thread.id, call.call_id, '{"name": "Bea"}', "--db", str(db)])
    assert out.exit_code == 0, out.output
    with SQLiteStore(db) as store:
        assert store.load(thread.id).events[-1].result == {"name": "Bea"}  # type: ignore[attr-defined]
    bad = CliRunner().invoke(app, ["threads", "complete", thread.id, call.call_id, "{not json", "--db", str(db)])
    assert bad.exit_code != 0 and "JSON" in bad.output
