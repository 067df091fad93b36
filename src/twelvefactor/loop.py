"""The control loop (factor 8): short on purpose, so you can read it, copy it and change it.

What to do next is derived from the thread alone (``next_action``), so a run can stop anywhere — a
human pause, a crash, a deploy — and any process can pick the thread up again with ``run``. With a
store, the model's output is committed before a tool runs and the tool's result right after, so a
killed process loses nothing that was recorded and repeats at most the tool call in flight.

Events from outside (a trigger, a message) may land while a step runs. The step's events are then
re-based onto the fresh thread: what records a fact (a model call made, a tool's result) is kept,
what was decided without seeing the new event is dropped and decided again (see ``thread.rebase``).
Anything that goes wrong in the agent's own code (the prompt, the model adapter, a hook) ends the
thread with a fatal error event: a failure is always on the thread, never only in a log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, assert_never

from pydantic import JsonValue
from pydantic_core import to_jsonable_python

from twelvefactor import tracing
from twelvefactor.agent import Agent
from twelvefactor.calls import BLOCKING, Calls, default_calls, drive
from twelvefactor.errors import (
    CassetteError,
    ConflictError,
    ModelCancelled,
    NotWaitingError,
    ThreadNotFound,
    ToolError,
    UserError,
    compact,
)
from twelvefactor.events import (
    Done,
    Error,
    Event,
    HumanRequest,
    HumanResponse,
    MemoryRecalled,
    ModelCall,
    Notification,
    ToolCall,
    ToolReconciled,
    ToolResult,
    ToolStarted,
    UserMessage,
    Wait,
)
from twelvefactor.spend import PERSON_SPEAKS, SpendBudget, allowed_today, over_budget, over_daily, spend_since_person
from twelvefactor.thread import DeltaCallback, EventCallback, Thread, is_external, reduce
from twelvefactor.thread import append_event as _append
from twelvefactor.tools import (
    DoneForNow,
    Notify,
    Reconciled,
    RequestHumanInput,
    Tool,
    ToolContext,
    arguments_of,
)
from twelvefactor.window import recalled_facts

if TYPE_CHECKING:
    from twelvefactor.store.base import ThreadStore


@dataclass(frozen=True)
class CallModel:
    """Ask the model for the next step."""


@dataclass(frozen=True)
class RunTool:
    """Execute a recorded tool call (auto tool, approved call, an idempotent one interrupted by a crash,
    or one a person or hook said to retry). ``attempt`` counts from 1."""

    call: ToolCall
    attempt: int = 1


@dataclass(frozen=True)
class Reconcile:
    """An irreversible call may have run before a crash: ask its ``reconcile`` hook, then a person."""

    call: ToolCall
    attempt: int


@dataclass(frozen=True)
class Settle:
    """Apply a person's answer (done, retry, skip) about a call that may have run before a crash."""

    call: ToolCall
    response: HumanResponse


@dataclass(frozen=True)
class AskApproval:
    """A call to a ``requires_approval`` tool is recorded but no person has been asked yet."""

    call: ToolCall


@dataclass(frozen=True)
class Delegate:
    """A call to an agent used as a tool (``Agent.as_tool``): with a store, it works in its own thread."""

    call: ToolCall


@dataclass(frozen=True)
class Fail:
    """The thread cannot go on as recorded: end it with a fatal error saying why."""

    message: str


@dataclass(frozen=True)
class Stop:
    """Nothing to do until something outside changes the thread."""

    reason: Literal["waiting", "done", "failed", "external_tool"]


Action = CallModel | RunTool | AskApproval | Reconcile | Settle | Delegate | Fail | Stop

log = logging.getLogger("twelvefactor.loop")


def next_action(agent: Agent, thread: Thread) -> Action:
    """What the loop does next, read off the events (pure)."""
    status = thread.status
    if status != "running":
        return Stop(status)
    last = _last_decision(thread)
    if isinstance(last, ToolCall):
        cls = agent.toolset.by_intent.get(last.intent)
        if cls is None:
            return Fail(
                f"the thread holds a call to {last.intent!r} ({last.call_id}), which agent {agent.name!r} does not"
                f" have (its intents: {', '.join(agent.toolset.intents)}); serve the agent version that has it,"
                " or fork the thread from before the call"
            )
        if _needs_approval(agent, last):
            return AskApproval(last)
        if cls.sub_agent is not None:
            return Delegate(last)
        if not cls.is_executable():
            return Stop("external_tool")
        return _tool_action(thread, cls, last)
    if isinstance(last, HumanResponse):
        return _after_response(agent, thread, last)
    return CallModel()


