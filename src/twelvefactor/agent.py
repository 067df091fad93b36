"""Agent = owned prompt + typed tools + model + policies (factors 2, 8, 9, 10).

``Agent.step(thread)`` is one decision: render the context, call the model, parse ONE next step. A
reply that does not parse becomes a compact error event and the call is retried; after
``max_consecutive_errors`` errors in a row the agent asks a human instead of spinning. What to do with
the step is the loop's business (see ``twelvefactor.loop``), which you can copy and change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast, get_args

from pydantic import Field

from twelvefactor.context import ContextFormat, XmlFormat
from twelvefactor.errors import ModelError, ParseError, ToolError, UserError, compact
from twelvefactor.events import Done, Error, ErrorSource, Event, HumanRequest, ModelCall, ToolCall, UserMessage
from twelvefactor.models.base import Message, Model, ModelResponse, OutputMode, OutputSpec
from twelvefactor.prompts import DEFAULT_TEMPLATE, Prompt
from twelvefactor.schema import render_intents
from twelvefactor.thread import Thread, reduce
from twelvefactor.tools import BUILTIN_TOOLS, Tool, Toolset, tool

if TYPE_CHECKING:
    from twelvefactor.models.base import StructuredModel

PrefetchHook = Callable[[Thread], Iterable[Event]]
EventCallback = Callable[[Event], None]


class Agent:
    """A small, focused agent. Every argument is yours to own; nothing is hidden from the model's view.

    ``model`` is a Model or a model string (``"openai:gpt-4o-mini"``, see ``resolve_model``).
    ``output_mode`` picks how the model is held to one next step: ``"prompted"`` (the default: your
    prompt asks for JSON, every model can), ``"json_schema"`` (the provider enforces the schema) or
    ``"tools"`` (one native tool per intent); all three end in the same typed intent. The exact
    request body a provider sent is kept on each ModelCall unless ``record_requests=False``.
    """

    def __init__(
        self,
        name: str,
        *,
        tools: Sequence[type[Tool]] = (),
        model: Model | str | None = None,
        prompt: Prompt | str | Path | None = None,
        context_format: ContextFormat | None = None,
        variables: Mapping[str, Any] | None = None,
        max_steps: int = 20,
        max_consecutive_errors: int = 3,
        prefetch: Sequence[PrefetchHook] = (),
        builtins: Sequence[type[Tool]] = BUILTIN_TOOLS,
        description: str = "",
        output_mode: OutputMode = "prompted",
        record_requests: bool = True,
    ) -> None:
        if max_steps < 1 or max_consecutive_errors < 1:
            raise UserError("max_steps and max_consecutive_errors must be at least 1")
        if output_mode not in get_args(OutputMode):
            raise UserError(f"output_mode {output_mode!r} is not one of {', '.join(get_args(OutputMode))}")
        self.name = name
        self.description = description
        self.toolset = Toolset(tools, builtins=builtins)
        if isinstance(model, str):
            from twelvefactor.models.resolve import resolve_model

            model = resolve_model(model)
        self.model: Model | None = model
        self.output_mode: OutputMode = output_mode
        self.record_requests = record_requests
        if isinstance(prompt, Path):
            prompt = Prompt.from_file(prompt)
        self.prompt = (
            prompt if isinstance(prompt, Prompt) else Prompt(prompt or DEFAULT_TEMPLATE, name=f"{name}.prompt")
        )
        self.context_format = context_format or XmlFormat()
        self.variables = dict(variables or {})
        self.max_steps = max_steps
        self.max_consecutive_errors = max_consecutive_errors
        self.prefetch = tuple(prefetch)

    def __repr__(self) -> str:
        return f"Agent(name={self.name!r}, intents={self.toolset.intents})"

    @cached_property
    def intents(self) -> str:
        """The compact rendering of the next-step type (``{{ intents }}`` in the prompt)."""
        return render_intents(self.toolset.tools)

    def new_thread(self, message: str, **kwargs: Any) -> Thread:
        return Thread.new(UserMessage(content=message), agent=self.name, **kwargs)

    def render(self, thread: Thread, model: Model | None = None) -> list[Message]:
        """The exact messages the model gets for this thread: the prompt with the context in it."""
        events = thread.events
        context = self.context_format.render(events)
        messages = self.prompt.render(
            **self.variables,
            agent_name=self.name,
            intents=self.intents,
            context=context,
            thread=thread,
        )
        chat = self.context_format.messages(events)
        return messages + chat if chat is not None else messages

    def step(self, thread: Thread, *, on_event: EventCallback | None = None) -> tuple[Thread, Tool | None]:
        """One decision: call the model until its reply parses; None when the agent escalated instead."""
        model = self.model
        if model is None:
            raise UserError(f"agent {self.name!r} has no model: pass model=... (ScriptedModel in tests)")
        while True:
            messages = self.render(thread)
            started = time.perf_counter()
            try:
                response = self.complete(model, messages)
            except ModelError as exc:
                thread = self.record_error(thread, "model", str(exc), on_event=on_event)
                if thread.status != "running":
                    return thread, None
                continue
            call = ModelCall(
                model=response.model,
                raw=response.text,
                input_tokens=response.input_tokens,
                output_tokens=response.output_tokens,
                latency_ms=round((time.perf_counter() - started) * 1000, 3),
                cost_usd=response.cost_usd,
                finish_reason=response.finish_reason,
                request=response.request if self.record_requests else None,
            )
            thread = _append(thread, call, on_event)
            if response.truncated:
                thread = self.record_error(thread, "model", _truncated(response), on_event=on_event)
                if thread.status != "running":
                    return thread, None
                continue
            try:
                intent = self.parse(response.text)
            except ParseError as exc:
                thread = self.record_error(thread, "parse", str(exc), on_event=on_event)
                if thread.status != "running":
                    return thread, None
                continue
            return thread, intent

    def complete(self, model: Model, messages: list[Message]) -> ModelResponse:
        """One model call in this agent's output mode (prompted calls are plain ``complete(messages)``)."""
        if self.output_mode == "prompted":
            return model.complete(messages)
        modes = getattr(model, "output_modes", frozenset(("prompted",)))
        if self.output_mode not in modes:
            raise UserError(
                f"agent {self.name!r} uses output_mode={self.output_mode!r}, which model {model.name!r} does not"
                f" support ({', '.join(sorted(modes))}); use a provider model or output_mode='prompted'"
            )
        spec = OutputSpec(self.output_mode, self.toolset.tools)
        return cast("StructuredModel", model).complete(messages, output=spec)

    def parse(self, text: str) -> Tool:
        from twelvefactor.parsing import parse

        return cast(Tool, parse(text, self.toolset.union))

    def record_error(
        self,
        thread: Thread,
        source: ErrorSource,
        message: str,
        *,
        call_id: str | None = None,
        on_event: EventCallback | None = None,
    ) -> Thread:
        """Append a compact error; escalate to a human after too many in a row."""
        message = compact(message)
        thread = _append(thread, Error(source=source, message=message, call_id=call_id), on_event)
        count = consecutive_errors(thread)
        if count >= self.max_consecutive_errors:
            request = HumanRequest(
                call_id=f"call_{thread.version}",
                kind="input",
                escalation=True,
                question=(
                    f"I hit {count} errors in a row and stopped instead of retrying. Last error: {message}"
                    " How should I proceed?"
                ),
            )
            thread = _append(thread, request, on_event)
        return thread

    def as_tool(
        self, *, name: str | None = None, description: str | None = None, requires_approval: bool = False
    ) -> type[Tool]:
        """This agent as a tool of another: the parent sends a task and gets the final message back."""
        agent = self

        def delegate(task: Annotated[str, Field(description="the task, in plain words, with all it needs")]) -> str:
            from twelvefactor.loop import run

            thread = run(agent, agent.new_thread(task))
            last = thread.events[-1]
            if isinstance(last, Done):
                return last.message
            raise ToolError(_sub_agent_outcome(agent, thread))

        delegate.__doc__ = description or self.description or f"Delegate a task to the {self.name} agent."
        return cast(type[Tool], tool(delegate, name=name or self.name, requires_approval=requires_approval))


def _truncated(response: ModelResponse) -> str:
    tokens = f" after {response.output_tokens} output tokens" if response.output_tokens is not None else ""
    return (
        f"the model's reply was cut off at its output token limit (finish_reason {response.finish_reason!r}{tokens})"
        " and was not used; reply with a shorter next step (operators: raise the model's max_tokens)"
    )


def _sub_agent_outcome(agent: Agent, thread: Thread) -> str:
    pending = thread.pending_request
    if pending is not None:
        return f"sub-agent {agent.name!r} stopped to ask a human: {pending.question}"
    last = next((e for e in reversed(thread.events) if isinstance(e, Error)), None)
    reason = f": {last.message}" if last is not None else ""
    return f"sub-agent {agent.name!r} ended {thread.status}{reason}"


def consecutive_errors(thread: Thread) -> int:
    """Errors at the end of the thread with nothing but model-call records between them."""
    count = 0
    for event in reversed(thread.events):
        if isinstance(event, Error):
            count += 1
        elif isinstance(event, ModelCall | ToolCall):
            continue
        else:
            break
    return count


def _append(thread: Thread, event: Event, on_event: EventCallback | None) -> Thread:
    thread = reduce(thread, event)
    if on_event is not None:
        on_event(event)
    return thread
