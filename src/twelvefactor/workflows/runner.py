"""A workflow (factor 8): your deterministic Python, its steps durable on a thread.

    @workflow(agents=[rollout])
    def release(wf: Flow, message: str) -> str:
        prs = wf.step(merged_prs, effect="read_only")
        plan = wf.agent(rollout, f"PRs: {prs}", output=RolloutPlan)
        if wf.approve(f"Deploy {plan.tag} to production?"):
            wf.step(deploy, plan.tag, "production")
        return f"released {plan.tag}"

``run_workflow`` advances one on a stored thread until it waits or ends; the service's worker does
the same for workflows it serves (``twelvefactor serve``), wakes their timers and resumes a parent
when its sub-agent's thread is done.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, overload

from twelvefactor import tracing
from twelvefactor.agent import Agent
from twelvefactor.errors import (
    CassetteError,
    ConflictError,
    ModelCancelled,
    StepFailed,
    StoreError,
    ThreadNotFound,
    UserError,
    WorkflowChanged,
    compact,
)
from twelvefactor.events import Done, Error, UserMessage, Wait
from twelvefactor.thread import EventCallback, Thread
from twelvefactor.workflows.flow import Clock, Flow, Spawn, Suspend, _now

if TYPE_CHECKING:
    from twelvefactor.store.base import ThreadStore

log = logging.getLogger("twelvefactor.workflows")

WorkflowFunction = Callable[..., Any]


class Workflow:
    """A named workflow function and the agents its steps may run (its sub-agents).

    The function takes the ``Flow`` handle and, optionally, the launch message:
    ``def release(wf: Flow, message: str) -> str``. What it returns ends the thread (a ``done``
    event with it as the message: a string, or JSON for anything else).
    """

    def __init__(
        self, fn: WorkflowFunction, *, name: str | None = None, description: str = "", agents: Sequence[Agent] = ()
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.description = description or inspect.getdoc(fn) or ""
        self.agents: dict[str, Agent] = {}
        for agent in agents:
            if not isinstance(agent, Agent):
                raise UserError(f"workflow {self.name!r}: agents=[...] takes Agents, got {type(agent).__name__}")
            if agent.name in self.agents or agent.name == self.name:
                raise UserError(f"workflow {self.name!r}: its agents and it must have distinct names ({agent.name!r})")
            self.agents[agent.name] = agent
        params = list(inspect.signature(fn).parameters.values())
        if not 1 <= len(params) <= 2:
            raise UserError(
                f"workflow {self.name!r} must take (wf) or (wf, message); it takes {len(params)} parameters"
            )
        self._takes_message = len(params) == 2

    def __repr__(self) -> str:
        return f"Workflow(name={self.name!r}, agents={list(self.agents)})"

    def new_thread(self, message: str = "", **kwargs: Any) -> Thread:
        return Thread.new(UserMessage(content=message), agent=self.name, **kwargs)

    def call(self, flow: Flow) -> Any:
        return self.fn(flow, flow.message) if self._takes_message else self.fn(flow)


@overload
def workflow(fn: WorkflowFunction, /) -> Workflow: ...


@overload
def workflow(
    *, name: str | None = None, description: str = "", agents: Sequence[Agent] = ()
) -> Callable[[WorkflowFunction], Workflow]: ...


def workflow(
    fn: WorkflowFunction | None = None,
    /,
    *,
    name: str | None = None,
    description: str = "",
    agents: Sequence[Agent] = (),
) -> Workflow | Callable[[WorkflowFunction], Workflow]:
    """Make a function a workflow: ``@workflow`` or ``@workflow(agents=[rollout])``."""

    def wrap(func: WorkflowFunction) -> Workflow:
        return Workflow(func, name=name, description=description, agents=agents)

    return wrap(fn) if fn is not None else wrap


def run_workflow(
    flow_def: Workflow,
    thread: Thread,
    *,
    store: ThreadStore,
    on_event: EventCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    spawn: Spawn | None = None,
    clock: Clock | None = None,
) -> Thread:
    """Advance a workflow's thread until a step waits (a person, a timer, a sub-agent) or it ends.

    Completed steps are not run again: their recorded results are returned to the function. Sub-agents
    run here, in this call, unless ``spawn`` is given (the worker passes its queue: each sub-thread is
    then advanced as a thread of its own). A failure in the workflow's own code, an uncaught
    ``StepFailed`` or a changed step order ends the thread with a fatal error saying which step.
    """
    from twelvefactor.loop import ensure_stored

    thread, _ = ensure_stored(store, thread)
    if thread.agent != flow_def.name:
        raise UserError(f"thread {thread.id!r} belongs to {thread.agent!r}, not to workflow {flow_def.name!r}")
    if thread.status in ("done", "failed"):
        return thread
    flow = Flow(
        flow_def.name,
        thread,
        store,
        agents=flow_def.agents,
        on_event=on_event,
        spawn=spawn,
        clock=clock,
        should_stop=should_stop,
    )
    try:
        with tracing.span(
            "workflow.run", {"twelvefactor.workflow": flow_def.name, "twelvefactor.thread.id": thread.id}
        ) as current:
            suspended, value = _call(flow_def, flow)  # a wait is no error: the span must not say so
            tracing.set_attributes(current, {"twelvefactor.thread.status": "waiting" if suspended else None})
        if suspended:
            return flow.thread
    except (ModelCancelled, CassetteError, ConflictError, StoreError):
        raise  # the thread is fine as recorded; another run (or process) goes on from there
    except StepFailed as exc:
        message = f"workflow {flow_def.name!r} stopped: {exc}"
    except WorkflowChanged as exc:
        message = str(exc)
    except Exception as exc:  # noqa: BLE001 - the workflow's own code failed: record it, never strand the thread
        log.exception("workflow %r failed on thread %s", flow_def.name, flow.thread.id)
        message = f"workflow {flow_def.name!r} failed: {type(exc).__name__}: {exc}"
    else:
        flow._record(Done(message=_as_message(value)))
        flow._commit()
        return flow.thread
    flow._record(Error(source="agent", message=compact(message), fatal=True))
    flow._commit()
    return flow.thread


def _call(flow_def: Workflow, flow: Flow) -> tuple[bool, Any]:
    """``(True, None)`` when a step must wait, else ``(False, what the workflow returned)``."""
    try:
        return False, flow_def.call(flow)
    except Suspend:
        return True, None


def _as_message(value: Any) -> str:
    if value is None:
        return "done"
    if isinstance(value, str):
        return value
    import json

    from pydantic_core import to_jsonable_python

    return json.dumps(to_jsonable_python(value, fallback=repr), ensure_ascii=False)


Runnable = Agent | Workflow
"""What a service serves and a worker advances: an agent or a workflow, by name."""


def served(targets: Mapping[str, Runnable]) -> dict[str, Runnable]:
    """``targets`` with their sub-agents added by name (a workflow's agents, agents used as tools), so
    that the process serving a parent can advance its sub-threads too."""
    found = dict(targets)
    todo = list(targets.values())
    while todo:
        target = todo.pop()
        for name, agent in _sub_agents(target).items():
            known = found.get(name)
            if known is None:
                found[name] = agent
                todo.append(agent)
                continue
            if known is agent:
                continue
            raise UserError(
                f"{target.name!r} has a sub-agent named {name!r}, and another agent of that name is served too:"
                " rename one"
            )
    return found


def _sub_agents(target: Runnable) -> dict[str, Agent]:
    if isinstance(target, Workflow):
        return dict(target.agents)
    return {cls.sub_agent.name: cls.sub_agent for cls in target.toolset.tools if isinstance(cls.sub_agent, Agent)}


def wake_at(thread: Thread) -> datetime | None:
    """When a thread waiting on a durable timer is due (None if it waits for nothing timed)."""
    waiting = thread.waiting_on
    return waiting.until if isinstance(waiting, Wait) else None


def has_work(flow_def: Workflow, thread: Thread, store: ThreadStore, *, clock: Clock | None = None) -> bool:
    """Whether advancing the thread now would do anything: it runs, its timer is due, or the sub-agent
    it waits for has finished (or stopped for the workflow's answer)."""
    status = thread.status
    if status == "running":
        return True
    waiting = thread.waiting_on
    if not isinstance(waiting, Wait):
        return False
    if waiting.until is not None:
        return (clock or _now)() >= waiting.until
    if waiting.thread_id is None:
        return True
    try:
        child = store.load(waiting.thread_id)
    except ThreadNotFound:
        return True  # the run re-creates it
    if child.status in ("done", "failed"):
        return True
    if child.status == "waiting":
        return False
    from twelvefactor.loop import Stop, next_action

    agent = flow_def.agents.get(child.agent or "")
    # Stopped at an external call: the workflow's ``output`` answer (or nothing the loop can do).
    return agent is not None and isinstance(next_action(agent, child), Stop)
