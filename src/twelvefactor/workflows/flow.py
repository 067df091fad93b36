"""The handle a workflow function gets (``wf``): durable steps, people, timers and sub-agents.

A workflow runs from the top each time it is advanced. Each durable call (``step``, ``ask``,
``approve``, ``sleep``, ``agent``) is the next numbered step (``step_1``, ``step_2``, ...): when the
thread already records that step's result, the call returns it without running anything; otherwise
it runs, records and returns it. A step that must wait (a person, a timer, a sub-agent) records what
it waits for and unwinds the function; the thread is ``waiting``, and any process can advance it later.

Every step is recorded as events the rest of the framework already knows: a ``tool_call`` naming the
step, ``tool_started`` before one with effects runs, then a ``tool_result`` or ``error``; people are
asked with ``human_request`` (answered over the API, the web UI, links, the CLI), and timers and
sub-agents add a ``wait``. The effect rules of tools apply: after a crash inside a step, a read-only
step runs again, an idempotent one runs again with the same idempotency key, and an irreversible one
is reconciled (its hook, then a person) instead of run blindly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar, overload

from pydantic import JsonValue

from twelvefactor import tracing
from twelvefactor.agent import Agent
from twelvefactor.errors import (
    ConflictError,
    StepFailed,
    ToolError,
    UserError,
    WorkflowChanged,
    compact,
)
from twelvefactor.events import (
    Done,
    Error,
    Event,
    HumanRequest,
    HumanResponse,
    Notification,
    ToolCall,
    ToolReconciled,
    ToolResult,
    ToolStarted,
    UserMessage,
    Wait,
)
from twelvefactor.loop import ended_with, open_sub_thread, pending_tool_call, run, sub_thread_id
from twelvefactor.thread import EventCallback, Thread, is_external
from twelvefactor.thread import append_event as _append
from twelvefactor.tools import Effect, Reconciled, Tool, ToolContext
from twelvefactor.workflows.steps import ReconcileHook, StepSpec, jsonable_result, spec_of

if TYPE_CHECKING:
    from twelvefactor.store.base import ThreadStore

log = logging.getLogger("twelvefactor.workflows")

T = TypeVar("T", bound=Tool)
Clock = Callable[[], datetime]
Spawn = Callable[[str], None]


class Suspend(BaseException):  # noqa: N818 - a signal, not an error
    """Unwinds the workflow function when a step must wait. A BaseException, so that an
    ``except Exception`` in workflow code does not swallow it."""


@dataclass(frozen=True)
class Approval:
    """A person's decision on ``wf.approve``: truthy when approved; ``reason`` is what they wrote."""

    approved: bool
    reason: str | None = None
    responder: str | None = None

    def __bool__(self) -> bool:
        return self.approved


def _now() -> datetime:
    return datetime.now(UTC)


