from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

import pytest

from twelvefactor import (
    Agent,
    CustomEvent,
    Done,
    Error,
    FunctionModel,
    HumanRequest,
    HumanResponse,
    MemoryStore,
    Message,
    ModelCall,
    ScriptedModel,
    Tool,
    ToolCall,
    ToolResult,
    UserError,
    UserMessage,
    consecutive_errors,
    next_action,
    pending_tool_call,
    respond,
    run,
    tool,
)
from twelvefactor.loop import AskApproval, CallModel, RunTool, Stop


@tool(effect="read_only")
def add(a: float, b: float) -> float:
    """Add b to a."""
    return a + b


@tool(requires_approval=True, effect="read_only")
def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


class LookupCustomer(Tool):
    """Handled by the caller's code."""

    intent: Literal["lookup_customer"] = "lookup_customer"
    email: str


def calculator(outputs: Sequence[str | dict[str, Any]], **kwargs: Any) -> Agent:
    return Agent("calc", tools=[add, divide, LookupCustomer], model=ScriptedModel(outputs), **kwargs)


def types(thread: Any) -> list[str]:
    return [e.type for e in thread.events]


def test_run_executes_auto_tools_until_done() -> None:
    agent = calculator([{"intent": "add", "a": 2, "b": 3}, {"intent": "done_for_now", "message": "5"}])
    thread = run(agent, agent.new_thread("2+3?"))
    assert types(thread) == ["user_message", "model_call", "tool_call", "tool_result", "model_call", "done"]
    assert thread.status == "done"
    result = thread.events[3]
    assert isinstance(result, ToolResult) and result.result == 5.0 and result.call_id == thread.events[2].call_id


def test_the_model_sees_the_tool_result_in_its_next_context() -> None:
    agent = calculator([{"intent": "add", "a": 2, "b": 3}, {"intent": "done_for_now", "message": "5"}])
    run(agent, agent.new_thread("2+3?"))
    assert isinstance(agent.model, ScriptedModel)
    second = agent.model.calls[1][-1].content
    assert "<tool_result>\nintent: add\nresult: 5.0\n</tool_result>" in second


def test_an_approval_tool_pauses_then_runs_once_approved() -> None:
    agent = calculator([{"intent": "divide", "a": 1, "b": 4}, {"intent": "done_for_now", "message": "0.25"}])
    thread = run(agent, agent.new_thread("1/4"))
    assert thread.status == "waiting"
    request = thread.pending_request
    assert request is not None and request.kind == "approval" and request.intent == "divide"
    assert not any(isinstance(e, ToolResult) for e in thread.events)  # nothing ran before the approval
    thread = run(agent, respond(thread, HumanResponse(request_id=request.call_id, approved=True)))
    assert types(thread)[-4:] == ["human_response", "tool_result", "model_call", "done"]
    assert thread.events[-3].result == 0.25  # type: ignore[attr-defined]


def test_a_denied_call_is_not_run_and_the_model_sees_the_reason() -> None:
    agent = calculator(
        [{"intent": "divide", "a": 1, "b": 4}, {"intent": "done_for_now", "message": "ok, not dividing"}]
    )
    thread = run(agent, agent.new_thread("1/4"))
    request = thread.pending_request
    assert request is not None
    thread = run(
        agent, respond(thread, HumanResponse(request_id=request.call_id, approved=False, text="no division today"))
    )
    assert not any(isinstance(e, ToolResult) for e in thread.events)
    assert isinstance(agent.model, ScriptedModel)
    assert "<human_response>\ndenied: no division today\n</human_response>" in agent.model.calls[-1][-1].content
    assert thread.status == "done"


def test_request_human_input_pauses_and_the_answer_resumes() -> None:
    agent = calculator(
        [
            {"intent": "request_human_input", "question": "Which numbers?"},
            {"intent": "add", "a": 1, "b": 1},
            {"intent": "done_for_now", "message": "2"},
        ]
    )
    thread = run(agent, agent.new_thread("add some numbers"))
    assert thread.status == "waiting"
    request = thread.pending_request
    assert request is not None and request.kind == "input" and request.question == "Which numbers?"
    thread = run(agent, respond(thread, HumanResponse(request_id=request.call_id, text="1 and 1")))
    assert thread.status == "done"


