"""Typed events: the only state an agent has (factors 3, 5 and 12).

A thread is a sequence of these records. Every built-in event has a literal ``type`` tag; user-defined
events subclass :class:`Event` with their own literal tag and are registered automatically, so a thread
that holds them round-trips through JSON exactly. An event whose type is unknown to this process (say,
written by a newer deployment) loads as :class:`CustomEvent` with its fields kept, so nothing is lost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from twelvefactor.errors import UserError
from twelvefactor.messages import Role

ErrorSource = Literal["parse", "tool", "model", "budget", "agent"]
HumanRequestKind = Literal["approval", "input", "reconcile"]
# What a person (or a tool's reconcile hook) says of a call that may have run before a crash.
ReconcileOutcome = Literal["done", "retry", "skip"]

EVENT_TYPES: dict[str, type[Event]] = {}

# An event type is a name, never text: it becomes an XML tag in the context window, an SSE `event:` line
# and a store column. Identifier characters only (plus `.` and `-`, for names like "github.push"), so no
# type can carry a newline, a `>` or a quote out of the place it is written to.
EVENT_TYPE_PATTERN = r"[A-Za-z_][A-Za-z0-9_.-]{0,63}"
_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)


def _bad_type_message(value: str) -> str:
    return (
        f"event type {value!r} is not a valid name: use 1-64 letters, digits, '_', '.' or '-',"
        " starting with a letter or '_' (e.g. 'pager_alert', 'github.push')"
    )


def check_event_type(value: str) -> str:
    """``value`` if it is a valid event type name, else ValueError naming the rule."""
    # fullmatch, not match with `$`: `$` would accept a trailing newline.
    if _EVENT_TYPE.fullmatch(value) is None:
        raise ValueError(_bad_type_message(value))
    return value


EventType = Annotated[str, AfterValidator(check_event_type)]
"""An event ``type``: 1-64 characters of ``[A-Za-z0-9_.-]``, not starting with a digit, '.' or '-'."""


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Base of every event. Subclass it with ``type: Literal["my_event"] = "my_event"``."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True, ser_json_inf_nan="constants")

    type: EventType
    at: datetime = Field(default_factory=_now)

    # Events that only record provenance (model calls) are hidden from the context by default.
    shown_in_context: ClassVar[bool] = True

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.model_fields.get("type")
        tags = get_args(field.annotation) if field is not None else ()
        if len(tags) != 1 or not isinstance(tags[0], str):
            return  # an abstract intermediate class, or CustomEvent's open `type: str`
        if _EVENT_TYPE.fullmatch(tags[0]) is None:
            raise UserError(_bad_type_message(tags[0]).replace(" is not", f" of {cls.__name__} is not", 1))
        existing = EVENT_TYPES.get(tags[0])
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise UserError(
                f"event type {tags[0]!r} is already defined by {existing.__module__}.{existing.__qualname__};"
                " pick another literal for `type`"
            )
        EVENT_TYPES[tags[0]] = cls


class UserMessage(Event):
    """A message from the person (or system) that launched or continued the thread."""

    type: Literal["user_message"] = "user_message"
    content: str


class SentMessage(BaseModel):
    """One message a model call was sent, as an edit of the message at the same place in the previous call.

    The message is the previous one's first ``keep`` characters, then ``text``, then its last ``tail``
    characters, with ``role`` (None: the previous one's role). A first call's messages are all ``text``.
    ``twelvefactor.sent_messages`` turns a thread's records back into the exact messages.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    role: Role | None = None
    keep: int = Field(default=0, ge=0)
    text: str = ""
    tail: int = Field(default=0, ge=0)


class ModelCall(Event):
    """Provenance of one model call: what it was sent, the raw text it returned, tokens, latency and cost.

    ``model`` is the model name the provider reported, tokens are as it counted them (``input_tokens``
    all of them, ``cached_input_tokens`` and ``cache_write_tokens`` the prompt cache's share), ``cost_usd``
    comes from the price table (None when unknown), ``estimated_input_tokens`` is what the framework's
    estimate (the one budgets use) said before the call, so its error beside the provider's count is
    visible, ``context_tokens`` splits that estimate by section of the window (prompt, memory,
    retrieval, history, schema), and ``finish_reason`` is why the model stopped.
    ``sent`` records the exact messages the call was sent, as edits of the previous call's (a context
    grows by appending, so each record holds what is new; ``twelvefactor.sent_messages`` rebuilds
    them). ``request`` is the body a provider sent (schema, tools and options included); the places
    that held a message's text are empty and listed in ``request_refs`` (JSON pointer: message index),
    so the messages are stored once (``twelvefactor.sent_request`` rebuilds the exact body, as
    ``twelvefactor threads show ID --calls`` prints it); test doubles send none. Like every model call
    record, this event is never shown in the context window.
    """

    type: Literal["model_call"] = "model_call"
    model: str
    raw: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float = 0.0
    cost_usd: float | None = None
    finish_reason: str | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    estimated_input_tokens: int | None = None
    context_tokens: dict[str, int] | None = None
    request: dict[str, JsonValue] | None = None
    sent: tuple[SentMessage, ...] | None = None
    request_refs: dict[str, int] | None = None

    shown_in_context: ClassVar[bool] = False


class ToolCall(Event):
    """The model chose a tool: its intent and arguments, with an id its result refers to."""

    type: Literal["tool_call"] = "tool_call"
    call_id: str
    intent: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)