def _tool_action(thread: Thread, cls: type[Tool], call: ToolCall) -> Action:
    """Run the call, or, if it may have run before a crash, what its effect kind allows."""
    started, unresolved = _attempts(thread, call.call_id)
    if started and unresolved and cls.effect == "irreversible":
        return Reconcile(call, started)
    return RunTool(call, started + 1)


def _attempts(thread: Thread, call_id: str) -> tuple[int, bool]:
    """How often the call was started, and whether its latest start is unresolved (no result after it
    and no retry decided since): the process may have died inside the tool."""
    started, unresolved, latest_seen = 0, False, False
    for event in reversed(thread.events):
        if isinstance(event, ToolStarted) and event.call_id == call_id:
            started += 1
            if not latest_seen:
                unresolved, latest_seen = True, True
        elif isinstance(event, ToolReconciled) and event.call_id == call_id and event.outcome == "retry":
            latest_seen = True
        elif isinstance(event, ToolCall) and event.call_id == call_id:
            break
    return started, unresolved


def _after_response(agent: Agent, thread: Thread, response: HumanResponse) -> Action:
    request, call = _request_and_call(thread, response)
    if request is None or call is None:
        return CallModel()
    cls = agent.toolset.by_intent.get(call.intent)
    if request.kind == "approval" and response.approved and cls is not None:
        return _tool_action(thread, cls, call)
    if request.kind == "reconcile" and cls is not None:
        if not _settled_since(thread, response):
            return Settle(call, response)
        if response.outcome == "retry":
            return _tool_action(thread, cls, call)
    return CallModel()


def _settled_since(thread: Thread, response: HumanResponse) -> bool:
    for event in reversed(thread.events):
        if event is response:
            return False
        if isinstance(event, ToolReconciled) and event.decided_by == "person":
            return True
    return False


def model_steps(thread: Thread) -> int:
    """Model calls since a person last spoke (a message or an answer): what the step budget counts.

    Counted from the events, so the budget holds across runs, processes and triggers; a person
    speaking gives the thread a fresh budget.
    """
    count = 0
    for event in reversed(thread.events):
        if isinstance(event, ModelCall):
            count += 1
        elif isinstance(event, PERSON_SPEAKS):  # a tuple: isinstance with a `X | Y` union is slower
            break
    return count


def _needs_approval(agent: Agent, call: ToolCall) -> bool:
    try:
        return agent.toolset.rebuild(call.intent, call.arguments).approval_required()
    except ValueError:
        return False  # arguments no longer validate: running it records that as a tool error


def pending_tool_call(thread: Thread) -> ToolCall | None:
    """The last tool call if it has no result yet (how a caller finds an external tool to handle)."""
    last = _last_decision(thread)
    return last if isinstance(last, ToolCall) else None


def complete_tool_call(
    store: ThreadStore,
    thread_id: str,
    call_id: str,
    *,
    result: JsonValue = None,
    error: str | None = None,
    agent: Agent | None = None,
) -> Thread:
    """Record the outcome of an external tool's call (a tool without ``run``): its result, or an error.

    The call must be the thread's pending one (NotWaitingError otherwise, nothing written); the same
    completion sent again is a no-op, a different one for an answered call is NotWaitingError. With
    ``agent``, a call to a tool the agent runs itself is refused (NotWaitingError). Run the thread after it
    (the service's worker does) for the model to see the outcome.
    """
    if error is not None and not error.strip():
        raise UserError("an error completing a tool call needs a message the model can read")
    for _ in range(_MAX_COMPLETE_TRIES):
        thread = store.load(thread_id)
        pending = pending_tool_call(thread)
        if pending is None or pending.call_id != call_id:
            if _same_outcome(thread, call_id, result, error):
                return thread
            waiting = f"pending: {pending.call_id!r}" if pending is not None else "no tool call is pending"
            message = f"call {call_id!r} is not the pending tool call of thread {thread_id!r} ({waiting})"
            raise NotWaitingError(thread_id, message)
        cls = agent.toolset.by_intent.get(pending.intent) if agent is not None else None
        if cls is not None and cls.is_executable():
            # A state of the thread, not a malformed request: the pending call is not one to complete.
            raise NotWaitingError(
                thread_id,
                f"call {call_id!r} is to {pending.intent!r}, which has a run() method: the agent runs it itself;"
                " only tools without run() are completed from outside",
            )
        try:
            return store.append(thread_id, _outcome(pending, result, error), expected_version=thread.version)
        except ConflictError as exc:
            if type(exc) is not ConflictError:
                raise
            # A trigger landed meanwhile: look again.
    raise ConflictError(thread_id, message=f"thread {thread_id!r} kept moving while completing call {call_id!r}; retry")


