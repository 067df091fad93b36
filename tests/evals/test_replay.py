"""Replay under change: each recorded decision asked again of a changed agent, with nothing run."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from twelvefactor import FunctionModel, HumanResponse, Message, ModelCall, Thread, respond, run
from twelvefactor.errors import CassetteMismatch
from twelvefactor.evals import replay_decisions
from twelvefactor.models import replay as cassette
from twelvefactor.prompts import Prompt

from .shop_agent import RUNS, make_agent, policy

ROOT = Path(__file__).resolve().parents[2]


def recorded_refund() -> Thread:
    """Asked for the order, answered, asked to approve, approved, done: three decisions."""
    agent = make_agent()
    thread = run(agent, agent.new_thread("please refund 7 dollars"))
    thread = run(agent, respond(thread, HumanResponse(request_id=thread.pending_request.call_id, text="order Z9")))  # type: ignore[union-attr]
    thread = run(agent, respond(thread, HumanResponse(request_id=thread.pending_request.call_id, approved=True)))  # type: ignore[union-attr]
    assert thread.status == "done"
    return thread


def test_the_unchanged_agent_decides_as_recorded() -> None:
    thread = recorded_refund()
    report = replay_decisions(make_agent(), thread)
    calls = [k for k, e in enumerate(thread.events) if isinstance(e, ModelCall)]
    assert [d.index for d in report.decisions] == calls and len(calls) == 3
    assert [d.recorded.kind for d in report.decisions] == ["question", "tool_call", "done"]
    assert all(d.same for d in report.decisions) and report.first_divergence is None
    assert report.summary() == "3 decisions, 3 the same, 0 different; none diverge"


def test_a_changed_model_diverges_at_the_decision_it_changes_and_no_tool_runs() -> None:
    thread = recorded_refund()

    def generous(messages: Sequence[Message]) -> dict[str, Any]:
        step = policy(messages)
        return {**step, "amount": 70.0} if step["intent"] == "refund" else step

    RUNS.clear()
    report = replay_decisions(make_agent(model=FunctionModel(generous)), thread)
    assert [d.same for d in report.decisions] == [True, False, True]
    second = report.decisions[1]
    assert (
        report.first_divergence == second.index == [k for k, e in enumerate(thread.events) if e.type == "model_call"][1]
    )
    assert str(second.recorded) == 'refund {"amount": 7.0, "order": "Z9"}'
    assert str(second.new) == 'refund {"amount": 70.0, "order": "Z9"}'
    # The third decision saw the recorded result of the recorded (7 dollar) refund, as it happened.
    assert report.decisions[2].new.text == "Done: refunded 7.0 on Z9."
    assert RUNS == []


def changed_prompt(rule: str) -> Prompt:
    """The default prompt's shape with a new rule as the system message: the prompt change under test."""
    return Prompt("{{ role('system') }}" + rule + "\n{{ intents }}\n{{ role('user') }}{{ context }}")


def test_a_changed_prompt_diverges_at_the_decision_it_changes_and_no_tool_runs() -> None:
    thread = recorded_refund()
    RUNS.clear()
    report = replay_decisions(make_agent(prompt=changed_prompt("A manager approves every refund.")), thread)
    assert [d.same for d in report.decisions] == [True, False, True]
    second = report.decisions[1]
    assert report.first_divergence == second.index and thread.events[second.index + 1].type == "tool_call"
    assert (second.recorded.kind, second.new.kind) == ("tool_call", "question")
    assert second.new.text == "May a manager approve this refund?"
    assert RUNS == []
    never = replay_decisions(make_agent(prompt=changed_prompt("Never ask questions.")), thread)
    assert never.first_divergence == 1 and never.decisions[0].new.kind == "tool_call"


def test_a_reply_that_does_not_parse_is_the_new_step_after_one_call() -> None:
    thread = recorded_refund()
    replies = 0

    def rambling(messages: Sequence[Message]) -> str:
        nonlocal replies
        replies += 1
        return "I think I would refund, probably."

    report = replay_decisions(make_agent(model=FunctionModel(rambling)), thread)
    assert replies == 3  # one call per decision: no retries
    assert all(d.new.kind == "error" and not d.same for d in report.decisions)


def test_offline_with_a_cassette_and_a_changed_prompt_asks_to_re_record() -> None:
    from twelvefactor._loader import load_agent

    recording = ROOT / "examples" / "calculator" / "cassettes" / "openai-add.json"
    calculator = load_agent(str(ROOT / "examples" / "calculator"))
    with calculator.override(model=cassette(recording)):
        thread = run(calculator, calculator.new_thread("what is 3 plus 4"))
    model = cassette(recording)
    with calculator.override(model=model):
        report = replay_decisions(calculator, thread)
    assert [d.same for d in report.decisions] == [True, True] and model.exchange.remaining == 0  # type: ignore[attr-defined]
    assert all(d.cost_usd for d in report.decisions)  # priced like the recorded calls
    changed = copy.copy(calculator)
    changed.prompt = Prompt(calculator.prompt.source.replace("careful", "fast"))
    with changed.override(model=cassette(recording)), pytest.raises(CassetteMismatch, match="Re-record"):
        replay_decisions(changed, thread)
