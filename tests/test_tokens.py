"""Counting tokens offline: one estimator, per family, held to a bound against a real tokenizer."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from twelvefactor import Agent, ScriptedModel, Thread
from twelvefactor.context import JsonFormat, XmlFormat
from twelvefactor.events import ToolCall, ToolResult, UserMessage
from twelvefactor.tokens import FAMILIES, count_tokens, counter_for, estimate_tokens, family_of

ROOT = Path(__file__).resolve().parents[1]


def _thread_events() -> list[object]:
    rng = random.Random(7)
    words = [
        "the",
        "customer",
        "asked",
        "for",
        "a",
        "refund",
        "of",
        "order",
        "because",
        "the",
        "package",
        "arrived",
        "damaged",
        "deploy",
        "staging",
    ]
    events: list[object] = [UserMessage(content="Deploy api v2.3.1 to production and tell me when done")]
    for i in range(40):
        note = " ".join(rng.choices(words, k=8))
        events.append(
            ToolCall(call_id=f"c{i}", intent="lookup", arguments={"order": rng.randint(10**4, 10**5), "note": note})
        )
        result = {"status": "shipped", "items": [{"sku": f"SKU-{i}", "qty": 2, "price": 19.99}], "note": note}
        events.append(ToolResult(call_id=f"c{i}", intent="lookup", result=result))
    return events


def _samples() -> dict[str, str]:
    events = _thread_events()
    agent = Agent("x", model=ScriptedModel([]))
    return {
        "xml": XmlFormat().render(events),  # type: ignore[arg-type]
        "json": JsonFormat().render(events),  # type: ignore[arg-type]
        "prose": (ROOT / "README.md").read_text(encoding="utf-8")[:12_000],
        "code": (ROOT / "src" / "twelvefactor" / "agent.py").read_text(encoding="utf-8")[:12_000],
        "prompt": "\n".join(m.content for m in agent.render(Thread.new(*events))),  # type: ignore[arg-type]
    }


def test_the_llama_estimate_is_within_ten_percent_of_the_local_tokenizer() -> None:
    pytest.importorskip("llama_cpp")
    from twelvefactor.models.local import LocalModel

    try:
        model = LocalModel("smollm2")
    except Exception as exc:  # noqa: BLE001 - the model package is an optional extra
        pytest.skip(f"local model not installed: {exc}")
    family = FAMILIES["llama"]
    for kind, text in _samples().items():
        exact = model.count_tokens(text)
        estimate = family.count_tokens(text)
        assert abs(estimate - exact) / exact < 0.10, (kind, estimate, exact)
    # The local model counts exactly, and counter_for picks that over any estimate.
    assert counter_for(model) is model
    assert count_tokens("hello world", model) == model.count_tokens("hello world")


def test_each_model_name_finds_its_family() -> None:
    assert family_of("openai:gpt-4o-mini") is FAMILIES["openai"]
    assert family_of("gpt-4.1") is FAMILIES["openai"]
    assert family_of("anthropic:claude-sonnet-4") is FAMILIES["anthropic"]
    assert family_of("local:smollm2") is FAMILIES["llama"]
    assert family_of("function:mine") is family_of(None) is FAMILIES["generic"]
    assert counter_for(ScriptedModel([])) is FAMILIES["generic"]


def test_the_estimate_counts_what_tokenizers_split() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("hello") == 1
    assert estimate_tokens("hello world") == 2
    # Digits: llama-style tokenizers spend one token per digit, o200k one per three.
    assert FAMILIES["llama"].count_tokens("1234567") == 7
    assert FAMILIES["openai"].count_tokens("1234567") == 3
    # Longer text costs more, roughly in proportion.
    one = estimate_tokens("refund the order " * 10)
    assert estimate_tokens("refund the order " * 100) in range(9 * one, 11 * one)


def test_every_model_call_records_the_estimate_the_budget_used() -> None:
    agent = Agent("x", model=ScriptedModel([{"intent": "done_for_now", "message": "ok"}]))
    from twelvefactor import run
    from twelvefactor.events import ModelCall

    thread = run(agent, agent.new_thread("hi"))
    call = next(e for e in thread.events if isinstance(e, ModelCall))
    assert call.estimated_input_tokens == agent.window(thread.at(1)).total
    sent = "".join(m.content for m in agent.render(thread.at(1)))
    # The sum of the sections is the count of what was sent, give or take the joins between messages.
    assert abs((call.estimated_input_tokens or 0) - estimate_tokens(sent)) <= 8
