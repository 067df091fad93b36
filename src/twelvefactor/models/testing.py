"""Test doubles that ship with the library, so users test their agents the way we test ours."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twelvefactor.errors import ModelError
from twelvefactor.models.base import OUTPUT_MODES, Message, ModelResponse, OutputMode, OutputSpec


def _as_text(output: str | dict[str, Any]) -> str:
    return output if isinstance(output, str) else json.dumps(output)


def _estimate_tokens(text: str) -> int:
    # ~4 characters per token for English and JSON; good enough for budgets in tests.
    return max(1, len(text) // 4)


class ScriptedModel:
    """Returns queued raw outputs in order (strings, or dicts dumped as JSON).

    Raises ModelError when the script runs out, naming how many outputs were used. ``calls`` keeps
    every message list it received. It serves every output mode: the script holds the next steps
    themselves, whichever way a real provider would have been held to them.
    """

    output_modes: frozenset[OutputMode] = OUTPUT_MODES

    def __init__(self, outputs: Iterable[str | dict[str, Any]], *, name: str = "scripted") -> None:
        self._outputs = deque(_as_text(output) for output in outputs)
        self._name = name
        self.calls: list[list[Message]] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def remaining(self) -> int:
        return len(self._outputs)

    def complete(self, messages: Sequence[Message], *, output: OutputSpec | None = None) -> ModelResponse:
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


class FunctionModel:
    """Calls ``fn(messages)`` for each step; fn returns raw text, a dict (sent as JSON) or a ModelResponse.

    Like :class:`ScriptedModel` it serves every output mode: ``fn`` returns the next step itself.
    """

    output_modes: frozenset[OutputMode] = OUTPUT_MODES

    def __init__(self, fn: ModelFunction, *, name: str | None = None) -> None:
        self._fn = fn
        self._name = name or f"function:{getattr(fn, '__name__', 'model')}"

    @property
    def name(self) -> str:
        return self._name

    def complete(self, messages: Sequence[Message], *, output: OutputSpec | None = None) -> ModelResponse:
        result = self._fn(messages)
        if isinstance(result, ModelResponse):
            return result
        text = _as_text(result)
        return ModelResponse(
            text=text,
            model=self._name,
            input_tokens=sum(_estimate_tokens(m.content) for m in messages),
            output_tokens=_estimate_tokens(text),
        )
