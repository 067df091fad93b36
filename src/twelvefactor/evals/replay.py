"""Replay under change: would a changed agent (prompt, model, context policy) decide what the recorded one did?

For each model call a stored thread recorded, the changed agent gets the thread as it was just before that
call and is asked for ONE step (``Agent.decide``, one model call, nothing run): no tool runs, nobody is
asked, nothing is stored. What came after each decision in the record (tool results, people's answers) is
what the next decision sees, so every decision is judged on the same history. A new step is the same as
the recorded one when it has the same kind, and for a tool call the same intent and arguments.

With a cassette (``replay:FILE``) or a test double as the changed agent's model, this runs offline in CI.
"""

from __future__ import annotations

import copy
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from twelvefactor.agent import Agent
from twelvefactor.calls import BLOCKING, Calls, default_calls, drive
from twelvefactor.errors import UserError
from twelvefactor.events import Done, Error, Event, HumanRequest, ModelCall, Notification, ToolCall
from twelvefactor.loop import _repeats_last_call, intent_event
from twelvefactor.thread import Thread

StepKind = Literal["tool_call", "done", "question", "notify", "error", "none"]


class Step(BaseModel):
    """A decision, as the loop recorded it: its kind, the intent and arguments, or the error's text."""

    model_config = ConfigDict(frozen=True)

    kind: StepKind
    intent: str | None = None
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    text: str | None = None

    def same_as(self, other: Step) -> bool:
        if self.kind != other.kind:
            return False
        return self.kind != "tool_call" or (self.intent == other.intent and self.arguments == other.arguments)

    def __str__(self) -> str:
        import json

        if self.kind == "tool_call":
            return f"{self.intent} {json.dumps(self.arguments, ensure_ascii=False, sort_keys=True)}"
        if self.kind == "none":
            return "(nothing recorded)"
        return f"{self.kind}: {self.text}" if self.text else self.kind


class Decision(BaseModel):
    """One recorded model call (``index`` in the thread's events) and what the changed agent decided there."""

    model_config = ConfigDict(frozen=True)

    index: int
    recorded: Step
    new: Step
    same: bool
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


class ReplayReport(BaseModel):
    """Every decision, compared; ``first_divergence`` is the event index of the first that differs."""

    model_config = ConfigDict(frozen=True)

    thread_id: str
    agent: str
    model: str | None
    decisions: list[Decision]

    @property
    def same(self) -> int:
        return sum(1 for decision in self.decisions if decision.same)

    @property
    def diverged(self) -> list[Decision]:
        return [decision for decision in self.decisions if not decision.same]

    @property
    def first_divergence(self) -> int | None:
        return next((decision.index for decision in self.decisions if not decision.same), None)

    def summary(self) -> str:
        first = self.first_divergence
        where = "none diverge" if first is None else f"first divergence at event {first}"
        return f"{len(self.decisions)} decisions, {self.same} the same, {len(self.diverged)} different; {where}"


def replay_decisions(agent: Agent, thread: Thread) -> ReplayReport:
    """Ask ``agent`` for each of ``thread``'s recorded decisions again, and compare (see the module docstring)."""
    return drive(areplay_decisions(agent, thread, calls=BLOCKING))  # the synchronous face: no event loop


async def areplay_decisions(agent: Agent, thread: Thread, *, calls: Calls | None = None) -> ReplayReport:
    """:func:`replay_decisions` on an event loop. Decisions are asked in order (a cassette replays in order)."""
    if agent.model is None:
        raise UserError(f"agent {agent.name!r} has no model: pass one (--model SPEC, or model=... in code)")
    # One model call per decision: an unparseable reply is the new step (an error), not a retry.
    single = copy.copy(agent)
    single.max_consecutive_errors = 1
    calls = calls or default_calls()
    decisions = []
    for index, event in enumerate(thread.events):
        if not isinstance(event, ModelCall):
            continue
        recorded = recorded_step(thread, index)
        before = thread.at(index)
        after, intent = await single.decide(before, calls)
        new = _new_step(single, after, intent)
        call = next((e for e in after.events[index:] if isinstance(e, ModelCall)), None)
        decisions.append(
            Decision(
                index=index,
                recorded=recorded,
                new=new,
                same=recorded.same_as(new),
                input_tokens=call.input_tokens if call else None,
                output_tokens=call.output_tokens if call else None,
                cost_usd=call.cost_usd if call else None,
            )
        )
    return ReplayReport(thread_id=thread.id, agent=agent.name, model=agent.model.name, decisions=decisions)


def recorded_step(thread: Thread, index: int) -> Step:
    """What the loop recorded right after the model call at ``index``."""
    following = thread.events[index + 1] if index + 1 < len(thread.events) else None
    return step_of(following) if following is not None else Step(kind="none")


def step_of(event: Event) -> Step:
    """A decision's event as a Step (an event that is no decision is ``none``)."""
    if isinstance(event, ToolCall):
        return Step(kind="tool_call", intent=event.intent, arguments=dict(event.arguments))
    if isinstance(event, Done):
        return Step(kind="done", intent="done_for_now", text=event.message)
    if isinstance(event, HumanRequest) and event.kind == "input" and not event.escalation:
        return Step(kind="question", intent="request_human_input", text=event.question)
    if isinstance(event, Notification):
        return Step(kind="notify", intent="notify", text=event.message)
    if isinstance(event, Error):
        return Step(kind="error", text=event.message)
    return Step(kind="none", text=event.type)


def _new_step(agent: Agent, after: Thread, intent: object) -> Step:
    from twelvefactor.tools import Tool

    if not isinstance(intent, Tool):
        error = next((e for e in reversed(after.events) if isinstance(e, Error)), None)
        return Step(kind="error", text=error.message if error else "no step")
    event = intent_event(after, intent)
    if agent.stop_repeats and isinstance(event, ToolCall) and _repeats_last_call(after, event):
        # The loop refuses it (an error the model sees), as it did when the thread was recorded.
        return Step(
            kind="error",
            text=f"the same call {Step(kind='tool_call', intent=event.intent, arguments=dict(event.arguments))} again",
        )
    return step_of(event)
