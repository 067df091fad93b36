"""Request to delivered message, per channel, beside a webhook in the same run (issue 11's latency figure).

A deploybot thread asks for a production approval; the server's outbox sends it to a person on a channel
and, at the same moment, POSTs the signed ``thread.waiting`` webhook to a local receiver. Both clocks start
at the request event's recorded time, so the webhook is the baseline the channel is compared with, in the
same process and the same run:

- slack: the approval routed to Slack, posted to a stand-in speaking Slack's Web API (loopback HTTP);
- email: the approval routed to email, sent over SMTP to a real SMTP server (aiosmtpd, loopback).

The stand-ins are those of ``examples/deploybot/people_demo.py``. Prints, per channel: threads, the median
and p95 of request -> message received for the channel and for the webhook, and their ratio.

    python bench/channels.py [--threads 30]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from twelvefactor._loader import load_agent
from twelvefactor.channels.config import ContactStep, EmailChannelConfig, Route, SlackChannelConfig
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.auth import generate_secret
from twelvefactor.server.settings import WebhookEndpoint
from twelvefactor.server.testing import free_port, live_server

ROOT = Path(__file__).resolve().parents[1]
DEPLOYBOT = ROOT / "examples" / "deploybot"


def _demo() -> Any:
    spec = importlib.util.spec_from_file_location("people_demo", DEPLOYBOT / "people_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def receiver(arrivals: dict[str, float]) -> FastAPI:
    """Records when each thread's thread.waiting webhook arrived."""
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> JSONResponse:
        at = time.perf_counter()
        body = await request.json()
        if body.get("type") == "thread.waiting":
            arrivals.setdefault(body["data"]["thread_id"], at)
        return JSONResponse({})

    return app


def perf_of(iso: str) -> float:
    """A recorded wall-clock time on the perf_counter scale."""
    return datetime.fromisoformat(iso).timestamp() - (time.time() - time.perf_counter())


async def measure(channel: str, threads: int) -> tuple[list[float], list[float]]:
    demo = _demo()
    posted: list[dict[str, Any]] = []
    inbox = demo.Inbox()
    hooks: dict[str, float] = {}
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        with (
            live_server(demo.slack_stand_in(posted)) as slack_url,
            live_server(receiver(hooks)) as hook_url,
            tempfile.TemporaryDirectory() as tmp,
        ):
            to = "#deploys" if channel == "slack" else "release-manager@example.com"
            settings = ServerSettings(
                database=str(Path(tmp) / "bench.db"),
                channels=[
                    SlackChannelConfig(bot_token=demo.TOKEN, signing_secret="s", api_url=f"{slack_url}/api"),
                    EmailChannelConfig(smtp_port=smtp.port, start_tls=False, sender="Bot <bot@example.com>"),
                ],
                contacts={"release": [ContactStep(channel=channel, to=to)]},
                routes=[Route(contact="release", intent="deploy_backend")],
                webhooks=[
                    WebhookEndpoint(url=f"{hook_url}/hook", secret=generate_secret(), events=("thread.waiting",))
                ],
            )
            app = create_app([load_agent(str(DEPLOYBOT))], settings=settings)
            channel_ms: list[float] = []
            webhook_ms: list[float] = []
            with live_server(app) as url:
                async with httpx.AsyncClient(base_url=url) as client:
                    for n in range(threads):
                        message = {"agent": "deploybot", "message": f"deploy v1.{n}.0 to production"}
                        thread_id = (await client.post("/v1/threads", json=message)).json()["id"]
                        deadline = time.monotonic() + 15
                        while True:
                            arrived = posted if channel == "slack" else inbox.arrived_at
                            if len(arrived) > n and thread_id in hooks:
                                break
                            if time.monotonic() > deadline:
                                raise TimeoutError(f"thread {thread_id}: no message after 15 s")
                            await asyncio.sleep(0.002)
                        thread = (await client.get(f"/v1/threads/{thread_id}")).json()
                        [request] = [e for e in thread["events"] if e["type"] == "human_request"]
                        asked = perf_of(request["at"])
                        got = posted[n]["received_at"] if channel == "slack" else inbox.arrived_at[n]
                        channel_ms.append((got - asked) * 1000)
                        webhook_ms.append((hooks[thread_id] - asked) * 1000)
            return channel_ms, webhook_ms
    finally:
        smtp.stop()


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=30)
    args = parser.parse_args()
    print(f"request recorded -> message received, {args.threads} threads per channel (ms; loopback)")
    print(f"{'channel':8} {'median':>8} {'p95':>8}   {'webhook median':>14} {'p95':>8}   {'ratio (medians)':>15}")
    for channel in ("slack", "email"):
        got, hook = asyncio.run(measure(channel, args.threads))
        ratio = statistics.median(got) / statistics.median(hook)
        print(
            f"{channel:8} {statistics.median(got):8.1f} {p95(got):8.1f}   {statistics.median(hook):14.1f}"
            f" {p95(hook):8.1f}   {ratio:15.2f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