class Flow:
    """What a workflow function receives: ``def release(wf: Flow, message: str) -> str``."""

    def __init__(
        self,
        workflow: str,
        thread: Thread,
        store: ThreadStore,
        *,
        agents: Mapping[str, Agent],
        on_event: EventCallback | None = None,
        spawn: Spawn | None = None,
        clock: Clock | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.workflow = workflow
        self.thread = thread
        self._store = store
        self._saved = thread.version
        self._agents = agents
        self._on_event = on_event
        self._spawn = spawn
        self._clock = clock or _now
        self._should_stop = should_stop
        self._count = 0
        self._by_step = _index(thread.events)

    @property
    def thread_id(self) -> str:
        return self.thread.id

    @property
    def message(self) -> str:
        """The text the workflow was launched with (its first user message; "" if none)."""
        first = next((e for e in self.thread.events if isinstance(e, UserMessage)), None)
        return first.content if first is not None else ""

    # --- steps ---

    def step(
        self,
        target: Callable[..., Any] | Tool,
        /,
        *args: Any,
        name: str | None = None,
        effect: Effect | None = None,
        reconcile: ReconcileHook | None = None,
        retries: int = 0,
        **kwargs: Any,
    ) -> Any:
        """Run ``target(*args, **kwargs)`` once, durably, and return its value (or its recorded value).

        ``target`` is a function (its ``effect`` defaults to ``"irreversible"``, the safe kind; pass
        ``"read_only"`` or ``"idempotent"`` when running it twice is harmless) or a Tool instance (its
        own effect, ``reconcile`` hook, and approval: a call that requires approval asks a person
        first). A parameter annotated ``ToolContext`` receives the step's context (idempotency key).
        The value is returned as recorded: JSON, validated into the function's return annotation if
        it has one. A failure is recorded and raised as ``StepFailed`` after ``retries`` more tries.
        """
        if retries < 0:
            raise UserError(f"retries must be 0 or more, got {retries!r}")
        spec = spec_of(target, args, kwargs, name=name, effect=effect, reconcile=reconcile)
        step, events = self._begin(spec.name)
        if not events:
            self._record(ToolCall(call_id=step, intent=spec.name, arguments=spec.arguments))
            if spec.approval:
                self._record(_request(step, "approval", f"Approve {_describe(spec.name, spec.arguments)}?", spec))
                self._suspend()
            events = self._by_step[step]
        while True:
            outcome = self._settle(step, spec, events, retries)
            if outcome is not None:
                return outcome[0]
            events = self._by_step[step]

    def _settle(self, step: str, spec: StepSpec, events: list[Event], retries: int) -> tuple[Any] | None:
        """Take the step one move on from its recorded events: ``(value,)`` when it has one, None to look again."""
        last = events[-1]
        if isinstance(last, ToolResult):
            return (spec.load(last.result),)
        if isinstance(last, Error):
            previous = events[-2] if len(events) > 1 else None
            failures = sum(1 for e in events if isinstance(e, Error))
            denied = isinstance(previous, HumanResponse) and previous.approved is False
            skipped = isinstance(previous, ToolReconciled) and previous.outcome == "skip"
            if denied or skipped or failures > retries:
                raise StepFailed(step, spec.name, last.message)
            return self._run(step, spec, events)
        if isinstance(last, HumanRequest):
            self._suspend()
        if isinstance(last, HumanResponse):
            return self._answered(step, spec, events, last)
        if isinstance(last, ToolStarted):
            if spec.effect != "irreversible":
                return self._run(step, spec, events)  # idempotent: again, with the same key
            return self._reconcile(step, spec, last.attempt)
        if isinstance(last, ToolReconciled):
            if last.outcome == "retry":
                return self._run(step, spec, events)
            attempt = sum(1 for e in events if isinstance(e, ToolStarted))
            self._record(_reconcile_request(step, spec, attempt))
            self._suspend()
        return self._run(step, spec, events)  # the call is recorded, nothing else yet

    def _run(self, step: str, spec: StepSpec, events: list[Event]) -> tuple[Any] | None:
        failures = sum(1 for e in events if isinstance(e, Error))
        starts = sum(1 for e in events if isinstance(e, ToolStarted))
        attempt = starts + 1 if spec.effect != "read_only" else failures + 1
        ctx = ToolContext(thread_id=self.thread.id, call_id=step, intent=spec.name, attempt=attempt)
        if spec.effect != "read_only":
            started = ToolStarted(call_id=step, intent=spec.name, attempt=attempt, call_key=ctx.idempotency_key)
            self._record(started)
            self._commit()  # before it runs: after a crash inside it, the step is known to have started
        try:
            attributes = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": spec.name,
                "gen_ai.tool.call.id": step,
                "twelvefactor.tool.attempt": attempt,
                "twelvefactor.effect": spec.effect,
                "twelvefactor.thread.id": self.thread.id,
            }
            with tracing.span(f"step {spec.name}", attributes):
                value = spec.call(ctx)
            result = jsonable_result(spec.name, value)
        except ToolError as exc:
            self._record(Error(source="tool", message=compact(str(exc)), call_id=step))
            self._commit()
            return None
        self._record(ToolResult(call_id=step, intent=spec.name, result=result))
        self._commit()
        return (spec.load(result),)

    def _reconcile(self, step: str, spec: StepSpec, attempt: int) -> tuple[Any] | None:
        """An irreversible step may have run before a crash: its hook decides, else a person."""
        verdict = Reconciled.unknown()
        if spec.reconcile is not None:
            ctx = ToolContext(thread_id=self.thread.id, call_id=step, intent=spec.name, attempt=attempt)
            try:
                verdict = spec.reconcile(ctx)
            except Exception:  # noqa: BLE001 - a hook that fails cannot tell: a person decides
                log.warning("reconcile hook of %s (%s) failed; asking a person", step, spec.name, exc_info=True)
            outcome: Literal["done", "retry", "unknown"] = (
                "done" if verdict.outcome == "done" else "retry" if verdict.outcome == "not_run" else "unknown"
            )
            self._record(ToolReconciled(call_id=step, intent=spec.name, outcome=outcome, decided_by="hook"))
            if verdict.outcome == "done":
                result = jsonable_result(spec.name, verdict.result)
                self._record(ToolResult(call_id=step, intent=spec.name, result=result))
                self._commit()
                return (spec.load(result),)
            if verdict.outcome == "not_run":
                self._commit()
                return None
        self._record(_reconcile_request(step, spec, attempt))
        self._suspend()

    def _answered(self, step: str, spec: StepSpec, events: list[Event], response: HumanResponse) -> tuple[Any] | None:
        request = next(e for e in reversed(events) if isinstance(e, HumanRequest))
        who = response.responder or "a person"
        if request.kind == "approval":
            if response.approved:
                return self._run(step, spec, events)
            reason = f": {response.text}" if response.text else ""
            self._record(Error(source="tool", message=compact(f"denied by {who}{reason}"), call_id=step))
            self._commit()
            raise StepFailed(step, spec.name, f"denied by {who}{reason}")
        outcome = response.outcome or "skip"
        self._record(ToolReconciled(call_id=step, intent=spec.name, outcome=outcome, decided_by="person"))
        if outcome == "done":
            self._record(ToolResult(call_id=step, intent=spec.name, result=response.text))
            self._commit()
            return (spec.load(response.text),)
        if outcome == "skip":
            message = f"skipped by {who} after a crash: it may not have happened"
            self._record(Error(source="tool", message=message, call_id=step))
            self._commit()
            raise StepFailed(step, spec.name, message)
        self._commit()
        return None  # retry

    # --- people ---

    def ask(self, question: str, *, name: str = "ask", contact: str | None = None) -> str:
        """Ask a person a question; the workflow waits (durably) for the answer and returns it. ``contact``
        names the contact chain (server configuration) that gets the question; None: the routes decide."""
        step, events = self._begin(name)
        if not events:
            self._record(ToolCall(call_id=step, intent=name, arguments={"question": question}))
            self._record(HumanRequest(call_id=step, kind="input", question=question, contact=contact))
            self._suspend()
        result = self._human_result(step, events, lambda r: r.text or "")
        return str(result)

    def approve(
        self,
        question: str,
        *,
        name: str = "approve",
        intent: str | None = None,
        arguments: dict[str, JsonValue] | None = None,
        contact: str | None = None,
    ) -> Approval:
        """Ask a person to approve or deny; the workflow waits for the decision. Truthy when approved.
        ``contact`` names the contact chain that gets the request; None: the routes decide."""
        step, events = self._begin(name)
        if not events:
            self._record(ToolCall(call_id=step, intent=name, arguments={"question": question}))
            request = HumanRequest(
                call_id=step, kind="approval", question=question, intent=intent, arguments=arguments, contact=contact
            )
            self._record(request)
            self._suspend()
        result = self._human_result(
            step, events, lambda r: {"approved": bool(r.approved), "reason": r.text, "responder": r.responder}
        )
        data = result if isinstance(result, dict) else {}
        reason, responder = data.get("reason"), data.get("responder")
        return Approval(
            approved=bool(data.get("approved")),
            reason=reason if isinstance(reason, str) else None,
            responder=responder if isinstance(responder, str) else None,
        )

    def notify(self, message: str, *, name: str = "notify", contact: str | None = None) -> None:
        """Tell people something that needs no answer, on the channels of ``contact`` (None: the routes
        decide); the workflow goes on at once. Sent once, however often the workflow is replayed."""
        step, events = self._begin(name)
        if not events:
            self._record(ToolCall(call_id=step, intent=name, arguments={"message": message}))
            self._record(Notification(call_id=step, message=message, contact=contact))
            self._record(ToolResult(call_id=step, intent=name, result="sent"))

    def _human_result(self, step: str, events: list[Event], value: Callable[[HumanResponse], JsonValue]) -> JsonValue:
        last = events[-1]
        if isinstance(last, ToolResult):
            return last.result
        if isinstance(last, HumanResponse):
            result = value(last)
            call = events[0]
            assert isinstance(call, ToolCall)
            self._record(ToolResult(call_id=step, intent=call.intent, result=result))
            self._commit()
            return result
        self._suspend()

    # --- timers ---

    def sleep(self, seconds: float, *, name: str = "sleep") -> None:
        """Wait ``seconds``, durably: the thread waits, survives restarts, and a worker wakes it."""
        self._timer(name, lambda now: now + timedelta(seconds=seconds))

    def sleep_until(self, when: datetime, *, name: str = "sleep") -> None:
        """Wait until ``when`` (timezone-aware), durably."""
        if when.tzinfo is None:
            raise UserError("sleep_until() needs a timezone-aware datetime (e.g. datetime.now(UTC) + ...)")
        self._timer(name, lambda now: when)

    def _timer(self, name: str, until_from: Callable[[datetime], datetime]) -> None:
        step, events = self._begin(name)
        now = self._clock()
        if not events:
            until = until_from(now)
            self._record(ToolCall(call_id=step, intent=name, arguments={"until": until.isoformat()}))
            if until > now:
                self._record(Wait(call_id=step, until=until))
                self._suspend()
            events = self._by_step[step]
        last = events[-1]
        if isinstance(last, ToolResult):
            return
        call = events[0]
        assert isinstance(call, ToolCall)
        until = datetime.fromisoformat(str(call.arguments.get("until")))
        if until > now:
            self._suspend()
        self._record(ToolResult(call_id=step, intent=name, result={"until": until.isoformat()}))
        self._commit()

    # --- sub-agents ---

    @overload
    def agent(self, agent: Agent, task: str, *, name: str | None = None, output: None = None) -> str: ...

    @overload
    def agent(self, agent: Agent, task: str, *, name: str | None = None, output: type[T]) -> T: ...

    def agent(self, agent: Agent, task: str, *, name: str | None = None, output: type[Tool] | None = None) -> Any:
        """A micro-agent works on ``task`` in its own stored thread, linked to this one both ways.

        Returns its final message, or with ``output`` (a tool without ``run()`` in the agent's tools)
        the arguments of its call to that tool, typed: the agent's structured answer. When the agent
        asks a person, this workflow waits too, until the agent is done. Raises StepFailed if it fails.
        The agent must be one of the workflow's declared ``agents``, so any process serving the
        workflow can advance its sub-threads.
        """
        if self._agents.get(agent.name) is not agent:
            raise UserError(
                f"workflow {self.workflow!r} runs agent {agent.name!r} without declaring it:"
                " pass it in @workflow(agents=[...]) so every process serving the workflow can run it"
            )
        if output is not None and agent.toolset.by_intent.get(output.intent_name()) is not output:
            raise UserError(f"output {output.__name__} is not one of agent {agent.name!r}'s tools")
        step_name = name or agent.name
        step, events = self._begin(step_name)
        child_id = sub_thread_id(self.thread.id, step)
        if not events:
            arguments: dict[str, JsonValue] = {"agent": agent.name, "task": task, "thread_id": child_id}
            self._record(ToolCall(call_id=step, intent=step_name, arguments=arguments))
            self._commit()
            events = self._by_step[step]
        last = events[-1]
        if isinstance(last, ToolResult):
            return output.model_validate(last.result) if output is not None else last.result
        if isinstance(last, Error):
            raise StepFailed(step, step_name, last.message)
        child = open_sub_thread(self._store, self.thread.id, step, agent.name, task)
        outcome = _child_outcome(agent, child, output)
        if outcome is None and (self._spawn is None or child.status == "running"):
            if self._spawn is not None:
                self._spawn(child_id)
            else:
                child = run(agent, child, store=self._store, on_event=None, should_stop=self._should_stop)
                outcome = _child_outcome(agent, child, output)
        if outcome is None:
            if not isinstance(last, Wait):
                self._record(Wait(call_id=step, thread_id=child_id))
            self._suspend()
        kind, value = outcome
        if kind == "done" and output is not None:
            kind, value = "failed", f"it finished without answering with {output.intent_name()}: {value}"
        if kind == "failed":
            message = f"sub-agent {agent.name!r} (thread {child_id}) ended failed: {value}"
            self._record(Error(source="tool", message=compact(message), call_id=step))
            self._commit()
            raise StepFailed(step, step_name, message)
        if kind == "output":
            self._close_child(child, value)
        self._record(ToolResult(call_id=step, intent=step_name, result=value))
        self._commit()
        return output.model_validate(value) if output is not None else value

    def _close_child(self, child: Thread, arguments: JsonValue) -> None:
        call = pending_tool_call(child)
        if call is None:
            return
        result = ToolResult(call_id=call.call_id, intent=call.intent, result=f"handed to workflow {self.workflow!r}")
        done = Done(message=f"{call.intent} {json.dumps(arguments, ensure_ascii=False)}")
        try:
            self._store.append(child.id, [result, done], expected_version=child.version)
        except ConflictError:
            log.info("sub-thread %s moved while being closed; its answer is recorded on the parent", child.id)

    # --- the machinery ---

    def _begin(self, name: str) -> tuple[str, list[Event]]:
        if self._should_stop is not None and self._should_stop():
            self._suspend()
        self._count += 1
        step = f"step_{self._count}"
        events = self._by_step.get(step, [])
        if events:
            first = events[0]
            if not isinstance(first, ToolCall) or first.intent != name:
                recorded = first.intent if isinstance(first, ToolCall) else first.type
                raise WorkflowChanged(
                    f"workflow {self.workflow!r} asked for step {step} {name!r}, but thread {self.thread.id!r}"
                    f" recorded {recorded!r} there: its code changed under a running thread; serve the version"
                    " that started it, or fork the thread from before that step"
                )
        return step, events

    def _record(self, event: Event) -> None:
        self.thread = _append(self.thread, event, self._on_event)
        key = _step_of(event)
        if key is not None:
            self._by_step.setdefault(key, []).append(event)

    def _suspend(self) -> NoReturn:
        self._commit()
        raise Suspend

    def _commit(self) -> None:
        """Append what this run recorded. Only this run writes a workflow's steps (it holds the lease),
        but messages, triggers and answers may land meanwhile: they go first, ours after them."""
        if self.thread.version == self._saved:
            return
        mine = self.thread.events[self._saved :]
        expected = self._saved
        for _ in range(_COMMIT_TRIES):
            try:
                stored = self._store.append(self.thread.id, mine, expected_version=expected)
                break
            except ConflictError as exc:
                if type(exc) is not ConflictError:
                    raise
            fresh = self._store.load(self.thread.id)
            if not all(is_external(e) or isinstance(e, HumanResponse) for e in fresh.events[expected:]):
                raise ConflictError(
                    self.thread.id,
                    message=f"workflow thread {self.thread.id!r} was advanced by another process meanwhile;"
                    " this run stops and leaves it to that one",
                )
            expected = fresh.version
        else:
            raise ConflictError(self.thread.id, message=f"thread {self.thread.id!r} kept moving; retry")
        self.thread, self._saved = stored, stored.version
        if expected != self._saved - len(mine):
            self._by_step = _index(stored.events)