_MAX_COMPLETE_TRIES = 5


def _outcome(call: ToolCall, result: JsonValue, error: str | None) -> Event:
    """The event recording an external call's outcome: its result, or an error the model sees."""
    if error is not None:
        return Error(source="tool", message=compact(error), call_id=call.call_id)
    return ToolResult(call_id=call.call_id, intent=call.intent, result=result)


def _same_outcome(thread: Thread, call_id: str, result: JsonValue, error: str | None) -> bool:
    """Whether the call was already answered with this very outcome (a redelivered completion)."""
    for recorded in reversed(thread.events):
        if isinstance(recorded, ToolResult) and recorded.call_id == call_id:
            return error is None and recorded.result == result
        if isinstance(recorded, Error) and recorded.call_id == call_id:
            return error is not None and recorded.message == compact(error)
        if isinstance(recorded, ToolCall) and recorded.call_id == call_id:
            return False
    return False


def run(
    agent: Agent,
    thread: Thread,
    *,
    store: ThreadStore | None = None,
    on_event: EventCallback | None = None,
    max_steps: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    spawn: Callable[[str], None] | None = None,
    on_delta: DeltaCallback | None = None,
) -> Thread:
    """Advance ``thread`` until it waits for a human, is done, fails, or uses up its step budget.

    The budget (``max_steps``, default the agent's) counts model calls since a person last spoke, read
    from the events (``model_steps``). ``should_stop`` is checked between steps (a shutting-down
    worker): the thread is left exactly as recorded, and any process can continue it with ``run``.
    An exception in the agent's own code (prompt, model adapter, hook) becomes a fatal error event on
    the thread (and is logged with its traceback). A cancelled model call, a cassette that no longer
    matches and store errors propagate, with everything recorded before them kept.

    With a store, a sub-agent (``Agent.as_tool``) works in a stored thread of its own, advanced here,
    or queued with ``spawn`` (a worker's submit) to be advanced as a thread of its own. ``on_delta`` gets
    the model's replies as they stream in (from a model that streams).
    """
    context = _Run(store, on_event, spawn, BLOCKING, on_delta)
    return drive(_traced_run(agent, thread, context, max_steps, should_stop))


async def arun(
    agent: Agent,
    thread: Thread,
    *,
    store: ThreadStore | None = None,
    on_event: EventCallback | None = None,
    max_steps: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    spawn: Callable[[str], None] | None = None,
    on_delta: DeltaCallback | None = None,
    calls: Calls | None = None,
) -> Thread:
    """``run`` on an event loop: the same loop, with every outside call awaited (see ``twelvefactor.calls``).

    Model calls go through the model's ``acomplete``; async tools and hooks are awaited, synchronous ones
    run in a bounded thread pool; store calls run in threads. ``calls`` (an ``EventLoopCalls``) sets the
    per-model concurrency limits and pools; share one between the runs of a process. Cancelling the
    task stops the run at its next await with everything recorded before kept, like a crash.
    """
    context = _Run(store, on_event, spawn, calls or default_calls(), on_delta)
    return await _traced_run(agent, thread, context, max_steps, should_stop)


@dataclass
class _Run:
    """What one run hands down to every part of it."""

    store: ThreadStore | None
    on_event: EventCallback | None
    spawn: Callable[[str], None] | None
    calls: Calls
    on_delta: DeltaCallback | None
    recalled: bool = False  # the agent's memory was read in this run


async def _traced_run(
    agent: Agent, thread: Thread, run: _Run, max_steps: int | None, should_stop: Callable[[], bool] | None
) -> Thread:
    attributes = {"twelvefactor.agent": agent.name, "twelvefactor.thread.id": thread.id}
    with tracing.span("agent.run", attributes) as current:
        result = await _run(agent, thread, run, max_steps, should_stop)
        tracing.set_attributes(current, {"twelvefactor.thread.status": result.status})
        return result