def test_a_parse_failure_becomes_a_compact_error_and_the_step_is_retried() -> None:
    agent = calculator(["I think the answer is 5", {"intent": "done_for_now", "message": "5"}])
    thread = run(agent, agent.new_thread("2+3?"))
    assert types(thread) == ["user_message", "model_call", "error", "model_call", "done"]
    error = thread.events[2]
    assert isinstance(error, Error) and error.source == "parse"
    assert "\n" not in error.message and len(error.message) < 600
    assert isinstance(agent.model, ScriptedModel)
    retry_context = agent.model.calls[1][-1].content
    assert "<error>\nparse error:" in retry_context


def test_errors_are_cleared_from_the_context_once_resolved() -> None:
    agent = calculator(["not json", {"intent": "add", "a": 1, "b": 2}, {"intent": "done_for_now", "message": "3"}])
    run(agent, agent.new_thread("1+2"))
    assert isinstance(agent.model, ScriptedModel)
    assert "<error>" in agent.model.calls[1][-1].content
    assert "<error>" not in agent.model.calls[2][-1].content


def test_after_three_errors_in_a_row_the_agent_escalates_to_a_human_instead_of_spinning() -> None:
    agent = calculator(["nope", "still nope", "nope again", "never reached"])
    thread = run(agent, agent.new_thread("?"))
    assert thread.status == "waiting"
    assert types(thread).count("model_call") == 3
    request = thread.pending_request
    assert request is not None and request.escalation and request.kind == "input"
    assert "3 errors in a row" in request.question
    assert isinstance(agent.model, ScriptedModel) and agent.model.remaining == 1
    # A human answer clears the counter, and the agent carries on.
    thread = respond(thread, HumanResponse(request_id=request.call_id, text="just say done"))
    assert consecutive_errors(thread) == 0


def test_tool_errors_count_towards_escalation_too() -> None:
    @tool
    def flaky(x: int) -> int:
        raise RuntimeError("backend down")

    agent = Agent("f", tools=[flaky], model=ScriptedModel([{"intent": "flaky", "x": 1}] * 3), max_consecutive_errors=2)
    thread = run(agent, agent.new_thread("go"))
    assert thread.status == "waiting"
    errors = [e for e in thread.events if isinstance(e, Error)]
    assert [e.message for e in errors] == ["RuntimeError: backend down"] * 2
    assert errors[0].call_id is not None


def test_a_model_error_is_recorded_compactly() -> None:
    agent = calculator([], max_consecutive_errors=1)
    thread = run(agent, agent.new_thread("?"))
    error = thread.events[1]
    assert isinstance(error, Error) and error.source == "model" and "no output left" in error.message
    assert thread.status == "waiting"


def test_the_step_budget_stops_a_run_as_failed_and_a_new_message_revives_it() -> None:
    agent = calculator([{"intent": "add", "a": 1, "b": 1}] * 5, max_steps=3, stop_repeats=False)
    thread = run(agent, agent.new_thread("loop forever"))
    assert thread.status == "failed"
    assert types(thread).count("model_call") == 3
    last = thread.events[-1]
    assert isinstance(last, Error) and last.source == "budget" and last.fatal
    revived = thread.model_copy(update={})
    from twelvefactor import reduce

    assert reduce(revived, UserMessage(content="keep going")).status == "running"


def test_a_tool_without_run_is_handed_back_to_the_caller() -> None:
    agent = calculator(
        [{"intent": "lookup_customer", "email": "a@b.c"}, {"intent": "done_for_now", "message": "found"}]
    )
    thread = run(agent, agent.new_thread("who is a@b.c"))
    call = pending_tool_call(thread)
    assert call is not None and call.intent == "lookup_customer" and thread.status == "running"
    assert next_action(agent, thread) == Stop("external_tool")
    from twelvefactor import reduce

    thread = reduce(thread, ToolResult(call_id=call.call_id, intent=call.intent, result={"name": "Ada"}))
    assert run(agent, thread).status == "done"


