"""The model interface: messages in, raw text out. Every provider and test double speaks this."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from twelvefactor.errors import ModelRequestsForbidden
from twelvefactor.messages import Message, Role

__all__ = [
    "OUTPUT_MODES",
    "AsyncModel",
    "DeltaCallback",
    "Message",
    "Model",
    "ModelResponse",
    "OutputMode",
    "OutputSpec",
    "Role",
    "StreamingModel",
    "StructuredModel",
]

DeltaCallback = Callable[[str], None]
"""Called with each piece of the reply text as it arrives, in order (see :class:`StreamingModel`)."""

OutputMode = Literal["prompted", "json_schema", "tools"]
"""How the model is held to ONE next step; every mode ends in the same typed intent.

``prompted``: the prompt asks for JSON and ``parse()`` does the rest (every model). ``json_schema``: the
provider enforces the next-step schema (OpenAI ``response_format`` strict, Anthropic one forced tool).
``tools``: one native tool per intent; the tool call comes back as ``{"intent": name, **arguments}``.
"""

OUTPUT_MODES: frozenset[OutputMode] = frozenset(("prompted", "json_schema", "tools"))


class ModelResponse(BaseModel):
    """What a model call returned: the raw text and the accounting the provider reported.

    Providers also return the exact request body they sent (``request``), why the model stopped
    (``finish_reason``), whether the reply was cut off at the output token limit (``truncated``: the
    agent records an error instead of using it) and the cost from the price table (``cost_usd``).
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    text: str
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    request: dict[str, Any] | None = None
    finish_reason: str | None = None
    truncated: bool = False
    cost_usd: float | None = None
    cached_input_tokens: int | None = None  # of input_tokens, read from the provider's prompt cache
    cache_write_tokens: int | None = None  # of input_tokens, written to it (Anthropic)


@dataclass(frozen=True)
class OutputSpec:
    """What an agent asks of a structured model call: the output mode and the intents to choose from."""

    mode: OutputMode
    tools: tuple[type[BaseModel], ...]


@runtime_checkable
class Model(Protocol):
    """Anything with a name and ``complete(messages) -> ModelResponse``."""

    @property
    def name(self) -> str: ...

    def complete(self, messages: Sequence[Message]) -> ModelResponse: ...


class StructuredModel(Protocol):
    """A model that can also enforce the next-step schema (``output_modes`` lists what it supports).

    The agent passes ``output`` only when its output mode is not ``prompted``, so a plain :class:`Model`
    keeps working unchanged.
    """

    @property
    def name(self) -> str: ...

    @property
    def output_modes(self) -> frozenset[OutputMode]: ...

    def complete(self, messages: Sequence[Message], *, output: OutputSpec | None = None) -> ModelResponse: ...


@runtime_checkable
class AsyncModel(Protocol):
    """A model with an async face: ``await acomplete(messages, output=...)`` beside ``complete``.

    Every model that ships has one; the agent's async loop uses it when present (a plain :class:`Model`
    is then called in a worker thread).
    """

    @property
    def name(self) -> str: ...

    def complete(self, messages: Sequence[Message], *, output: OutputSpec | None = None) -> ModelResponse: ...

    async def acomplete(self, messages: Sequence[Message], *, output: OutputSpec | None = None) -> ModelResponse: ...


class StreamingModel(Protocol):
    """A model that streams its reply: ``streams`` is True and both faces take ``on_delta``.

    ``on_delta(chunk)`` is called with each piece of the reply text as it arrives, in order; the returned
    ModelResponse is the one the call returns without streaming. In ``prompted`` mode the pieces add up
    to ``ModelResponse.text``; in the structured modes they are the step's JSON as the provider writes it,
    which parses (also partially) to the same fields (``twelvefactor.models._stream`` has the details).
    An exception raised by ``on_delta`` is logged once and ends the streaming to it; the call goes on.
    The loop passes ``on_delta`` only to models whose ``streams`` is True.
    """

    @property
    def name(self) -> str: ...

    @property
    def streams(self) -> bool: ...

    def complete(
        self,
        messages: Sequence[Message],
        *,
        output: OutputSpec | None = None,
        on_delta: DeltaCallback | None = None,
    ) -> ModelResponse: ...

    async def acomplete(
        self,
        messages: Sequence[Message],
        *,
        output: OutputSpec | None = None,
        on_delta: DeltaCallback | None = None,
    ) -> ModelResponse: ...


_LOOPBACK_HOSTS = frozenset(("localhost", "127.0.0.1", "::1", "[::1]"))


@lru_cache(maxsize=256)
def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (127.0.0.0/8, ::1 or localhost)."""
    from urllib.parse import urlsplit

    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    return host in _LOOPBACK_HOSTS or host.startswith("127.") or host.endswith(".localhost")


_ENV_SWITCH = "TWELVEFACTOR_ALLOW_MODEL_REQUESTS"
_allow_override: list[bool] = []


def real_requests_allowed() -> bool:
    """False inside ``forbid_real_requests()`` or when TWELVEFACTOR_ALLOW_MODEL_REQUESTS=0."""
    if _allow_override:
        return _allow_override[-1]
    return os.environ.get(_ENV_SWITCH, "1").lower() not in ("0", "false", "no")


def check_real_request(model_name: str, url: str | None = None) -> None:
    """Providers call this before any network request; test doubles never do.

    A request to a server on this machine (``url`` on 127.0.0.1, ::1 or localhost: a local vLLM,
    Ollama, llama.cpp server, or the fake provider servers of a test suite) is not a real provider
    request: it never leaves the machine, so it is allowed even inside ``forbid_real_requests()``.
    """
    if url is not None and is_loopback(url):
        return
    if not real_requests_allowed():
        raise ModelRequestsForbidden(
            f"a real request to model {model_name!r} was attempted while real model requests are forbidden;"
            " use ScriptedModel/FunctionModel in tests, or allow requests"
            f" (unset {_ENV_SWITCH} / leave forbid_real_requests())"
        )


@contextmanager
def forbid_real_requests(forbid: bool = True) -> Iterator[None]:
    """Within this block a real model request raises ModelRequestsForbidden (for test suites)."""
    _allow_override.append(not forbid)
    try:
        yield
    finally:
        _allow_override.pop()