async def _run(
    agent: Agent, thread: Thread, run: _Run, max_steps: int | None, should_stop: Callable[[], bool] | None
) -> Thread:
    store, on_event = run.store, run.on_event
    if thread.events and isinstance(thread.events[-1], HumanResponse) and tracing.tracing_enabled():
        _trace_wait(thread, thread.events[-1])
    budget = agent.max_steps if max_steps is None else max_steps
    if agent.model is None and isinstance(next_action(agent, thread), CallModel):
        raise UserError(f"agent {agent.name!r} has no model: pass model=... (ScriptedModel in tests)")
    thread, saved = await _sync(run, thread)
    if store is not None:
        thread, saved = await _follow_sub_thread(agent, store, thread, saved, run)
    while should_stop is None or not should_stop():
        action = next_action(agent, thread)
        if isinstance(action, Stop):
            break
        if isinstance(action, Delegate) and store is not None:
            thread, saved = await _delegate(agent, store, thread, saved, action.call, run)
            continue
        if isinstance(action, RunTool) and _records_start(agent, action.call):
            # Committed before the tool runs: after a crash inside it, the call is known to have started.
            started = ToolStarted(
                call_id=action.call.call_id,
                intent=action.call.intent,
                attempt=action.attempt,
                call_key=_context(thread, action.call, action.attempt).idempotency_key,
            )
            thread, saved = await _commit(run, _append(thread, started, on_event), saved)
        try:
            thread = await _act(agent, thread, action, budget, run)
        except (ModelCancelled, CassetteError):
            raise  # the run stops; the thread is fine as recorded and resumable (see errors.py)
        except Exception as exc:  # noqa: BLE001 - the agent's own code failed: record it, never strand the thread
            log.exception("agent %r failed while advancing thread %s", agent.name, thread.id)
            message = f"agent {agent.name!r} failed: {type(exc).__name__}: {exc}"
            thread = _append(thread, Error(source="agent", message=compact(message), fatal=True), on_event)
        try:
            thread, saved = await _commit(run, thread, saved)
        except ValueError as exc:  # the step's events cannot be stored (e.g. text that is not valid UTF-8)
            log.exception("the events of a step of thread %s cannot be stored", thread.id)
            message = f"the events of agent {agent.name!r}'s last step cannot be stored, and were dropped: {exc}"
            failed = _append(thread.at(saved), Error(source="agent", message=compact(message), fatal=True), on_event)
            thread, saved = await _commit(run, failed, saved)
    return thread


async def _act(agent: Agent, thread: Thread, action: Action, budget: int, run: _Run) -> Thread:
    on_event = run.on_event
    if isinstance(action, RunTool):
        return await _run_tool(agent, thread, action.call, action.attempt, run)
    if isinstance(action, Delegate):  # no store: the sub-agent runs in memory, a question is an error
        return await _delegate_in_memory(agent, thread, action.call, run)
    if isinstance(action, Reconcile):
        return await _reconcile(agent, thread, action, run)
    if isinstance(action, Settle):
        return _settle(thread, action, on_event)
    if isinstance(action, AskApproval):
        return _append(thread, _approval_request(action.call, agent.toolset.contact(action.call.intent)), on_event)
    if isinstance(action, Fail):
        return _append(thread, Error(source="agent", message=compact(action.message), fatal=True), on_event)
    if isinstance(action, CallModel):
        thread = await _gather_context(agent, thread, run)
        if model_steps(thread) >= budget:
            message = f"step budget of {budget} model steps used up"
            return _append(thread, Error(source="budget", message=message, fatal=True), on_event)
        if agent.spend is not None:
            over = await _over_spend(agent, agent.spend, thread, run)
            if over is not None:  # a person decides whether it is worth more: answering gives a fresh allowance
                message = f"{over}; answer to let it continue"
                return agent.record_error(thread, "budget", message, on_event=on_event, escalate=True)
        thread, intent = await agent.decide(thread, run.calls, on_event=on_event, on_delta=run.on_delta)
        if intent is None:
            return thread
        event = intent_event(thread, intent)
        if agent.stop_repeats and isinstance(event, ToolCall) and _repeats_last_call(thread, event):
            return _refuse_repeat(agent, thread, event, on_event)
        return _append(thread, event, on_event)
    if isinstance(action, Stop):
        return thread
    assert_never(action)


async def _over_spend(agent: Agent, budget: SpendBudget, thread: Thread, run: _Run) -> str | None:
    """Why the thread may not call the model now (its spend since a person spoke, or the agent's today)."""
    over = over_budget(budget, spend_since_person(thread.events))
    if over is None and budget.spent_today is not None and not allowed_today(thread.events):
        over = over_daily(budget, agent.name, await run.calls.call(budget.spent_today, agent.name))
    return over


