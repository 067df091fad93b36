"""The versioned REST API (/v1): launch, read, list, answer, trigger, fork, stream and delete threads."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.responses import Response, StreamingResponse

from twelvefactor.agent import Agent
from twelvefactor.errors import ThreadNotFound, UserError
from twelvefactor.events import Event, HumanResponse, UserMessage, outside_event
from twelvefactor.loop import complete_tool_call
from twelvefactor.server._state import runtime_of
from twelvefactor.server.deltas import DELTA_INTERVAL_S, calls_recorded, delta_data
from twelvefactor.server.limits import check_texts
from twelvefactor.server.runtime import Runtime
from twelvefactor.server.schemas import (
    TRIGGER_TYPE_PATTERN,
    AgentView,
    ErrorView,
    ForkRequest,
    LaunchRequest,
    ResponseRequest,
    ThreadSummaryView,
    ThreadView,
    ToolResultRequest,
    TriggerEventBody,
)
from twelvefactor.server.sse import frame, safe_event_name
from twelvefactor.server.strict_json import StrictJSONRoute
from twelvefactor.store.retention import delete_thread
from twelvefactor.store.usage import UsageRow, usage
from twelvefactor.thread import Status, fork
from twelvefactor.triggers.start import start_thread

# SQLite integers are 64-bit; no real listing goes anywhere near this.
MAX_OFFSET = 2**62
_EVENT_ID = re.compile(r"[0-9]{1,19}", re.ASCII)
_TRIGGER_TYPE = re.compile(TRIGGER_TYPE_PATTERN)

router = APIRouter(prefix="/v1", tags=["threads"], route_class=StrictJSONRoute)

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorView, "description": "no such thread"},
    409: {"model": ErrorView, "description": "the thread moved on (not waiting, another request pending)"},
}

# Agent steps are recorded by the worker only: a trigger may add messages and its own event types, but
# never forge a tool result or a human answer (that would bypass an approval).


@router.get("/agents", response_model=list[AgentView], tags=["agents"])
async def list_agents(request: Request) -> list[AgentView]:
    """The agents this server runs."""
    return [
        AgentView(name=name, description=agent.description, intents=agent.toolset.intents)
        if isinstance(agent, Agent)
        else AgentView(name=name, description=agent.description, intents=list(agent.agents), kind="workflow")
        for name, agent in runtime_of(request).agents.items()
    ]


@router.post("/threads", status_code=status.HTTP_202_ACCEPTED, response_model=ThreadView, responses=ERRORS)
async def launch_thread(body: LaunchRequest, request: Request) -> ThreadView:
    """Start a thread; returns at once with its id while the work runs in the background."""
    rt = runtime_of(request)
    check_texts(rt.settings.max_text_chars, "message", body.message)
    check_texts(rt.settings.max_text_chars, "events", body.events)
    events: list[Event] = [UserMessage(content=body.message)] if body.message else []
    events.extend(_trigger_event(data) for data in body.events)
    if not events:
        raise UserError("give a `message` or at least one event in `events`")
    # The same id launched again is a retried request: it answers with the thread that is there.
    thread, _ = await asyncio.to_thread(
        start_thread, rt.store, rt.worker.submit, rt.agents, body.agent, events, thread_id=body.thread_id
    )
    return ThreadView.of(thread)


@router.get("/usage", response_model=list[UsageRow], tags=["usage"])
async def get_usage(request: Request, days: Annotated[int, Query(ge=1, le=366)] = 7) -> list[UsageRow]:
    """Tokens and cost of model calls per agent and UTC day, for the last `days` days (today included);
    calls of unknown cost are counted in `unpriced_calls`, never as free."""
    return await asyncio.to_thread(usage, runtime_of(request).store, days=days)


@router.get("/threads", response_model=list[ThreadSummaryView])
async def list_threads(
    request: Request,
    agent: str | None = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[ThreadSummaryView]:
    """Threads, newest first, filtered by agent and derived status."""
    rows = await asyncio.to_thread(
        runtime_of(request).store.list, agent=agent, status=status, limit=limit, offset=offset
    )
    return [
        ThreadSummaryView(
            id=row.id,
            agent=row.agent,
            status=row.status,
            version=row.version,
            created_at=row.created_at.isoformat(),
            updated_at=row.updated_at.isoformat(),
            parent_id=row.parent_id,
            forked_at=row.forked_at,
        )
        for row in rows
    ]


@router.get("/threads/{thread_id}", response_model=ThreadView, responses=ERRORS)
async def get_thread(thread_id: str, request: Request) -> ThreadView:
    """A thread: status, pending human request, every event."""
    return ThreadView.of(await asyncio.to_thread(runtime_of(request).store.load, thread_id))


@router.delete(
    "/threads/{thread_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        404: ERRORS[404],
        409: {"model": ErrorView, "description": "the thread is running: a worker is advancing it"},
    },
)
async def delete_thread_route(thread_id: str, request: Request) -> Response:
    """Delete a thread that is not running, with its events, lease and idempotency keys; for good.

    Sub-threads and forks of it are kept (their `parent_id` then names a thread that is gone); webhook
    deliveries already recorded for it are kept too. 409 (and nothing changes) while it is running.
    """
    await asyncio.to_thread(delete_thread, runtime_of(request).store, thread_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/threads/{thread_id}/responses", response_model=ThreadView, responses=ERRORS)
async def answer_request(thread_id: str, body: ResponseRequest, request: Request) -> ThreadView:
    """Answer the pending human request. 409 (and nothing changes) if it is not the pending one."""
    rt = runtime_of(request)
    check_texts(rt.settings.max_text_chars, "text", body.text)
    response = HumanResponse(
        request_id=body.request_id,
        approved=body.approved,
        outcome=body.outcome,
        text=body.text,
        responder=body.responder,
        idempotency_key=body.idempotency_key,
    )
    thread = await asyncio.to_thread(rt.store.respond, thread_id, response)
    rt.worker.submit(thread_id)
    return ThreadView.of(thread)


@router.post(
    "/threads/{thread_id}/events", status_code=status.HTTP_202_ACCEPTED, response_model=ThreadView, responses=ERRORS
)
async def append_event(thread_id: str, body: TriggerEventBody, request: Request) -> ThreadView:
    """Append an external event (a trigger): a `user_message` or an event type of your own."""
    rt = runtime_of(request)
    check_texts(rt.settings.max_text_chars, "event", body)
    event = _trigger_event(body)
    thread = await asyncio.to_thread(rt.store.append, thread_id, event)
    rt.worker.submit(thread_id)
    return ThreadView.of(thread)


@router.post("/threads/{thread_id}/tool-results", response_model=ThreadView, responses=ERRORS)
async def complete_tool(thread_id: str, body: ToolResultRequest, request: Request) -> ThreadView:
    """Complete the pending call of an external tool (one without run()) with its result or an error.

    409 (and nothing changes) if it is not the pending call; the same completion sent again is a no-op.
    """
    rt = runtime_of(request)
    check_texts(rt.settings.max_text_chars, "error", body.error)
    thread = await asyncio.to_thread(rt.store.load, thread_id)
    served = rt.agents.get(thread.agent or "")
    agent = served if isinstance(served, Agent) else None
    completed = await asyncio.to_thread(
        complete_tool_call, rt.store, thread_id, body.call_id, result=body.result, error=body.error, agent=agent
    )
    rt.worker.submit(thread_id)
    return ThreadView.of(completed)


@router.post(
    "/threads/{thread_id}/fork", status_code=status.HTTP_201_CREATED, response_model=ThreadView, responses=ERRORS
)
async def fork_thread(thread_id: str, body: ForkRequest, request: Request) -> ThreadView:
    """A new thread holding the first `at` events of this one (replay from there with another prompt)."""
    rt = runtime_of(request)
    parent = await asyncio.to_thread(rt.store.load, thread_id)
    if body.at > parent.version:  # 409: the request conflicts with the thread as it is now (it may grow)
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"`at` {body.at} is past the end of thread {thread_id!r} ({parent.version} events)",
        )
    child = fork(parent, at=body.at)
    await asyncio.to_thread(rt.store.create, child)
    if body.run:
        rt.worker.submit(child.id)
    return ThreadView.of(child)


@router.get(
    "/threads/{thread_id}/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
        400: {"model": ErrorView, "description": "Last-Event-ID is not an event index"},
        404: ERRORS[404],
    },
)
async def stream_thread(
    thread_id: str,
    request: Request,
    since: Annotated[int, Query(ge=0, description="first event index to send")] = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: every event from `since` on, then each new one as it is recorded.

    Each event is a frame whose `id` is its index and whose `event` is its type (data: the event's JSON).
    While the model writes the thread's next step (a model that streams, run by this process's worker),
    frames `event: delta` without an `id` carry the reply so far, at most one per 100 ms and none once
    that call's `model_call` event was sent: data `{"version": V, "text": "...", "partial": P}`, where V
    is the index the call's `model_call` event will have, `text` the whole reply so far and P what
    `parse_partial` reads of it (`{"value": ..., "missing": [...], "complete": bool}`, or null). Deltas
    are for display and never stored, so `Last-Event-ID` resumes events only. A recorded event of a
    custom type named `delta` is sent unnamed (its data says its type).
    """
    rt = runtime_of(request)
    await asyncio.to_thread(rt.store.load, thread_id)  # 404 before the stream starts
    if last_event_id is not None:
        since = _resume_index(last_event_id)
    return StreamingResponse(
        _events(rt, request, thread_id, since),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _resume_index(last_event_id: str) -> int:
    """The index after ``Last-Event-ID`` (our ids are event indexes: ASCII digits, and never this long)."""
    if not _EVENT_ID.fullmatch(last_event_id):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"Last-Event-ID {last_event_id[:40]!r} is not an event index (0 to {MAX_OFFSET}):"
            " send back the `id` of the last event received, or use `since`",
        )
    return min(int(last_event_id), MAX_OFFSET) + 1


