"""Per-call client overhead of the model providers, against an instant local server (figures, not a test).

A tiny ASGI app under uvicorn, in its own process on 127.0.0.1, answers chat completions and Anthropic
messages at once and reports how long it spent on each request (``x-handled-us``). For each provider and
output mode this prints, per call (p50 and p95, µs):

- ``complete()``: wall time of one ``model.complete(messages)``, as an agent step sees it;
- ``server``: the server's own handling time (read body, answer);
- ``client``: ``complete()`` minus ``server`` (the issue's figure: loopback TCP, HTTP on both sides,
  and everything the client does);
- ``raw httpx``: the same request body POSTed with a bare ``httpx.Client`` (the transport floor);
- ``ours``: ``complete()`` minus the bare POST made right after it (what twelvefactor adds: building
  the body, JSON, reading the reply, accounting, the cancellable transport);
- ``no-net``: ``complete()`` with the network replaced by a canned reply (the same work, no noise).

Also the import time of ``twelvefactor``, of the provider modules and of httpx (fresh interpreters),
and the accounting one agent run records (tokens, latency, model, cost).

    python bench/provider_overhead.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-bench-0000000000000000"

OPENAI_REPLY = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": '{"intent": "add", "a": 3, "b": 4}', "refusal": None},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 412, "completion_tokens": 14, "total_tokens": 426},
}
OPENAI_TOOL_REPLY = {
    **OPENAI_REPLY,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 3, "b": 4}'}}
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
}
OPENAI_SCHEMA_REPLY = {
    **OPENAI_REPLY,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": '{"next_step": {"intent": "add", "a": 3, "b": 4}}'},
            "finish_reason": "stop",
        }
    ],
}
ANTHROPIC_REPLY = {
    "id": "msg_bench",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5-20251001",
    "content": [{"type": "text", "text": '{"intent": "add", "a": 3, "b": 4}'}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 412, "output_tokens": 14},
}


# --- the server (run in its own process) ---------------------------------------------------------------


def serve(port: int) -> None:
    import uvicorn

    replies = {
        "prompted": json.dumps(OPENAI_REPLY).encode(),
        "tools": json.dumps(OPENAI_TOOL_REPLY).encode(),
        "json_schema": json.dumps(OPENAI_SCHEMA_REPLY).encode(),
        "anthropic": json.dumps(ANTHROPIC_REPLY).encode(),
    }

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter_ns()
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if scope["path"].endswith("/messages"):
            reply = replies["anthropic"]
        elif b'"tools"' in body:
            reply = replies["tools"]
        elif b'"response_format"' in body:
            reply = replies["json_schema"]
        else:
            reply = replies["prompted"]
        handled = (time.perf_counter_ns() - started) // 1000
        headers = [(b"content-type", b"application/json"), (b"x-handled-us", str(handled).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": reply})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the bench server did not start")


# --- the client -----------------------------------------------------------------------------------------


class Handled:
    """An exchange wrapper that keeps the server's handling time of each reply."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.us: list[float] = []

    def __call__(self, request: Any) -> Any:
        response = self.inner(request)
        self.us.append(float(response.headers.get("x-handled-us", "nan")))
        return response


def calculator() -> Any:
    sys.path.insert(0, str(ROOT / "examples" / "calculator"))
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_calculator", ROOT / "examples" / "calculator" / "agent.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.agent


def measure(model: Any, messages: Sequence[Any], output: Any, calls: int) -> dict[str, list[float]]:
    """complete() and a bare httpx POST of the same body, interleaved so both see the same machine load."""
    import httpx

    handled = Handled(model.exchange)
    timed = model.with_exchange(handled)
    body = model.build_body(messages, output)
    content = json.dumps(body).encode()
    headers = {**model.auth_headers(), "content-type": "application/json"}
    url = model.request_url()
    walls: list[float] = []
    floor: list[float] = []
    with httpx.Client() as client:
        for i in range(calls + 200):
            t0 = time.perf_counter_ns()
            timed.complete(messages, output=output)
            t1 = time.perf_counter_ns()
            client.post(url, content=content, headers=headers).json()
            t2 = time.perf_counter_ns()
            if i >= 200:  # warm-up: connections, caches
                walls.append((t1 - t0) / 1000)
                floor.append((t2 - t1) / 1000)
    return {"complete": walls, "server": handled.us[200:], "floor": floor}