async def _gather_context(agent: Agent, thread: Thread, run: _Run) -> Thread:
    """Before a model call: pre-fetch hooks (before the thread's first call), then the agent's memory."""
    if agent.prefetch and not any(e.type == "model_call" for e in thread.events):
        for hook in agent.prefetch:
            for event in await run.calls.call(hook, thread):
                thread = _append(thread, event, run.on_event)
    if agent.memory is not None and (not run.recalled or _memory_changed(agent, thread)):
        run.recalled = True
        thread = await _recall(agent, thread, run)
    return thread


async def _recall(agent: Agent, thread: Thread, run: _Run) -> Thread:
    """Record what the agent's memory holds for this thread, if it differs from what the thread last saw."""
    assert agent.memory is not None
    facts = tuple(await run.calls.call(agent.memory.recall_for, thread))
    if recalled_facts(thread.events) == facts:
        return thread
    return _append(thread, MemoryRecalled(facts=facts), run.on_event)


def _memory_changed(agent: Agent, thread: Thread) -> bool:
    """Whether the step before this model call was a tool that changes memory (``changes_memory``)."""
    for event in reversed(thread.events):
        if isinstance(event, ToolResult):
            cls = agent.toolset.by_intent.get(event.intent)
            return cls is not None and cls.changes_memory
        if event.shown_in_context:
            return False
    return False


_REPEAT = "the same call "


def _repeats_last_call(thread: Thread, call: ToolCall) -> bool:
    """Whether ``call`` is the call whose result the model just got (model calls and errors between)."""
    result_of: str | None = None
    for event in reversed(thread.events):
        if result_of is None:
            if isinstance(event, ToolResult):
                result_of = event.call_id
            elif not isinstance(event, ModelCall | Error | ToolStarted):
                return False
        elif isinstance(event, ToolCall) and event.call_id == result_of:
            return event.intent == call.intent and event.arguments == call.arguments
    return False


def _refuse_repeat(agent: Agent, thread: Thread, call: ToolCall, on_event: EventCallback | None) -> Thread:
    """A call repeated right after its result: an error the model sees; a second repeat stops the run."""
    repeats = 1 + sum(1 for e in _since_last_result(thread) if isinstance(e, Error) and e.message.startswith(_REPEAT))
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    message = (
        f"{_REPEAT}{call.intent} {arguments} was just made and its result is above: use it, or choose another"
        " next step (done_for_now if the task is complete)"
    )
    return agent.record_error(thread, "model", message, on_event=on_event, escalate=repeats >= 2)


def _since_last_result(thread: Thread) -> list[Event]:
    events: list[Event] = []
    for event in reversed(thread.events):
        if isinstance(event, ToolResult):
            break
        events.append(event)
    return events


def with_tool_result(
    thread: Thread, result: JsonValue = None, *, call_id: str | None = None, error: str | None = None
) -> Thread:
    """The thread with the outcome of its pending external call recorded (pure; no store).

    The one-liner to continue after a tool without ``run()``: ``run(agent, with_tool_result(thread, data))``.
    ``error`` records a failure the model sees instead of a result. With a store, use
    ``complete_tool_call`` (checked and idempotent).
    """
    pending = pending_tool_call(thread)
    if pending is None or (call_id is not None and pending.call_id != call_id):
        raise UserError(f"thread {thread.id!r} has no tool call pending{f' with id {call_id!r}' if call_id else ''}")
    return reduce(thread, _outcome(pending, result, error))


def intent_event(thread: Thread, intent: Tool) -> Event:
    """The event a parsed next step becomes."""
    call_id = f"call_{thread.version}"
    if isinstance(intent, DoneForNow):
        return Done(message=intent.message)
    if isinstance(intent, RequestHumanInput):
        return HumanRequest(call_id=call_id, kind="input", question=intent.question, contact=type(intent).contact)
    if isinstance(intent, Notify):
        return Notification(call_id=call_id, message=intent.message, contact=type(intent).contact)
    return ToolCall(call_id=call_id, intent=intent.intent_name(), arguments=arguments_of(intent))


def run_tool(
    agent: Agent, thread: Thread, call: ToolCall, *, attempt: int = 1, on_event: EventCallback | None = None
) -> Thread:
    """Execute a recorded call; a failure becomes a one-line error event (and may escalate)."""
    return drive(_run_tool(agent, thread, call, attempt, _Run(None, on_event, None, BLOCKING, None)))


