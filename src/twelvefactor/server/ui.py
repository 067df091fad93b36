"""The web UI: server-rendered pages to launch threads, watch them work and answer their requests.

Every page is plain HTML that works without JavaScript (forms post, then redirect: Post/Redirect/Get).
Templates are autoescaped: model output, messages and tool results are untrusted text and are never
rendered as markup. A small script (``static/live.js``) re-fetches a page's live parts and swaps them in:
on the thread page when the API's event stream (SSE) says an event was recorded; on the thread list every
few seconds while it is visible. The list has no stream of its own: the store's change notices are per
thread, and other processes' writes are only seen by re-reading anyway, so a poll of the same rendering
(cheap: one list query, and events are loaded only for rows whose version moved) is the simplest thing
that is always right.

A workflow's thread page also shows its steps, one row each, with each agent step's sub-thread nested
under it (its events, and its pending request's form, which posts to the sub-thread), so a person can
answer a sub-agent from the workflow's page; the page's script then also follows the event streams of
the sub-threads still at work. A sub-thread's page links back to its workflow thread and step.

The UI calls the same code as the REST API (launch, answer), so both behave alike. All routes hang off
one router whose one dependency asks for a signed-in session on servers with API tokens (browsers cannot
send bearer tokens); forms are also checked to come from this site (CSRF).
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from markupsafe import Markup
from pydantic import BaseModel

from twelvefactor.agent import Agent
from twelvefactor.charts import call_charts, to_svg
from twelvefactor.errors import ConflictError, ThreadNotFound, UserError, compact
from twelvefactor.events import (
    EVENT_TYPES,
    Compaction,
    Done,
    Error,
    Event,
    HumanContact,
    HumanRequest,
    HumanResponse,
    MemoryRecalled,
    ModelCall,
    ReconcileOutcome,
    Retrieved,
    ToolCall,
    ToolResult,
    UserMessage,
    Wait,
)
from twelvefactor.messages import Message
from twelvefactor.sent import iter_sent
from twelvefactor.server import api
from twelvefactor.server._state import runtime_of
from twelvefactor.server.deliveries import Attempt, Delivery, DeliveryLog
from twelvefactor.server.schemas import LaunchRequest, ResponseRequest
from twelvefactor.server.session import has_session, require_signed_in
from twelvefactor.store.base import ThreadStore, ThreadSummary
from twelvefactor.thread import Status, Thread
from twelvefactor.window import SECTIONS
from twelvefactor.workflows.runner import Runnable, Workflow

__all__ = [
    "STATIC_PATH",
    "FormRejected",
    "read_form",
    "render_page",
    "router",
    "safe_next",
    "same_origin",
    "see_other",
    "static_files",
]

STATIC_PATH: Final = "/static"
PAGE_SIZE: Final = 50
RESPONDER: Final = "web ui"
_HERE = Path(__file__).parent
_STATUSES: tuple[Status, ...] = get_args(Status)
_MAX_FORM_BYTES = 256 * 1024
_NO_STORE = {"Cache-Control": "no-store"}
_ROW_CACHE_SIZE = 4096
LIST_POLL_MS: Final = 2000  # how often an open list page re-fetches its rows


# On a server with API tokens every page needs a signed-in session (sign-in: server/signin.py).
router = APIRouter(include_in_schema=False, dependencies=[Depends(require_signed_in)])

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"),
    autoescape=True,  # every template, whatever its name: untrusted text is always escaped
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def static_files() -> StaticFiles:
    """The UI's CSS and script, to mount at :data:`STATIC_PATH`."""
    return StaticFiles(directory=_HERE / "static")


# --- view models ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallView:
    """What a model call saw and produced: the context it was sent, and the event its reply became.

    ``recorded``: the messages are the ones recorded with the call (exactly what the model received);
    otherwise (threads from before calls recorded them) they are re-derived with the agent served now.
    """

    messages: list[Message] | None
    context_note: str | None
    intent: Event | None
    intent_index: int | None
    recorded: bool = False
    sections: list[SectionView] = field(default_factory=list)  # the window by section, as counted for the call
    compactions: list[int] = field(default_factory=list)  # compaction events since the previous call


@dataclass(frozen=True)
class SectionView:
    """One section of a call's window (the context inspector): its tokens and share of the window."""

    name: str
    tokens: int
    share: float  # percent of the window


def _sections(call: ModelCall) -> list[SectionView]:
    counts = call.context_tokens or {}
    total = sum(counts.values())
    if not total:
        return []
    return [SectionView(name, counts.get(name, 0), 100 * counts.get(name, 0) / total) for name in SECTIONS]


