"""Anthropic's Messages API over plain HTTP (no SDK): ``AnthropicModel("claude-sonnet-4-5")``.

The key comes from ``ANTHROPIC_API_KEY`` and the address from ``ANTHROPIC_BASE_URL`` (default
https://api.anthropic.com), as with Anthropic's own SDK. System messages go to the top-level
``system`` field (they must come before the conversation). The three output modes:

- ``prompted``: the messages as rendered; ``parse()`` reads the reply text.
- ``json_schema``: one tool, ``next_step``, whose ``input_schema`` is ``{"next_step": <the union>}``,
  forced with ``tool_choice`` (so the reply is the tool's input).
- ``tools``: one tool per intent (description: the tool's docstring), ``tool_choice: any`` with
  parallel tool use off; the ``tool_use`` block comes back as ``{"intent": name, **input}``.

Forced tool use does not combine with extended thinking; use ``prompted`` with thinking models.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from twelvefactor.errors import UserError
from twelvefactor.models import _schemas
from twelvefactor.models._http import Exchange, RetryPolicy, StreamBroken, WireResponse
from twelvefactor.models._provider import DEFAULT_TIMEOUT_S, HTTPModel, Reply, StreamReader, text_tokens
from twelvefactor.models._stream import DeltaCallback, as_dict, as_index, as_str
from twelvefactor.models.base import Message, OutputSpec
from twelvefactor.models.prices import PriceLike, PriceTable

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"


class AnthropicModel(HTTPModel):
    """A Messages API client. ``max_tokens`` is required by the API (default 4096)."""

    provider = "anthropic"
    endpoint = "v1/messages"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_tokens: int = 4096,
        temperature: float | None = None,
        extra_body: Mapping[str, Any] | None = None,
        anthropic_version: str = ANTHROPIC_VERSION,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        prices: PriceTable | Mapping[str, PriceLike] | None = None,
        headers: Mapping[str, str] | None = None,
        exchange: Exchange | None = None,
    ) -> None:
        if max_tokens < 1:
            raise UserError(f"max_tokens must be at least 1, got {max_tokens!r}")
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.extra_body = dict(extra_body or {})
        self.anthropic_version = anthropic_version
        super().__init__(
            model,
            prefix="anthropic",
            base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL,
            api_key=api_key,
            key_env="ANTHROPIC_API_KEY",
            key_required=True,
            timeout_s=timeout_s,
            retry=retry,
            prices=prices,
            headers=headers,
            exchange=exchange,
        )

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.anthropic_version}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "extra_body": self.extra_body,
            "anthropic_version": self.anthropic_version,
        }
        return {key: value for key, value in options.items() if value not in (None, {})}

    def build_body(self, messages: Sequence[Message], output: OutputSpec | None) -> dict[str, Any]:
        system: list[str] = []
        turns: list[dict[str, str]] = []
        for index, message in enumerate(messages):
            if message.role != "system":
                turns.append({"role": message.role, "content": message.content})
            elif turns:
                raise UserError(
                    f"{self.name}: message {index} is a system message after the conversation started;"
                    " Anthropic takes system text only before the first user message: move it to the top"
                )
            else:
                system.append(message.content)
        if not turns:
            raise UserError(f"{self.name}: the prompt has no user message; add {{{{ role('user') }}}} and the context")
        body: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens}
        if len(system) == 1:
            body["system"] = system[0]
        elif system:
            body["system"] = [{"type": "text", "text": text} for text in system]
        body["messages"] = turns
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if output is not None and output.mode != "prompted":
            body.update(_structured(output))
        body.update(self.extra_body)
        return body

    def stream_fields(self) -> dict[str, Any]:
        return {"stream": True}

    def stream_reader(self, output: OutputSpec | None, on_delta: DeltaCallback | None) -> StreamReader:
        return _EventReader(self, output, on_delta)

    def read(self, response: WireResponse, output: OutputSpec | None) -> Reply:
        body = response.body
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(content, list):
            raise self.malformed(response, "an Anthropic message (no content list)")
        blocks = [block for block in content if isinstance(block, dict)]
        uses = [block for block in blocks if block.get("type") == "tool_use"]
        tools = output.tools if output is not None else ()
        if output is not None and output.mode == "json_schema" and uses:
            given = uses[0].get("input")
            step = given.get(_schemas.WRAPPER, given) if isinstance(given, dict) else given
            text = step if isinstance(step, str) else json.dumps(step)
        elif uses:
            texts = []
            for use in uses:
                if not isinstance(use.get("name"), str):
                    raise self.malformed(response, "a tool_use block (no name)")
                given = use.get("input")
                texts.append(
                    _schemas.tool_call_text(use["name"], given if isinstance(given, dict) else {}, tools, strict=False)
                )
            text = _schemas.calls_text(texts)
        else:
            text = "".join(b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str))
        usage: dict[str, Any] = body["usage"] if isinstance(body.get("usage"), dict) else {}
        counts = [
            text_tokens(usage.get(key))
            for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        ]
        known = [count for count in counts if count is not None]
        stop = body.get("stop_reason")
        return Reply(
            text=text,
            model=body.get("model") if isinstance(body.get("model"), str) else None,
            # Every input token, as OpenAI counts them; the cached ones are priced at their own rates.
            input_tokens=sum(known) if known else None,
            output_tokens=text_tokens(usage.get("output_tokens")),
            finish_reason=stop if isinstance(stop, str) else None,
            truncated=stop == "max_tokens",
            cached_input_tokens=counts[2] or None,
            cache_write_tokens=counts[1] or None,
        )


class _EventReader(StreamReader):
    """Messages API events: ``message_start``, ``content_block_start``/``_delta``/``_stop``,
    ``message_delta`` (stop reason, output tokens), ``message_stop``, ``ping`` and ``error``."""

    def reset(self) -> None:
        super().reset()
        self.message: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial: dict[int, list[str]] = {}
        self.usage: dict[str, Any] = {}
        self.stop: str | None = None
        self.done = False

    def event(self, name: str, data: Any) -> None:
        kind = data.get("type", name) if isinstance(data, dict) else name
        if kind == "error":
            raise self.broken(data)
        if not isinstance(data, dict):
            return
        if kind == "message_start" and isinstance(data.get("message"), dict):
            self.message = data["message"]
            if isinstance(self.message.get("usage"), dict):
                self.usage.update(self.message["usage"])
        elif kind == "content_block_start" and isinstance(data.get("content_block"), dict):
            index = as_index(data.get("index"), len(self.blocks))
            block = dict(data["content_block"])
            self.blocks[index] = block
            if block.get("type") == "tool_use":
                self.partial[index] = []
                self.step.tool_call(index, as_str(block.get("name")), "")
            elif isinstance(block.get("text"), str) and block["text"]:
                self.step.text(block["text"])
        elif kind == "content_block_delta" and isinstance(data.get("delta"), dict):
            self._delta(data.get("index"), data["delta"])
        elif kind == "message_delta":
            delta = as_dict(data.get("delta"))
            if isinstance(delta.get("stop_reason"), str):
                self.stop = delta["stop_reason"]
            if isinstance(data.get("usage"), dict):
                self.usage.update(data["usage"])
        elif kind == "message_stop":
            self.done = True

    def _delta(self, at: Any, delta: dict[str, Any]) -> None:
        index = as_index(at, -1)
        block = self.blocks.get(index)
        if block is None:
            return
        if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
            block["text"] = block.get("text", "") + delta["text"]
            self.step.text(delta["text"])
        elif delta.get("type") == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            self.partial.setdefault(index, []).append(delta["partial_json"])
            self.step.tool_call(index, None, delta["partial_json"])

    def end(self) -> None:
        if not self.done:
            raise StreamBroken("the stream ended before message_stop")

    def body(self) -> dict[str, Any]:
        content = []
        for index in sorted(self.blocks):
            block = dict(self.blocks[index])
            if index in self.partial:
                raw = "".join(self.partial[index])
                try:
                    block["input"] = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    block["input"] = raw  # a cut-off call: read() keeps what it can
            content.append(block)
        return {**self.message, "content": content, "stop_reason": self.stop, "usage": self.usage}


@lru_cache(maxsize=128)
def _structured(output: OutputSpec) -> dict[str, Any]:
    """The tools and forced tool choice that hold the model to one next step (cached; read-only)."""
    if output.mode == "json_schema":
        return {
            "tools": [{"name": _schemas.WRAPPER, "input_schema": _clean(_schemas.wrapped_union(output.tools))}],
            "tool_choice": {"type": "tool", "name": _schemas.WRAPPER, "disable_parallel_tool_use": True},
        }
    tools = []
    for name, description, parameters in _schemas.tool_definitions(output.tools):
        tool: dict[str, Any] = {"name": name}
        if description:
            tool["description"] = description
        tool["input_schema"] = _clean(parameters)
        tools.append(tool)
    return {"tools": tools, "tool_choice": {"type": "any", "disable_parallel_tool_use": True}}


def _clean(node: Any) -> Any:
    """The schema without pydantic's ``title`` and OpenAPI's ``discriminator`` (noise to this API)."""
    if isinstance(node, list):
        return [_clean(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("title", "discriminator"):
            continue
        out[key] = {k: _clean(v) for k, v in value.items()} if key in ("properties", "$defs") else _clean(value)
    return out