def test_next_action_is_read_off_the_thread() -> None:
    agent = calculator([])
    base = agent.new_thread("x")
    assert next_action(agent, base) == CallModel()
    auto = ToolCall(call_id="c1", intent="add", arguments={"a": 1, "b": 2})
    from twelvefactor import reduce

    assert next_action(agent, reduce(base, auto)) == RunTool(auto)
    guarded = ToolCall(call_id="c2", intent="divide", arguments={"a": 1, "b": 2})
    assert next_action(agent, reduce(base, guarded)) == AskApproval(guarded)


def test_a_tool_call_interrupted_by_a_crash_is_run_on_resume() -> None:
    agent = calculator([{"intent": "done_for_now", "message": "3"}])
    from twelvefactor import reduce

    thread = reduce(agent.new_thread("1+2"), ModelCall(model="m", raw="..."))
    thread = reduce(thread, ToolCall(call_id="call_2", intent="add", arguments={"a": 1, "b": 2}))
    thread = run(agent, thread)
    assert types(thread)[-3:] == ["tool_result", "model_call", "done"]


def test_run_persists_every_step_to_the_store() -> None:
    store = MemoryStore()
    agent = calculator([{"intent": "add", "a": 2, "b": 3}, {"intent": "done_for_now", "message": "5"}])
    thread = run(agent, agent.new_thread("2+3?"), store=store)
    assert store.load(thread.id) == thread


def test_an_agent_is_usable_as_a_tool_of_another_agent() -> None:
    math = calculator([{"intent": "add", "a": 40, "b": 2}, {"intent": "done_for_now", "message": "42"}])
    boss_model = ScriptedModel(
        [{"intent": "ask_math", "task": "what is 40 + 2"}, {"intent": "done_for_now", "message": "it is 42"}]
    )
    boss = Agent("boss", tools=[math.as_tool(name="ask_math")], model=boss_model)
    thread = run(boss, boss.new_thread("ask the math agent"))
    result = next(e for e in thread.events if isinstance(e, ToolResult))
    assert result.intent == "ask_math" and result.result == "42"
    assert thread.status == "done"
    assert 'intent: "ask_math"' in boss.intents


def test_a_sub_agent_that_needs_a_human_fails_the_parent_tool_compactly() -> None:
    helper = calculator([{"intent": "request_human_input", "question": "which numbers?"}])
    boss = Agent(
        "boss",
        tools=[helper.as_tool(name="ask_math")],
        model=ScriptedModel([{"intent": "ask_math", "task": "add things"}, {"intent": "done_for_now", "message": "x"}]),
    )
    thread = run(boss, boss.new_thread("go"))
    error = next(e for e in thread.events if isinstance(e, Error))
    assert error.message == "ToolError: sub-agent 'calc' stopped to ask a human: which numbers?" or (
        "stopped to ask a human: which numbers?" in error.message
    )


def test_prefetch_hooks_add_events_before_the_first_model_call() -> None:
    def fetch_tags(thread: Any) -> list[CustomEvent]:
        return [CustomEvent(type="git_tags", tags=["v2", "v1"])]

    seen: list[str] = []

    def model(messages: Sequence[Message]) -> str:
        seen.append(messages[-1].content)
        return json.dumps({"intent": "done_for_now", "message": "ok"})

    agent = Agent("p", model=FunctionModel(model), prefetch=[fetch_tags])
    thread = run(agent, agent.new_thread("deploy"))
    assert types(thread)[:2] == ["user_message", "git_tags"]
    assert "<git_tags>\ntags:\n  - v2\n  - v1\n</git_tags>" in seen[0]