def _compactions_before(thread: Thread, index: int) -> list[int]:
    """The compaction events between the model call before ``index`` and it: what shaped its window."""
    found: list[int] = []
    for position in range(index - 1, -1, -1):
        event = thread.events[position]
        if isinstance(event, ModelCall):
            break
        if isinstance(event, Compaction):
            found.append(position)
    return found[::-1]


@dataclass(frozen=True)
class EventView:
    index: int
    event: Event
    kind: str  # the template block that shows it: a built-in type, or "custom"
    title: str
    call: CallView | None = None
    fields: dict[str, Any] | None = None  # custom events: everything but `type` and `at`


_BUILTIN_TITLES: Mapping[type[Event], str] = {
    UserMessage: "User message",
    ModelCall: "Model call",
    ToolCall: "Tool call",
    ToolResult: "Tool result",
    Error: "Error",
    HumanResponse: "Human response",
    Wait: "Wait",
    Done: "Done",
    Compaction: "Compaction",
    MemoryRecalled: "Memory recalled",
    Retrieved: "Documents retrieved",
}


def _event_view(thread: Thread, index: int, agent: Agent | None, sent: Mapping[int, list[Message] | None]) -> EventView:
    event = thread.events[index]
    if isinstance(event, HumanRequest):
        title = "Approval requested" if event.kind == "approval" else "Question for a human"
        return EventView(index, event, event.type, title)
    builtin = _BUILTIN_TITLES.get(type(event))
    if builtin is None:
        fields = event.model_dump(mode="json", exclude={"type", "at"})
        return EventView(index, event, "custom", event.type, fields=fields)
    call = _call_view(thread, index, agent, sent.get(index)) if isinstance(event, ModelCall) else None
    return EventView(index, event, event.type, builtin, call=call)


def _call_view(thread: Thread, index: int, agent: Agent | None, sent: list[Message] | None) -> CallView:
    nxt = index + 1
    intent = thread.events[nxt] if nxt < thread.version else None
    messages, note = _context_of(thread, index, agent, sent)
    return CallView(
        messages,
        note,
        intent,
        nxt if intent else None,
        recorded=sent is not None,
        sections=_sections(cast(ModelCall, thread.events[index])),
        compactions=_compactions_before(thread, index),
    )


def _context_of(
    thread: Thread, index: int, agent: Agent | None, sent: list[Message] | None
) -> tuple[list[Message] | None, str | None]:
    """The messages call ``index`` was sent (recorded, or re-derived with the agent served now), or why not."""
    if sent is not None:
        return sent, None
    if agent is None:
        return None, f"agent {thread.agent!r} is not served here, so the context it was sent cannot be re-derived"
    try:
        # Rendering is pure: the messages of call i are the render of the events before it.
        return agent.render(thread.at(index)), None
    except Exception as exc:  # a prompt that no longer renders must not take the page down
        return None, f"could not re-derive the context: {compact(str(exc))}"


StepState = Literal["done", "failed", "running", "person", "timer", "agent", "stopped"]


@dataclass(frozen=True)
class ChildView:
    """An agent step's sub-thread, shown nested under the step (``page`` None: not created yet)."""

    id: str
    page: ThreadPage | None
    idempotency_key: str  # for its answer form: one per rendering, as for the page's own form


@dataclass(frozen=True)
class StepView:
    """One workflow step (``step_N``), read off the events that name it."""

    number: int
    call_id: str
    name: str
    arguments: str  # in short, on one line
    state: StepState
    detail: str | None  # done: the result in short; failed: the error; person: the question
    until: datetime | None  # timer: when it is due
    index: int  # the step's first event (its tool_call), to link to the timeline
    agent: str | None = None  # an agent step: the sub-agent's name
    request: HumanRequest | None = None  # person: the pending request (answered in the card above)
    child: ChildView | None = None


@dataclass(frozen=True)
class WorkflowView:
    steps: list[StepView]
    outcome: Literal["done", "failed"] | None  # how the workflow ended, if it did
    message: str | None  # what it returned, or why it failed


@dataclass(frozen=True)
class SubOf:
    """A sub-agent's thread: the thread that started it, and the workflow step (None if not found)."""

    parent_id: str
    step: int | None
    name: str | None
    workflow: bool = False  # the parent is a served workflow's thread


@dataclass(frozen=True)
class ThreadPage:
    thread: Thread
    events: list[EventView]
    pending: HumanRequest | None
    agent_served: bool
    model_calls: int
    input_tokens: int
    output_tokens: int
    latency_ms: float
    tools: Mapping[str, str]  # intent -> what the tool does, in words (its description): for approvals
    workflow: WorkflowView | None = None  # a served workflow's thread: its steps
    sub_of: SubOf | None = None  # a workflow's sub-agent thread: where it belongs
    charts: list[Markup] = field(default_factory=list)  # tokens and latency per model call (inline SVG)


