"""The model interface: messages in, raw text out. Every provider and test double speaks this."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from twelvefactor.errors import ModelRequestsForbidden

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One chat message exactly as sent to the model."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    role: Role
    content: str


class ModelResponse(BaseModel):
    """What a model call returned: the raw text and the accounting the provider reported."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    text: str
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None


@runtime_checkable
class Model(Protocol):
    """Anything with a name and ``complete(messages) -> ModelResponse``."""

    @property
    def name(self) -> str: ...

    def complete(self, messages: Sequence[Message]) -> ModelResponse: ...


_ENV_SWITCH = "TWELVEFACTOR_ALLOW_MODEL_REQUESTS"
_allow_override: list[bool] = []


def real_requests_allowed() -> bool:
    """False inside ``forbid_real_requests()`` or when TWELVEFACTOR_ALLOW_MODEL_REQUESTS=0."""
    if _allow_override:
        return _allow_override[-1]
    return os.environ.get(_ENV_SWITCH, "1").lower() not in ("0", "false", "no")


def check_real_request(model_name: str) -> None:
    """Providers call this before any network request; test doubles never do."""
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
