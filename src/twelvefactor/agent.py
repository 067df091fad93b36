"""Agent = owned prompt + typed tools + model + policies (factors 2, 8, 9, 10).

``Agent.step(thread)`` is one decision: render the context, call the model, parse ONE next step. A
reply that does not parse becomes a compact error event and the call is retried; after
``max_consecutive_errors`` errors in a row the agent asks a human instead of spinning. What to do with
the step is the loop's business (see ``twelvefactor.loop``), which you can copy and change.

Model output enters the thread here, so here it is made safe to keep: a reply over ``max_output_chars``
is recorded cut, with a marker, and refused as an error; lone surrogates (which JSON escapes can encode
but UTF-8 cannot) become U+FFFD in the raw reply, the parsed step and error messages.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, cast, get_args

from pydantic import Field

from twelvefactor import sent, tracing
from twelvefactor.calls import BLOCKING, Calls, default_calls, drive
from twelvefactor.compaction import ContextBudget
from twelvefactor.context import MISSING, ContextFormat, IdentityCache, Shown, XmlFormat, place_turns, shown_items
from twelvefactor.errors import ModelError, ParseError, ToolError, UserError, compact
from twelvefactor.events import Error, ErrorSource, Event, HumanRequest, ModelCall, ToolCall, UserMessage
from twelvefactor.models.base import Message, Model, ModelResponse, OutputMode, OutputSpec
from twelvefactor.prompts import DEFAULT_TEMPLATE, Prompt
from twelvefactor.schema import render_intents, render_steps
from twelvefactor.spend import SpendBudget
from twelvefactor.thread import Delta, DeltaCallback, EventCallback, Thread, reduce
from twelvefactor.thread import append_event as _append
from twelvefactor.tokens import TokenCounter, counter_for
from twelvefactor.tools import BUILTIN_TOOLS, Tool, Toolset, tool
from twelvefactor.window import MemorySource, Window, count, recalled_facts, render_memory, section_of

PrefetchHook = Callable[[Thread], Iterable[Event]]

DEFAULT_MAX_OUTPUT_CHARS = 64 * 1024
"""A next step is a small JSON object; a reply this long is a model gone astray, not an answer."""

# Where a chat format's turns go in the prompt: ``{{ context }}`` renders as this, then is replaced.
_TURNS = f"\x02{secrets.token_hex(8)}\x02"
_SENT_CACHE_LIMIT = 4096

_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON (or Python literal) escape that decodes to a surrogate: the parsed step may hold a lone one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class Agent:
    """A small, focused agent. Every argument is yours to own; nothing is hidden from the model's view.

    ``model`` is a Model or a model string (``"openai:gpt-4o-mini"``, see ``resolve_model``).
    ``output_mode`` picks how the model is held to one next step: ``"prompted"`` (the default: your
    prompt asks for JSON, every model can), ``"json_schema"`` (the provider enforces the schema) or
    ``"tools"`` (one native tool per intent); all three end in the same typed intent. The exact
    request body a provider sent is kept on each ModelCall unless ``record_requests=False``. With
    ``stop_repeats`` (the default) a tool call identical to the one whose result the model just got is
    not run again: it becomes an error the model sees, and a second repeat asks a person.
    ``max_output_chars`` bounds what one reply may add to the thread (see the module docstring).
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
        stop_repeats: bool = True,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        memory: MemorySource | None = None,
        memory_tokens: int | None = None,
        budget: ContextBudget | None = None,
        spend: SpendBudget | None = None,
    ) -> None:
        if max_steps < 1 or max_consecutive_errors < 1:
            raise UserError("max_steps and max_consecutive_errors must be at least 1")
        if max_output_chars < 1:
            raise UserError(f"max_output_chars must be at least 1, got {max_output_chars!r}")
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
        self.stop_repeats = stop_repeats
        self.max_output_chars = max_output_chars
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
        self.memory = memory
        self.memory_tokens = memory_tokens
        self.budget = budget
        self.spend = spend
        if memory is not None and "memory" not in self.prompt.variables:
            raise UserError(
                f"agent {name!r} has a memory but its prompt {self.prompt.name!r} never prints it: add"
                " {{ memory }} where the facts should go (the default prompt has it)"
            )
        # The messages each recent model call was sent, by call: the next call records only its changes.
        self._sent: IdentityCache[Event, list[Message]] = IdentityCache(_SENT_CACHE_LIMIT)
        self._fixed: dict[Any, tuple[int, int]] = {}  # (counter, variables) -> prompt and schema tokens

    def __repr__(self) -> str:
        return f"Agent(name={self.name!r}, intents={self.toolset.intents})"

    @cached_property
    def intents(self) -> str:
        """The compact rendering of the next-step type (``{{ intents }}`` in the prompt)."""
        return render_intents(self.toolset.tools)

    @cached_property
    def steps(self) -> str:
        """The next steps as JSON lines to copy and fill in (``{{ steps }}``, the default prompt's)."""
        return render_steps(self.toolset.tools)

    def new_thread(self, message: str, **kwargs: Any) -> Thread:
        return Thread.new(UserMessage(content=message), agent=self.name, **kwargs)

    def render(self, thread: Thread, model: Model | None = None) -> list[Message]:
        """The exact messages the model gets for this thread: the prompt with the context in it.

        With a chat format (``ChatFormat``) the context is turns, not text: they take the place of
        ``{{ context }}`` in the prompt (after the prompt's messages if it has none), so each event
        reaches the model once.
        """
        return self._messages(thread, self.render_memory(thread.events, model))

    def _messages(self, thread: Thread, memory: str, blocks: list[str] | None = None) -> list[Message]:
        """The messages; ``blocks``: the context's blocks already rendered (a text format's render joins them)."""
        events = thread.events
        fmt = self.context_format
        chat = fmt.messages(events)
        if chat is not None:
            context = _TURNS
        elif blocks is not None and type(fmt).render is ContextFormat.render:
            context = fmt.separator.join(blocks)
        else:
            context = fmt.render(events)
        messages = self.prompt.render(
            **self.variables,
            agent_name=self.name,
            intents=self.intents,
            steps=self.steps,
            context=context,
            memory=memory,
            thread=thread,
        )
        return messages if chat is None else place_turns(messages, _TURNS, chat)

    def window(self, thread: Thread, model: Model | None = None) -> Window:
        """The window a model call would get for this thread, by section, with the tokens of each part
        (counted for ``model``, default the agent's: exactly where it can count, else its family's estimate)."""
        model = model or self.model
        counter = counter_for(model)
        fmt = self.context_format
        retrieval = self._retrieval_intents
        items: list[Shown] = []
        blocks: list[str] = []
        tokens: list[int] = []
        sections: list[str] = []
        for item in shown_items(thread.events, hide_resolved_errors=fmt.hide_resolved_errors):
            block = fmt.item_block(item)
            if block is None:
                continue
            items.append(item)
            blocks.append(block)
            tokens.append(count(counter, block))
            event = item.event
            sections.append(section_of(event, retrieval) if retrieval else _section_without_search(event.type))
        if blocks:
            tokens[-1] += count(counter, fmt.separator) * (len(blocks) - 1)  # the joins, charged once
        memory = self.render_memory(thread.events, model)
        prompt_tokens, schema = self._fixed_tokens(thread, counter)
        found = sum(t for t, section in zip(tokens, sections, strict=True) if section == "retrieval")
        return Window(
            events=thread.events,
            messages=self._messages(thread, memory, blocks),
            items=items,
            blocks=blocks,
            item_tokens=tokens,
            item_sections=sections,
            sections={
                "prompt": prompt_tokens,
                "memory": count(counter, memory),
                "retrieval": found,
                "history": sum(tokens) - found,
                "schema": schema,
            },
            memory=memory,
            counter=counter,
        )

    def _fixed_tokens(self, thread: Thread, counter: TokenCounter) -> tuple[int, int]:
        """The prompt's own tokens and the schema's: the same at every step unless the template reads the
        thread or a variable changed, so counted once per (counter, variables) where it can be."""
        key: tuple[int, Any] | None = (id(counter), tuple(sorted(self.variables.items())))
        try:
            hash(key)
        except TypeError:
            key = None  # a variable that is a list or dict: count every time
        reusable = key is not None and self.prompt.substitutable
        if reusable and key in self._fixed:
            return self._fixed[key]
        bare = self.prompt.render(
            **self.variables,
            agent_name=self.name,
            intents=self.intents,
            steps=self.steps,
            context="",
            memory="",
            thread=thread,
        )
        used = self.prompt.variables
        schema = (count(counter, self.intents) if "intents" in used else 0) + (
            count(counter, self.steps) if "steps" in used else 0
        )
        fixed = (max(0, sum(count(counter, m.content) for m in bare) - schema), schema)
        if reusable:
            if len(self._fixed) > 64:
                self._fixed.clear()
            self._fixed[key] = fixed
        return fixed

    @cached_property
    def _retrieval_intents(self) -> frozenset[str]:
        return frozenset(intent for intent, cls in self.toolset.by_intent.items() if cls.context_section == "retrieval")

    def render_memory(self, events: Sequence[Event], model: Model | None = None) -> str:
        """The memory section (``{{ memory }}``): the thread's recalled facts within ``memory_tokens`` (empty for an
        agent without memory)."""
        if self.memory is None:
            return ""
        facts = recalled_facts(events)
        if not facts:
            return ""
        return render_memory(facts, budget=self.memory_tokens, counter=counter_for(model or self.model))

    def step(
        self, thread: Thread, *, on_event: EventCallback | None = None, on_delta: DeltaCallback | None = None
    ) -> tuple[Thread, Tool | None]:
        """One decision: call the model until its reply parses; None when the agent escalated instead.

        ``on_delta`` gets the reply's text as it streams in, from a model that streams (``streams``).
        """
        return drive(self.decide(thread, BLOCKING, on_event=on_event, on_delta=on_delta))

    async def astep(
        self,
        thread: Thread,
        *,
        on_event: EventCallback | None = None,
        on_delta: DeltaCallback | None = None,
        calls: Calls | None = None,
    ) -> tuple[Thread, Tool | None]:
        """``step`` on an event loop: the model call is awaited (``acomplete``), nothing blocks the loop."""
        return await self.decide(thread, calls or default_calls(), on_event=on_event, on_delta=on_delta)

    async def decide(
        self,
        thread: Thread,
        calls: Calls,
        *,
        on_event: EventCallback | None = None,
        on_delta: DeltaCallback | None = None,
    ) -> tuple[Thread, Tool | None]:
        """What ``step`` and ``astep`` both run: their one implementation (see ``twelvefactor.calls``)."""
        model = self.model
        if model is None:
            raise UserError(f"agent {self.name!r} has no model: pass model=... (ScriptedModel in tests)")
        base = self.call_options(model)
        streams = on_delta is not None and getattr(model, "streams", False)
        while True:
            if self.budget is not None:
                thread, window = await self._keep_budget(thread, model, calls, on_event)
                if window is None:
                    return thread, None
            else:
                window = self.window(thread, model)
            messages = window.messages
            started = time.perf_counter()
            # A streamed call's pieces name the thread version its model_call event will be appended at.
            options = {**base, "on_delta": _deltas(cast("DeltaCallback", on_delta), thread)} if streams else base
            try:
                with tracing.span(
                    f"chat {model.name}",
                    {"gen_ai.operation.name": "chat", "gen_ai.request.model": model.name, **_ids(self, thread)},
                ) as current:
                    response = await calls.complete(model, messages, options)
                    tracing.set_attributes(current, _usage(response))
            except ModelError as exc:
                thread = self.record_error(thread, "model", str(exc), on_event=on_event)
                if thread.status != "running":
                    return thread, None
                continue
            latency_ms = round((time.perf_counter() - started) * 1000, 3)
            text = _storable(response.text)
            over = len(text) > self.max_output_chars
            request = response.request if self.record_requests else None
            refs: dict[str, int] | None = None
            if request is not None:
                request, refs = sent.strip_request(request, messages)
            call = ModelCall(
                model=_storable(response.model),
                raw=self._cut(text) if over else text,
                input_tokens=response.input_tokens,
                output_tokens=response.output_tokens,
                latency_ms=latency_ms,
                cost_usd=response.cost_usd,
                cached_input_tokens=response.cached_input_tokens,
                cache_write_tokens=response.cache_write_tokens,
                estimated_input_tokens=window.total,
                context_tokens=window.sections,
                finish_reason=_storable(response.finish_reason) if response.finish_reason else None,
                request=request,
                sent=sent.record(messages, self._previous_sent(thread)),
                request_refs=refs or None,
            )
            self._remember(call, messages)
            thread = _append(thread, call, on_event)
            refusal = self._too_long(text) if over else _truncated(response) if response.truncated else None
            if refusal is not None:
                thread = self.record_error(thread, "model", refusal, on_event=on_event)
                if thread.status != "running":
                    return thread, None
                continue
            try:
                intent = self.parse(text)
            except ParseError as exc:
                thread = self.record_error(thread, "parse", str(exc), on_event=on_event)
                if thread.status != "running":
                    return thread, None
                continue
            return thread, intent

    async def _keep_budget(
        self, thread: Thread, model: Model, calls: Calls, on_event: EventCallback | None
    ) -> tuple[Thread, Window | None]:
        """The window within the budget: compaction policies in order while over it (each one that helps
        recorded as an event); still over, a budget error that asks a person (None: no window to send)."""
        budget = self.budget
        assert budget is not None
        window = self.window(thread, model)
        if window.total <= budget.max_tokens:
            return thread, window
        target = budget.target_tokens
        for policy in budget.compaction:
            compaction = await policy.compact(window, target, calls)
            if compaction is None:
                continue
            after = self.window(reduce(thread, compaction), model)
            if after.total >= window.total:
                continue  # it changed nothing that counts: not worth an event
            compaction = compaction.model_copy(
                update={"tokens_before": window.total, "tokens_after": after.total, "budget": budget.max_tokens}
            )
            thread = _append(thread, compaction, on_event)
            window = self.window(thread, model)
            if window.total <= target:
                break
        if window.total <= budget.max_tokens:
            return thread, window
        names = ", ".join(policy.name for policy in budget.compaction) or "none"
        message = (
            f"the context window needs {window.total} tokens, over this agent's budget of {budget.max_tokens}"
            f" even after compaction (policies: {names}); operators: raise ContextBudget.max_tokens or add a"
            " compaction policy"
        )
        return self.record_error(thread, "budget", message, on_event=on_event, escalate=True), None

    def complete(self, model: Model, messages: list[Message]) -> ModelResponse:
        """One model call in this agent's output mode (prompted calls are plain ``complete(messages)``)."""
        return model.complete(messages, **self.call_options(model))

    def call_options(self, model: Model) -> dict[str, Any]:
        """The keyword arguments of a model call in this agent's output mode ({} for a plain prompted call)."""
        if self.output_mode == "prompted":
            if getattr(model, "wants_intents", False):  # a test double that builds steps itself (TestModel)
                return {"output": OutputSpec("prompted", self.toolset.tools)}
            return {}
        modes = getattr(model, "output_modes", frozenset(("prompted",)))
        if self.output_mode not in modes:
            raise UserError(
                f"agent {self.name!r} uses output_mode={self.output_mode!r}, which model {model.name!r} does not"
                f" support ({', '.join(sorted(modes))}); use a provider model or output_mode='prompted'"
            )
        return {"output": OutputSpec(self.output_mode, self.toolset.tools)}

    def parse(self, text: str) -> Tool:
        from twelvefactor.parsing import parse

        intent = cast(Tool, parse(text, self.toolset.union))
        return _without_surrogates(intent) if _SURROGATE_ESCAPE.search(text) else intent

    def _previous_sent(self, thread: Thread) -> list[Message]:
        """The messages the thread's last model call was sent ([] if none, or not recorded)."""
        events = thread.events
        for index in range(len(events) - 1, -1, -1):
            event = events[index]
            if event.type == "model_call":
                cached = self._sent.get(event)
                if cached is not MISSING:
                    return cached
                return sent.sent_messages(thread, index) or []  # a thread loaded from a store: once
        return []

    def _remember(self, call: ModelCall, messages: list[Message]) -> None:
        self._sent.put(call, messages)

    def _cut(self, text: str) -> str:
        limit = self.max_output_chars
        return f"{text[:limit]}\n[{len(text) - limit} more characters not kept: over max_output_chars={limit}]"

    def _too_long(self, text: str) -> str:
        return (
            f"the model's reply was {len(text)} characters, over this agent's limit of {self.max_output_chars},"
            " and was not used; reply with one short next step (operators: raise the agent's max_output_chars)"
        )

    def record_error(
        self,
        thread: Thread,
        source: ErrorSource,
        message: str,
        *,
        call_id: str | None = None,
        on_event: EventCallback | None = None,
        escalate: bool = False,
    ) -> Thread:
        """Append a compact error; escalate to a human after too many in a row (or at once, ``escalate``)."""
        message = _storable(compact(message))  # errors quote model output and provider replies
        thread = _append(thread, Error(source=source, message=message, call_id=call_id), on_event)
        count = consecutive_errors(thread)
        if escalate or count >= self.max_consecutive_errors:
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

    @contextmanager
    def override(self, *, model: Model | str) -> Iterator[Agent]:
        """Use ``model`` for this block, then restore the agent's own (in tests: ``with agent.override(model=
        TestModel()):``). The agent object is shared: do not override while it serves other runs."""
        if isinstance(model, str):
            from twelvefactor.models.resolve import resolve_model

            model = resolve_model(model)
        previous = self.model
        self.model = model
        try:
            yield self
        finally:
            self.model = previous

    def as_tool(
        self, *, name: str | None = None, description: str | None = None, requires_approval: bool = False
    ) -> type[Tool]:
        """This agent as a tool of another: the parent sends a task and gets the final message back.

        With a store, the sub-agent works in a stored thread of its own (``parent_id`` links it to the
        parent, whose ``wait`` event names it), and when it asks a person the parent waits too, until it
        is done. Without a store it runs in memory, and a question it asks is a tool error.
        """

        def delegate(task: Annotated[str, Field(description="the task, in plain words, with all it needs")]) -> str:
            # The loop runs sub-agents itself (``Delegate``): their thread, their pauses, their outcome.
            raise ToolError(f"sub-agent {self.name!r} is run by the loop (twelvefactor.run), not called directly")

        delegate.__doc__ = description or self.description or f"Delegate a task to the {self.name} agent."
        cls = cast(type[Tool], tool(delegate, name=name or self.name, requires_approval=requires_approval))
        cls.sub_agent = self
        return cls