@functools.cache
def _tool_description(cls: type[BaseModel]) -> str:
    """The description the model sees for a tool (its docstring), on one line; "" if it has none."""
    try:
        text = cls.model_json_schema().get("description") or ""
    except Exception:  # a schema that does not build must not take the page down
        return ""
    return " ".join(str(text).split())


def _tool_descriptions(agent: Agent | None) -> dict[str, str]:
    if agent is None:
        return {}
    found = {intent: _tool_description(cls) for intent, cls in agent.toolset.by_intent.items()}
    return {intent: text for intent, text in found.items() if text}


def _thread_page(
    thread: Thread, agents: Mapping[str, Runnable], store: ThreadStore | None = None, *, nested: bool = False
) -> ThreadPage:
    """The thread page's view; with ``store``, a workflow's steps (and sub-threads) or a sub-thread's parent.

    ``nested``: a sub-thread shown inside its workflow's page (its own steps and parent are not looked up).
    """
    served = agents.get(thread.agent or "")
    agent = served if isinstance(served, Agent) else None
    calls = [e for e in thread.events if isinstance(e, ModelCall)]
    try:
        sent = {index: messages for index, _, messages in iter_sent(thread.events)}
    except UserError:  # a damaged record must not take the page down: fall back to re-deriving
        sent = {}
    return ThreadPage(
        thread=thread,
        events=[_event_view(thread, i, agent, sent) for i in range(thread.version)],
        pending=thread.pending_request,
        agent_served=served is not None,
        model_calls=len(calls),
        input_tokens=sum(c.input_tokens or 0 for c in calls),
        output_tokens=sum(c.output_tokens or 0 for c in calls),
        latency_ms=sum(c.latency_ms for c in calls),
        tools=_tool_descriptions(agent),
        workflow=_workflow_view(thread, served, agents, store) if isinstance(served, Workflow) and not nested else None,
        sub_of=_sub_of(thread, store, agents) if store is not None and not nested else None,
        charts=[] if nested else [Markup(to_svg(chart)) for chart in call_charts(thread.events)],  # escaped by to_svg
    )


# --- workflows: steps and sub-threads ---------------------------------------------------------------


def _step_key(event: Event) -> str | None:
    """The step an event belongs to (``step_3``: its call, start, result, error, request, answer or wait)."""
    key = event.request_id if isinstance(event, HumanResponse) else getattr(event, "call_id", None)
    if not isinstance(key, str) or not key.startswith("step_"):
        return None
    step = key.split(":", 1)[0]
    return step if step[5:].isdigit() else None


def _brief(value: Any, limit: int) -> str:
    """A recorded value in short: text as it is, anything else as JSON, on one line."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return _shorten(text, limit)


def _brief_arguments(arguments: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> str:
    """``key=value, ...`` on one line (text with its whitespace collapsed), cut to a line's length."""

    def value(item: Any) -> str:
        return json.dumps(" ".join(item.split()) if isinstance(item, str) else item, ensure_ascii=False, default=str)

    return _shorten(", ".join(f"{key}={value(item)}" for key, item in arguments.items() if key not in skip), 160)


def _child_id(workflow: Workflow, events: list[Event]) -> tuple[str, str] | None:
    """An agent step's (sub-agent, sub-thread id), from its call's arguments or its wait."""
    call = events[0]
    if isinstance(call, ToolCall):
        agent, child = call.arguments.get("agent"), call.arguments.get("thread_id")
        if isinstance(agent, str) and isinstance(child, str) and agent in workflow.agents:
            return agent, child
    wait = next((e for e in events if isinstance(e, Wait) and e.thread_id is not None), None)
    if wait is not None and wait.thread_id is not None:
        agent = call.arguments.get("agent") if isinstance(call, ToolCall) else None
        return (agent if isinstance(agent, str) else ""), wait.thread_id
    return None


def _child_view(child_id: str, parent: Thread, agents: Mapping[str, Runnable], store: ThreadStore) -> ChildView | None:
    key = secrets.token_urlsafe(16)
    try:
        child = store.load(child_id)
    except ThreadNotFound:
        return ChildView(child_id, None, key)  # the step is recorded; its thread is created next
    if child.parent_id != parent.id or child.forked_at is not None:
        return None  # not this workflow's sub-thread: nothing to show under the step
    return ChildView(child_id, _thread_page(child, agents, store, nested=True), key)