async def _events(rt: Runtime, request: Request, thread_id: str, since: int) -> AsyncIterator[str]:
    poll = rt.settings.stream_poll_s
    load = True
    loaded_at = last_sent = time.monotonic()
    schema: Any | None = None
    recorded = scanned = 0  # deltas of calls at versions below `recorded` are over; events scanned so far
    sent_delta: tuple[int, int] | None = None  # (version, seq) of the last delta sent
    next_delta = 0.0
    while not await request.is_disconnected() and not rt.stopping:
        now = time.monotonic()
        if load:
            try:
                thread = await asyncio.to_thread(rt.store.load, thread_id)
            except ThreadNotFound:
                return
            loaded_at = now
            for index in range(since, thread.version):
                event = thread.events[index]
                # A type that cannot be an event name is sent unnamed ("message"); the data still says it.
                name = event.type if safe_event_name(event.type) and event.type != "delta" else None
                yield frame(id=str(index), event=name, data=event.model_dump_json())
                last_sent = now
            since = max(since, thread.version)
            recorded, scanned = max(recorded, calls_recorded(thread, scanned)), thread.version
            served = rt.agents.get(thread.agent or "")
            schema = served.toolset.union if isinstance(served, Agent) else None
            now = time.monotonic()
        # Woken by writes in this process (and its model replies streaming); the poll re-reads, catching
        # other processes' writes.
        timeout = max(0.0, poll - (now - loaded_at))
        writing = rt.deltas.get(thread_id) if now >= next_delta else None
        if writing is not None and writing.version >= recorded and (writing.version, writing.seq) != sent_delta:
            yield frame(event="delta", data=delta_data(writing, schema))
            sent_delta, next_delta, last_sent = (writing.version, writing.seq), now + DELTA_INTERVAL_S, now
        # Until the next delta may go out, only writes wake the stream; then the latest text is looked at.
        streamed = now >= next_delta
        if not streamed:
            timeout = min(timeout, next_delta - now)
        if now - last_sent >= 15:
            last_sent = now
            yield ": keep-alive\n\n"
        woke = await rt.notifier.wait(thread_id, timeout=timeout, streamed=streamed)
        load = woke == "written" or time.monotonic() - loaded_at >= poll


def _trigger_event(data: dict[str, Any]) -> Event:
    return outside_event(data, type_pattern=_TRIGGER_TYPE)
