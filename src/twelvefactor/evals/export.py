"""A stored thread as an eval case: the way a failing production thread becomes a regression test.

The case starts as the thread did (its first user message, or the events before the agent's first step),
answers as its people did (each recorded response, matched to the kind of request and the intent it was
about) and expects what the thread recorded: its final status and the calls it made. That is a starting
point: edit the expectations to say what the thread *should* have done.
"""

from __future__ import annotations

import re

from pydantic import JsonValue

from twelvefactor.evals.dataset import Answer, Case, Expect, ToolExpectation
from twelvefactor.events import RECORDED_BY_AGENT, Event, HumanRequest, HumanResponse, ToolCall, UserMessage
from twelvefactor.thread import Thread, is_external


def thread_to_case(thread: Thread, *, case_id: str | None = None) -> Case:
    """The case that replays ``thread``'s start and answers, expecting its recorded outcome."""
    start = _initial(thread)
    only_message = len(start) == 1 and isinstance(thread.events[0], UserMessage)
    later = sum(1 for event in thread.events[len(start) :] if isinstance(event, UserMessage))
    note = f"exported from thread {thread.id}" + (
        f" ({later} later user message{'s' if later != 1 else ''} left out: a case starts once)" if later else ""
    )
    events: list[dict[str, JsonValue]] | None = None
    if not only_message:
        events = [event.model_dump(mode="json", exclude={"at"}) for event in start]
    calls = [event for event in thread.events if isinstance(event, ToolCall)]
    return Case(
        id=case_id or _case_id(thread.id),
        description=note,
        input=thread.events[0].content if only_message else None,  # type: ignore[attr-defined]
        events=events,
        answers=_answers(thread),
        expect=Expect(
            status=thread.status,
            tool_calls=[ToolExpectation(intent=call.intent, arguments=dict(call.arguments)) for call in calls],
            tool_calls_in_order=bool(calls),
        ),
        source_thread=thread.id,
    )


def _initial(thread: Thread) -> tuple[Event, ...]:
    """The events from outside (messages, triggers) before the agent's first step. What the agent adds itself
    (pre-fetched documents, recalled memory) is left out: the case's run adds it again."""
    count = 0
    for event in thread.events:
        if not is_external(event) or event.type in RECORDED_BY_AGENT:
            break
        count += 1
    if count == 0:
        from twelvefactor.errors import UserError

        raise UserError(f"thread {thread.id!r} does not start with a message or an event from outside: no case to make")
    return thread.events[:count]


def _answers(thread: Thread) -> list[Answer]:
    requests = {event.call_id: event for event in thread.events if isinstance(event, HumanRequest)}
    answers = []
    for event in thread.events:
        if not isinstance(event, HumanResponse):
            continue
        request = requests.get(event.request_id)
        answers.append(
            Answer(
                kind=request.kind if request is not None else None,
                intent=request.intent if request is not None else None,
                approved=event.approved,
                text=event.text,
                outcome=event.outcome,
            )
        )
    return answers


def _case_id(thread_id: str) -> str:
    return "thread-" + re.sub(r"[^A-Za-z0-9_.:-]", "_", thread_id)[:120]