_COMMIT_TRIES = 5


def _child_outcome(agent: Agent, child: Thread, output: type[Tool] | None) -> tuple[str, JsonValue] | None:
    """("done", message), ("output", arguments), ("failed", reason), or None while it works or waits."""
    status = child.status
    if output is not None and status in ("done", "running"):
        # Its answer: the call to ``output`` it stopped at, or (closed by a run that died before recording
        # the step's result) the one its thread ended with.
        call = pending_tool_call(child) if status == "running" else _last_call(child, output.intent_name())
        if call is not None and call.intent == output.intent_name():
            return "output", call.arguments
    ended = ended_with(child)
    if ended is None:
        return None
    return ("done", ended.message) if isinstance(ended, Done) else ("failed", ended.message)


def _last_call(thread: Thread, intent: str) -> ToolCall | None:
    """The thread's last tool call, if it is to ``intent`` and the thread ended right after answering it."""
    for event in reversed(thread.events):
        if isinstance(event, ToolCall):
            return event if event.intent == intent else None
        if not isinstance(event, ToolResult | Done):
            return None
    return None


def _step_of(event: Event) -> str | None:
    """The step an event belongs to (``step_3`` for its call, start, result, request, answer or wait)."""
    if isinstance(event, HumanResponse):
        key: str | None = event.request_id
    else:
        key = getattr(event, "call_id", None)
    if key is None or not key.startswith("step_"):
        return None
    return key.split(":", 1)[0]


def _index(events: tuple[Event, ...]) -> dict[str, list[Event]]:
    index: dict[str, list[Event]] = {}
    for event in events:
        key = _step_of(event)
        if key is not None:
            index.setdefault(key, []).append(event)
    return index


def _describe(name: str, arguments: Mapping[str, JsonValue]) -> str:
    return f"{name} {json.dumps(arguments, ensure_ascii=False)}" if arguments else name


def _request(step: str, kind: Literal["approval"], question: str, spec: StepSpec) -> HumanRequest:
    return HumanRequest(call_id=step, kind=kind, question=question, intent=spec.name, arguments=spec.arguments)


def _reconcile_request(step: str, spec: StepSpec, attempt: int) -> HumanRequest:
    question = (
        f"{_describe(spec.name, spec.arguments)} may have run before a crash (attempt {attempt}), and whether it did"
        " cannot be told: mark it done (with its result), retry it, or skip it?"
    )
    return HumanRequest(
        call_id=f"{step}:reconcile:{attempt}",
        kind="reconcile",
        question=question,
        intent=spec.name,
        arguments=spec.arguments,
    )