def _workflow_view(
    thread: Thread, workflow: Workflow, agents: Mapping[str, Runnable], store: ThreadStore | None
) -> WorkflowView:
    grouped: dict[str, list[tuple[int, Event]]] = {}
    for index, event in enumerate(thread.events):
        key = _step_key(event)
        if key is not None:
            grouped.setdefault(key, []).append((index, event))
    status, pending = thread.status, thread.pending_request
    steps = []
    for key, indexed in sorted(grouped.items(), key=lambda item: int(item[0][5:])):
        events = [e for _, e in indexed]
        call = events[0]
        name = call.intent if isinstance(call, ToolCall) else key
        arguments: Mapping[str, Any] = call.arguments if isinstance(call, ToolCall) else {}
        sub = _child_id(workflow, events)
        state: StepState
        detail: str | None = None
        until: datetime | None = None
        request: HumanRequest | None = None
        last = events[-1]
        if isinstance(last, ToolResult):
            state, detail = "done", _brief(last.result, 200)
        elif isinstance(last, Error):
            state, detail = "failed", last.message
        elif status == "waiting" and pending is not None and _step_key(pending) == key:
            state, detail, request = "person", pending.question, pending
        elif status == "waiting" and isinstance(last, Wait) and last.until is not None:
            state, until = "timer", last.until
        elif status == "waiting" and isinstance(last, Wait) and last.thread_id is not None:
            state = "agent"
        elif status in ("done", "failed"):
            state = "stopped"
        else:
            state = "running"
        child = _child_view(sub[1], thread, agents, store) if sub is not None and store is not None else None
        # Shown elsewhere: an agent step's agent (by its tag) and thread (nested); a pending question.
        skip = frozenset({"agent", "thread_id"}) if sub is not None else frozenset()
        if request is not None and arguments.get("question") == request.question:
            skip |= {"question"}
        steps.append(
            StepView(
                number=int(key[5:]),
                call_id=key,
                name=name,
                arguments=_brief_arguments(arguments, skip),
                state=state,
                detail=detail,
                until=until,
                index=indexed[0][0],
                agent=sub[0] or None if sub is not None else None,
                request=request,
                child=child,
            )
        )
    outcome: Literal["done", "failed"] | None = None
    message = None
    if status == "done":
        done = next((e for e in reversed(thread.events) if isinstance(e, Done)), None)
        outcome, message = "done", done.message if done is not None else None
    elif status == "failed":
        error = next((e for e in reversed(thread.events) if isinstance(e, Error) and e.fatal), None)
        outcome, message = "failed", error.message if error is not None else None
    return WorkflowView(steps, outcome, message)


def _step_of_child(parent: Thread, child_id: str) -> tuple[int, str] | None:
    """The step of ``parent`` whose sub-thread is ``child_id``: (its number, its name)."""
    for event in parent.events:
        if isinstance(event, ToolCall) and event.arguments.get("thread_id") == child_id:
            key = _step_key(event)
            if key is not None:
                return int(key[5:]), event.intent
    for event in parent.events:
        if isinstance(event, Wait) and event.thread_id == child_id:
            key = _step_key(event)
            if key is not None:
                return int(key[5:]), key
    return None


def _sub_of(thread: Thread, store: ThreadStore, agents: Mapping[str, Runnable]) -> SubOf | None:
    """Where a sub-agent's thread belongs (a fork, which also has a parent, is no sub-thread)."""
    if thread.parent_id is None or thread.forked_at is not None:
        return None
    try:
        parent = store.load(thread.parent_id)
    except ThreadNotFound:
        return SubOf(thread.parent_id, None, None)
    workflow = isinstance(agents.get(parent.agent or ""), Workflow)
    step, name = _step_of_child(parent, thread.id) or (None, None)
    return SubOf(thread.parent_id, step, name, workflow)


@dataclass(frozen=True)
class RowFacts:
    """What a list row shows beyond the store's summary: read off the thread's events."""

    message: str | None  # the first user message: the thread's title
    pending: HumanRequest | None
    sub_of: SubOf | None = None  # a workflow's sub-agent thread: its parent and step
    waits_on: Wait | None = None  # a waiting workflow: its timer or sub-thread


@dataclass(frozen=True)
class RowView:
    row: ThreadSummary
    facts: RowFacts


def _row_facts(thread: Thread, store: ThreadStore, agents: Mapping[str, Runnable]) -> RowFacts:
    first = next((e.content for e in thread.events if isinstance(e, UserMessage)), None)
    pending = thread.pending_request
    waits_on = None
    if thread.status == "waiting" and pending is None:
        waits_on = next((e for e in reversed(thread.events) if isinstance(e, Wait)), None)
    # A sub-thread's step never changes, so it is cached with the row like the rest.
    return RowFacts(first, pending, _sub_of(thread, store, agents), waits_on)


