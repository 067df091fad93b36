"""Test doubles that ship with the library, so users test their agents the way we test ours.

Each has both faces (``complete`` and ``acomplete``) and streams (``streams = True``): given ``on_delta``,
it hands over its reply text in pieces of ``chunk_chars`` characters (``chunk_delay_s`` apart, to stand in
for a model that takes its time), and returns the same response as without streaming.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from twelvefactor._aio import run_coroutine
from twelvefactor.errors import ModelError, UserError
from twelvefactor.models.base import OUTPUT_MODES, DeltaCallback, Message, ModelResponse, OutputMode, OutputSpec
from twelvefactor.tokens import estimate_tokens

DEFAULT_CHUNK_CHARS = 8

_T = TypeVar("_T")


def _as_text(output: str | dict[str, Any]) -> str:
    return output if isinstance(output, str) else json.dumps(output)


def _estimate_tokens(text: str) -> int:
    return max(1, estimate_tokens(text))  # the one estimate (context.py); a reply is never 0 tokens


class _Streams:
    """Both faces of a double whose next reply is ``_next(messages, output)``, and how it hands its text to
    ``on_delta``: in pieces, optionally paced."""

    streams: bool = True
    _name: str

    def _next(self, messages: Sequence[Message], output: OutputSpec | None) -> ModelResponse:
        raise NotImplementedError

    def complete(
        self,
        messages: Sequence[Message],
        *,
        output: OutputSpec | None = None,
        on_delta: DeltaCallback | None = None,
    ) -> ModelResponse:
        response = self._next(messages, output)
        self._stream(response.text, on_delta)
        return response

    async def acomplete(
        self,
        messages: Sequence[Message],
        *,
        output: OutputSpec | None = None,
        on_delta: DeltaCallback | None = None,
    ) -> ModelResponse:
        response = self._next(messages, output)
        await self._astream(response.text, on_delta)
        return response

    def _setup_stream(self, chunk_chars: int, chunk_delay_s: float) -> None:
        if chunk_chars < 1 or chunk_delay_s < 0:
            raise UserError(
                "chunk_chars must be at least 1 and chunk_delay_s not negative"
                f" (got {chunk_chars!r}, {chunk_delay_s!r})"
            )
        self.chunk_chars = chunk_chars
        self.chunk_delay_s = chunk_delay_s

    def _chunks(self, text: str) -> list[str]:
        return [text[i : i + self.chunk_chars] for i in range(0, len(text), self.chunk_chars)]

    def _stream(self, text: str, on_delta: DeltaCallback | None) -> None:
        if on_delta is None:
            return
        from twelvefactor.models._stream import Deltas  # only when streaming: the import stays small

        deltas = Deltas(on_delta, self._name)
        for k, chunk in enumerate(self._chunks(text)):
            if k and self.chunk_delay_s:
                time.sleep(self.chunk_delay_s)
            deltas.emit(chunk)

    async def _astream(self, text: str, on_delta: DeltaCallback | None) -> None:
        if on_delta is None:
            return
        from twelvefactor.models._stream import Deltas

        deltas = Deltas(on_delta, self._name)
        for k, chunk in enumerate(self._chunks(text)):
            if k and self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
            deltas.emit(chunk)


class ScriptedModel(_Streams):
    """Returns queued raw outputs in order (strings, or dicts dumped as JSON).

    Raises ModelError when the script runs out, naming how many outputs were used. ``calls`` keeps
    every message list it received. It serves every output mode: the script holds the next steps
    themselves, whichever way a real provider would have been held to them. Streamed, each output goes
    out in pieces of ``chunk_chars`` characters, ``chunk_delay_s`` apart.
    """

    output_modes: frozenset[OutputMode] = OUTPUT_MODES

    def __init__(
        self,
        outputs: Iterable[str | dict[str, Any]],
        *,
        name: str = "scripted",
        chunk_chars: int = DEFAULT_CHUNK_CHARS,
        chunk_delay_s: float = 0.0,
    ) -> None:
        self._outputs = deque(_as_text(output) for output in outputs)
        self._name = name
        self._setup_stream(chunk_chars, chunk_delay_s)
        self.calls: list[list[Message]] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def remaining(self) -> int:
        return len(self._outputs)

    def _next(self, messages: Sequence[Message], output: OutputSpec | None) -> ModelResponse:
        self.calls.append(list(messages))
        if not self._outputs:
            raise ModelError(f"scripted model {self._name!r} has no output left after {len(self.calls) - 1} calls")
        text = self._outputs.popleft()
        return ModelResponse(
            text=text,
            model=self._name,
            input_tokens=sum(_estimate_tokens(m.content) for m in messages),
            output_tokens=_estimate_tokens(text),
        )


ModelFunction = Callable[[Sequence[Message]], "str | dict[str, Any] | ModelResponse"]
AsyncModelFunction = Callable[[Sequence[Message]], Awaitable["str | dict[str, Any] | ModelResponse"]]


class FunctionModel(_Streams):
    """Calls ``fn(messages)`` for each step; fn returns raw text, a dict (sent as JSON) or a ModelResponse.

    ``fn`` may be ``async def``: ``acomplete`` awaits it, and ``complete`` runs it to the end with
    ``asyncio.run`` (in a thread of its own when this thread already runs an event loop). A plain ``fn``
    is called inline by both faces. Like :class:`ScriptedModel` it serves every output mode (``fn``
    returns the next step itself) and streams its text in pieces.
    """

    output_modes: frozenset[OutputMode] = OUTPUT_MODES

    def __init__(
        self,
        fn: ModelFunction | AsyncModelFunction,
        *,
        name: str | None = None,
        chunk_chars: int = DEFAULT_CHUNK_CHARS,
        chunk_delay_s: float = 0.0,
    ) -> None:
        self._fn = fn
        self._name = name or f"function:{getattr(fn, '__name__', 'model')}"
        self._setup_stream(chunk_chars, chunk_delay_s)

    @property
    def name(self) -> str:
        return self._name

    def complete(
        self,
        messages: Sequence[Message],
        *,
        output: OutputSpec | None = None,
        on_delta: DeltaCallback | None = None,
    ) -> ModelResponse:
        result = self._fn(messages)
        if inspect.isawaitable(result):
            result = run_coroutine(_awaited(result))
        response = self._response(messages, result)
        self._stream(response.text, on_delta)
        return response

    async def acomplete(
        self,
        messages: Sequence[Message],
        *,
        output: OutputSpec | None = None,
        on_delta: DeltaCallback | None = None,
    ) -> ModelResponse:
        result = self._fn(messages)
        if inspect.isawaitable(result):
            result = await result
        response = self._response(messages, result)
        await self._astream(response.text, on_delta)
        return response

    def _response(self, messages: Sequence[Message], result: str | dict[str, Any] | ModelResponse) -> ModelResponse:
        if isinstance(result, ModelResponse):
            return result
        text = _as_text(result)
        return ModelResponse(
            text=text,
            model=self._name,
            input_tokens=sum(_estimate_tokens(m.content) for m in messages),
            output_tokens=_estimate_tokens(text),
        )


async def _awaited(awaitable: Awaitable[_T]) -> _T:
    return await awaitable


class TestModel(_Streams):
    """A model that needs no script: it calls each of the agent's tools once, in order, with arguments
    built from the tool's own schema, then finishes with ``done_for_now``.

    ``call_tools`` picks which intents to call (default: every tool of the agent but the built-ins),
    ``arguments`` gives your own arguments per intent (sent as given), ``final`` the last message. It
    reads the agent's intents from each call (every output mode), keeps its place across calls, and
    starts over after finishing, so one TestModel drives one run at a time. ``calls`` keeps every
    message list it received.
    """

    __test__ = False  # not a pytest test class, despite its name
    output_modes: frozenset[OutputMode] = OUTPUT_MODES
    wants_intents = True  # the agent passes its intents also in prompted mode

    def __init__(
        self,
        *,
        call_tools: Sequence[str] | None = None,
        arguments: dict[str, dict[str, Any]] | None = None,
        final: str = "done",
        name: str = "test",
        chunk_chars: int = DEFAULT_CHUNK_CHARS,
        chunk_delay_s: float = 0.0,
    ) -> None:
        self._setup_stream(chunk_chars, chunk_delay_s)
        self._call_tools = list(call_tools) if call_tools is not None else None
        self._arguments = dict(arguments or {})
        self._final = final
        self._name = name
        self._position = 0
        self.calls: list[list[Message]] = []

    @property
    def name(self) -> str:
        return self._name

    def _next(self, messages: Sequence[Message], output: OutputSpec | None) -> ModelResponse:
        from twelvefactor.tools import BUILTIN_TOOLS, intent_of

        self.calls.append(list(messages))
        if output is None:
            raise UserError("TestModel builds next steps from the agent's intents: use it as an Agent's model")
        tools = {intent_of(cls): cls for cls in output.tools}
        wanted = self._call_tools
        if wanted is None:
            wanted = [name for name, cls in tools.items() if cls not in BUILTIN_TOOLS]
        unknown = [name for name in wanted if name not in tools]
        if unknown:
            raise UserError(f"TestModel: {unknown[0]!r} is not one of the agent's intents ({', '.join(tools)})")
        if self._position < len(wanted):
            intent = wanted[self._position]
            self._position += 1
            given = self._arguments.get(intent)
            step: dict[str, Any] = {
                "intent": intent,
                **(given if given is not None else valid_arguments(tools[intent])),
            }
        else:
            self._position = 0
            step = {"intent": "done_for_now", "message": self._final}
        text = json.dumps(step)
        return ModelResponse(
            text=text,
            model=self._name,
            input_tokens=sum(_estimate_tokens(m.content) for m in messages),
            output_tokens=_estimate_tokens(text),
        )


def valid_arguments(tool_class: type[Any]) -> dict[str, Any]:
    """Arguments that validate against a tool's schema (its constraints included), built from the schema.

    The smallest values that fit: ``minimum``, ``minLength`` characters, ``minItems`` elements, the first
    enum value, a string matching a simple ``pattern``; optional fields are left out. UserError if what
    was built does not validate (say, a pattern too rich to satisfy): pass your own arguments instead.
    """
    from pydantic import ValidationError

    from twelvefactor.models._examples import example_for

    schema = tool_class.model_json_schema()
    data = example_for(schema, schema.get("$defs", {}))
    arguments = {key: value for key, value in (data or {}).items() if key != "intent"}
    name = tool_class.__name__
    try:
        tool_class.model_validate({**arguments, "intent": _intent_literal(tool_class)})
    except ValidationError as exc:
        raise UserError(f"cannot build valid arguments for {name}: {exc.errors()[0]['msg']}; pass them") from exc
    return arguments


def _intent_literal(tool_class: type[Any]) -> Any:
    from twelvefactor.tools import intent_of

    return intent_of(tool_class)
