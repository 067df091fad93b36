"""A stored thread as a case: how it started, how its people answered, what it did; run again, it does the same."""

from __future__ import annotations

import pytest

from twelvefactor import CustomEvent, HumanResponse, ModelCall, Thread, UserError, UserMessage, respond, run
from twelvefactor.evals import run_case, thread_to_case
from twelvefactor.events import Retrieved
from twelvefactor.thread import reduce

from .shop_agent import make_agent


def answered_refund() -> Thread:
    agent = make_agent()
    thread = run(agent, agent.new_thread("please refund 9 dollars"))
    thread = run(agent, respond(thread, HumanResponse(request_id=thread.pending_request.call_id, text="order Q1")))  # type: ignore[union-attr]
    denial = HumanResponse(request_id=thread.pending_request.call_id, approved=False, text="not this one")  # type: ignore[union-attr]
    return run(agent, respond(thread, denial))


def test_the_case_holds_the_input_the_answers_and_the_recorded_outcome() -> None:
    thread = answered_refund()
    case = thread_to_case(thread)
    assert case.id == f"thread-{thread.id}" and case.input == "please refund 9 dollars" and case.events is None
    assert [(a.kind, a.intent, a.approved, a.text) for a in case.answers] == [
        ("input", None, None, "order Q1"),
        ("approval", "refund", False, "not this one"),
    ]
    assert case.expect.status == "done" and case.expect.tool_calls_in_order
    assert [(c.intent, c.arguments) for c in case.expect.tool_calls] == [("refund", {"order": "Q1", "amount": 9.0})]
    result = run_case(make_agent(), case)
    assert result.passed, result.reasons
    recorded = [e.type for e in thread.events]
    assert [e["type"] for e in result.events] == recorded


def test_a_thread_started_by_events_becomes_a_case_with_those_events() -> None:
    alert = CustomEvent(type="pager_alert", service="db")  # type: ignore[call-arg]
    thread = Thread.new(alert, UserMessage(content="say hello"), agent="shop")
    thread = run(make_agent(), thread)
    thread = run(make_agent(), reduce(thread, UserMessage(content="say again")))
    case = thread_to_case(thread, case_id="alert")
    assert case.id == "alert" and case.input is None
    assert case.events == [{"type": "pager_alert", "service": "db"}, {"type": "user_message", "content": "say hello"}]
    assert case.description == f"exported from thread {thread.id} (1 later user message left out: a case starts once)"
    assert run_case(make_agent(), case).passed


def test_what_the_agent_added_itself_before_its_first_step_is_left_to_the_case_run() -> None:
    found = Retrieved(query="refunds", collection="policies", documents=())
    thread = Thread.new(UserMessage(content="refund policy?"), found, ModelCall(model="m", raw="{}"), agent="shop")
    case = thread_to_case(thread)
    assert case.input == "refund policy?" and case.events is None


def test_a_thread_that_does_not_start_from_outside_is_refused() -> None:
    thread = Thread.new(ModelCall(model="m", raw="{}"), agent="shop")
    with pytest.raises(UserError, match="does not start with a message or an event from outside"):
        thread_to_case(thread)
