"""Local servers that speak the providers' documented wire formats, on 127.0.0.1 under uvicorn.

- OpenAI chat completions: ``POST /v1/chat/completions`` with ``Authorization: Bearer KEY``; replies
  carry ``choices[0].message`` (``content`` or ``tool_calls`` with JSON-string ``arguments``),
  ``finish_reason`` (stop, length, tool_calls) and ``usage`` (prompt/completion tokens); errors are
  ``{"error": {"message", "type", "param", "code"}}``. ``response_format`` json_schema with
  ``strict: true`` is checked against the strict-mode rules (every object closed and fully required,
  no ``oneOf``, no unsupported keywords, an object at the root), as the real API does.
- Anthropic messages: ``POST /v1/messages`` with ``x-api-key`` and ``anthropic-version``; ``max_tokens``
  required, ``system`` only at the top level, tools with an object ``input_schema``; replies carry
  ``content`` blocks (``text``, ``tool_use`` with an ``input`` object), ``stop_reason`` (end_turn,
  tool_use, max_tokens) and ``usage``; errors are ``{"type": "error", "error": {"type", "message"}}``.

With ``"stream": true`` both answer in their documented server-sent-events form, built from the same
reply: OpenAI ``data: {chunk}`` lines (``choices[0].delta`` content or tool-call argument pieces, a
chunk with ``finish_reason``, a usage chunk when ``stream_options.include_usage``, ``data: [DONE]``);
Anthropic ``message_start``, ``content_block_start``/``content_block_delta`` (``text_delta``,
``input_json_delta``)/``content_block_stop``, ``message_delta`` (stop reason, output tokens) and
``message_stop``, with a ``ping``. A reply can break its stream after ``break_after`` events: with an
``error`` event (``stream_error``), by ending early (``cut="end"``) or by dropping the connection
(``cut="abort"``).

A test queues :class:`Reply` objects (or gives a responder); a reply with ``step`` is rendered in
whatever form the request asked for: text in prompted mode, ``{"next_step": ...}`` under a schema,
a tool call per intent with tools. Like a strict-mode model, the OpenAI fake fills the optional
fields it was not given with ``null`` when the schema is strict.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from twelvefactor.server.testing import live_server

KEY = "sk-test-0123456789abcdef"
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
UNSUPPORTED = ("minLength", "maxLength", "patternProperties", "propertyNames", "minProperties", "maxProperties")
CONTEXT_LIMIT_CHARS = 20_000


@dataclass
class Reply:
    """What the fake answers next."""

    step: dict[str, Any] | None = None  # the next step, rendered in the request's output form
    text: str | None = None  # plain text content instead
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)  # explicit (name, arguments) calls
    truncate: bool = False  # cut the output and report finish_reason length / stop_reason max_tokens
    status: int = 200
    message: str = "fake error"
    headers: dict[str, str] = field(default_factory=dict)
    raw: str | None = None  # send this body as is (malformed replies)
    delay_s: float = 0.0
    usage: dict[str, Any] | None = None  # report this usage object as is (e.g. with cached tokens)
    chunk_chars: int = 4  # streamed: the size of each text or arguments piece
    break_after: int = 0  # streamed: events sent before the stream breaks (with stream_error or cut)
    stream_error: str | None = None  # streamed: break with an error event saying this
    cut: Literal["end", "abort"] | None = None  # streamed: end early, or drop the connection


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


Responder = Callable[[dict[str, Any]], Reply]


class FakeProvider:
    """One fake provider server; ``requests`` holds every request it received."""

    def __init__(self, kind: Literal["openai", "anthropic"], *, responder: Responder | None = None) -> None:
        self.kind = kind
        self.responder = responder
        self.queue: deque[Reply] = deque()
        self.requests: list[Seen] = []
        self.handled_s: list[float] = []
        self._count = 0

    def push(self, *replies: Reply) -> FakeProvider:
        self.queue.extend(replies)
        return self

    @property
    def bodies(self) -> list[Any]:
        return [seen.body for seen in self.requests]

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Run on 127.0.0.1; yields the base URL a client is configured with."""
        with live_server(self.app()) as url:
            yield f"{url}/v1" if self.kind == "openai" else url

    def app(self) -> FastAPI:
        app = FastAPI()
        path = "/v1/chat/completions" if self.kind == "openai" else "/v1/messages"
        app.add_api_route(path, self._handle, methods=["POST"])
        return app

    async def _handle(self, request: Request) -> Response:
        started = time.perf_counter()
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.requests.append(Seen(request.url.path, headers, body))
        self._count += 1
        if self.kind == "openai":
            response = await self._openai(headers, body)
        else:
            response = await self._anthropic(headers, body)
        self.handled_s.append(time.perf_counter() - started)
        return response

    async def _next(self, body: dict[str, Any]) -> Reply:
        if self.queue:
            reply = self.queue.popleft()
        elif self.responder is not None:
            reply = self.responder(body)
        else:
            reply = Reply(step={"intent": "done_for_now", "message": "ok"})
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return reply

    # --- OpenAI ----------------------------------------------------------------------------------------

    async def _openai(self, headers: dict[str, str], body: Any) -> Response:
        if headers.get("authorization") != f"Bearer {KEY}":
            return _openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        problem = _openai_problem(body)
        if problem:
            return _openai_error(400, problem, None)
        if body["model"] == "no-such-model":
            return _openai_error(404, f"The model `{body['model']}` does not exist.", "model_not_found")
        prompt = sum(len(str(m.get("content", ""))) for m in body["messages"])
        if prompt > CONTEXT_LIMIT_CHARS:
            return _openai_error(
                400,
                f"This model's maximum context length is 5000 tokens; your messages had {prompt // 4}.",
                "context_length_exceeded",
            )
        reply = await self._next(body)
        if reply.raw is not None:
            return Response(reply.raw, status_code=reply.status, headers=reply.headers, media_type="application/json")
        if reply.status >= 400:
            return _openai_error(reply.status, reply.message, None, reply.headers)
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        calls = list(reply.tool_calls)
        if reply.step is not None and body.get("tools"):
            calls.append((reply.step["intent"], {k: v for k, v in reply.step.items() if k != "intent"}))
        if calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{self._count}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
                }
                for i, (name, args) in enumerate(calls)
            ]
            finish = "tool_calls"
        else:
            message["content"] = reply.text if reply.step is None else _openai_content(body, reply.step)
        if reply.truncate:
            finish = "length"
            if message["content"]:
                message["content"] = message["content"][: len(message["content"]) // 2]
            for call in message.get("tool_calls", []):
                call["function"]["arguments"] = call["function"]["arguments"][:-3]
        out = json.dumps(message.get("tool_calls") or message["content"] or "")
        payload = {
            "id": f"chatcmpl-fake-{self._count}",
            "object": "chat.completion",
            "created": 1700000000,
            "model": f"{body['model']}-2025-01-01",
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": reply.usage
            or {
                "prompt_tokens": prompt // 4,
                "completion_tokens": len(out) // 4,
                "total_tokens": prompt // 4 + len(out) // 4,
            },
        }
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return _sse(_openai_events(payload, reply, usage), reply)
        return JSONResponse(payload, headers=reply.headers)

    # --- Anthropic -------------------------------------------------------------------------------------

    async def _anthropic(self, headers: dict[str, str], body: Any) -> Response:  # noqa: C901 - one branch per documented reply form
        if headers.get("x-api-key") != KEY:
            return _anthropic_error(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in headers:
            return _anthropic_error(400, "invalid_request_error", "anthropic-version: header is required")
        problem = _anthropic_problem(body)
        if problem:
            return _anthropic_error(400, "invalid_request_error", problem)
        if body["model"] == "no-such-model":
            return _anthropic_error(404, "not_found_error", f"model: {body['model']}")
        prompt = len(json.dumps(body.get("system", ""))) + sum(len(m["content"]) for m in body["messages"])
        if prompt > CONTEXT_LIMIT_CHARS:
            return _anthropic_error(400, "invalid_request_error", f"prompt is too long: {prompt // 4} tokens > 5000")
        reply = await self._next(body)
        if reply.raw is not None:
            return Response(reply.raw, status_code=reply.status, headers=reply.headers, media_type="application/json")
        if reply.status >= 400:
            kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(reply.status, "api_error")
            return _anthropic_error(reply.status, kind, reply.message, reply.headers)
        content: list[dict[str, Any]] = []
        calls = list(reply.tool_calls)
        if reply.step is not None and body.get("tools"):
            choice = body.get("tool_choice") or {}
            if choice.get("type") == "tool":
                calls.append((choice["name"], {"next_step": reply.step}))
            else:
                calls.append((reply.step["intent"], {k: v for k, v in reply.step.items() if k != "intent"}))
        elif reply.step is not None:
            content.append({"type": "text", "text": json.dumps(reply.step)})
        if reply.text is not None:
            content.append({"type": "text", "text": reply.text})
        for i, (name, args) in enumerate(calls):
            content.append({"type": "tool_use", "id": f"toolu_{self._count}_{i}", "name": name, "input": args})
        stop = "tool_use" if calls else "end_turn"
        if reply.truncate:
            stop = "max_tokens"
            for block in content:
                if block["type"] == "text":
                    block["text"] = block["text"][: len(block["text"]) // 2]
        payload = {
            "id": f"msg_fake_{self._count}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": reply.usage
            or {
                "input_tokens": prompt // 4,
                "output_tokens": len(json.dumps(content)) // 4,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        if body.get("stream"):
            return _sse(_anthropic_events(payload, reply), reply)
        return JSONResponse(payload, headers=reply.headers)


# --- request checks, as the real APIs make them -------------------------------------------------------


def _openai_problem(body: Any) -> str | None:  # noqa: C901 - one check per documented rule
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    if not isinstance(body.get("model"), str):
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    for i, message in enumerate(messages):
        if message.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            return f"Invalid value for 'messages[{i}].role'"
    if "max_tokens" in body and "max_completion_tokens" in body:
        return "max_tokens and max_completion_tokens cannot both be set"
    form = body.get("response_format")
    if form is not None:
        if form.get("type") not in ("text", "json_object", "json_schema"):
            return f"Invalid value for 'response_format.type': {form.get('type')!r}"
        if form["type"] == "json_schema":
            spec = form.get("json_schema") or {}
            if not NAME.match(str(spec.get("name", ""))) or not isinstance(spec.get("schema"), dict):
                return "response_format.json_schema needs a valid 'name' and a 'schema' object"
            if spec.get("strict"):
                problem = strict_problem(spec["schema"])
                if problem:
                    return f"Invalid schema for response_format '{spec['name']}': {problem}"
    tools = body.get("tools")
    if tools is not None:
        for i, tool in enumerate(tools):
            function = tool.get("function") or {}
            if tool.get("type") != "function" or not NAME.match(str(function.get("name", ""))):
                return f"Invalid 'tools[{i}]': a function with a valid name is required"
            if function.get("strict"):
                problem = strict_problem(function.get("parameters") or {})
                if problem:
                    return f"Invalid schema for function '{function['name']}': {problem}"
        choice = body.get("tool_choice", "auto")
        if choice not in ("none", "auto", "required") and not (isinstance(choice, dict) and choice.get("function")):
            return f"Invalid value for 'tool_choice': {choice!r}"
    return None


def strict_problem(schema: Any, where: str = "()", root: bool = True) -> str | None:  # noqa: C901
    """The first violation of OpenAI's strict-mode schema rules, worded like the API."""
    if not isinstance(schema, dict):
        return None
    if root and (schema.get("type") != "object" or "anyOf" in schema):
        return f"In context={where}, schema must be a JSON Schema of 'type: \"object\"', got '{schema.get('type')}'."
    if "oneOf" in schema:
        return f"In context={where}, 'oneOf' is not permitted."
    for key in UNSUPPORTED:
        if key in schema:
            return f"In context={where}, '{key}' is not permitted."
    if "$ref" in schema and len(schema) > 1:
        return f"In context={where}, $ref cannot have keywords {sorted(k for k in schema if k != '$ref')}."
    if schema.get("type") == "object":
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return f"In context={where}, 'additionalProperties' is required to be supplied and to be false."
        missing = [k for k in props if k not in schema.get("required", [])]
        if missing:
            return (
                f"In context={where}, 'required' is required to be supplied and to be an array including"
                f" every key in properties. Missing '{missing[0]}'."
            )
        for key, sub in props.items():
            problem = strict_problem(sub, f"{where}, 'properties', '{key}'", False)
            if problem:
                return problem
    for key in ("anyOf", "allOf"):
        for i, sub in enumerate(schema.get(key, [])):
            problem = strict_problem(sub, f"{where}, '{key}', {i}", False)
            if problem:
                return problem
    if isinstance(schema.get("items"), dict):
        problem = strict_problem(schema["items"], f"{where}, 'items'", False)
        if problem:
            return problem
    for name, sub in schema.get("$defs", {}).items():
        problem = strict_problem(sub, f"('$defs', '{name}')", False)
        if problem:
            return problem
    return None


def _openai_content(body: dict[str, Any], step: dict[str, Any]) -> str:
    form = body.get("response_format") or {}
    if form.get("type") == "json_schema":
        spec = form["json_schema"]
        if spec.get("strict"):
            step = _fill_nulls(step, spec["schema"])
        return json.dumps({"next_step": step})
    if form.get("type") == "json_object" and "schema" in form:
        return json.dumps({"next_step": step})
    return json.dumps(step)


def _fill_nulls(step: dict[str, Any], wrapped: dict[str, Any]) -> dict[str, Any]:
    """What a strict-mode model must do: send every property, null for the ones it has no value for."""
    defs = wrapped.get("$defs", {})
    union = wrapped["properties"]["next_step"]
    for member in union.get("anyOf", [union]):
        if "$ref" in member:
            member = defs[member["$ref"].rsplit("/", 1)[-1]]
        tag = member.get("properties", {}).get("intent", {})
        if step.get("intent") in (tag.get("enum") or [tag.get("const")]):
            return {key: step.get(key) for key in member["properties"]}
    return step


def _anthropic_problem(body: Any) -> str | None:  # noqa: C901 - one check per documented rule
    if not isinstance(body, dict):
        return "There was an issue with your request body: it is not JSON."
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if message.get("role") not in ("user", "assistant"):
            return (
                f"messages.{i}.role: Unexpected role {message.get('role')!r}. The Messages API accepts a top-level"
                ' `system` parameter, not "system" as an input message role.'
            )
        if not isinstance(message.get("content"), str | list):
            return f"messages.{i}.content: Field required"
    system = body.get("system")
    if not (
        system is None
        or isinstance(system, str)
        or (isinstance(system, list) and all(b.get("type") == "text" for b in system))
    ):
        return "system: Input should be a valid string or a list of text blocks"
    names = []
    for i, tool in enumerate(body.get("tools") or []):
        if not NAME.match(str(tool.get("name", ""))):
            return f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"tools.{i}.input_schema.type: Input should be 'object'"
        names.append(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if choice.get("type") not in ("auto", "any", "tool", "none"):
            return "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
        if choice["type"] == "tool" and choice.get("name") not in names:
            return f"tool_choice: tool {choice.get('name')!r} not found in tools"
    return None


def _openai_error(status: int, message: str, code: str | None, headers: dict[str, str] | None = None) -> Response:
    kind = {401: "invalid_request_error", 429: "rate_limit_exceeded"}.get(status, "invalid_request_error")
    if status >= 500:
        kind = "server_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _anthropic_error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"type": "error", "error": {"type": kind, "message": message}}, status_code=status, headers=headers
    )


# --- streams ---------------------------------------------------------------------------------------------


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _openai_events(payload: dict[str, Any], reply: Reply, include_usage: bool) -> list[tuple[str | None, Any]]:
    head = {k: payload[k] for k in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"
    choice = payload["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[str | None, Any]:
        return None, {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    events = [chunk({"role": "assistant", "content": ""})]
    if message["content"]:
        events += [chunk({"content": piece}) for piece in _pieces(message["content"], reply.chunk_chars)]
    for i, call in enumerate(message.get("tool_calls") or ()):
        start = {"index": i, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"]}}
        events.append(chunk({"tool_calls": [{**start, "function": {**start["function"], "arguments": ""}}]}))
        for piece in _pieces(call["function"]["arguments"], reply.chunk_chars):
            events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    events.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        events.append((None, {**head, "choices": [], "usage": payload["usage"]}))
    events.append((None, "[DONE]"))
    return events


def _anthropic_events(payload: dict[str, Any], reply: Reply) -> list[tuple[str | None, Any]]:
    usage = payload["usage"]
    start = {**payload, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[tuple[str | None, Any]] = [("message_start", {"type": "message_start", "message": start})]
    events.append(("ping", {"type": "ping"}))
    for i, block in enumerate(payload["content"]):
        if block["type"] == "text":
            opened, text, kind, field_name = {"type": "text", "text": ""}, block["text"], "text_delta", "text"
        else:
            opened = {**block, "input": {}}
            text, kind, field_name = json.dumps(block["input"]), "input_json_delta", "partial_json"
        events.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": opened}))
        for piece in _pieces(text, reply.chunk_chars):
            delta = {"type": kind, field_name: piece}
            events.append(("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    end = {"stop_reason": payload["stop_reason"], "stop_sequence": None}
    out = {"output_tokens": usage["output_tokens"]}
    events.append(("message_delta", {"type": "message_delta", "delta": end, "usage": out}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _sse(events: list[tuple[str | None, Any]], reply: Reply) -> Response:
    if reply.stream_error is not None or reply.cut is not None:
        events = events[: reply.break_after]
        if reply.stream_error is not None:
            error = {"type": "error", "error": {"type": "overloaded_error", "message": reply.stream_error}}
            events.append(("error", error))

    async def lines() -> Any:
        for name, data in events:
            prefix = f"event: {name}\n" if name else ""
            text = data if isinstance(data, str) else json.dumps(data)
            yield f"{prefix}data: {text}\n\n".encode()
            await asyncio.sleep(0)
        if reply.cut == "abort":
            raise ConnectionAbortedError("the fake drops the connection mid-stream")

    return StreamingResponse(lines(), media_type="text/event-stream", headers=reply.headers)
