"""A thread's spend on models, and the hard budget that pauses it for a person instead of failing."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from twelvefactor import Agent, FunctionModel, HumanResponse, Thread, UserMessage, respond, run, tool
from twelvefactor.errors import UserError
from twelvefactor.events import Compaction, Error, HumanRequest, ModelCall, Replacement
from twelvefactor.messages import Message
from twelvefactor.models.base import ModelResponse
from twelvefactor.spend import Spend, SpendBudget, spend, spend_since_person


@tool(effect="read_only")
def tick(n: int) -> int:
    """Count one more."""
    return n + 1


def _priced(cost: float | None, tokens: int = 100) -> FunctionModel:
    """Counts up forever, each call costing ``cost`` dollars (None: a model without a price)."""

    def step(messages: list[Message]) -> ModelResponse:
        n = len(re.findall("<tool_result>", messages[-1].content))  # a new number each time: no repeats
        text = json.dumps({"intent": "tick", "n": n})
        return ModelResponse(text=text, model="m", input_tokens=tokens, output_tokens=10, cost_usd=cost)

    return FunctionModel(step)


def test_a_thread_over_its_dollar_budget_asks_a_person_and_an_answer_gives_a_fresh_allowance() -> None:
    agent = Agent("counter", tools=[tick], model=_priced(0.01), spend=SpendBudget(usd=0.05), max_steps=100)
    thread = run(agent, agent.new_thread("count"))

    assert thread.status == "waiting"  # paused, not failed
    calls = [e for e in thread.events if isinstance(e, ModelCall)]
    assert len(calls) == 5 and spend(thread.events).usd == pytest.approx(0.05)
    error = next(e for e in thread.events if isinstance(e, Error))
    assert error.source == "budget" and not error.fatal
    assert "$0.0500 spent on 5 model calls, at this thread's budget of $0.05" in error.message
    request = thread.pending_request
    assert isinstance(request, HumanRequest) and request.escalation

    thread = respond(thread, HumanResponse(request_id=request.call_id, text="go on", responder="me"))
    assert spend_since_person(thread.events) == Spend()
    thread = run(agent, thread)
    assert thread.status == "waiting"
    assert sum(isinstance(e, ModelCall) for e in thread.events) == 10  # another $0.05, then asks again


def test_a_token_budget_holds_for_models_without_a_price() -> None:
    agent = Agent("counter", tools=[tick], model=_priced(None, tokens=390), spend=SpendBudget(tokens=1_000))
    thread = run(agent, agent.new_thread("count"))
    assert thread.status == "waiting"
    spent = spend(thread.events)
    assert spent.calls == 3 and spent.tokens == 1_200 and spent.unpriced == 3 and spent.usd == 0
    assert "1200 tokens spent on 3 model calls, at this thread's budget of 1000" in thread.pending_request.question  # type: ignore[union-attr]


def test_spend_counts_summaries_and_reports_unpriced_calls() -> None:
    events = [
        ModelCall(model="a", raw="", input_tokens=100, output_tokens=5, cost_usd=0.002, cached_input_tokens=40),
        ModelCall(model="b", raw="", input_tokens=50, output_tokens=5),
        Compaction(
            policy="summarize",
            replacements=(Replacement(first=0, last=1, text="s"),),
            tokens_before=10,
            tokens_after=5,
            model="cheap",
            input_tokens=30,
            output_tokens=3,
            cost_usd=0.0001,
        ),
    ]
    total = spend(events)
    assert (total.calls, total.input_tokens, total.output_tokens, total.cached_input_tokens) == (3, 180, 13, 40)
    assert total.usd == pytest.approx(0.0021) and total.unpriced == 1


@pytest.mark.parametrize("bad", [{}, {"usd": 0}, {"tokens": 0}, {"usd": -1.0}])
def test_a_spend_budget_that_cannot_work_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(UserError, match="SpendBudget"):
        SpendBudget(**bad)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def usage_store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    from twelvefactor import MemoryStore, SQLiteStore

    if request.param == "memory":
        return MemoryStore()
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "u.db")
    from twelvefactor.store.postgres import PostgresStore

    return PostgresStore(request.getfixturevalue("pg_url"))


def test_usage_adds_up_per_agent_and_day_in_every_store(usage_store: Any) -> None:
    from twelvefactor.store.usage import usage

    store = usage_store
    yesterday = datetime.now(UTC) - timedelta(days=1)
    for agent, calls in (("a", 3), ("b", 2)):
        agent_ = Agent(agent, tools=[tick], model=_priced(0.01), spend=SpendBudget(usd=0.01 * calls))
        run(agent_, store.create(agent_.new_thread("count")), store=store)
    old = Thread.new(
        UserMessage(content="old", at=yesterday),
        ModelCall(model="m", raw="", input_tokens=7, output_tokens=1, at=yesterday),
        agent="a",
    )
    store.create(old)
    rows = usage(store, days=2)
    today = datetime.now(UTC).date()
    by_key = {(row.day, row.agent): row for row in rows}
    assert by_key[(today, "a")].calls == 3 and by_key[(today, "a")].cost_usd == pytest.approx(0.03)
    assert by_key[(today, "b")].calls == 2 and by_key[(today, "b")].input_tokens == 200
    assert by_key[(yesterday.date(), "a")].unpriced_calls == 1
    assert [row.day for row in usage(store, days=1)] == [today, today]
    store.close()


def test_usage_from_the_command_line_and_the_api(tmp_path: Any) -> None:
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from twelvefactor import SQLiteStore
    from twelvefactor.cli import app as cli
    from twelvefactor.server.app import create_app
    from twelvefactor.server.settings import ServerSettings

    db = tmp_path / "u.db"
    agent = Agent("counter", tools=[tick], model=_priced(0.01), spend=SpendBudget(usd=0.02))
    with SQLiteStore(db) as store:
        run(agent, store.create(agent.new_thread("count")), store=store)
    result = CliRunner().invoke(cli, ["usage", "--db", str(db)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "counter" in result.output and "$0.0200" in result.output
    rows = json.loads(CliRunner().invoke(cli, ["usage", "--db", str(db), "--json"]).output)
    assert rows[0]["agent"] == "counter" and rows[0]["calls"] == 2 and rows[0]["cost_usd"] == pytest.approx(0.02)

    app = create_app([agent], settings=ServerSettings(database=str(db)))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        body = client.get("/v1/usage", params={"days": 3}).json()
        assert body == rows
        assert client.get("/v1/usage", params={"days": 0}).status_code == 422


def test_a_daily_cap_pauses_every_thread_of_the_agent_and_a_person_can_let_one_go_on(tmp_path: Any) -> None:
    from twelvefactor import SQLiteStore
    from twelvefactor.store.usage import spent_today

    def two_calls_then_done(messages: list[Message]) -> ModelResponse:
        n = sum(m.content.count("<tool_result>") for m in messages)
        step = {"intent": "done_for_now", "message": "counted"} if n >= 2 else {"intent": "tick", "n": n}
        return ModelResponse(text=json.dumps(step), model="m", input_tokens=10, output_tokens=2, cost_usd=0.01)

    with SQLiteStore(tmp_path / "d.db") as store:
        budget = SpendBudget(usd_per_day=0.03, spent_today=spent_today(store, refresh_s=0))
        agent = Agent("counter", tools=[tick], model=FunctionModel(two_calls_then_done), spend=budget)
        first = run(agent, store.create(agent.new_thread("count")), store=store)
        assert first.status == "done" and spend(first.events).usd == pytest.approx(0.03)

        second = run(agent, store.create(agent.new_thread("count again")), store=store)
        assert second.status == "waiting" and not any(isinstance(e, ModelCall) for e in second.events)
        request = second.pending_request
        assert request is not None and "agent 'counter' spent $0.0300 today (UTC), at the agent's daily budget" in (
            request.question
        )
        # A person lets this thread go on today: it finishes, past the cap.
        store.respond(second.id, HumanResponse(request_id=request.call_id, text="go ahead", responder="me"))
        second = run(agent, store.load(second.id), store=store)
        assert second.status == "done" and spend(second.events).calls == 3


def test_a_daily_cap_needs_a_way_to_read_the_days_spend() -> None:
    with pytest.raises(UserError, match="spent_today"):
        SpendBudget(usd_per_day=1.0)
