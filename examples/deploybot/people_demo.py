"""Deploybot's people, offline: a production approval goes to Slack, nobody answers, it escalates by email,
and the release manager approves by replying. Local stand-ins play Slack (its Web API's wire format) and the
mail server (a real SMTP server, aiosmtpd); the twelvefactor server is the real one, configured by
``twelvefactor.toml`` beside this file with a 2-second deadline instead of 15 minutes.

    python examples/deploybot/people_demo.py

Point the same config at a real Slack workspace and SMTP server with the environment variables it names
(README: "People on their channels, and triggers").
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from twelvefactor._loader import load_agent
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.config_file import load_config
from twelvefactor.server.testing import free_port, live_server

HERE = Path(__file__).resolve().parent
TOKEN = "xoxb-demo"


def slack_stand_in(posted: list[dict[str, Any]]) -> FastAPI:
    """Slack's Web API as far as twelvefactor uses it: chat.postMessage / chat.update answered as Slack does."""
    app = FastAPI()
    count = 0

    @app.post("/api/{method}")
    async def api(method: str, request: Request) -> JSONResponse:
        nonlocal count
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        body = json.loads(await request.body())
        count += 1
        ts = f"{int(time.time())}.{count:06d}"
        posted.append({"method": method, "received_at": time.perf_counter(), **body})
        return JSONResponse({"ok": True, "channel": body.get("channel"), "ts": body.get("ts", ts)})

    return app


class Inbox:
    """A mail server that keeps what it receives (the release manager's mailbox)."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []
        self.arrived_at: list[float] = []  # time.perf_counter() of each mail's arrival
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content or b"")
        assert isinstance(message, EmailMessage)
        self.mails.append(message)
        self.arrived_at.append(time.perf_counter())
        self.arrived.set()
        return "250 OK"


async def until(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise TimeoutError("the demo stalled: nothing happened in time")
        await asyncio.sleep(0.02)
    return found


async def demo(say: Any = print) -> dict[str, Any]:
    """Run the story; the finished thread (as the API shows it)."""
    posted: list[dict[str, Any]] = []
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        with live_server(slack_stand_in(posted)) as slack_url, tempfile.TemporaryDirectory() as tmp:
            env = {
                "SLACK_BOT_TOKEN": TOKEN,
                "SLACK_SIGNING_SECRET": "demo-signing-secret",
                "SLACK_API_URL": f"{slack_url}/api",
                "SMTP_HOST": "127.0.0.1",
                "CI_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            }
            values = load_config(HERE / "twelvefactor.toml", env)
            values["channels"][1]["smtp_port"] = smtp.port
            for step in values["contacts"]["release"]:  # 2 seconds, not 15 minutes
                step["wait_s"] = 2.0 if "wait_s" in step else None
            listen = free_port()
            settings = ServerSettings.from_env(
                values, database=str(Path(tmp) / "demo.db"), smtp_listen=f"127.0.0.1:{listen}", escalation_sweep_s=0.5
            )
            app = create_app([load_agent(str(HERE))], settings=settings)
            with live_server(app) as url:
                async with httpx.AsyncClient(base_url=url) as client:
                    launched = await client.post(
                        "/v1/threads", json={"agent": "deploybot", "message": "deploy v1.4.1 to production"}
                    )
                    thread_id = launched.json()["id"]
                    say(f"1. launched thread {thread_id}: 'deploy v1.4.1 to production'")
                    message = await until(lambda: next((p for p in posted if p["method"] == "chat.postMessage"), None))
                    say(f"2. Slack {message['channel']}: {message['text']}")
                    say("3. nobody clicks in Slack; 2 seconds later the request escalates by email ...")
                    mail = (await until(lambda: inbox.mails))[0]
                    say(f"4. email to {mail['To']}: {mail['Subject']}")
                    reply = EmailMessage()
                    reply["From"] = "Release Manager <release-manager@example.com>"
                    reply["To"] = str(mail["Reply-To"])
                    reply["Subject"] = f"Re: {mail['Subject']}"
                    reply["Message-ID"] = "<reply-1@mail.example.com>"
                    reply["In-Reply-To"] = reply["References"] = str(mail["Message-ID"])
                    reply.set_content("Approve\n\n> (quoted request)\n")
                    await aiosmtplib.send(reply, hostname="127.0.0.1", port=listen, start_tls=False)
                    say("5. the release manager replies 'Approve'")

                    async def finished() -> dict[str, Any]:
                        while True:
                            thread: dict[str, Any] = (await client.get(f"/v1/threads/{thread_id}")).json()
                            if thread["status"] in ("done", "failed"):
                                return thread
                            await asyncio.sleep(0.02)

                    thread = await asyncio.wait_for(finished(), 15)
                    say(f"6. thread {thread['status']}: {thread['events'][-1].get('message')}")
                    updated = await until(lambda: [p for p in posted if p["method"] == "chat.update"])
                    say(f"7. the Slack message now says: {updated[-1]['text']}")
                    return thread
    finally:
        smtp.stop()


if __name__ == "__main__":
    asyncio.run(demo())