class ToolResult(Event):
    """What deterministic code returned for a tool call."""

    type: Literal["tool_result"] = "tool_result"
    call_id: str
    intent: str
    result: JsonValue = None


class ToolStarted(Event):
    """An irreversible or idempotent tool is about to run: committed before it does.

    A start without a result after it means the process may have died inside the tool: the loop
    then re-runs an idempotent tool with the same ``idempotency_key`` and asks about an irreversible
    one (its ``reconcile`` hook first, then a person). ``call_key`` is the key the tool was given
    (``ToolContext.idempotency_key``; not named so, as the store deduplicates events by that field).
    Hidden from the context.
    """

    type: Literal["tool_started"] = "tool_started"
    call_id: str
    intent: str
    attempt: int = 1
    call_key: str

    shown_in_context: ClassVar[bool] = False


class ToolReconciled(Event):
    """What was decided about a call that may have run before a crash, and who decided.

    ``done``: it had happened (a ToolResult follows); ``retry``: run it again (a new attempt, same key);
    ``skip``: leave it (the model is told it did not run); ``unknown``: the hook could not tell (a
    person is asked next).
    """

    type: Literal["tool_reconciled"] = "tool_reconciled"
    call_id: str
    intent: str
    outcome: Literal["done", "retry", "skip", "unknown"]
    decided_by: Literal["hook", "person"]

    shown_in_context: ClassVar[bool] = False


class Error(Event):
    """A compact, one-line error: a bad model output, a failing tool, a failed model call.

    ``fatal`` errors end the run (status ``failed``); the others go back to the model.
    """

    type: Literal["error"] = "error"
    source: ErrorSource
    message: str
    call_id: str | None = None
    fatal: bool = False


class HumanRequest(Event):
    """The agent needs a person: an approval of a tool call, an answer to a question, or a decision
    about a call that may have run before a crash (``reconcile``: done, retry or skip).

    ``call_id`` is the request id a response must name; for approvals it is the tool call's id.
    """

    type: Literal["human_request"] = "human_request"
    call_id: str
    kind: HumanRequestKind
    question: str
    intent: str | None = None
    arguments: dict[str, JsonValue] | None = None
    escalation: bool = False
    contact: str | None = None  # the contact chain to reach (server config); None: the routes decide


class HumanResponse(Event):
    """A person's answer to the pending request: approve, deny (with a reason), free text, or for a
    reconcile request an ``outcome`` (with ``done``, ``text`` may carry the call's result)."""

    type: Literal["human_response"] = "human_response"
    request_id: str
    approved: bool | None = None
    text: str | None = None
    outcome: ReconcileOutcome | None = None
    responder: str | None = None
    idempotency_key: str | None = None


class HumanContact(Event):
    """A pending request (or a notification) was sent to a person: on which channel, to whom, at which step
    of its contact chain, and whether it escalated (earlier steps went unanswered past their deadline).

    Written by the server's channels, at most once per request and step (``idempotency_key``), so every
    process agrees on who was asked; ``wait_s`` is how long this step waits before the next. Hidden from
    the context.
    """

    type: Literal["human_contact"] = "human_contact"
    request_id: str
    contact: str
    step: int = 0
    channel: str
    to: str
    wait_s: float | None = None
    escalated: bool = False
    idempotency_key: str | None = None

    shown_in_context: ClassVar[bool] = False


class Notification(Event):
    """A one-way message for people (the ``notify`` intent, or ``wf.notify``): sent on the channels of
    ``contact`` (None: the server's routes decide), nothing to answer. Shown in the context, so the model
    knows what it told people."""

    type: Literal["notification"] = "notification"
    call_id: str
    message: str
    contact: str | None = None


class Wait(Event):
    """A workflow step waits for something other than a person: a durable timer (``until``) or a
    sub-agent's thread (``thread_id``) that is not finished. The thread is ``waiting`` until the step's
    result is recorded. Hidden from the context.
    """

    type: Literal["wait"] = "wait"
    call_id: str
    until: datetime | None = None
    thread_id: str | None = None

    shown_in_context: ClassVar[bool] = False


