"""The exact context each model call was sent: recorded as edits of the previous call's (issue 8, item 11)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from twelvefactor import (
    Agent,
    ChatFormat,
    FunctionModel,
    Message,
    ModelCall,
    ModelResponse,
    SQLiteStore,
    Thread,
    UserError,
    fork,
    replay,
    run,
    sent_messages,
    sent_request,
    tool,
)


@tool
def add(a: float, b: float) -> float:
    """Add b to a."""
    return a + b


class Capturing:
    """A model that plays a script and keeps every message list it received, as a provider would get it."""

    def __init__(self, steps: Sequence[dict[str, Any]], *, with_body: bool = False) -> None:
        self.steps = list(steps)
        self.received: list[list[Message]] = []
        self.bodies: list[dict[str, Any]] = []
        self.with_body = with_body

    def __call__(self, messages: Sequence[Message]) -> ModelResponse:
        self.received.append(list(messages))
        body = None
        if self.with_body:  # shaped like an OpenAI chat body: the messages, and options around them
            body = {"model": "m", "messages": [{"role": m.role, "content": m.content} for m in messages], "n": 1}
            self.bodies.append(json.loads(json.dumps(body)))
        return ModelResponse(text=json.dumps(self.steps.pop(0)), model="m", request=body)


def adds(n: int, *, done: bool = True) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = [{"intent": "add", "a": i, "b": 1} for i in range(n)]
    return [*steps, {"intent": "done_for_now", "message": "ok"}] if done else steps


def calls_of(thread: Thread) -> list[int]:
    return [i for i, e in enumerate(thread.events) if isinstance(e, ModelCall)]


def assert_recorded(thread: Thread, received: list[list[Message]]) -> None:
    indexes = calls_of(thread)
    assert [sent_messages(thread, i) for i in indexes] == received
    assert [sent_messages(thread, i) for i in reversed(indexes)] == received[::-1]  # any order, same answers
    for copy in (Thread.model_validate_json(thread.model_dump_json()), replay(thread.events, id=thread.id)):
        assert [sent_messages(copy, i) for i in indexes] == received


def test_each_call_records_exactly_the_messages_the_model_received() -> None:
    model = Capturing(adds(4))
    agent = Agent("calc", tools=[add], model=FunctionModel(model))
    thread = run(agent, agent.new_thread("add things"))
    assert len(model.received) == 5
    assert_recorded(thread, model.received)


def test_what_was_sent_survives_a_prompt_change_while_the_page_of_today_would_differ() -> None:
    old = Capturing(adds(2, done=False))
    first = Agent("calc", tools=[add], model=FunctionModel(old), prompt="OLD PROMPT\n{{ context }}")
    thread = run(first, first.new_thread("add things"), max_steps=2)
    new = Capturing(adds(1))
    second = Agent("calc", tools=[add], model=FunctionModel(new), prompt="NEW PROMPT\n{{ context }}\nGo.")
    thread = run(second, thread)
    assert_recorded(thread, old.received + new.received)
    first_call = sent_messages(thread, calls_of(thread)[0])
    assert first_call is not None and first_call[0].content.startswith("OLD PROMPT")


def test_forks_and_stored_threads_reconstruct_exactly(tmp_path: Path) -> None:
    model = Capturing(adds(3, done=False))
    agent = Agent("calc", tools=[add], model=FunctionModel(model))
    store = SQLiteStore(str(tmp_path / "t.db"))
    thread = run(agent, agent.new_thread("add things"), store=store, max_steps=3)
    assert_recorded(store.load(thread.id), model.received)
    branch = fork(store.load(thread.id), 7)  # after the second call's tool result
    forked = Capturing(adds(1))
    other = Agent("calc", tools=[add], model=FunctionModel(forked), context_format=ChatFormat())
    branch = run(other, branch, store=store)
    assert_recorded(store.load(branch.id), model.received[:2] + forked.received)


def test_the_record_grows_with_the_new_events_not_with_the_whole_context() -> None:
    model = Capturing(adds(19))
    agent = Agent("calc", tools=[add], model=FunctionModel(model))
    thread = run(agent, agent.new_thread("add things"), max_steps=25)
    records = [e for e in thread.events if isinstance(e, ModelCall)]
    assert len(records) == 20
    stored = sum(len(json.dumps([s.model_dump(exclude_defaults=True) for s in c.sent or ()])) for c in records)
    last = sum(len(m.content) for m in model.received[-1])
    assert stored < 2 * last  # linear in the thread; the full messages of every call would be ~10x


def test_the_request_body_keeps_the_messages_once_and_is_rebuilt_exactly() -> None:
    model = Capturing(adds(3), with_body=True)
    agent = Agent("calc", tools=[add], model=FunctionModel(model))
    thread = run(agent, agent.new_thread("add things " + "x" * 200))
    calls = calls_of(thread)
    assert [sent_request(thread, i) for i in calls] == model.bodies
    stored = [thread.events[i].request for i in calls]  # type: ignore[attr-defined]
    assert all(len(json.dumps(body)) < 200 for body in stored)  # the messages live in `sent` only
    assert sent_request(Thread.model_validate_json(thread.model_dump_json()), calls[-1]) == model.bodies[-1]


def test_a_call_recorded_without_its_context_and_a_wrong_index_are_explained() -> None:
    from twelvefactor import UserMessage

    thread = Thread.new(UserMessage(content="hi"), ModelCall(model="m", raw="{}"))
    assert sent_messages(thread, 1) is None and sent_request(thread, 1) is None
    with pytest.raises(UserError, match="event 0 of thread .* is a user_message, not a model_call"):
        sent_messages(thread, 0)


def test_chat_format_with_the_default_prompt_sends_each_event_once() -> None:
    model = Capturing(adds(1))
    agent = Agent("calc", tools=[add], model=FunctionModel(model), context_format=ChatFormat())
    run(agent, agent.new_thread("please add one and one"))
    for messages in model.received:
        text = "\n".join(m.content for m in messages)
        assert text.count("please add one and one") == 1
    last = model.received[-1]
    assert [m.role for m in last] == ["system", "user", "assistant", "user"]
    assert last[-1].content.startswith("<tool_result>") and last[-1].content.endswith(
        "Reply with the JSON object of the next step."
    )
