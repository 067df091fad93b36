"""Prompt-cache tokens are reported and priced as such (not at the full input rate, and not ignored)."""

from __future__ import annotations

import pytest

from twelvefactor import Agent, Message, ModelCall, ScriptedModel, run
from twelvefactor.models import Price, PriceTable

from .conftest import Served
from .fakes import Reply

STEP = {"intent": "done_for_now", "message": "ok"}
HI = [Message(role="user", content="hi")]


def test_a_price_knows_cached_reads_and_cache_writes() -> None:
    table = PriceTable({"m": Price(2.0, 8.0, cached_input_per_mtok=0.5, cache_write_per_mtok=2.5)})
    cost = table.cost("m", 1_000_000, 100_000, cached_input_tokens=600_000, cache_write_tokens=100_000)
    assert cost == pytest.approx(0.3 * 2.0 + 0.6 * 0.5 + 0.1 * 2.5 + 0.1 * 8.0)
    plain = PriceTable({"m": (2.0, 8.0)})  # no cached rate known: cached tokens cost the input rate
    assert plain.cost("m", 1_000_000, 0, cached_input_tokens=600_000) == pytest.approx(2.0)
    assert PriceTable({"m": [2.0, 8.0, 0.5]}).lookup("m") == Price(2.0, 8.0, 0.5)


def test_openai_cached_prompt_tokens_are_priced_at_the_cached_rate(openai_server: Served) -> None:
    usage = {
        "prompt_tokens": 10_000,
        "completion_tokens": 100,
        "total_tokens": 10_100,
        "prompt_tokens_details": {"cached_tokens": 8_000},
    }
    openai_server.fake.push(Reply(step=STEP, usage=usage))
    response = openai_server.openai().complete(HI)  # gpt-4o-mini: 0.15 in, 0.075 cached, 0.60 out
    assert response.input_tokens == 10_000 and response.cached_input_tokens == 8_000
    assert response.cost_usd == pytest.approx((2_000 * 0.15 + 8_000 * 0.075 + 100 * 0.60) / 1e6)


def test_anthropic_cache_reads_and_writes_are_counted_and_priced(anthropic_server: Served) -> None:
    usage = {
        "input_tokens": 1_000,
        "cache_creation_input_tokens": 2_000,
        "cache_read_input_tokens": 7_000,
        "output_tokens": 100,
    }
    anthropic_server.fake.push(Reply(step=STEP, usage=usage))
    response = anthropic_server.anthropic().complete(HI)  # claude-haiku-4-5: 1 in, 0.1 read, 1.25 write, 5 out
    assert response.input_tokens == 10_000  # every input token, as with OpenAI
    assert response.cached_input_tokens == 7_000 and response.cache_write_tokens == 2_000
    assert response.cost_usd == pytest.approx((1_000 * 1.0 + 7_000 * 0.1 + 2_000 * 1.25 + 100 * 5.0) / 1e6)


def test_the_model_call_event_keeps_the_cache_counts(anthropic_server: Served) -> None:
    usage = {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 5}
    anthropic_server.fake.push(Reply(step=STEP, usage=usage))
    agent = Agent("a", model=anthropic_server.anthropic())
    thread = run(agent, agent.new_thread("hi"))
    call = next(e for e in thread.events if isinstance(e, ModelCall))
    assert (call.input_tokens, call.cached_input_tokens, call.cache_write_tokens) == (100, 90, None)
    plain = run(Agent("b", model=ScriptedModel([STEP])), Agent("b").new_thread("hi"))
    assert next(e for e in plain.events if isinstance(e, ModelCall)).cached_input_tokens is None


def test_each_model_call_records_the_estimate_beside_the_providers_count(anthropic_server: Served) -> None:
    anthropic_server.fake.push(Reply(step=STEP, usage={"input_tokens": 1234, "output_tokens": 5}))
    agent = Agent("a", model=anthropic_server.anthropic())
    call = next(e for e in run(agent, agent.new_thread("hi")).events if isinstance(e, ModelCall))
    assert call.input_tokens == 1234 and call.estimated_input_tokens is not None and call.estimated_input_tokens > 0
    # One estimator in the codebase: the test doubles count what was sent with the estimate budgets use
    # (the budget counts the window by section, so the joins between sections may differ by a token).
    scripted = Agent("b", model=ScriptedModel([STEP]))
    local = next(e for e in run(scripted, scripted.new_thread("hi")).events if isinstance(e, ModelCall))
    assert local.input_tokens is not None and local.estimated_input_tokens is not None
    assert abs(local.input_tokens - local.estimated_input_tokens) <= 3
