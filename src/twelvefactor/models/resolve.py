"""Model strings: ``PROVIDER:MODEL`` in configuration, a provider object in code.

==============================  ==============================================================
string                          model
==============================  ==============================================================
``openai:gpt-4o-mini``          OpenAI (``OPENAI_API_KEY``; ``OPENAI_BASE_URL`` for any compatible server)
``anthropic:claude-sonnet-4-5`` Anthropic (``ANTHROPIC_API_KEY``)
``azure:DEPLOYMENT``            Azure OpenAI (``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY``)
``openrouter:VENDOR/MODEL``     OpenRouter (``OPENROUTER_API_KEY``)
``vllm:MODEL``                  a vLLM server (``VLLM_BASE_URL``, default http://localhost:8000/v1)
``ollama:MODEL``                Ollama (``OLLAMA_BASE_URL``, default http://localhost:11434/v1)
``lmstudio:MODEL``              LM Studio (``LMSTUDIO_BASE_URL``, default http://localhost:1234/v1)
``llamacpp:MODEL``              llama.cpp's llama-server (``LLAMACPP_BASE_URL``, default :8080)
``llama-cpp-python:MODEL``      ``python -m llama_cpp.server`` (``LLAMA_CPP_PYTHON_BASE_URL``, default :8000)
``replay:PATH``                 the cassette at PATH, replayed offline
``local:NAME`` / ``local:F.gguf`` a GGUF model run in-process (the ``local`` extra)
==============================  ==============================================================

Keyword options go to the provider (``resolve_model("openai:gpt-4o", max_tokens=512)``).
"""

from __future__ import annotations

import importlib
from typing import Any, cast

from twelvefactor.errors import UserError
from twelvefactor.models.base import Model

_ENV = "TWELVEFACTOR_MODEL"


def resolve_model(spec: str | Model, **options: Any) -> Model:
    """The model a string names (see the table above); a Model is returned unchanged."""
    if not isinstance(spec, str):
        return spec
    provider, sep, name = spec.strip().partition(":")
    provider = provider.lower()
    if not sep or not name:
        raise UserError(f"model {spec!r} is not PROVIDER:MODEL; for example openai:gpt-4o-mini, {_known()}")
    if provider == "anthropic":
        from twelvefactor.models.anthropic import AnthropicModel

        return AnthropicModel(name, **options)
    if provider == "replay":
        from twelvefactor.models.cassette import replay

        if options:
            raise UserError(f"replay:PATH takes no options (got {', '.join(sorted(options))}): the cassette has them")
        return replay(name)
    if provider == "local":
        return _local(name, options)
    from twelvefactor.models.openai import PRESETS, OpenAIModel

    if provider in PRESETS:
        return OpenAIModel(name, preset=provider, **options)
    raise UserError(f"unknown model provider {provider!r} in {spec!r}; {_known()}")


def _known() -> str:
    from twelvefactor.models.openai import PRESETS

    return "providers: " + ", ".join(["anthropic", *PRESETS, "replay", "local"])


def _local(name: str, options: dict[str, Any]) -> Model:
    # The seam for in-process models: a `twelvefactor.models.local` module with
    # `from_spec(name, **options) -> Model`, which needs the `local` extra (llama-cpp-python).
    try:
        module = importlib.import_module("twelvefactor.models.local")
    except ModuleNotFoundError as exc:
        if exc.name not in ("twelvefactor.models.local", "llama_cpp"):
            raise
        raise UserError(
            f"local:{name} runs a GGUF model in-process with llama-cpp-python: install the local extra"
            " (pip install 'twelvefactor[local]'); it is not available in this installation"
        ) from exc
    return cast(Model, module.from_spec(name, **options))