def test_on_event_sees_every_event_as_it_happens() -> None:
    seen: list[str] = []
    agent = calculator([{"intent": "add", "a": 2, "b": 3}, {"intent": "done_for_now", "message": "5"}])
    thread = run(agent, agent.new_thread("2+3?"), on_event=lambda e: seen.append(e.type))
    assert seen == types(thread)[1:]


def test_an_agent_without_a_model_is_a_clear_error() -> None:
    agent = Agent("nomodel")
    with pytest.raises(UserError, match="has no model"):
        run(agent, agent.new_thread("hi"))


def test_escalation_request_and_done_are_recorded_as_typed_events() -> None:
    agent = calculator([{"intent": "done_for_now", "message": "bye"}])
    thread = run(agent, agent.new_thread("hi"))
    assert isinstance(thread.events[-1], Done)
    assert not any(isinstance(e, HumanRequest) for e in thread.events)


def test_a_multi_line_model_error_is_compacted_to_one_bounded_line() -> None:
    from twelvefactor import ModelError

    def broken(messages: Sequence[Message]) -> str:
        raise ModelError("HTTP 400\n" + "Traceback (most recent call last):\n  File x\n" * 100)

    agent = Agent("b", model=FunctionModel(broken), max_consecutive_errors=1)
    thread = run(agent, agent.new_thread("hi"))
    error = thread.events[1]
    assert isinstance(error, Error) and error.source == "model"
    assert "\n" not in error.message and len(error.message) <= 500
    assert error.message.startswith("HTTP 400 Traceback")


def test_should_stop_leaves_the_thread_resumable_between_steps() -> None:
    agent = calculator(
        [
            {"intent": "add", "a": 1, "b": 1},
            {"intent": "add", "a": 2, "b": 2},
            {"intent": "done_for_now", "message": "ok"},
        ]
    )
    store = MemoryStore()
    calls = 0

    def stop_after_first_model_call() -> bool:
        nonlocal calls
        calls += 1
        return calls > 2  # CallModel, then RunTool, then stop

    thread = run(agent, agent.new_thread("add"), store=store, should_stop=stop_after_first_model_call)
    assert types(thread) == ["user_message", "model_call", "tool_call", "tool_result"]
    assert store.load(thread.id) == thread
    assert run(agent, store.load(thread.id), store=store).status == "done"


# --- output modes and model-call accounting (providers) ---------------------------------------------------


def test_test_doubles_serve_every_output_mode_and_get_the_intents() -> None:
    from twelvefactor.models import OutputSpec

    seen: list[OutputSpec | None] = []

    class Spy(ScriptedModel):
        def complete(self, messages: Sequence[Message], *, output: OutputSpec | None = None) -> Any:
            seen.append(output)
            return super().complete(messages, output=output)

    for mode in ("json_schema", "tools"):
        agent = Agent("calc", tools=[add], model=Spy([{"intent": "done_for_now", "message": "ok"}]), output_mode=mode)  # type: ignore[arg-type]
        assert run(agent, agent.new_thread("hi")).status == "done"
    assert [s.mode for s in seen if s] == ["json_schema", "tools"] and seen[0] is not None
    assert [t.intent_name() for t in seen[0].tools] == ["add", "request_human_input", "done_for_now"]
    prompted = Spy([{"intent": "done_for_now", "message": "ok"}])
    run(Agent("calc", model=prompted), Agent("calc").new_thread("hi"))
    assert seen[-1] is None  # the prompted path is the plain complete(messages) call


