"""The control loop (factor 8): short on purpose, so you can read it, copy it and change it.

What to do next is derived from the thread alone (``next_action``), so a run can stop anywhere — a
human pause, a crash, a deploy — and any process can pick the thread up again with ``run``. With a
store, the model's output is committed before a tool runs and the tool's result right after, so a
killed process loses nothing that was recorded and repeats at most the tool call in flight.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, assert_never

from twelvefactor.agent import Agent, EventCallback, _append
from twelvefactor.errors import ConflictError, ThreadNotFound, ToolError
from twelvefactor.events import Done, Error, Event, HumanRequest, HumanResponse, ToolCall, ToolResult
from twelvefactor.thread import Thread
from twelvefactor.tools import DoneForNow, RequestHumanInput, Tool, arguments_of, execute

if TYPE_CHECKING:
    from twelvefactor.store.base import ThreadStore


@dataclass(frozen=True)
class CallModel:
    """Ask the model for the next step."""


@dataclass(frozen=True)
class RunTool:
    """Execute a recorded tool call (auto tool, approved call, or one interrupted by a crash)."""

    call: ToolCall


@dataclass(frozen=True)
class AskApproval:
    """A call to a ``requires_approval`` tool is recorded but no person has been asked yet."""

    call: ToolCall


@dataclass(frozen=True)
class Stop:
    """Nothing to do until something outside changes the thread."""

    reason: Literal["waiting", "done", "failed", "external_tool"]


Action = CallModel | RunTool | AskApproval | Stop


def next_action(agent: Agent, thread: Thread) -> Action:
    """What the loop does next, read off the events (pure)."""
    status = thread.status
    if status != "running":
        return Stop(status)
    last = _last_shown(thread)
    if isinstance(last, ToolCall):
        cls = agent.toolset.by_intent.get(last.intent)
        if cls is None:
            return Stop("external_tool")
        if _needs_approval(agent, last):
            return AskApproval(last)
        if not cls.is_executable():
            return Stop("external_tool")
        return RunTool(last)
    if isinstance(last, HumanResponse) and last.approved:
        call = _approved_call(thread, last)
        if call is not None:
            return RunTool(call)
    return CallModel()


def _needs_approval(agent: Agent, call: ToolCall) -> bool:
    try:
        return agent.toolset.rebuild(call.intent, call.arguments).approval_required()
    except ValueError:
        return False  # arguments no longer validate: running it records that as a tool error


def pending_tool_call(thread: Thread) -> ToolCall | None:
    """The last tool call if it has no result yet (how a caller finds an external tool to handle)."""
    last = _last_shown(thread)
    return last if isinstance(last, ToolCall) else None


def run(
    agent: Agent,
    thread: Thread,
    *,
    store: ThreadStore | None = None,
    on_event: EventCallback | None = None,
    max_steps: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Thread:
    """Advance ``thread`` until it waits for a human, is done, fails, or hits the step budget.

    ``should_stop`` is checked between steps (a shutting-down worker): the thread is left exactly as
    recorded, and any process can continue it with ``run`` later.
    """
    budget = agent.max_steps if max_steps is None else max_steps
    saved = _sync(store, thread)
    if agent.prefetch and not any(e.type == "model_call" for e in thread.events):
        for hook in agent.prefetch:
            for event in hook(thread):
                thread = _append(thread, event, on_event)
    steps = 0
    while should_stop is None or not should_stop():
        action = next_action(agent, thread)
        if isinstance(action, Stop):
            break
        if isinstance(action, RunTool):
            thread = run_tool(agent, thread, action.call, on_event=on_event)
        elif isinstance(action, AskApproval):
            thread = _append(thread, _approval_request(action.call), on_event)
        elif isinstance(action, CallModel):
            if steps >= budget:
                thread = _append(
                    thread,
                    Error(source="budget", message=f"step budget of {budget} model steps used up", fatal=True),
                    on_event,
                )
            else:
                steps += 1
                thread, intent = agent.step(thread, on_event=on_event)
                if intent is not None:
                    thread = _append(thread, intent_event(thread, intent), on_event)
        else:
            assert_never(action)
        saved = _save(store, thread, saved)
    return thread


def intent_event(thread: Thread, intent: Tool) -> Event:
    """The event a parsed next step becomes."""
    call_id = f"call_{thread.version}"
    if isinstance(intent, DoneForNow):
        return Done(message=intent.message)
    if isinstance(intent, RequestHumanInput):
        return HumanRequest(call_id=call_id, kind="input", question=intent.question)
    return ToolCall(call_id=call_id, intent=intent.intent_name(), arguments=arguments_of(intent))


def run_tool(agent: Agent, thread: Thread, call: ToolCall, *, on_event: EventCallback | None = None) -> Thread:
    """Execute a recorded call; a failure becomes a one-line error event (and may escalate)."""
    try:
        tool = agent.toolset.rebuild(call.intent, call.arguments)
        result = execute(tool)
    # ValueError: the arguments were recorded by an older version of the tool and no longer validate.
    except (ToolError, ValueError) as exc:
        return agent.record_error(thread, "tool", str(exc), call_id=call.call_id, on_event=on_event)
    return _append(thread, ToolResult(call_id=call.call_id, intent=call.intent, result=result), on_event)


def _approval_request(call: ToolCall) -> HumanRequest:
    return HumanRequest(
        call_id=call.call_id,
        kind="approval",
        question=f"Approve {call.intent} {json.dumps(call.arguments, ensure_ascii=False)}?",
        intent=call.intent,
        arguments=call.arguments,
    )


def _last_shown(thread: Thread) -> Event | None:
    for event in reversed(thread.events):
        if event.shown_in_context:
            return event
    return None


def _approved_call(thread: Thread, response: HumanResponse) -> ToolCall | None:
    request: HumanRequest | None = None
    for event in reversed(thread.events):
        if request is None and isinstance(event, HumanRequest) and event.call_id == response.request_id:
            if event.kind != "approval":
                return None
            request = event
        elif request is not None and isinstance(event, ToolCall) and event.call_id == request.call_id:
            return event
    return None


def _sync(store: ThreadStore | None, thread: Thread) -> int:
    """Make sure the store holds ``thread``; return the version it holds."""
    if store is None:
        return thread.version
    try:
        stored = store.load(thread.id)
    except ThreadNotFound:
        store.create(thread)
        return thread.version
    if stored.version > thread.version:
        raise ConflictError(thread.id, thread.version, stored.version)
    if stored.version != thread.version:
        store.save(thread, expected_version=stored.version)
    return thread.version


def _save(store: ThreadStore | None, thread: Thread, saved: int) -> int:
    if store is not None and thread.version != saved:
        store.save(thread, expected_version=saved)
    return thread.version
