"""Scoring: each kind of expectation passes when the thread shows it, and fails with a reason that says what it saw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from twelvefactor import Done, HumanRequest, ModelCall, Thread, ToolCall, ToolResult, UserMessage
from twelvefactor.evals import Case, Check, score_thread, usage_of
from twelvefactor.thread import reduce

SCORERS = Path(__file__).parent / "scorers.py"


def thread_of(*events: Any) -> Thread:
    thread = Thread.new(UserMessage(content="refund order A1"), agent="shop")
    for event in events:
        thread = reduce(thread, event)
    return thread


def call(n: int, tokens: int = 100, cost: float | None = 0.001) -> ModelCall:
    return ModelCall(model="m", raw="{}", input_tokens=tokens, output_tokens=n, cost_usd=cost, latency_ms=5)


DONE = thread_of(
    call(10),
    ToolCall(call_id="c1", intent="lookup", arguments={"sku": "SKU-1", "detail": {"stock": True, "n": 1}}),
    ToolResult(call_id="c1", intent="lookup", result={"price": 12.5}),
    call(10),
    ToolCall(call_id="c2", intent="refund", arguments={"order": "A1", "amount": 12.5}),
    ToolResult(call_id="c2", intent="refund", result="ok"),
    call(10),
    Done(message="Refunded 12.5 dollars on order A1. Thank you!"),
)


def checks(expect: dict[str, Any], thread: Thread = DONE) -> list[Check]:
    return score_thread(thread, Case.model_validate({"id": "c", "input": "x", "expect": expect}))


def only(expect: dict[str, Any], thread: Thread = DONE) -> Check:
    [check] = checks(expect, thread)
    return check


def test_status() -> None:
    assert only({"status": "done"}).passed
    waiting = thread_of(call(1), HumanRequest(call_id="q", kind="input", question="which order?"))
    failed = only({"status": "done"}, waiting)
    assert not failed.passed and failed.score == 0 and failed.reason == "status is waiting, expected done"


def test_tool_calls_match_a_subset_of_the_arguments_nested_too() -> None:
    assert only({"tool_calls": [{"intent": "refund", "arguments": {"order": "A1"}}]}).passed
    assert only({"tool_calls": [{"intent": "lookup", "arguments": {"detail": {"stock": True}}}]}).passed
    assert only({"tool_calls": [{"intent": "lookup"}]}).passed
    wrong = only({"tool_calls": [{"intent": "refund", "arguments": {"order": "B2"}}]})
    assert not wrong.passed
    assert wrong.reason == 'no call to refund with {"order": "B2"}; its calls had {"amount": 12.5, "order": "A1"}'
    absent = only({"tool_calls": [{"intent": "cancel"}]})
    assert absent.reason == "no call to cancel; calls made: lookup, refund"
    # JSON true is not 1: a flag is compared as a flag.
    assert not only({"tool_calls": [{"intent": "lookup", "arguments": {"detail": {"n": True}}}]}).passed


def test_each_expected_call_needs_a_call_of_its_own_and_order_is_kept_when_asked() -> None:
    twice = [{"intent": "refund"}, {"intent": "refund"}]
    assert [c.passed for c in checks({"tool_calls": twice})] == [True, False]
    backwards = [{"intent": "refund"}, {"intent": "lookup"}]
    assert [c.passed for c in checks({"tool_calls": backwards})] == [True, True]
    ordered = checks({"tool_calls": backwards, "tool_calls_in_order": True})
    assert [c.passed for c in ordered] == [True, False] and "(in order)" in ordered[1].reason


def test_forbidden_intents() -> None:
    assert only({"forbidden_intents": ["cancel"]}).passed
    assert only({"forbidden_intents": ["refund"]}).reason == "refund was called"


@pytest.mark.parametrize(
    ("check", "passed"),
    [
        ({"contains": "12.5"}, True),
        ({"contains": ["12.5", "A1"]}, True),
        ({"contains": "thank you"}, False),
        ({"contains": "thank you", "ignore_case": True}, True),
        ({"not_contains": "sorry"}, True),
        ({"not_contains": "Refunded"}, False),
        ({"regex": r"Refunded \d+\.\d+ dollars"}, True),
        ({"regex": r"^\d+$"}, False),
        ({"equals": "Refunded 12.5 dollars on order A1. Thank you!"}, True),
        ({"equals": "Refunded."}, False),
    ],
)
def test_final_message(check: dict[str, Any], passed: bool) -> None:
    result = only({"final_message": check})
    assert result.passed is passed
    if not passed:
        assert result.reason.startswith("final message 'Refunded 12.5 dollars on order A1. Thank you!' ")


def test_final_message_of_a_thread_that_has_none() -> None:
    waiting = thread_of(call(1), HumanRequest(call_id="q", kind="input", question="which order?"))
    assert (
        only({"final_message": {"contains": "x"}}, waiting).reason == "the thread has no final message (it is waiting)"
    )


def test_budgets_on_steps_tokens_and_cost() -> None:
    usage = usage_of(DONE)
    assert (usage.steps, usage.tokens, usage.cost_usd) == (3, 330, pytest.approx(0.003))
    assert only({"max_steps": 3}).passed and only({"max_steps": 2}).reason == "3 model steps, over 2"
    assert only({"max_tokens": 330}).passed and only({"max_tokens": 300}).reason == "330 tokens, over 300"
    assert only({"max_cost_usd": 0.01}).passed and only({"max_cost_usd": 0.002}).reason == "$0.003000, over $0.002000"
    unpriced = thread_of(call(1, cost=None), Done(message="ok"))
    assert "cost unknown" in only({"max_cost_usd": 1.0}, unpriced).reason


@pytest.mark.parametrize(
    ("scorer", "passed", "score", "reason"),
    [
        (f"{SCORERS}:polite", True, 1.0, ""),
        ({"scorer": f"{SCORERS}:brevity", "min": 0.5}, True, 0.55, ""),
        (f"{SCORERS}:brevity", False, 0.55, "score 0.55, under 1.00"),
        (f"{SCORERS}:with_reason", False, 0.25, "case c says little"),
        ({"scorer": f"{SCORERS}:as_score", "min": 0.8}, True, 0.9, "close enough"),
        (f"{SCORERS}:broken", False, 0.0, "the scorer raised RuntimeError: the scorer's own bug"),
        (f"{SCORERS}:out_of_range", False, 0.0, "a scorer returns a bool, a score in 0..1"),
        (f"{SCORERS}:missing", False, 0.0, "has no function 'missing'"),
        ("operator:is_not", True, 1.0, ""),  # module:function, imported by name
        ("tests.evals.nowhere:x", False, 0.0, "cannot import 'tests.evals.nowhere'"),
    ],
)
def test_custom_scorers(scorer: Any, passed: bool, score: float, reason: str) -> None:
    result = only({"scorers": [scorer]})
    assert (result.passed, result.score) == (passed, pytest.approx(score))
    assert reason in result.reason


def test_a_scorer_from_a_file_path(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("def long_enough(thread, case):\n    return len(thread.events) > 3\n")
    assert only({"scorers": [f"{tmp_path / 'mine.py'}:long_enough"]}).passed


def test_a_scorer_file_that_fails_to_load_is_one_clear_error(tmp_path: Path) -> None:
    import sys

    from twelvefactor.errors import DatasetError
    from twelvefactor.evals.scoring import load_scorer

    broken = tmp_path / "broken_scorers.py"
    broken.write_text("raise RuntimeError('no config')\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"cannot load scorer file .*broken_scorers.py.*RuntimeError: no config"):
        load_scorer(f"{broken}:score")
    assert not any("broken_scorers" in str(getattr(m, "__file__", "")) for m in sys.modules.values())
    with pytest.raises(DatasetError, match="there is no scorer file"):
        load_scorer(f"{tmp_path / 'missing.py'}:score")