async def _run_tool(agent: Agent, thread: Thread, call: ToolCall, attempt: int, run: _Run) -> Thread:
    on_event = run.on_event
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": call.intent,
        "gen_ai.tool.call.id": call.call_id,
        "twelvefactor.tool.attempt": attempt,
        "twelvefactor.thread.id": thread.id,
    }
    try:
        tool = agent.toolset.rebuild(call.intent, call.arguments)
        with tracing.span(f"execute_tool {call.intent}", attributes):
            result = await run.calls.execute(tool, _context(thread, call, attempt))
    # ValueError: the arguments were recorded by an older version of the tool and no longer validate.
    except (ToolError, ValueError) as exc:
        cls = agent.toolset.by_intent.get(call.intent)
        if isinstance(exc, ToolError) and exc.may_have_run and cls is not None and cls.effect == "irreversible":
            # Like a crash inside the tool: never recorded as a failure the model would simply retry.
            return await _reconcile(agent, thread, Reconcile(call, attempt), run, reason=str(exc))
        return agent.record_error(thread, "tool", str(exc), call_id=call.call_id, on_event=on_event)
    return _append(thread, ToolResult(call_id=call.call_id, intent=call.intent, result=result), on_event)


def _trace_wait(thread: Thread, response: HumanResponse) -> None:
    """The person's wait, as a span from the request to the answer the loop is about to act on."""
    request = next(
        (e for e in reversed(thread.events) if isinstance(e, HumanRequest) and e.call_id == response.request_id), None
    )
    if request is not None:
        attributes = {
            "twelvefactor.thread.id": thread.id,
            "twelvefactor.request.kind": request.kind,
            "twelvefactor.request.escalation": request.escalation,
            "twelvefactor.responder": response.responder,
        }
        tracing.record_span("human_wait", request.at, response.at, attributes)


def _context(thread: Thread, call: ToolCall, attempt: int) -> ToolContext:
    return ToolContext(thread_id=thread.id, call_id=call.call_id, intent=call.intent, attempt=attempt, thread=thread)


def _records_start(agent: Agent, call: ToolCall) -> bool:
    cls = agent.toolset.by_intent.get(call.intent)
    return cls is not None and cls.effect != "read_only"


async def _reconcile(
    agent: Agent, thread: Thread, action: Reconcile, run: _Run, *, reason: str | None = None
) -> Thread:
    """Ask the tool's hook whether the call happened; when it cannot tell (or has none), ask a person.

    ``reason`` says why it may have run when that was not a crash (a tool that could not tell).
    """
    call, on_event = action.call, run.on_event
    tool = agent.toolset.rebuild(call.intent, call.arguments)
    has_hook = type(tool).reconcile is not Tool.reconcile
    verdict = Reconciled.unknown()
    if has_hook:
        try:
            verdict = await run.calls.call(tool.reconcile, _context(thread, call, action.attempt))
        except Exception:  # noqa: BLE001 - a hook that fails cannot tell: a person decides
            log.warning("the reconcile hook of %r failed; asking a person", call.intent, exc_info=True)
    if has_hook:
        outcome: Literal["done", "retry", "unknown"] = {"done": "done", "not_run": "retry"}.get(  # type: ignore[assignment]
            verdict.outcome, "unknown"
        )
        decided = ToolReconciled(call_id=call.call_id, intent=call.intent, outcome=outcome, decided_by="hook")
        thread = _append(thread, decided, on_event)
        if verdict.outcome == "done":
            result = to_jsonable_python(verdict.result)
            return _append(thread, ToolResult(call_id=call.call_id, intent=call.intent, result=result), on_event)
        if verdict.outcome == "not_run":
            return thread
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    why = f"before a crash (attempt {action.attempt})" if reason is None else f"(attempt {action.attempt}: {reason})"
    question = (
        f"{call.intent} {arguments} may have run {why}, and whether it did"
        " cannot be told: mark it done (with its result), retry it, or skip it?"
    )
    request = HumanRequest(
        call_id=f"{call.call_id}:reconcile:{action.attempt}",
        kind="reconcile",
        question=question,
        intent=call.intent,
        arguments=call.arguments,
    )
    return _append(thread, request, on_event)


def _settle(thread: Thread, action: Settle, on_event: EventCallback | None) -> Thread:
    call, response = action.call, action.response
    outcome = response.outcome or "skip"
    decided = ToolReconciled(call_id=call.call_id, intent=call.intent, outcome=outcome, decided_by="person")
    thread = _append(thread, decided, on_event)
    if outcome == "done":
        return _append(thread, ToolResult(call_id=call.call_id, intent=call.intent, result=response.text), on_event)
    if outcome == "skip":
        who = response.responder or "a person"
        message = f"{call.intent} ({call.call_id}) was skipped by {who} after a crash: it may not have happened"
        return _append(thread, Error(source="tool", message=message, call_id=call.call_id), on_event)
    return thread  # retry: the next action runs it again