def test_model_calls_record_cost_finish_reason_and_the_request_body_and_round_trip() -> None:
    from twelvefactor import ModelResponse, Thread

    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    reply = ModelResponse(
        text='{"intent": "done_for_now", "message": "ok"}',
        model="m-2025",
        input_tokens=10,
        output_tokens=5,
        request=body,
        finish_reason="stop",
        cost_usd=0.00012,
    )
    agent = Agent("a", model=FunctionModel(lambda messages: reply))
    thread = run(agent, agent.new_thread("hi"))
    (call,) = [e for e in thread.events if isinstance(e, ModelCall)]
    assert (call.model, call.cost_usd, call.finish_reason, call.request) == ("m-2025", 0.00012, "stop", body)
    assert Thread.model_validate_json(thread.model_dump_json()) == thread
    rendered = agent.context_format.render(thread.events)
    assert "model_call" not in rendered and '"messages"' not in rendered and "0.00012" not in rendered
    quiet = Agent("a", model=FunctionModel(lambda messages: reply), record_requests=False)
    (call,) = [e for e in run(quiet, quiet.new_thread("hi")).events if isinstance(e, ModelCall)]
    assert call.request is None and call.cost_usd == 0.00012


def test_a_truncated_reply_is_recorded_then_refused_as_a_model_error() -> None:
    from twelvefactor import ModelResponse

    replies = iter(
        [
            ModelResponse(
                text='{"intent": "done_for_now", "mess',
                model="m",
                output_tokens=8,
                finish_reason="length",
                truncated=True,
            ),
            ModelResponse(text='{"intent": "done_for_now", "message": "ok"}', model="m", finish_reason="stop"),
        ]
    )
    agent = Agent("a", model=FunctionModel(lambda messages: next(replies)))
    thread = run(agent, agent.new_thread("hi"))
    assert types(thread) == ["user_message", "model_call", "error", "model_call", "done"]
    error = thread.events[2]
    assert isinstance(error, Error) and error.source == "model"
    assert error.message.startswith(
        "the model's reply was cut off at its output token limit (finish_reason 'length' after 8 output tokens)"
    )


# --- bounded, storable model output (issue 8, item 6) ------------------------------------------------------


def test_an_oversized_reply_is_kept_truncated_with_a_marker_and_becomes_an_error_the_model_sees() -> None:
    from twelvefactor import ModelCall

    huge = '{"intent": "done_for_now", "message": "' + "x" * 5_000 + '"}'
    agent = calculator([huge, huge, {"intent": "done_for_now", "message": "short"}], max_output_chars=1_000)
    thread = run(agent, agent.new_thread("hi"))
    assert types(thread) == ["user_message", "model_call", "error", "model_call", "error", "model_call", "done"]
    call = thread.events[1]
    assert isinstance(call, ModelCall) and call.raw.startswith(huge[:1_000])
    assert len(call.raw) < 1_200 and call.raw.endswith("[4041 more characters not kept: over max_output_chars=1000]")
    error = thread.events[2]
    assert isinstance(error, Error) and error.source == "model"
    assert "5041 characters, over this agent's limit of 1000" in error.message
    assert isinstance(agent.model, ScriptedModel) and "5041 characters" in agent.model.calls[1][-1].content


def test_oversized_replies_count_towards_escalation_and_the_stored_thread_stays_small() -> None:
    from twelvefactor import SQLiteStore

    huge = "y" * 1_000_000
    agent = calculator([huge] * 3)
    store = SQLiteStore(":memory:")
    thread = run(agent, agent.new_thread("hi"), store=store)
    assert thread.status == "waiting" and isinstance(thread.events[-1], HumanRequest)
    assert thread.events[-1].escalation and consecutive_errors(thread.at(thread.version - 1)) == 3
    assert store.bytes_for(thread.id) < 3 * 70_000  # 64 KiB of characters kept per reply, not 1 MB


def test_an_agent_refuses_a_nonpositive_output_cap() -> None:
    with pytest.raises(UserError, match="max_output_chars must be at least 1"):
        calculator([], max_output_chars=0)


LONE = "\ud83d"


