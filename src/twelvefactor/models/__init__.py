"""LLM clients and test doubles. Providers (OpenAI-compatible, Anthropic, local) plug in here."""

from twelvefactor.models.base import (
    Message,
    Model,
    ModelResponse,
    check_real_request,
    forbid_real_requests,
    real_requests_allowed,
)
from twelvefactor.models.testing import FunctionModel, ScriptedModel

__all__ = [
    "FunctionModel",
    "Message",
    "Model",
    "ModelResponse",
    "ScriptedModel",
    "check_real_request",
    "forbid_real_requests",
    "real_requests_allowed",
]