def sub_thread_wait(thread: Thread) -> Wait | None:
    """The ``wait`` a thread is waiting on when it waits for a sub-agent's thread (None otherwise)."""
    waiting = thread.waiting_on
    return waiting if isinstance(waiting, Wait) and waiting.thread_id is not None else None


async def _delegate(
    agent: Agent, store: ThreadStore, thread: Thread, saved: int, call: ToolCall, run: _Run
) -> tuple[Thread, int]:
    """Start the sub-agent's own thread (linked both ways), wait on it, and follow it."""
    sub = agent.toolset.by_intent[call.intent].sub_agent
    task = str(call.arguments.get("task", ""))
    child = await _open_sub_thread(run.calls, store, thread.id, call.call_id, sub.name, task)
    thread = _append(thread, Wait(call_id=call.call_id, thread_id=child.id), run.on_event)
    thread, saved = await _commit(run, thread, saved)
    return await _follow_sub_thread(agent, store, thread, saved, run)


async def _follow_sub_thread(
    agent: Agent, store: ThreadStore, thread: Thread, saved: int, run: _Run
) -> tuple[Thread, int]:
    """If the thread waits on a sub-agent: advance it (here, or queued by ``spawn``) and, once it is done
    or failed, record its final message (or its failure) as the call's outcome."""
    wait = sub_thread_wait(thread)
    if wait is None or wait.thread_id is None:
        return thread, saved
    call = next((e for e in reversed(thread.events) if isinstance(e, ToolCall) and e.call_id == wait.call_id), None)
    cls = agent.toolset.by_intent.get(call.intent) if call is not None else None
    if call is None or cls is None or cls.sub_agent is None:
        return thread, saved
    sub: Agent = cls.sub_agent
    child = await run.calls.store(store, store.load, wait.thread_id)
    if not isinstance(next_action(sub, child), Stop):
        if run.spawn is not None:
            run.spawn(child.id)
            return thread, saved
        child = await _traced_run(sub, child, _Run(store, None, None, run.calls, run.on_delta), None, None)
    ended = ended_with(child)
    if isinstance(ended, Done):
        result = ToolResult(call_id=call.call_id, intent=call.intent, result=ended.message)
        thread = _append(thread, result, run.on_event)
    elif isinstance(ended, Error):
        message = _sub_failure(sub, child, ended)
        thread = agent.record_error(thread, "tool", message, call_id=call.call_id, on_event=run.on_event)
    else:
        return thread, saved  # it waits for a person (or stopped at an external call): so does this thread
    return await _commit(run, thread, saved)


async def _delegate_in_memory(agent: Agent, thread: Thread, call: ToolCall, run: _Run) -> Thread:
    sub: Agent = agent.toolset.by_intent[call.intent].sub_agent
    on_event = run.on_event
    try:
        task = str(agent.toolset.rebuild(call.intent, call.arguments).model_dump()["task"])
    except ValueError as exc:
        return agent.record_error(thread, "tool", str(exc), call_id=call.call_id, on_event=on_event)
    child = await _traced_run(sub, sub.new_thread(task), _Run(None, None, None, run.calls, run.on_delta), None, None)
    ended = ended_with(child)
    if isinstance(ended, Done):
        return _append(thread, ToolResult(call_id=call.call_id, intent=call.intent, result=ended.message), on_event)
    pending = child.pending_request
    if pending is not None:
        message = f"sub-agent {sub.name!r} stopped to ask a human: {pending.question} (run with a store to let it wait)"
    elif isinstance(ended, Error):
        message = _sub_failure(sub, child, ended)
    else:
        message = f"sub-agent {sub.name!r} ended {child.status}"
    return agent.record_error(thread, "tool", message, call_id=call.call_id, on_event=on_event)


def _sub_failure(sub: Agent, child: Thread, error: Error) -> str:
    return f"sub-agent {sub.name!r} (thread {child.id}) failed: {error.message}"


def sub_thread_id(parent_id: str, call_id: str) -> str:
    """The id of the thread a sub-agent works on for call ``call_id`` of thread ``parent_id``."""
    return f"{parent_id}-{call_id.replace('_', '')}"


def open_sub_thread(store: ThreadStore, parent_id: str, call_id: str, agent: str, task: str) -> Thread:
    """The stored thread a sub-agent works on for call ``call_id`` of thread ``parent_id``, created (linked to
    its parent) the first time. Its id is derived from both, so a process that died before recording
    that it started one finds the same thread again instead of starting a second."""
    return drive(_open_sub_thread(BLOCKING, store, parent_id, call_id, agent, task))