@pytest.mark.parametrize(
    "raw",
    [
        '{"intent": "done_for_now", "message": "smile \\ud83d"}',  # a valid JSON escape of a lone surrogate
        '{"intent": "done_for_now", "message": "smile ' + LONE + '"}',  # the character itself
        "no JSON, only " + LONE,  # fails to parse: kept as the raw reply, and the error may quote it
    ],
    ids=["escaped", "raw-char", "unparsed"],
)
def test_model_output_with_a_lone_surrogate_is_stored_and_round_trips(raw: str) -> None:
    from twelvefactor import SQLiteStore, Thread

    agent = calculator([raw, {"intent": "done_for_now", "message": "ok"}])
    store = SQLiteStore(":memory:")
    thread = run(agent, agent.new_thread("hi"), store=store)
    assert thread.status == "done"
    dumped = thread.model_dump_json()
    assert Thread.model_validate_json(dumped) == thread
    assert store.load(thread.id) == thread
    assert not any("\ud800" <= ch <= "\udfff" for ch in dumped)
    if "done_for_now" in raw:
        assert isinstance(thread.events[2], Done) and thread.events[2].message == "smile \ufffd"


def test_provider_reported_names_with_a_lone_surrogate_are_stored_too() -> None:
    from twelvefactor import ModelResponse, SQLiteStore

    reply = ModelResponse(
        text='{"intent": "done_for_now", "message": "ok"}', model="m\ud83d", finish_reason="stop\udc00"
    )
    agent = Agent("a", model=FunctionModel(lambda messages: reply))
    store = SQLiteStore(":memory:")
    thread = run(agent, agent.new_thread("hi"), store=store)
    call = thread.events[1]
    assert isinstance(call, ModelCall) and (call.model, call.finish_reason) == ("m\ufffd", "stop\ufffd")
    assert store.load(thread.id) == thread


def test_with_a_store_a_sub_agent_works_in_its_own_stored_thread_linked_to_its_parent() -> None:
    store = MemoryStore()
    math = calculator([{"intent": "add", "a": 40, "b": 2}, {"intent": "done_for_now", "message": "42"}])
    boss_model = ScriptedModel(
        [{"intent": "ask_math", "task": "what is 40 + 2"}, {"intent": "done_for_now", "message": "it is 42"}]
    )
    boss = Agent("boss", tools=[math.as_tool(name="ask_math")], model=boss_model)
    thread = run(boss, boss.new_thread("ask the math agent"), store=store)
    assert thread.status == "done"
    result = next(e for e in thread.events if isinstance(e, ToolResult))
    assert result.result == "42"
    wait = next(e for e in thread.events if e.type == "wait")
    child = store.load(wait.thread_id)  # type: ignore[attr-defined]
    assert child.parent_id == thread.id and child.forked_at is None and child.agent == "calc"
    assert [e.type for e in child.events if e.type in ("tool_call", "tool_result", "done")] == [
        "tool_call",
        "tool_result",
        "done",
    ]


def test_a_stored_sub_agent_asking_a_person_pauses_its_parent_until_it_is_answered() -> None:
    store = MemoryStore()
    helper = calculator(
        [
            {"intent": "request_human_input", "question": "which numbers?"},
            {"intent": "add", "a": 12, "b": 30},
            {"intent": "done_for_now", "message": "42"},
        ]
    )
    boss = Agent(
        "boss",
        tools=[helper.as_tool(name="ask_math")],
        model=ScriptedModel(
            [{"intent": "ask_math", "task": "add things"}, {"intent": "done_for_now", "message": "42!"}]
        ),
    )
    thread = run(boss, boss.new_thread("go"), store=store)
    assert thread.status == "waiting" and thread.pending_request is None
    assert not any(isinstance(e, Error) for e in thread.events)  # no tool error any more: it waits
    wait = thread.events[-1]
    child = store.load(wait.thread_id)  # type: ignore[attr-defined]
    assert child.status == "waiting" and child.parent_id == thread.id
    assert child.pending_request is not None and child.pending_request.question == "which numbers?"

    store.respond(child.id, HumanResponse(request_id=child.pending_request.call_id, text="12 and 30"))
    thread = run(boss, store.load(thread.id), store=store)  # the parent advances its sub-thread, then goes on
    assert thread.status == "done" and thread.events[-1].message == "42!"  # type: ignore[attr-defined]
    assert store.load(child.id).status == "done"