def in_process_us(model: Any, messages: Sequence[Any], output: Any, calls: int) -> float:
    """complete() with the network replaced by a canned reply: twelvefactor's own work per call."""
    from twelvefactor.models._http import WireResponse

    reply = OPENAI_TOOL_REPLY if output is not None and output.mode == "tools" else OPENAI_REPLY
    if model.provider == "anthropic":
        reply = ANTHROPIC_REPLY
    elif output is not None and output.mode == "json_schema":
        reply = OPENAI_SCHEMA_REPLY
    text = json.dumps(reply)

    def canned(request: Any) -> WireResponse:
        json.dumps(request.body).encode()  # the live exchange encodes the body too
        return WireResponse(status=200, headers={"content-type": "application/json"}, body=json.loads(text), text=text)

    stub = model.with_exchange(canned)
    for _ in range(500):
        stub.complete(messages, output=output)
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        stub.complete(messages, output=output)
    return (time.perf_counter_ns() - t0) / 1000 / calls


def p(values: Sequence[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


def import_ms(statement: str, repeats: int = 7) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    samples = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(repeats)]
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    print(f"python {sys.version.split()[0]} on {os.cpu_count()} CPUs")
    print(f"import twelvefactor:                      {import_ms('import twelvefactor'):6.1f} ms")
    print(f"import twelvefactor.models.openai:        {import_ms('import twelvefactor.models.openai'):6.1f} ms")
    print(f"import twelvefactor.models.anthropic:     {import_ms('import twelvefactor.models.anthropic'):6.1f} ms")
    print(f"import httpx:                             {import_ms('import httpx'):6.1f} ms")
    construct = "from twelvefactor.models import OpenAIModel; OpenAIModel('m', preset='ollama')"
    print(f"first OpenAIModel (imports httpx):        {import_ms(construct):6.1f} ms")

    from twelvefactor.models import AnthropicModel, OpenAIModel, OutputSpec, RetryPolicy

    agent = calculator()
    thread = agent.new_thread("what is 3 plus 4")
    messages = agent.render(thread)
    size = sum(len(m.content) for m in messages)
    process, base = start_server()
    try:
        print(f"\nper call, {args.calls} calls, {len(messages)} messages of {size} chars (µs: p50 / p95)")
        print(f"{'':22} {'complete()':>15} {'server':>11} {'client':>15} {'raw httpx':>15} {'ours':>6} {'no-net':>7}")
        retry = RetryPolicy(max_retries=0)
        cases = [
            ("openai prompted", OpenAIModel("gpt-4o-mini", base_url=f"{base}/v1", api_key=KEY, retry=retry), None),
            (
                "openai json_schema",
                OpenAIModel("gpt-4o-mini", base_url=f"{base}/v1", api_key=KEY, retry=retry),
                OutputSpec("json_schema", agent.toolset.tools),
            ),
            (
                "openai tools",
                OpenAIModel("gpt-4o-mini", base_url=f"{base}/v1", api_key=KEY, retry=retry),
                OutputSpec("tools", agent.toolset.tools),
            ),
            ("anthropic prompted", AnthropicModel("claude-haiku-4-5", base_url=base, api_key=KEY, retry=retry), None),
        ]
        for label, model, output in cases:
            got = measure(model, messages, output, args.calls)
            walls, handled, floor = got["complete"], got["server"], got["floor"]
            client = [w - h for w, h in zip(walls, handled, strict=True)]
            ours = [w - f for w, f in zip(walls, floor, strict=True)]
            print(
                f"{label:<22} {p(walls, 50):7.0f} /{p(walls, 95):6.0f} {p(handled, 50):4.0f} /{p(handled, 95):5.0f}"
                f" {p(client, 50):7.0f} /{p(client, 95):6.0f} {p(floor, 50):7.0f} /{p(floor, 95):6.0f}"
                f" {p(ours, 50):6.0f} {in_process_us(model, messages, output, 5000):7.1f}"
            )
        print("ours: p50 of complete() minus the bare POST right after it; no-net: complete() on a canned reply")

        from twelvefactor import ModelCall, run

        agent.model = OpenAIModel("gpt-4o-mini", base_url=f"{base}/v1", api_key=KEY, retry=retry)
        agent.max_steps = 1
        finished = run(agent, agent.new_thread("what is 3 plus 4"))
        (call,) = [e for e in finished.events if isinstance(e, ModelCall)]
        print(
            f"\naccounting of one agent step: model {call.model}, {call.input_tokens}→{call.output_tokens} tokens,"
            f" {call.latency_ms:.2f} ms, ${call.cost_usd:.6f}, request body {len(json.dumps(call.request))} bytes"
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