def _load_facts(store: ThreadStore, agents: Mapping[str, Runnable], ids: list[str]) -> dict[str, RowFacts]:
    facts: dict[str, RowFacts] = {}
    for thread_id in ids:
        try:
            facts[thread_id] = _row_facts(store.load(thread_id), store, agents)
        except ThreadNotFound:  # deleted since it was listed
            facts[thread_id] = RowFacts(None, None)
    return facts


async def _row_views(request: Request, rows: list[ThreadSummary]) -> list[RowView]:
    """Rows with their titles and pending requests.

    A row's facts only change when its version does, so they are cached per app by (id, version): a
    list refreshed every few seconds loads only the threads that moved since.
    """
    state = request.app.state
    cache: OrderedDict[tuple[str, int], RowFacts] | None = getattr(state, "ui_row_facts", None)
    if cache is None:
        cache = state.ui_row_facts = OrderedDict()
    missing = [row.id for row in rows if (row.id, row.version) not in cache]
    if missing:
        rt = runtime_of(request)
        loaded = await asyncio.to_thread(_load_facts, rt.store, rt.agents, missing)
        for row in rows:
            if row.id in loaded:
                cache[row.id, row.version] = loaded[row.id]
    views = []
    for row in rows:
        cache.move_to_end((row.id, row.version))
        views.append(RowView(row, cache[row.id, row.version]))
    while len(cache) > _ROW_CACHE_SIZE:
        cache.popitem(last=False)
    return views


def _workflow_names(agents: Mapping[str, Runnable]) -> frozenset[str]:
    return frozenset(name for name, target in agents.items() if isinstance(target, Workflow))


def _placeholder(agent: Runnable) -> str:
    """The launch form's hint for ``agent``: what it does, from its description."""
    about = " ".join(agent.description.split())
    return _shorten(f"A message for {agent.name}: {about}" if about else f"A message for {agent.name}", 160)


# --- rendering helpers ------------------------------------------------------------------------------


def _shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value.utcoffset() is not None else value.isoformat(" ")


def _intent_of(event: Event) -> str | None:
    """The parsed next step, as one JSON object read back off the event it became."""
    if isinstance(event, ToolCall):
        intent: dict[str, Any] = {"intent": event.intent, **event.arguments}
    elif isinstance(event, Done):
        intent = {"intent": "done_for_now", "message": event.message}
    elif isinstance(event, HumanRequest) and event.kind == "input" and not event.escalation:
        intent = {"intent": "request_human_input", "question": event.question}
    else:
        return None
    return json.dumps(intent, ensure_ascii=False, default=str)


_env.filters["pretty"] = _pretty
_env.filters["when"] = _when
_env.filters["shorten"] = _shorten
_env.globals["intent_of"] = _intent_of
_env.globals["statuses"] = _STATUSES


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


def _path(request: Request, name: str, /, query: Mapping[str, object] | None = None, **params: Any) -> str:
    """A root-relative URL for route ``name`` (respects the ASGI root path; no host, so proxies keep working)."""
    path = _root(request) + str(request.app.url_path_for(name, **params))
    pairs = {k: v for k, v in (query or {}).items() if v is not None and v != ""}
    return f"{path}?{urlencode(pairs)}" if pairs else path


def render_page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    def path(name: str, /, query: Mapping[str, object] | None = None, **params: Any) -> str:
        return _path(request, name, query, **params)

    def static(file: str) -> str:
        return f"{_root(request)}{STATIC_PATH}/{file}"

    html = _env.get_template(template).render(path=path, static=static, signed_in=has_session(request), **context)
    return HTMLResponse(html, status_code=status_code, headers=_NO_STORE)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- forms ------------------------------------------------------------------------------------------


