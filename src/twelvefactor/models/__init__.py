"""LLM clients and test doubles: OpenAI-compatible servers, Anthropic, record/replay, scripted models.

The providers (and httpx under them) load on first use, so ``import twelvefactor`` stays fast for
code that never calls a real model. ``resolve_model("openai:gpt-4o-mini")`` turns a model string
into a provider; see :mod:`twelvefactor.models.resolve` for every form.
"""

from typing import TYPE_CHECKING, Any

from twelvefactor.models.base import (
    OUTPUT_MODES,
    AsyncModel,
    DeltaCallback,
    Message,
    Model,
    ModelResponse,
    OutputMode,
    OutputSpec,
    StreamingModel,
    StructuredModel,
    check_real_request,
    forbid_real_requests,
    is_loopback,
    real_requests_allowed,
)
from twelvefactor.models.errors import CassetteError, CassetteMismatch, ModelCancelled, ProviderError
from twelvefactor.models.testing import FunctionModel, ScriptedModel, TestModel, valid_arguments

if TYPE_CHECKING:
    from twelvefactor.models._http import RetryPolicy
    from twelvefactor.models._provider import HTTPModel
    from twelvefactor.models.anthropic import AnthropicModel
    from twelvefactor.models.cassette import Cassette, record, replay
    from twelvefactor.models.local import LocalModel
    from twelvefactor.models.openai import PRESETS, OpenAIModel, Preset
    from twelvefactor.models.prices import DEFAULT_PRICES, Price, PriceTable, set_price
    from twelvefactor.models.resolve import resolve_model

_LAZY = {
    "AnthropicModel": "twelvefactor.models.anthropic",
    "Cassette": "twelvefactor.models.cassette",
    "DEFAULT_PRICES": "twelvefactor.models.prices",
    "HTTPModel": "twelvefactor.models._provider",
    "LocalModel": "twelvefactor.models.local",
    "OpenAIModel": "twelvefactor.models.openai",
    "PRESETS": "twelvefactor.models.openai",
    "Preset": "twelvefactor.models.openai",
    "Price": "twelvefactor.models.prices",
    "PriceTable": "twelvefactor.models.prices",
    "RetryPolicy": "twelvefactor.models._http",
    "record": "twelvefactor.models.cassette",
    "replay": "twelvefactor.models.cassette",
    "resolve_model": "twelvefactor.models.resolve",
    "set_price": "twelvefactor.models.prices",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'twelvefactor.models' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "AnthropicModel",
    "AsyncModel",
    "Cassette",
    "CassetteError",
    "CassetteMismatch",
    "DEFAULT_PRICES",
    "DeltaCallback",
    "FunctionModel",
    "HTTPModel",
    "LocalModel",
    "Message",
    "Model",
    "ModelCancelled",
    "ModelResponse",
    "OUTPUT_MODES",
    "OpenAIModel",
    "OutputMode",
    "OutputSpec",
    "PRESETS",
    "Preset",
    "Price",
    "PriceTable",
    "ProviderError",
    "RetryPolicy",
    "ScriptedModel",
    "StreamingModel",
    "StructuredModel",
    "TestModel",
    "check_real_request",
    "forbid_real_requests",
    "is_loopback",
    "real_requests_allowed",
    "record",
    "replay",
    "resolve_model",
    "set_price",
    "valid_arguments",
]
