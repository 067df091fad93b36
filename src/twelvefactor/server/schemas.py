"""The API's request and response bodies (these shape the published OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, Strict, WithJsonSchema, model_validator

from twelvefactor.events import EVENT_TYPES, HumanRequestKind, ReconcileOutcome
from twelvefactor.thread import Status, Thread

_STRICT = ConfigDict(extra="forbid")


def _json_integer(value: Any) -> Any:
    # JSON Schema's integer: 3 and 3.0, never "3" or true (pydantic's lax int would take both).
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON integer")
    return value


# What the schema says, and no more: a JSON `0` is not `false`, "5" is not 5.
JSONInt = Annotated[int, BeforeValidator(_json_integer)]
JSONBool = Annotated[bool, Strict()]

# What the API accepts as a trigger event (api._trigger_event enforces the same): a user message, or an
# event type of the caller's own, named like an identifier (it becomes an SSE event name and a tag in the
# rendered context) and not one that only the agent records. `at` is stamped by the server.
TRIGGER_TYPE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
TRIGGER_EVENT_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "properties": {"type": {"const": "user_message"}, "content": {"type": "string"}},
            "required": ["type", "content"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "type": {"type": "string", "pattern": TRIGGER_TYPE_PATTERN, "not": {"enum": sorted(EVENT_TYPES)}}
            },
            "required": ["type"],
            "not": {"required": ["at"]},
            "description": "an event of your own: `type` and any other fields, kept as given",
        },
    ]
}
TriggerEventBody = Annotated[dict[str, Any], WithJsonSchema(TRIGGER_EVENT_SCHEMA)]


class LaunchRequest(BaseModel):
    """Start a thread: a first message, or initial events (e.g. a trigger payload), or both."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["message"], "properties": {"message": {"type": "string", "minLength": 1}}},
                {"required": ["events"], "properties": {"events": {"type": "array", "minItems": 1}}},
            ]
        },
    )

    agent: str = Field(min_length=1, description="name of a served agent (GET /v1/agents)")
    message: str | None = Field(default=None, min_length=1, description="the first user message")
    events: list[TriggerEventBody] = Field(default_factory=list, description="extra initial events, each with a `type`")
    thread_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="choose the id yourself to make a retried launch idempotent",
    )

    @model_validator(mode="after")
    def _something_to_start_with(self) -> LaunchRequest:
        if not self.message and not self.events:
            raise ValueError("give a `message` or at least one event in `events`")
        return self


class ResponseRequest(BaseModel):
    """A person's answer to the pending request: approve, deny (with a reason), free text, or for a call that
    may have run before a crash an outcome (done, retry, skip)."""

    model_config = _STRICT

    request_id: str = Field(min_length=1, description="the pending request's id (`pending_request.call_id`)")
    approved: JSONBool | None = Field(default=None, description="for approval requests")
    outcome: ReconcileOutcome | None = Field(
        default=None,
        description="for reconcile requests (a call that may have run before a crash): done (it ran; `text` is"
        " its result), retry (run it again, same idempotency key) or skip",
    )
    text: str | None = Field(default=None, description="the answer, the reason for a denial, or a done call's result")
    responder: str | None = Field(default=None, max_length=200)
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=200, description="a retried or double-clicked answer is applied once"
    )


class ToolResultRequest(BaseModel):
    """The outcome of an external tool's call (a tool without run()): its result, or an error."""

    model_config = _STRICT

    call_id: str = Field(min_length=1, description="the pending tool call's id (its `tool_call` event's `call_id`)")
    result: JsonValue = Field(default=None, description="what the tool returned (any JSON)")
    # At least one character that is not white space to Python (str.strip), to JSON Schema (ECMA \s leaves
    # out \x1c-\x1f and \x85) and to pydantic alike: a blank error gives the model nothing to read.
    error: str | None = Field(
        default=None,
        pattern=r"[^\s\x1c-\x1f\x85]",
        description="instead of a result: why the tool failed (the model sees it); not blank",
    )


class ForkRequest(BaseModel):
    model_config = _STRICT

    at: JSONInt = Field(ge=0, description="keep the first `at` events")
    run: JSONBool = Field(default=True, description="advance the fork right away")


class ThreadSummaryView(BaseModel):
    id: str
    agent: str | None
    status: Status
    version: int
    created_at: str | None = None
    updated_at: str | None = None
    parent_id: str | None = None
    forked_at: int | None = None


class PendingRequestView(BaseModel):
    call_id: str
    kind: HumanRequestKind
    question: str
    intent: str | None = None
    arguments: dict[str, Any] | None = None
    escalation: bool = False


class ThreadView(BaseModel):
    id: str
    agent: str | None
    status: Status
    version: int
    parent_id: str | None = None
    forked_at: int | None = None
    pending_request: PendingRequestView | None = None
    events: list[dict[str, Any]] = Field(description="every event, in order, as stored (each has a `type`)")

    @classmethod
    def of(cls, thread: Thread) -> ThreadView:
        pending = thread.pending_request
        return cls(
            id=thread.id,
            agent=thread.agent,
            status=thread.status,
            version=thread.version,
            parent_id=thread.parent_id,
            forked_at=thread.forked_at,
            pending_request=None if pending is None else PendingRequestView.model_validate(pending.model_dump()),
            events=[event.model_dump(mode="json") for event in thread.events],
        )


class AgentView(BaseModel):
    name: str
    description: str
    intents: list[str]
    kind: Literal["agent", "workflow"] = "agent"


class FieldError(BaseModel):
    """One reason a request did not validate: where (``loc``), what (``msg``), and its kind (``type``)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorView(BaseModel):
    """Every error answer: a message for people, and for 422 validation errors the fields at fault."""

    detail: str
    errors: list[FieldError] | None = Field(default=None, description="for 422: each field that did not validate")