class FormRejected(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


async def read_form(request: Request) -> dict[str, str]:
    """An HTML form post (urlencoded), from a page of this site."""
    if not same_origin(request):
        raise FormRejected(403, "This form was posted from another site, so it was refused.")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormRejected(415, f"Expected a form post (application/x-www-form-urlencoded), got {kind or 'none'!r}.")
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise FormRejected(413, f"The form is larger than {_MAX_FORM_BYTES // 1024} KiB.")
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def same_origin(request: Request) -> bool:
    # A page elsewhere must not be able to make a visitor's browser launch threads or approve deploys.
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser, or an old one; Sec-Fetch-Site above covers current browsers
    allowed = {request.headers.get("host", "")}
    public_url = runtime_of(request).settings.public_url
    if public_url:
        allowed.add(urlsplit(public_url).netloc)
    return urlsplit(origin).netloc in allowed


def _rejected(request: Request, exc: FormRejected) -> HTMLResponse:
    return render_page(request, "error.html", exc.status_code, title="Form refused", message=exc.message)


# --- routes -----------------------------------------------------------------------------------------


@router.get("/")
async def home(request: Request) -> RedirectResponse:
    return see_other(_path(request, "threads_page"))


@router.get("/threads", response_class=HTMLResponse)
async def threads_page(
    request: Request, status: str | None = None, agent: str | None = None, page: int = 1
) -> HTMLResponse:
    """Threads, newest first, filtered by status and agent; the launch form."""
    return await _list_page(request, status=status, agent=agent, page=page)


@router.get("/thread-list", response_class=HTMLResponse)
async def thread_list_live(
    request: Request, status: str | None = None, agent: str | None = None, page: int = 1
) -> HTMLResponse:
    """The list page's rows (same filters), for the page's script to refresh in place.

    Not under /threads/: any name there could be a thread id.
    """
    return await _list_page(request, status=status, agent=agent, page=page, template="_thread_list.html")


async def _list_page(
    request: Request,
    *,
    status: str | None,
    agent: str | None,
    page: int,
    status_code: int = 200,
    error: str | None = None,
    form: Mapping[str, str] | None = None,
    template: str = "threads.html",
) -> HTMLResponse:
    rt = runtime_of(request)
    notice = error
    chosen: Status | None = None
    if status and status != "all":
        if status in _STATUSES:
            chosen = status
        else:
            notice = notice or f"Unknown status {status!r}: showing all threads."
    page = max(page, 1)
    rows = await asyncio.to_thread(
        rt.store.list, agent=agent or None, status=chosen, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    form = dict(form or {})
    placeholders = {name: _placeholder(a) for name, a in rt.agents.items()}
    chosen_agent = form.get("agent") if form.get("agent") in placeholders else next(iter(placeholders), "")
    return render_page(
        request,
        template,
        status_code,
        rows=await _row_views(request, rows[:PAGE_SIZE]),
        more=len(rows) > PAGE_SIZE,
        page=page,
        status=chosen,
        agent=agent or "",
        agents=list(rt.agents),
        workflows=_workflow_names(rt.agents),
        placeholders=placeholders,
        placeholder=placeholders.get(chosen_agent or "", ""),
        error=notice,
        form=form,
        list_url=_path(
            request, "thread_list_live", {"status": chosen, "agent": agent, "page": page if page > 1 else None}
        ),
        poll_ms=LIST_POLL_MS,
    )


@router.post("/threads", response_model=None)
async def launch_form(request: Request) -> Response:
    """Launch a thread from the form (the API's launch), then show it."""
    try:
        form = await read_form(request)
    except FormRejected as exc:
        return _rejected(request, exc)
    agent, message = form.get("agent", ""), form.get("message", "").strip()
    try:
        if not agent:
            raise UserError("Choose an agent.")
        if not message:
            raise UserError("Write a message for the agent.")
        view = await api.launch_thread(LaunchRequest(agent=agent, message=message), request)
    except UserError as exc:
        return await _list_page(request, status=None, agent=None, page=1, status_code=422, error=str(exc), form=form)
    return see_other(_path(request, "thread_page", thread_id=view.id))


@router.get("/threads/{thread_id}", response_class=HTMLResponse)
async def thread_page(thread_id: str, request: Request) -> HTMLResponse:
    """One thread: status, the pending request, the timeline with every model call's context."""
    return await _thread_response(request, thread_id, "thread.html")


@router.get("/threads/{thread_id}/live", response_class=HTMLResponse)
async def thread_live(thread_id: str, request: Request) -> HTMLResponse:
    """The live parts of the thread page (status, pending request, timeline), for the page's script."""
    return await _thread_response(request, thread_id, "_live.html")


async def _thread_response(
    request: Request, thread_id: str, template: str, *, status_code: int = 200, notice: str | None = None
) -> HTMLResponse:
    rt = runtime_of(request)
    try:
        thread = await asyncio.to_thread(rt.store.load, thread_id)
    except ThreadNotFound:
        return render_page(
            request, "error.html", 404, title="No such thread", message=f"There is no thread with id {thread_id!r}."
        )
    view = await asyncio.to_thread(_thread_page, thread, rt.agents, rt.store)
    types = sorted({*EVENT_TYPES, *(e.type for e in thread.events)})
    return render_page(
        request,
        template,
        status_code,
        page=view,
        thread=thread,
        notice=notice,
        # One key per rendered form: a double-clicked or re-sent answer is applied once.
        idempotency_key=secrets.token_urlsafe(16),
        stream_url=_path(request, "stream_thread", {"since": thread.version}, thread_id=thread.id),
        event_types=json.dumps(types),
    )


@router.post("/threads/{thread_id}/respond", response_model=None)
async def respond_form(thread_id: str, request: Request) -> Response:
    """Approve, deny (with a reason) or answer the pending request (the API's answer), then show the thread.

    A sub-thread's request answered from its workflow's page (``return_to``: the workflow thread's id)
    goes back to that page.
    """
    try:
        form = await read_form(request)
    except FormRejected as exc:
        return _rejected(request, exc)
    shown = await _shown_after_answer(request, thread_id, form.get("return_to"))
    decision = form.get("decision")
    approved: bool | None = None
    outcome: ReconcileOutcome | None = None
    text: str | None = None
    if decision in ("done", "retry", "skip"):
        outcome = decision  # type: ignore[assignment]
        text = form.get("result", "").strip() or None if decision == "done" else None
    elif decision == "approve":
        approved = True
    elif decision == "deny":
        approved, text = False, form.get("reason", "").strip() or None
    elif decision == "answer":
        text = form.get("answer", "").strip()
        if not text:
            return await _thread_response(
                request, shown, "thread.html", status_code=422, notice="Write an answer before sending it."
            )
    else:
        return await _thread_response(
            request, shown, "thread.html", status_code=422, notice=f"Unknown decision {decision!r}."
        )
    try:
        body = ResponseRequest(
            request_id=form.get("request_id") or "?",
            approved=approved,
            outcome=outcome,
            text=text,
            responder=RESPONDER,
            idempotency_key=(form.get("idempotency_key") or None),
        )
        await api.answer_request(thread_id, body, request)
    except ThreadNotFound:
        return await _thread_response(request, shown, "thread.html")
    except ConflictError:
        return await _thread_response(
            request,
            shown,
            "thread.html",
            status_code=409,
            notice="That request was already answered or is no longer pending; this is the thread as it is now.",
        )
    except (UserError, ValueError) as exc:
        return await _thread_response(request, shown, "thread.html", status_code=422, notice=compact(str(exc)))
    # Answered from the inbox: back to it, with its filters (only the inbox's own path is honoured).
    back = safe_next(request, form.get("next"))
    return see_other(back or _path(request, "thread_page", thread_id=shown))


async def _shown_after_answer(request: Request, thread_id: str, return_to: str | None) -> str:
    """The thread whose page follows an answer: the workflow's, when its sub-thread was answered from there.

    Only the thread's own workflow thread is honoured, so the field cannot send anyone elsewhere.
    """
    if not return_to or return_to == thread_id:
        return thread_id
    try:
        thread = await asyncio.to_thread(runtime_of(request).store.load, thread_id)
    except ThreadNotFound:
        return thread_id
    return return_to if thread.parent_id == return_to and thread.forked_at is None else thread_id


# --- the inbox: every pending request across threads ------------------------------------------------

INBOX_SCAN: Final = 200  # waiting threads read per inbox page: the page's work is bounded
_REQUEST_EVENTS = frozenset({"human.request"})


@dataclass(frozen=True)
class MessageView:
    """One message of a request to a person, as the outbox holds it."""

    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None  # pending: when it is tried next
    error: str | None  # failed (or a pending retry): what went wrong last
    receipt: str | None


@dataclass(frozen=True)
class ContactView:
    """Where a request was sent: one step of its contact chain, and its messages' delivery states."""

    contact: HumanContact
    messages: list[MessageView]


@dataclass(frozen=True)
class InboxThread:
    id: str


@dataclass(frozen=True)
class InboxItem:
    """One pending request; ``pending``, ``tools`` and ``thread`` are what ``_pending.html`` reads."""

    thread: InboxThread
    agent: str | None
    pending: HumanRequest
    tools: Mapping[str, str]
    title: str | None  # the thread's first user message
    sub_of: str | None  # a sub-thread: its parent's id
    waited_s: float
    contacts: list[ContactView]
    idempotency_key: str


@dataclass(frozen=True)
class InboxView:
    items: list[InboxItem]
    scanned: int  # waiting threads read for this page
    more: bool  # more waiting threads after this page
    channels: list[str]  # every channel and person seen on this page (for the filter form)
    people: list[str]


def _message_view(delivery: Delivery, attempts: list[Attempt]) -> MessageView:
    last = attempts[-1] if attempts else None
    error = None
    if last is not None and delivery.state != "delivered":
        error = last.error or (f"HTTP {last.status_code}" if last.status_code is not None else None)
    due = None
    if delivery.state == "pending" and delivery.next_attempt_at:
        due = datetime.fromtimestamp(delivery.next_attempt_at, UTC)
    return MessageView(delivery.state, len(attempts), due, error, delivery.receipt)


def _inbox_item(
    thread: Thread, deliveries: list[tuple[Delivery, list[Attempt]]], agents: Mapping[str, Runnable], now: datetime
) -> InboxItem | None:
    pending = thread.waiting_on
    if not isinstance(pending, HumanRequest):
        return None
    by_anchor: dict[int, list[MessageView]] = {}
    for delivery, attempts in deliveries:
        if delivery.event_type in _REQUEST_EVENTS:
            by_anchor.setdefault(delivery.anchor, []).append(_message_view(delivery, attempts))
    contacts = [
        ContactView(event, by_anchor.get(index, []))
        for index, event in enumerate(thread.events)
        if isinstance(event, HumanContact) and event.request_id == pending.call_id
    ]
    served = agents.get(thread.agent or "")
    sub_of = thread.parent_id if thread.parent_id is not None and thread.forked_at is None else None
    return InboxItem(
        thread=InboxThread(thread.id),
        agent=thread.agent,
        pending=pending,
        tools=_tool_descriptions(served if isinstance(served, Agent) else None),
        title=next((e.content for e in thread.events if isinstance(e, UserMessage)), None),
        sub_of=sub_of,
        waited_s=max((now - pending.at).total_seconds(), 0.0),
        contacts=contacts,
        idempotency_key=secrets.token_urlsafe(16),
    )


def _inbox(
    store: ThreadStore,
    log: DeliveryLog,
    agents: Mapping[str, Runnable],
    *,
    agent: str,
    channel: str,
    person: str,
    page: int,
) -> InboxView:
    """The pending requests of one page of waiting threads (at most :data:`INBOX_SCAN`), newest first."""
    rows = store.list(status="waiting", agent=agent or None, limit=INBOX_SCAN + 1, offset=(page - 1) * INBOX_SCAN)
    now = datetime.now(UTC)
    found: list[InboxItem] = []
    for row in rows[:INBOX_SCAN]:
        try:
            thread = store.load(row.id)
        except ThreadNotFound:  # deleted since it was listed
            continue
        if not isinstance(thread.waiting_on, HumanRequest):
            continue  # a timer or a sub-thread: nobody to ask
        item = _inbox_item(thread, log.for_thread(thread.id), agents, now)
        if item is not None:
            found.append(item)
    channels = sorted({c.contact.channel for item in found for c in item.contacts})
    people = sorted({c.contact.to for item in found for c in item.contacts})
    shown = [
        item
        for item in found
        if (not channel or any(c.contact.channel == channel for c in item.contacts))
        and (not person or any(c.contact.to == person for c in item.contacts))
    ]
    shown.sort(key=lambda item: item.pending.at, reverse=True)
    return InboxView(shown, min(len(rows), INBOX_SCAN), len(rows) > INBOX_SCAN, channels, people)


def _waited(seconds: float) -> str:
    """How long a request has waited, in words: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


_env.filters["waited"] = _waited


def safe_next(request: Request, value: str | None) -> str | None:
    """``value`` if it is a page of this UI to go back to after a form (the inbox), else None.

    Only a local path is accepted (no scheme, no host, no ``//`` or backslash that a browser could read as
    another site), and only the inbox's, with its query: an answer form cannot send anyone elsewhere.
    """
    if not value or "\\" in value or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.fragment or not parts.path.startswith("/") or value.startswith("//"):
        return None
    if parts.path != _path(request, "inbox_page"):
        return None
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


@router.get("/inbox", response_class=HTMLResponse)
async def inbox_page(
    request: Request, agent: str = "", channel: str = "", person: str = "", page: int = 1
) -> HTMLResponse:
    """Every pending request across waiting threads, filtered by agent, channel and person; answerable here."""
    return await _inbox_response(request, "inbox.html", agent=agent, channel=channel, person=person, page=page)


@router.get("/inbox-list", response_class=HTMLResponse)
async def inbox_list_live(
    request: Request, agent: str = "", channel: str = "", person: str = "", page: int = 1
) -> HTMLResponse:
    """The inbox's list alone (same filters), for the page's script to refresh in place."""
    return await _inbox_response(request, "_inbox_list.html", agent=agent, channel=channel, person=person, page=page)


async def _inbox_response(
    request: Request, template: str, *, agent: str, channel: str, person: str, page: int
) -> HTMLResponse:
    rt = runtime_of(request)
    page = max(page, 1)
    view = await asyncio.to_thread(
        _inbox, rt.store, rt.webhooks.log, rt.agents, agent=agent, channel=channel, person=person, page=page
    )
    filters = {"agent": agent, "channel": channel, "person": person, "page": page if page > 1 else None}
    return render_page(
        request,
        template,
        inbox=view,
        agent=agent,
        channel=channel,
        person=person,
        page=page,
        agents=list(rt.agents),
        scan=INBOX_SCAN,
        inbox_url=_path(request, "inbox_page", filters),
        list_url=_path(request, "inbox_list_live", filters),
        poll_ms=LIST_POLL_MS,
    )
