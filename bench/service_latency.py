"""Service latency on the embedded default (SQLite file, in-process worker, real uvicorn on 127.0.0.1).

With an instant model, prints p50/p99 of
  launch -> first model call      (POST /v1/threads until the model is first asked)
  approval -> next model call     (POST .../responses until the model is asked again)
and how many threads per second the server completes (launch -> done, with one tool call each).

    python bench/service_latency.py [--threads 200] [--throughput 500]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import httpx

from twelvefactor import Agent, FunctionModel, Message, Tool
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.testing import live_server

CALLS: dict[str, list[float]] = {}
LOCK = threading.Lock()


class Ship(Tool):
    """Ship it (needs approval when asked to)."""

    intent: Literal["ship"] = "ship"
    guarded: bool

    def run(self) -> str:
        return "shipped"

    def approval_required(self) -> bool:
        return self.guarded


def instant_model(messages: Sequence[Message]) -> dict[str, object]:
    context = messages[-1].content
    key = context.split("<user_message>\n", 1)[1].split("\n", 1)[0]
    with LOCK:
        CALLS.setdefault(key, []).append(time.perf_counter())
    if "<tool_result>" in context:
        return {"intent": "done_for_now", "message": "shipped"}
    return {"intent": "ship", "guarded": key.startswith("guarded")}


def wait(client: httpx.Client, thread_id: str, status: str) -> dict[str, object]:
    while True:
        body: dict[str, object] = client.get(f"/v1/threads/{thread_id}").json()
        if body["status"] == status:
            return body
        time.sleep(0.002)


def quantiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100)
    return f"p50 {cuts[49] * 1000:7.2f} ms   p99 {cuts[98] * 1000:7.2f} ms   (n={len(samples)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=200)
    parser.add_argument("--throughput", type=int, default=500)
    args = parser.parse_args()
    agent = Agent("shipper", tools=[Ship], model=FunctionModel(instant_model))
    with tempfile.TemporaryDirectory() as tmp:
        settings = ServerSettings(database=str(Path(tmp) / "bench.db"), workers=4)
        app = create_app([agent], settings=settings)
        with live_server(app) as base, httpx.Client(base_url=base, timeout=30) as client:
            to_first_call: list[float] = []
            to_next_call: list[float] = []
            for i in range(args.threads):
                key = f"guarded-{i}"
                sent = time.perf_counter()
                thread = client.post("/v1/threads", json={"agent": "shipper", "message": key}).json()
                waiting = wait(client, str(thread["id"]), "waiting")
                to_first_call.append(CALLS[key][0] - sent)
                request = waiting["pending_request"]
                assert isinstance(request, dict)
                sent = time.perf_counter()
                answer = {"request_id": request["call_id"], "approved": True, "idempotency_key": key}
                client.post(f"/v1/threads/{thread['id']}/responses", json=answer).raise_for_status()
                wait(client, str(thread["id"]), "done")
                to_next_call.append(CALLS[key][1] - sent)
            print(f"launch -> first model call:    {quantiles(to_first_call)}")
            print(f"approval -> next model call:   {quantiles(to_next_call)}")

            started = time.perf_counter()

            def launch(i: int) -> str:
                body = {"agent": "shipper", "message": f"free-{i}"}
                return str(client.post("/v1/threads", json=body).json()["id"])

            with ThreadPoolExecutor(max_workers=8) as pool:
                ids = list(pool.map(launch, range(args.throughput)))
            pending = set(ids)
            while pending:
                done = client.get("/v1/threads", params={"status": "done", "limit": 500}).json()
                pending -= {row["id"] for row in done}
                if pending:
                    time.sleep(0.01)
            elapsed = time.perf_counter() - started
            steps = sum(len(CALLS[f"free-{i}"]) for i in range(args.throughput))
            print(
                f"throughput:                    {args.throughput / elapsed:7.1f} threads/s"
                f"  ({args.throughput} threads, {steps} model steps, 1 tool call each, {elapsed:.2f} s, 4 workers)"
            )


if __name__ == "__main__":
    main()