class Done(Event):
    """The agent finished for now with a message for the person."""

    type: Literal["done"] = "done"
    message: str


class Replacement(BaseModel):
    """Events ``first``..``last`` (indexes into the thread's events, inclusive) shown as ``text`` instead
    (None: not shown at all). One event replaced keeps its block's type (a shortened tool result is
    still a ``<tool_result>``); a longer run becomes one ``<summary>`` block."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    first: int = Field(ge=0)
    last: int = Field(ge=0)
    text: str | None = None


class Compaction(Event):
    """What a compaction policy did to the context window: which events it replaced by what.

    The events themselves stay in the thread untouched; rendering shows each replacement in their
    place, so a window is the same on every replay. ``tokens_before``/``tokens_after`` are the window's
    counts around this compaction, ``budget`` the agent's context budget then. Not a block of its own.
    """

    type: Literal["compaction"] = "compaction"
    policy: str
    replacements: tuple[Replacement, ...]
    tokens_before: int
    tokens_after: int
    budget: int | None = None
    # A summarising policy's own model call: which model, its tokens, cost and latency.
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None

    shown_in_context: ClassVar[bool] = False


class MemoryFact(BaseModel):
    """One fact kept across threads: its id, the scope it belongs to (``global``, ``agent:NAME``,
    ``user:ID``…) and its text."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: str
    scope: str
    text: str


class MemoryRecalled(Event):
    """The facts the agent's memory gave this thread: what the window's memory section shows from here on.

    Recorded when a run starts (and after a tool that changes memory) if the facts differ from the last
    recall, so a window is the same on every replay. Rendered in its own section (``{{ memory }}``),
    not among the history's blocks.
    """

    type: Literal["memory"] = "memory"
    facts: tuple[MemoryFact, ...] = ()

    shown_in_context: ClassVar[bool] = False


class RetrievedDocument(BaseModel):
    """A passage found by a search: where it came from (``source``: a path, URL or title), its text and score."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: str
    source: str
    text: str
    score: float | None = None


class Retrieved(Event):
    """Documents a search found for ``query`` in ``collection`` (from a pre-fetch hook), with their sources."""

    type: Literal["retrieved"] = "retrieved"
    query: str
    collection: str
    documents: tuple[RetrievedDocument, ...] = ()


class CustomEvent(Event):
    """Any other event: a trigger payload, a webhook, a pre-fetched document. Extra fields are kept."""

    model_config = ConfigDict(extra="allow")

    type: EventType


def event_from_dict(data: Any) -> Event:
    """Validate one event from its JSON-ready dict, picking the class from its ``type`` tag."""
    if isinstance(data, Event):
        return data
    if not isinstance(data, dict):
        raise TypeError(f"an event must be an object with a 'type' field, got {type(data).__name__}")
    tag = data.get("type")
    cls = EVENT_TYPES.get(tag, CustomEvent) if isinstance(tag, str) else CustomEvent  # a list is unhashable
    return cls.model_validate(data)


# The events only the agent records about itself; from outside (the API, a schedule, a trigger) a thread
# takes user messages and events of its own types.
RECORDED_BY_AGENT = frozenset(EVENT_TYPES) - {"user_message"}


def outside_event(data: Mapping[str, Any], *, type_pattern: re.Pattern[str] | None = None) -> Event:
    """One event given from outside a thread (an API call, a schedule's configuration), checked: a string
    ``type`` that is not one the agent records itself (and, with ``type_pattern``, matches it), no ``at`` (it
    is stamped when recorded), and fields valid for its type. UserError otherwise, saying which."""
    from pydantic import ValidationError

    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise UserError('an event needs a string `type`, e.g. {"type": "user_message", "content": "..."}')
    if kind in RECORDED_BY_AGENT:
        raise UserError(f"events of type {kind!r} are recorded by the agent itself and cannot be appended")
    if type_pattern is not None and kind != "user_message" and not type_pattern.fullmatch(kind):
        raise UserError(
            f"event type {kind[:64]!r} must be letters, digits and underscores (starting with a letter or"
            " underscore, at most 64), e.g. 'pager_alert'"
        )
    if "at" in data:
        raise UserError("an event's `at` is stamped when it is recorded: leave it out")
    try:
        return event_from_dict(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "event"
        raise UserError(f"invalid {kind!r} event: {where}: {first['msg']}") from exc


def event_from_json(text: str | bytes) -> Event:
    """Validate one event from its JSON text (the form the stores keep)."""
    import json

    return event_from_dict(json.loads(text))
