"""OpenAI chat completions, and every server that speaks them: one client, documented presets.

``OpenAIModel("gpt-4o-mini")`` talks to OpenAI (``OPENAI_API_KEY``; ``OPENAI_BASE_URL`` moves it to
any compatible server). A preset names a known server: its default address, where its key and
address come from, and the few places where it differs from OpenAI. ``resolve_model("ollama:llama3.2")``
is ``OpenAIModel("llama3.2", preset="ollama")``.

Presets (default base URL; the variable that overrides it; where the key comes from):

- ``openai``: https://api.openai.com/v1; ``OPENAI_BASE_URL``; ``OPENAI_API_KEY``
- ``azure``: ``$AZURE_OPENAI_ENDPOINT/openai/v1``; ``AZURE_OPENAI_ENDPOINT``; ``AZURE_OPENAI_API_KEY``
  (sent as the ``api-key`` header)
- ``openrouter``: https://openrouter.ai/api/v1; ``OPENROUTER_BASE_URL``; ``OPENROUTER_API_KEY``
- ``vllm``: http://localhost:8000/v1; ``VLLM_BASE_URL``; ``VLLM_API_KEY`` (optional)
- ``ollama``: http://localhost:11434/v1; ``OLLAMA_BASE_URL``; none
- ``lmstudio``: http://localhost:1234/v1; ``LMSTUDIO_BASE_URL``; none
- ``llamacpp``: http://localhost:8080/v1; ``LLAMACPP_BASE_URL``; ``LLAMACPP_API_KEY`` (optional)
- ``llama-cpp-python``: http://localhost:8000/v1; ``LLAMA_CPP_PYTHON_BASE_URL``; none

Azure: the model name is your deployment name; for the older deployment URLs pass
``base_url=".../openai/deployments/NAME"`` and ``api_version="2024-10-21"``. ``llamacpp`` is llama.cpp's
own ``llama-server``; ``llama-cpp-python`` is the Python package's ``python -m llama_cpp.server``, which
takes the schema as ``{"type": "json_object", "schema": ...}`` and refuses ``tool_choice: "required"``,
so that preset sends those forms instead (the model may then answer in text; ``parse()`` reads it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from twelvefactor.errors import UserError
from twelvefactor.models import _schemas
from twelvefactor.models._http import Exchange, RetryPolicy, StreamBroken, WireResponse
from twelvefactor.models._provider import DEFAULT_TIMEOUT_S, HTTPModel, Reply, StreamReader, text_tokens
from twelvefactor.models._stream import DeltaCallback, as_dict, as_index, as_str
from twelvefactor.models.base import Message, OutputSpec
from twelvefactor.models.prices import PriceLike, PriceTable


@dataclass(frozen=True)
class Preset:
    """A known OpenAI-compatible server: where it is, where its key is, and how it differs."""

    name: str
    base_url: str
    base_url_env: str | None
    key_env: str | None
    key_required: bool
    auth: Literal["bearer", "api-key"] = "bearer"
    schema_form: Literal["json_schema", "json_object"] = "json_schema"
    tool_choice: Literal["required", "auto"] = "required"
    parallel_tool_calls: bool = True  # sends parallel_tool_calls: false (one next step per call)
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    strict: bool = True
    url_suffix: str = ""
    priced: bool = False  # list prices apply (hosted); a local server costs what you say it does


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "openai",
            "https://api.openai.com/v1",
            "OPENAI_BASE_URL",
            "OPENAI_API_KEY",
            True,
            max_tokens_field="max_completion_tokens",
            priced=True,
        ),
        Preset(
            "azure",
            "",
            "AZURE_OPENAI_ENDPOINT",
            "AZURE_OPENAI_API_KEY",
            True,
            auth="api-key",
            max_tokens_field="max_completion_tokens",
            url_suffix="/openai/v1",
            priced=True,
        ),
        Preset(
            "openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_BASE_URL", "OPENROUTER_API_KEY", True, priced=True
        ),
        Preset("vllm", "http://localhost:8000/v1", "VLLM_BASE_URL", "VLLM_API_KEY", False),
        Preset("ollama", "http://localhost:11434/v1", "OLLAMA_BASE_URL", None, False),
        Preset("lmstudio", "http://localhost:1234/v1", "LMSTUDIO_BASE_URL", None, False),
        Preset("llamacpp", "http://localhost:8080/v1", "LLAMACPP_BASE_URL", "LLAMACPP_API_KEY", False),
        Preset(
            "llama-cpp-python",
            "http://localhost:8000/v1",
            "LLAMA_CPP_PYTHON_BASE_URL",
            None,
            False,
            schema_form="json_object",
            tool_choice="auto",
            parallel_tool_calls=False,
            strict=False,
        ),
    )
}


class OpenAIModel(HTTPModel):
    """A chat-completions client for OpenAI and every OpenAI-compatible server (see the presets).

    ``max_tokens`` and ``temperature`` are sent only when given; ``extra_body`` is merged into every
    request as is (``{"seed": 7, "top_p": 0.9}``, vendor extras). All three output modes are supported;
    ``strict`` (default: the preset's) sets ``strict: true`` on the schema and the tools.
    """

    provider = "openai"
    endpoint = "chat/completions"

    def __init__(
        self,
        model: str,
        *,
        preset: str = "openai",
        base_url: str | None = None,
        api_key: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        strict: bool | None = None,
        extra_body: Mapping[str, Any] | None = None,
        api_version: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        prices: PriceTable | Mapping[str, PriceLike] | None = None,
        headers: Mapping[str, str] | None = None,
        exchange: Exchange | None = None,
    ) -> None:
        if preset not in PRESETS:
            raise UserError(f"unknown OpenAI-compatible preset {preset!r}; known: {', '.join(PRESETS)}")
        self.preset = PRESETS[preset]
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.strict = self.preset.strict if strict is None else strict
        self.extra_body = dict(extra_body or {})
        self.api_version = api_version
        super().__init__(
            model,
            prefix=preset,
            base_url=base_url or _base_url(self.preset, exchange is not None),
            api_key=api_key,
            key_env=self.preset.key_env,
            key_required=self.preset.key_required,
            timeout_s=timeout_s,
            retry=retry,
            prices=prices if prices is not None or self.preset.priced else PriceTable(),
            headers=headers,
            exchange=exchange,
        )

    def request_url(self) -> str:
        url = f"{self.base_url}/{self.endpoint}"
        return f"{url}?api-version={self.api_version}" if self.api_version else url

    def auth_headers(self) -> dict[str, str]:
        if not self.api_key:
            return {}
        if self.preset.auth == "api-key":
            return {"api-key": self.api_key}
        return {"authorization": f"Bearer {self.api_key}"}

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "preset": self.preset.name,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "strict": self.strict,
            "extra_body": self.extra_body,
            "api_version": self.api_version,
        }
        return {key: value for key, value in options.items() if value not in (None, {})}

    def build_body(self, messages: Sequence[Message], output: OutputSpec | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
        if self.max_tokens is not None:
            body[self.preset.max_tokens_field] = self.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if output is not None and output.mode != "prompted":
            body.update(_structured(output, self.strict, self.preset))
        body.update(self.extra_body)
        return body

    def stream_fields(self) -> dict[str, Any]:
        return {"stream": True, "stream_options": {"include_usage": True}}

    def stream_reader(self, output: OutputSpec | None, on_delta: DeltaCallback | None) -> StreamReader:
        return _ChunkReader(self, output, on_delta)

    def read(self, response: WireResponse, output: OutputSpec | None) -> Reply:
        body = response.body
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(choices, list) or not choices:
            raise self.malformed(response, "a chat completion (no choices)")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(choice, dict) or not isinstance(message, dict):
            raise self.malformed(response, "a chat completion (no message in the first choice)")
        finish = choice.get("finish_reason")
        tools = output.tools if output is not None else ()
        mode = output.mode if output is not None else "prompted"
        text = _content_text(message.get("content"))
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            texts = []
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    raise self.malformed(response, "a tool call (no function name)")
                arguments = function.get("arguments")
                args = arguments if isinstance(arguments, str | dict) else ""
                texts.append(_schemas.tool_call_text(function["name"], args, tools, strict=self.strict))
            text = _schemas.calls_text(texts)
        elif mode == "json_schema":
            text = _schemas.unwrap_text(text, tools, strict=self.strict)
        if not text and isinstance(message.get("refusal"), str):
            text, finish = message["refusal"], "refusal"
        usage: dict[str, Any] = body["usage"] if isinstance(body.get("usage"), dict) else {}
        details = usage.get("prompt_tokens_details")
        return Reply(
            text=text,
            model=body.get("model") if isinstance(body.get("model"), str) else None,
            input_tokens=text_tokens(usage.get("prompt_tokens")),  # cached ones included
            output_tokens=text_tokens(usage.get("completion_tokens")),
            finish_reason=finish if isinstance(finish, str) else None,
            truncated=finish == "length",
            cached_input_tokens=text_tokens(details.get("cached_tokens")) if isinstance(details, dict) else None,
        )


class _ChunkReader(StreamReader):
    """``data: {chunk}`` lines: ``choices[0].delta`` pieces, ``finish_reason``, a usage chunk, ``[DONE]``."""

    def reset(self) -> None:
        super().reset()
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None
        self.model_name: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False

    def event(self, name: str, data: Any) -> None:
        if data == "[DONE]":
            self.done = True
            return
        if not isinstance(data, dict):
            return
        if "error" in data:
            raise self.broken(data)
        if isinstance(data.get("model"), str):
            self.model_name = data["model"]
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]
        choices = data.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        if isinstance(choice.get("finish_reason"), str):
            self.finish = choice["finish_reason"]
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return
        if isinstance(delta.get("refusal"), str):
            self.refusal.append(delta["refusal"])
        text = _content_text(delta.get("content"))
        if text:
            self.content.append(text)
            self.step.text(text)
        for piece in delta.get("tool_calls") or ():
            if isinstance(piece, dict):
                self._tool_call(piece)

    def _tool_call(self, piece: dict[str, Any]) -> None:
        index = as_index(piece.get("index"), len(self.calls))
        call = self.calls.setdefault(index, {"id": None, "type": "function", "function": {"name": None}})
        function = as_dict(piece.get("function"))
        if as_str(piece.get("id")):
            call["id"] = piece["id"]
        name = as_str(function.get("name"))
        if name:
            call["function"]["name"] = name
        arguments = as_str(function.get("arguments")) or ""
        call["function"]["arguments"] = call["function"].get("arguments", "") + arguments
        self.step.tool_call(index, name, arguments)

    def end(self) -> None:
        if not (self.done or self.finish):
            raise StreamBroken("the stream ended before its last chunk")

    def body(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content) or None}
        if self.refusal:
            message["refusal"] = "".join(self.refusal)
        if self.calls:
            message["tool_calls"] = [self.calls[index] for index in sorted(self.calls)]
        body: dict[str, Any] = {"choices": [{"index": 0, "message": message, "finish_reason": self.finish}]}
        if self.model_name is not None:
            body["model"] = self.model_name
        if self.usage is not None:
            body["usage"] = self.usage
        return body


def _base_url(preset: Preset, replaying: bool) -> str:
    configured = os.environ.get(preset.base_url_env) if preset.base_url_env else None
    if configured:
        base = configured.rstrip("/")
        return base if not preset.url_suffix or "/openai" in base else base + preset.url_suffix
    if preset.base_url:
        return preset.base_url
    if replaying:
        return f"https://{preset.name}.invalid"
    raise UserError(
        f"preset {preset.name!r} needs an endpoint: set {preset.base_url_env} (https://RESOURCE.openai.azure.com)"
        " or pass base_url=..."
    )


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts, as some compatible servers send them
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


@lru_cache(maxsize=128)
def _structured(output: OutputSpec, strict: bool, preset: Preset) -> dict[str, Any]:
    """The request fields that hold the model to one next step (cached per agent; read-only)."""
    tools = output.tools
    if output.mode == "json_schema":
        if preset.schema_form == "json_object":
            # A grammar-driven server (llama.cpp) needs the union itself, with `intent` required: the
            # tag's default would otherwise let the grammar accept a step without one.
            return {"response_format": {"type": "json_object", "schema": _schemas.grammar_schema(tools)}}
        wrapped = _schemas.wrapped_union(tools)
        schema = _schemas.strict_schema(wrapped) if strict else wrapped
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": _schemas.WRAPPER, "strict": strict, "schema": schema},
            }
        }
    functions = []
    for name, description, parameters in _schemas.tool_definitions(tools):
        function: dict[str, Any] = {"name": name}
        if description:
            function["description"] = description
        function["parameters"] = _schemas.strict_schema(parameters) if strict else parameters
        if strict:
            function["strict"] = True
        functions.append({"type": "function", "function": function})
    fields: dict[str, Any] = {"tools": functions, "tool_choice": preset.tool_choice}
    if preset.parallel_tool_calls:
        fields["parallel_tool_calls"] = False
    return fields
