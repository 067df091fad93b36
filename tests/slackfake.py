"""A local Slack: the Web API methods the Slack channel calls, and requests signed as Slack signs them.

``SlackFake`` serves ``POST /api/{method}`` (``chat.postMessage``, ``chat.update``, ``views.open``,
``chat.postEphemeral``) as Slack documents them: a bearer token, a JSON body, HTTP 200 with ``{"ok": true,
...}`` or ``{"ok": false, "error": ...}``, 429 with ``Retry-After`` when rate limited. Every call is
recorded; ``fail`` scripts the next answers of a method. ``signed`` and ``interactive_body`` build what
Slack posts to an app: a form-encoded ``payload=`` with ``X-Slack-Signature`` / ``X-Slack-Request-Timestamp``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from twelvefactor.channels.slack_verify import sign_slack
from twelvefactor.server.testing import live_server

BOT_TOKEN = "xoxb-test-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@dataclass
class Call:
    method: str
    body: dict[str, Any]
    at: float  # time.perf_counter() when the fake received it


@dataclass
class SlackFake:
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    script: dict[str, list[tuple[int, dict[str, Any], dict[str, str]]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: int = 0

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def of(self, method: str) -> list[dict[str, Any]]:
        """The bodies of the calls to ``method``, in order."""
        return [call.body for call in self.calls if call.method == method]

    def fail(self, method: str, status: int = 200, error: str | None = None, retry_after: str | None = None) -> None:
        """Answer the next call of ``method`` with ``status`` (and ``{"ok": false, "error": error}``)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body: dict[str, Any] = {"ok": False, "error": error or "ratelimited"}
        self.script.setdefault(method, []).append((status, body, headers))

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/api/{method}")
        async def api(method: str, request: Request) -> JSONResponse:
            received = time.perf_counter()
            if request.headers.get("authorization") != f"Bearer {BOT_TOKEN}":
                return JSONResponse({"ok": False, "error": "invalid_auth"})
            if not request.headers.get("content-type", "").startswith("application/json"):
                return JSONResponse({"ok": False, "error": "invalid_form_data"})
            body = json.loads(await request.body())
            with self._lock:
                self.calls.append(Call(method, body, received))
                scripted = self.script.get(method)
                if scripted:
                    status, answer, headers = scripted.pop(0)
                    return JSONResponse(answer, status_code=status, headers=headers)
                self._ts += 1
                ts = f"{int(time.time())}.{self._ts:06d}"
            if method == "chat.postMessage":
                return JSONResponse({"ok": True, "channel": body["channel"], "ts": ts, "message": {"ts": ts}})
            if method == "chat.update":
                return JSONResponse({"ok": True, "channel": body["channel"], "ts": body["ts"], "text": body["text"]})
            if method == "views.open":
                return JSONResponse({"ok": True, "view": {"id": f"V{self._ts}", **body["view"]}})
            if method == "chat.postEphemeral":
                return JSONResponse({"ok": True, "message_ts": ts})
            return JSONResponse({"ok": False, "error": "unknown_method"}, status_code=404)

        return app


@contextmanager
def slack_fake() -> Iterator[SlackFake]:
    """A SlackFake served on 127.0.0.1."""
    fake = SlackFake()
    with live_server(fake.app()) as url:
        fake.url = url
        yield fake


def signed(
    body: bytes, *, secret: str = SIGNING_SECRET, ts: int | None = None, content_type: str | None = None
) -> dict[str, Any]:
    """httpx keyword arguments that post ``body`` signed as Slack signs it (at ``ts``, default now)."""
    stamp = int(time.time()) if ts is None else ts
    headers = {
        "x-slack-request-timestamp": str(stamp),
        "x-slack-signature": sign_slack(secret, stamp, body),
        "content-type": content_type or "application/x-www-form-urlencoded",
    }
    return {"content": body, "headers": headers}


def interactive_body(payload: dict[str, Any]) -> bytes:
    """An interactive request's body: the payload JSON in a form field, as Slack sends it."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def click(action_id: str, value: str, *, channel: str, ts: str, user: str = "U0ALICE", name: str = "alice") -> bytes:
    """A ``block_actions`` payload: ``user`` clicked button ``action_id`` of message ``channel``/``ts``."""
    return interactive_body(
        {
            "type": "block_actions",
            "user": {"id": user, "username": name, "name": name, "team_id": "T0TEAM"},
            "api_app_id": "A0APP",
            "trigger_id": f"trigger.{time.time_ns()}",
            "container": {"type": "message", "message_ts": ts, "channel_id": channel},
            "channel": {"id": channel, "name": "deploys"},
            "message": {"type": "message", "ts": ts, "text": "..."},
            "response_url": "https://hooks.slack.invalid/actions/T0/1/x",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "tf_actions",
                    "value": value,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
    )


def submit(
    callback_id: str, private_metadata: str, text: str | None, *, user: str = "U0BOB", name: str = "bob"
) -> bytes:
    """A ``view_submission`` payload: ``user`` submitted our dialog with ``text`` in its text box."""
    return interactive_body(
        {
            "type": "view_submission",
            "user": {"id": user, "username": name, "name": name, "team_id": "T0TEAM"},
            "view": {
                "id": "V0VIEW",
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": private_metadata,
                "state": {"values": {"tf_text": {"tf_text": {"type": "plain_text_input", "value": text}}}},
            },
        }
    )