def _section_without_search(kind: str) -> str:
    """The section of a block when the agent has no search tool: only ``retrieved`` events are retrieval."""
    return "retrieval" if kind == "retrieved" else "history"


def _deltas(on_delta: DeltaCallback, thread: Thread) -> Callable[[str], None]:
    """The model's chunk callback for one call: each chunk as a Delta of the event it will become."""
    thread_id, version = thread.id, thread.version

    def chunk(text: str) -> None:
        on_delta(Delta(thread_id, version, text))

    return chunk


def _ids(agent: Agent, thread: Thread) -> dict[str, str]:
    return {"twelvefactor.agent": agent.name, "twelvefactor.thread.id": thread.id}


def _usage(response: ModelResponse) -> dict[str, Any]:
    """A model call's GenAI semantic-convention attributes (the thread has its text, spans do not)."""
    return {
        "gen_ai.response.model": response.model,
        "gen_ai.usage.input_tokens": response.input_tokens,
        "gen_ai.usage.output_tokens": response.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": response.cached_input_tokens,
        "gen_ai.response.finish_reasons": [response.finish_reason] if response.finish_reason else None,
        "twelvefactor.cost_usd": response.cost_usd,
    }


def _storable(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD, so it encodes as UTF-8 (JSON, the stores)."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)


def _storable_value(value: Any) -> Any:
    if isinstance(value, str):
        return _storable(value)
    if isinstance(value, dict):
        return {_storable(str(key)): _storable_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable_value(item) for item in value]
    return value


def _without_surrogates(intent: Tool) -> Tool:
    """The parsed step with every string made storable (the rare path: the reply escaped a surrogate)."""
    data = intent.model_dump(mode="json")
    clean = _storable_value(data)
    if clean == data:
        return intent
    try:
        # JSON-mode validation accepts what JSON-mode serialisation wrote, strict models included.
        return type(intent).model_validate_json(json.dumps(clean))
    except ValueError as exc:
        raise ParseError(f"invalid next step: {compact(str(exc), 300)} (after replacing invalid unicode)") from exc


def _truncated(response: ModelResponse) -> str:
    if response.finish_reason == "repetition":
        return (
            "the model's reply kept repeating the same text and was stopped"
            f" after {response.output_tokens} output tokens; it was not used: reply with one short next step"
        )
    tokens = f" after {response.output_tokens} output tokens" if response.output_tokens is not None else ""
    return (
        f"the model's reply was cut off at its output token limit (finish_reason {response.finish_reason!r}{tokens})"
        " and was not used; reply with a shorter next step (operators: raise the model's max_tokens)"
    )


def consecutive_errors(thread: Thread) -> int:
    """Errors at the end of the thread with nothing but tool calls and records hidden from the context
    (model calls, tool starts) between them."""
    count = 0
    for event in reversed(thread.events):
        if isinstance(event, Error):
            count += 1
        elif isinstance(event, ToolCall) or not event.shown_in_context:
            continue
        else:
            break
    return count
