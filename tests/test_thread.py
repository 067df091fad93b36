from __future__ import annotations

import pytest

from twelvefactor import (
    Done,
    Error,
    HumanRequest,
    HumanResponse,
    ModelCall,
    NotWaitingError,
    Thread,
    ToolCall,
    ToolResult,
    UserError,
    UserMessage,
    fork,
    reduce,
    replay,
    respond,
)


def approval_thread() -> Thread:
    return Thread.new(
        UserMessage(content="deploy"),
        ToolCall(call_id="call_1", intent="deploy", arguments={}),
        HumanRequest(call_id="call_1", kind="approval", question="ok?", intent="deploy"),
        id="t1",
    )


def test_reduce_is_pure_and_bumps_the_version() -> None:
    thread = Thread.new(UserMessage(content="hi"))
    before = thread.model_dump_json()
    after = reduce(thread, Done(message="bye"))
    assert thread.model_dump_json() == before
    assert after.version == thread.version + 1 == 2
    assert after.events[:-1] == thread.events


@pytest.mark.parametrize(
    ("events", "status"),
    [
        ([UserMessage(content="hi")], "running"),
        ([UserMessage(content="hi"), Done(message="ok")], "done"),
        ([UserMessage(content="hi"), Done(message="ok"), ModelCall(model="m", raw="x")], "done"),
        ([UserMessage(content="hi"), Error(source="budget", message="out", fatal=True)], "failed"),
        ([UserMessage(content="hi"), Error(source="parse", message="bad")], "running"),
        ([UserMessage(content="hi"), HumanRequest(call_id="c", kind="input", question="?")], "waiting"),
        (
            [
                UserMessage(content="hi"),
                HumanRequest(call_id="c", kind="input", question="?"),
                HumanResponse(request_id="c", text="yes"),
            ],
            "running",
        ),
        # A fatal error does not end a thread for ever: a new message revives it.
        ([Error(source="budget", message="out", fatal=True), UserMessage(content="go on")], "running"),
        ([Done(message="ok"), UserMessage(content="one more thing")], "running"),
    ],
)
def test_status_is_derived_from_the_events(events: list, status: str) -> None:
    assert Thread.new(*events).status == status


def test_status_is_not_a_stored_field() -> None:
    assert "status" not in Thread.new(UserMessage(content="hi")).model_dump()


def test_pending_request_survives_unrelated_events_after_it() -> None:
    from twelvefactor import CustomEvent

    thread = reduce(approval_thread(), CustomEvent(type="pager_alert"))
    assert thread.status == "waiting"
    assert thread.pending_request is not None and thread.pending_request.call_id == "call_1"


def test_fork_copies_the_first_n_events_under_a_new_id_linked_to_the_parent() -> None:
    parent = approval_thread()
    child = fork(parent, at=2)
    assert child.id != parent.id
    assert child.events == parent.events[:2]
    assert (child.parent_id, child.forked_at, child.version) == (parent.id, 2, 2)
    assert child.status == "running"
    assert Thread.model_validate_json(child.model_dump_json()) == child


def test_fork_outside_the_thread_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="outside 0..3"):
        fork(approval_thread(), at=7)


def test_replay_rebuilds_the_same_thread_and_at_views_any_point() -> None:
    thread = approval_thread()
    again = replay(thread.events, id=thread.id)
    assert again.events == thread.events and again.version == thread.version
    assert thread.at(1).events == thread.events[:1]
    assert thread.at(1).status == "running"


def test_version_must_match_the_events() -> None:
    with pytest.raises(ValueError, match="version 5 does not match the 1 events"):
        Thread(id="x", events=(UserMessage(content="hi"),), version=5)


def test_respond_applies_an_approval_to_the_pending_request() -> None:
    thread = respond(approval_thread(), HumanResponse(request_id="call_1", approved=True))
    assert thread.status == "running"
    assert thread.version == 4


def test_respond_to_another_request_id_changes_nothing() -> None:
    thread = approval_thread()
    with pytest.raises(NotWaitingError, match="'call_9' is not the pending request"):
        respond(thread, HumanResponse(request_id="call_9", approved=True))


def test_respond_to_a_thread_that_is_not_waiting_is_refused() -> None:
    thread = Thread.new(UserMessage(content="hi"), ToolResult(call_id="c", intent="x"))
    with pytest.raises(NotWaitingError, match="is running, not waiting"):
        respond(thread, HumanResponse(request_id="c", approved=True))


def test_an_approval_needs_a_verdict_and_a_question_needs_an_answer() -> None:
    with pytest.raises(UserError, match="approved=True or False"):
        respond(approval_thread(), HumanResponse(request_id="call_1", text="sure"))
    question = Thread.new(HumanRequest(call_id="q", kind="input", question="which env?"))
    with pytest.raises(UserError, match="give the answer in text"):
        respond(question, HumanResponse(request_id="q", approved=True))