async def _open_sub_thread(
    calls: Calls, store: ThreadStore, parent_id: str, call_id: str, agent: str, task: str
) -> Thread:
    child_id = sub_thread_id(parent_id, call_id)
    try:
        return await calls.store(store, store.load, child_id)
    except ThreadNotFound:
        pass
    child = Thread(id=child_id, agent=agent, events=(UserMessage(content=task),), version=1, parent_id=parent_id)
    try:
        return await calls.store(store, store.create, child)
    except ConflictError:
        return await calls.store(
            store, store.load, child_id
        )  # created meanwhile by a process that died before recording more


def ended_with(thread: Thread) -> Done | Error | None:
    """How a (sub-)thread ended: its ``done`` event, its fatal error, or None while it works or waits."""
    status = thread.status
    if status not in ("done", "failed"):
        return None
    for event in reversed(thread.events):
        if status == "done" and isinstance(event, Done):
            return event
        if status == "failed" and isinstance(event, Error) and event.fatal:
            return event
    return None


def _approval_request(call: ToolCall, contact: str | None) -> HumanRequest:
    return HumanRequest(
        call_id=call.call_id,
        kind="approval",
        question=f"Approve {call.intent} {json.dumps(call.arguments, ensure_ascii=False)}?",
        intent=call.intent,
        arguments=call.arguments,
        contact=contact,
    )


def _last_decision(thread: Thread) -> Event | None:
    """The last event the loop wrote that the model sees: what the thread is at, whatever arrived since.

    A trigger or message landing between a tool call and its result does not hide the call, so a
    call interrupted by a crash is still run on resume.
    """
    for event in reversed(thread.events):
        if event.shown_in_context and not is_external(event):
            return event
    return None


def _request_and_call(thread: Thread, response: HumanResponse) -> tuple[HumanRequest | None, ToolCall | None]:
    """The request ``response`` answers, and the tool call that request is about (if any)."""
    request: HumanRequest | None = None
    for event in reversed(thread.events):
        if request is None and isinstance(event, HumanRequest) and event.call_id == response.request_id:
            if event.kind == "input":
                return event, None
            request = event
        # An approval names its call; a reconcile request is about the last call before it.
        elif (
            request is not None
            and isinstance(event, ToolCall)
            and (request.kind == "reconcile" or event.call_id == request.call_id)
        ):
            return request, event
    return request, None


def ensure_stored(store: ThreadStore | None, thread: Thread) -> tuple[Thread, int]:
    """``thread`` as the store holds it, stored first if it is not (see ``_sync``), and its stored version."""
    return drive(_sync(_Run(store, None, None, BLOCKING, None), thread))


async def _sync(run: _Run, thread: Thread) -> tuple[Thread, int]:
    """Make sure the store holds ``thread``; return the thread to go on from and the version stored.

    A caller holding an older copy of a stored thread (others appended since) goes on from the
    stored one; a copy with events the store lacks is appended, or re-based if the store moved.
    """
    store = run.store
    if store is None:
        return thread, thread.version
    try:
        stored = await run.calls.store(store, store.load, thread.id)
    except ThreadNotFound:
        await run.calls.store(store, store.create, thread)
        return thread, thread.version
    common = min(stored.version, thread.version)
    if stored.events[:common] != thread.events[:common]:
        raise ConflictError(thread.id, thread.version, stored.version)
    if thread.version <= stored.version:
        return stored, stored.version
    return await _commit(run, thread, stored.version)


def commit(store: ThreadStore | None, thread: Thread, saved: int) -> tuple[Thread, int]:
    """Append ``thread.events[saved:]`` at version ``saved``; re-base them if others appended first.

    Returns the thread as stored and its version. What others appended is never lost, and of this
    step's events what commutes with theirs is kept (see ``thread.rebase``), in one transaction.
    """
    return drive(_commit(_Run(store, None, None, BLOCKING, None), thread, saved))


async def _commit(run: _Run, thread: Thread, saved: int) -> tuple[Thread, int]:
    store = run.store
    if store is None or thread.version == saved:
        return thread, thread.version
    try:
        await run.calls.store(store, store.save, thread, expected_version=saved)
        return thread, thread.version
    except ConflictError as exc:
        if type(exc) is not ConflictError:
            raise
    stored = await run.calls.store(
        store, store.append, thread.id, thread.events[saved:], expected_version=saved, rebase=True
    )
    return stored, stored.version
