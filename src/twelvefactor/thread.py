"""Thread: id + events + version, the only state (factors 5 and 12).

Status is derived from the events every time it is asked for; ``reduce`` is a pure function that
returns a new thread; any thread can be replayed, viewed at event N, or forked from event N.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SerializeAsAny, field_validator, model_validator

from twelvefactor.errors import NotWaitingError, UserError
from twelvefactor.events import (
    Done,
    Error,
    Event,
    HumanRequest,
    HumanResponse,
    ModelCall,
    ToolCall,
    ToolReconciled,
    ToolResult,
    ToolStarted,
    Wait,
    event_from_dict,
)

Status = Literal["running", "waiting", "done", "failed"]

# Scanning back from the end, any of these means no request is pending: it was answered, or the agent
# took a step after it. Other events (messages, errors, triggers) may arrive while a request waits.
_NO_REQUEST_PENDING = frozenset(
    {"human_response", "done", "model_call", "tool_call", "tool_result", "tool_started", "tool_reconciled"}
)


def new_thread_id() -> str:
    return uuid.uuid4().hex[:16]


class Thread(BaseModel):
    """An agent's whole state. Immutable: ``reduce`` returns a new thread.

    ``version`` is the number of events applied; stores use it for optimistic concurrency.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants", defer_build=True)

    id: str
    agent: str | None = None
    events: tuple[SerializeAsAny[Event], ...] = ()
    version: int = 0
    parent_id: str | None = None
    forked_at: int | None = None

    @field_validator("events", mode="before")
    @classmethod
    def _typed_events(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(event_from_dict(item) for item in value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_version(cls, data: Any) -> Any:
        if isinstance(data, dict) and "version" not in data:
            data = {**data, "version": len(data.get("events", ()))}
        return data

    @model_validator(mode="after")
    def _version_matches(self) -> Thread:
        if self.version != len(self.events):
            raise ValueError(f"version {self.version} does not match the {len(self.events)} events")
        return self

    @classmethod
    def new(cls, *events: Event, agent: str | None = None, id: str | None = None) -> Thread:
        """A fresh thread holding ``events`` (usually one UserMessage)."""
        return cls(id=id or new_thread_id(), agent=agent, events=events, version=len(events))

    @property
    def status(self) -> Status:
        """running, waiting (for a human, a timer or a sub-agent), done or failed, read off the events."""
        last_shown: Event | None = None
        request_possible = True
        for event in reversed(self.events):
            kind = event.type
            if request_possible:
                if kind == "human_request" or kind == "wait":
                    return "waiting"
                # A fatal error ends the thread, also one that was waiting (a workflow whose code changed).
                request_possible = kind not in _NO_REQUEST_PENDING and not (kind == "error" and event.fatal)  # type: ignore[attr-defined]
            if last_shown is None and event.shown_in_context:
                last_shown = event
            if last_shown is not None and not request_possible:
                break
        if isinstance(last_shown, Done):
            return "done"
        if isinstance(last_shown, Error) and last_shown.fatal:
            return "failed"
        return "running"

    @property
    def pending_request(self) -> HumanRequest | None:
        """The human request no response has answered yet, if any."""
        for event in reversed(self.events):
            kind = event.type
            if kind == "human_request":
                return event  # type: ignore[return-value]
            if kind in _NO_REQUEST_PENDING or (kind == "error" and event.fatal):  # type: ignore[attr-defined]
                return None
        return None

    @property
    def waiting_on(self) -> HumanRequest | Wait | None:
        """What a waiting thread waits for: a person (HumanRequest), or a timer or sub-thread (Wait)."""
        if self.status != "waiting":
            return None
        for event in reversed(self.events):
            if isinstance(event, HumanRequest | Wait):
                return event
        return None

    def at(self, n: int) -> Thread:
        """The thread as it was after its first ``n`` events (same id; read-only view)."""
        if not 0 <= n <= len(self.events):
            raise UserError(f"event index {n} is outside 0..{len(self.events)} for thread {self.id!r}")
        return _construct(self.id, self.agent, self.events[:n], self.parent_id, self.forked_at)


def reduce(thread: Thread, event: Event) -> Thread:
    """Return a new thread with ``event`` appended. Pure: ``thread`` is not changed."""
    if not isinstance(event, Event):
        raise UserError(f"reduce() takes an Event, got {type(event).__name__}")
    return _construct(thread.id, thread.agent, (*thread.events, event), thread.parent_id, thread.forked_at)


_FIELDS_SET = frozenset({"id", "agent", "events", "version", "parent_id", "forked_at"})


def _construct(
    id: str, agent: str | None, events: tuple[Event, ...], parent_id: str | None, forked_at: int | None
) -> Thread:
    # The hot path of every step. The events were validated when they were created, so re-validating
    # the whole tuple (O(n) per step, O(n^2) per run) buys nothing; pydantic's model_construct is
    # generic and several times slower than filling the instance the way it does.
    thread = Thread.__new__(Thread)
    _set = object.__setattr__
    _set(
        thread,
        "__dict__",
        {
            "id": id,
            "agent": agent,
            "events": events,
            "version": len(events),
            "parent_id": parent_id,
            "forked_at": forked_at,
        },
    )
    _set(thread, "__pydantic_fields_set__", set(_FIELDS_SET))
    _set(thread, "__pydantic_extra__", None)
    _set(thread, "__pydantic_private__", None)
    return thread


EventCallback = Callable[[Event], None]
"""Called with each event as a run appends it (a CLI printing them, a server streaming them)."""


@dataclass(frozen=True)
class Delta:
    """A piece of a model's reply as it streams in: not an event, nothing is stored.

    The reply becomes the ``model_call`` event appended at ``version`` once it is complete; until then
    these pieces are for display (a partial parse of the next step, see ``parse_partial``). The loop
    only ever acts on the complete, validated step.
    """

    thread_id: str
    version: int
    text: str


DeltaCallback = Callable[[Delta], None]
"""Called with each piece of a streaming model reply (``run(..., on_delta=...)``)."""


def append_event(thread: Thread, event: Event, on_event: EventCallback | None = None) -> Thread:
    """``reduce(thread, event)``, then tell ``on_event``: how the loop, agents and workflows record."""
    thread = reduce(thread, event)
    if on_event is not None:
        on_event(event)
    return thread


def replay(events: Iterable[Event], *, id: str | None = None, agent: str | None = None) -> Thread:
    """Rebuild a thread by reducing ``events`` one by one from an empty thread."""
    thread = Thread(id=id or new_thread_id(), agent=agent)
    for event in events:
        thread = reduce(thread, event)
    return thread


def fork(thread: Thread, at: int, *, id: str | None = None) -> Thread:
    """A new thread (new id) holding the first ``at`` events of ``thread``, linked to its parent."""
    base = thread.at(at)
    return _construct(id or new_thread_id(), thread.agent, base.events, thread.id, at)


def respond(thread: Thread, response: HumanResponse) -> Thread:
    """Apply a person's response to the pending request, or raise NotWaitingError and change nothing.

    An approval request needs ``approved`` set (a denial may carry a reason in ``text``); a question
    needs ``text``; a reconcile request needs ``outcome`` (done, retry or skip).
    """
    pending = thread.pending_request
    if pending is None:
        raise NotWaitingError(thread.id, f"thread {thread.id!r} is {thread.status}, not waiting for a human response")
    if pending.call_id != response.request_id:
        raise NotWaitingError(
            thread.id,
            f"request {response.request_id!r} is not the pending request of thread {thread.id!r}"
            f" (pending: {pending.call_id!r})",
        )
    if pending.kind == "approval" and response.approved is None:
        raise UserError(f"request {pending.call_id!r} asks for an approval: set approved=True or False")
    if pending.kind == "input" and not response.text:
        raise UserError(f"request {pending.call_id!r} asks a question: give the answer in text")
    if pending.kind == "reconcile" and response.outcome is None:
        raise UserError(
            f"request {pending.call_id!r} asks whether {pending.intent!r} ran before a crash: set outcome to"
            " 'done' (it ran; put its result in text), 'retry' (run it again) or 'skip'"
        )
    return reduce(thread, response)


# What the control loop writes. Every other event (a user message, a trigger, a pre-fetched document)
# comes from outside: it may land at any moment, also between a tool call and its result.
LOOP_EVENTS: tuple[type[Event], ...] = (
    ModelCall,
    ToolCall,
    ToolStarted,
    ToolResult,
    ToolReconciled,
    Error,
    HumanRequest,
    HumanResponse,
    Wait,
    Done,
)


def is_external(event: Event) -> bool:
    """True for events the loop does not write itself (messages, triggers, pre-fetched data)."""
    return not isinstance(event, LOOP_EVENTS)


def rebase(mine: Sequence[Event], theirs: Sequence[Event]) -> tuple[Event, ...]:
    """Which of ``mine`` still stand when ``theirs`` landed first on the same thread (pure).

    ``mine`` were appended by one process after a version that others have since advanced with
    ``theirs``. Records of what happened in the world commute with anything: a model call that was
    made (and paid for), a tool's result or failure, a model or parse error. Decisions taken without
    seeing ``theirs`` (a next tool call, a question, done, an escalation, a budget stop) do not: they
    are dropped, and the loop decides again on the fresh thread. A result for a call that ``theirs``
    already answered is dropped too, so a call is never answered twice.
    """
    answered = {e.call_id for e in theirs if isinstance(e, ToolResult | Error) and e.call_id is not None}
    kept: list[Event] = []
    for event in mine:
        if isinstance(event, ToolResult | Error) and event.call_id is not None and event.call_id in answered:
            continue
        if isinstance(event, ModelCall | ToolResult | ToolStarted | ToolReconciled) or (
            isinstance(event, Error) and not event.fatal and event.source in ("tool", "model", "parse")
        ):
            kept.append(event)
    return tuple(kept)
