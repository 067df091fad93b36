"""Outbound webhooks (signed, retried, every attempt logged) and the signed inbound resume endpoint."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from twelvefactor import Agent, FunctionModel, tool
from twelvefactor.errors import SignatureError
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.auth import generate_secret, sign, signed_headers, verify
from twelvefactor.server.deliveries import SQLiteDeliveryLog
from twelvefactor.server.settings import WebhookEndpoint
from twelvefactor.store import SQLiteStore

from .conftest import client_for, deploybot, free_port, wait_for_status

pytestmark = pytest.mark.anyio

SECRET = generate_secret()
INBOUND = generate_secret()
PUBLIC = "https://agents.example.test"


# --- a receiver on 127.0.0.1 that records every request and answers from a script ---


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A tiny HTTP/1.1 server: each request gets the next scripted answer (then 200)."""

    script: list[int | tuple[int, dict[str, str]] | str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks?token=abc"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(headers, body, time.monotonic()))
            answer = self.script.pop(0) if self.script else 200
            if answer == "hang":
                await asyncio.sleep(5)
                return
            code, extra = (
                (answer, {}) if isinstance(answer, int) else answer if isinstance(answer, tuple) else (200, {})
            )
            extra_lines = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
            writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n{extra_lines}\r\n".encode())
            await writer.drain()
        finally:
            writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Receiver]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self
            server.close()

    async def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver got {len(self.requests)} requests, wanted {count}")
            await asyncio.sleep(0.01)
        return self.requests


def settings_for(tmp_path: Path, *urls: str, **overrides: Any) -> ServerSettings:
    values: dict[str, Any] = {
        "database": str(tmp_path / "service.db"),
        "public_url": PUBLIC,
        "webhooks": [WebhookEndpoint(url=url, secret=SECRET) for url in urls],
        "webhook_max_attempts": 3,
        "webhook_backoff_s": 0.05,
        "webhook_timeout_s": 2.0,
        "inbound_webhook_secret": INBOUND,
    }
    return ServerSettings(**{**values, **overrides})


def app_for(tmp_path: Path, *urls: str, agent: Agent | None = None, **overrides: Any) -> FastAPI:
    return create_app([agent or deploybot()], settings=settings_for(tmp_path, *urls, **overrides))


async def launch(client: httpx.AsyncClient, message: str, agent: str = "deploybot") -> str:
    response = await client.post("/v1/threads", json={"agent": agent, "message": message})
    assert response.status_code == 202, response.text
    thread_id: str = response.json()["id"]
    return thread_id


async def deliveries(client: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/threads/{thread_id}/deliveries")
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


def runtime_of(app: FastAPI) -> Any:
    return app.state.runtime


# --- signatures ---


def test_our_signatures_verify_with_the_standardwebhooks_library_and_theirs_with_ours() -> None:
    body = b'{"type":"thread.done","data":{"thread_id":"t1"}}'
    headers = signed_headers(SECRET, "msg_1", body)
    assert Webhook(SECRET).verify(body, headers) == json.loads(body)

    from datetime import UTC, datetime

    now = int(time.time())
    theirs = Webhook(INBOUND).sign("msg_2", datetime.fromtimestamp(now, UTC), body.decode())
    assert theirs == sign(INBOUND, "msg_2", now, body)
    assert verify(INBOUND, {"webhook-id": "msg_2", "webhook-timestamp": str(now), "webhook-signature": theirs}, body)


def test_verify_rejects_altered_bodies_other_secrets_and_stale_or_future_timestamps() -> None:
    body = b'{"a":1}'
    headers = signed_headers(SECRET, "msg_1", body)
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        verify(SECRET, headers, b'{"a":2}')
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        verify(INBOUND, headers, body)
    with pytest.raises(SignatureError, match="old"):
        verify(SECRET, headers, body, now=time.time() + 301)
    with pytest.raises(SignatureError, match="future"):
        verify(SECRET, headers, body, now=time.time() - 301)
    with pytest.raises(SignatureError, match="missing"):
        verify(SECRET, {"webhook-id": "msg_1"}, body)
    # Several signatures (secret rotation): any v1 match passes.
    rotated = {**headers, "webhook-signature": f"v1,AAAA v2,xyz {headers['webhook-signature']}"}
    assert verify(SECRET, rotated, body) == ("msg_1", int(headers["webhook-timestamp"]))


def test_bad_secrets_are_refused_with_a_clear_message() -> None:
    with pytest.raises(Exception, match="not whsec_<base64>"):
        WebhookEndpoint(url="http://127.0.0.1:1/", secret="whsec_not base64!")
    with pytest.raises(Exception, match="at least 16"):
        ServerSettings(inbound_webhook_secret="whsec_c2hvcnQ=")
    with pytest.raises(ValueError, match="absolute http"):
        WebhookEndpoint(url="ftp://example.test/", secret=SECRET)


# --- outbound ---


async def test_waiting_and_done_are_delivered_signed_with_an_approval_link(tmp_path: Path) -> None:
    async with Receiver().running() as receiver:
        app = app_for(tmp_path, receiver.url)
        async with client_for(app) as client:
            thread_id = await launch(client, "deploy v1.4.1 to production")
            waiting = await wait_for_status(client, thread_id, "waiting")
            (first,) = await receiver.wait_for(1)
            event = Webhook(SECRET).verify(first.body, first.headers)
            assert event["type"] == "thread.waiting"
            data = event["data"]
            assert data["thread_id"] == thread_id and data["agent"] == "deploybot" and data["status"] == "waiting"
            assert data["version"] == waiting["version"]
            assert data["pending_request"]["kind"] == "approval"
            assert data["pending_request"]["call_id"] == waiting["pending_request"]["call_id"]
            assert data["pending_request"]["arguments"] == {"environment": "production", "tag": "v1.4.1"}
            assert data["links"]["respond"].startswith(f"{PUBLIC}/a/")
            assert data["links"]["thread"] == f"{PUBLIC}/v1/threads/{thread_id}"
            assert event["timestamp"].endswith("Z")

            # The link in the payload works: answer through it, and the thread finishes.
            path = data["links"]["respond"].removeprefix(PUBLIC)
            assert (await client.post(path, data={"decision": "approve"})).status_code == 200
            await wait_for_status(client, thread_id, "done")
            second = (await receiver.wait_for(2))[1]
            done = Webhook(SECRET).verify(second.body, second.headers)
            assert done["type"] == "thread.done"
            assert done["data"]["message"] == "Deployed v1.4.1 to production."
            assert "pending_request" not in done["data"]
            assert second.headers["webhook-id"] != first.headers["webhook-id"]

            await runtime_of(app).webhooks.idle()
            rows = await deliveries(client, thread_id)
            assert [row["event_type"] for row in rows] == ["thread.waiting", "thread.done"]
            assert all(row["state"] == "delivered" for row in rows)
            assert [len(row["attempts"]) for row in rows] == [1, 1]
            assert rows[0]["webhook_id"] == first.headers["webhook-id"]
            assert rows[0]["attempts"][0]["status_code"] == 200
            # The query string (it may hold a token) is not shown.
            assert rows[0]["url"] == f"http://127.0.0.1:{receiver.port}/hooks?…"
            assert rows[0]["payload"] == event


async def test_failures_are_retried_with_backoff_and_every_attempt_is_recorded(tmp_path: Path) -> None:
    async with Receiver(script=[500, 503, 200]).running() as receiver:
        app = app_for(tmp_path, receiver.url, webhook_max_attempts=5, webhook_backoff_s=0.1)
        async with client_for(app) as client:
            thread_id = await launch(client, "deploy to production")
            await wait_for_status(client, thread_id, "waiting")
            await receiver.wait_for(3)
            await runtime_of(app).webhooks.idle()
            (row,) = await deliveries(client, thread_id)

    first, second, third = receiver.requests
    # The same message each time, re-signed with the attempt's own timestamp; each verifies.
    assert first.body == second.body == third.body
    assert {r.headers["webhook-id"] for r in receiver.requests} == {row["webhook_id"]}
    for received in receiver.requests:
        Webhook(SECRET).verify(received.body, received.headers)
    # Exponential backoff with "equal jitter": at least half of 0.1s, then of 0.2s.
    assert second.at - first.at >= 0.05
    assert third.at - second.at >= 0.1
    assert row["state"] == "delivered"
    assert [(a["attempt"], a["status_code"], a["error"]) for a in row["attempts"]] == [
        (1, 500, None),
        (2, 503, None),
        (3, 200, None),
    ]
    retry_in = [a["retry_in_s"] for a in row["attempts"]]
    assert 0.05 <= retry_in[0] <= 0.1 and 0.1 <= retry_in[1] <= 0.2 and retry_in[2] is None


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    async with Receiver(script=[(429, {"Retry-After": "1"}), 200]).running() as receiver:
        app = app_for(tmp_path, receiver.url)
        async with client_for(app) as client:
            thread_id = await launch(client, "deploy to production")
            first, second = await receiver.wait_for(2)
            await runtime_of(app).webhooks.idle()
            (row,) = await deliveries(client, thread_id)
    assert second.at - first.at >= 0.95
    assert [a["status_code"] for a in row["attempts"]] == [429, 200]
    assert row["attempts"][0]["retry_in_s"] == 1.0


async def test_a_delivery_gives_up_after_max_attempts_and_4xx_is_not_retried(tmp_path: Path) -> None:
    async with Receiver(script=[500, 500, 500]).running() as failing, Receiver(script=[400]).running() as rejecting:
        app = app_for(tmp_path, failing.url, rejecting.url)
        async with client_for(app) as client:
            thread_id = await launch(client, "deploy to production")
            await failing.wait_for(3)
            await runtime_of(app).webhooks.idle()
            rows = await deliveries(client, thread_id)
    by_port = {row["url"].split(":")[2].split("/")[0]: row for row in rows}
    exhausted, refused = by_port[str(failing.port)], by_port[str(rejecting.port)]
    assert exhausted["state"] == "failed" and [a["status_code"] for a in exhausted["attempts"]] == [500, 500, 500]
    assert refused["state"] == "failed" and [a["status_code"] for a in refused["attempts"]] == [400]
    assert len(failing.requests) == 3 and len(rejecting.requests) == 1


async def test_connection_errors_and_timeouts_are_retried_and_recorded(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/nobody-listens"
    async with Receiver(script=["hang", 200]).running() as slow:
        app = app_for(tmp_path, closed, slow.url, webhook_max_attempts=2, webhook_timeout_s=0.3)
        async with client_for(app) as client:
            thread_id = await launch(client, "deploy to production")
            await wait_for_status(client, thread_id, "waiting")
            await runtime_of(app).webhooks.idle()
            rows = await deliveries(client, thread_id)
    refused = next(row for row in rows if "nobody-listens" in row["url"])
    timed_out = next(row for row in rows if "hooks" in row["url"])
    assert refused["state"] == "failed"
    assert [a["status_code"] for a in refused["attempts"]] == [None, None]
    assert all("ConnectError" in a["error"] for a in refused["attempts"])
    assert timed_out["state"] == "delivered"
    assert timed_out["attempts"][0]["error"] == "timeout: ReadTimeout"
    assert timed_out["attempts"][1]["status_code"] == 200


async def test_only_status_transitions_send_webhooks(tmp_path: Path) -> None:
    async with Receiver().running() as receiver:
        app = app_for(tmp_path, receiver.url)
        async with client_for(app) as client:
            thread_id = await launch(client, "deploy to production")
            await wait_for_status(client, thread_id, "waiting")
            # A trigger while waiting on the same request is a write, not a new status: nothing sent.
            appended = await client.post(f"/v1/threads/{thread_id}/events", json={"type": "ci_note", "text": "green"})
            assert appended.status_code == 202 and appended.json()["status"] == "waiting"
            await runtime_of(app).webhooks.idle()
            await asyncio.sleep(0.2)
            assert [r.json["type"] for r in receiver.requests] == ["thread.waiting"]
            assert len(await deliveries(client, thread_id)) == 1


@tool
def ping() -> str:
    """Ping the service."""
    return "pong"


async def test_a_failed_thread_sends_thread_failed_with_the_error(tmp_path: Path) -> None:
    def forever(messages: object) -> dict[str, str]:
        return {"intent": "ping"}

    looper = Agent("looper", tools=[ping], model=FunctionModel(forever), max_steps=2)
    async with Receiver().running() as receiver:
        app = app_for(tmp_path, receiver.url, agent=looper)
        async with client_for(app) as client:
            thread_id = await launch(client, "ping forever", agent="looper")
            await wait_for_status(client, thread_id, "failed")
            (received,) = await receiver.wait_for(1)
    event = Webhook(SECRET).verify(received.body, received.headers)
    assert event["type"] == "thread.failed"
    assert event["data"]["error"] == {"source": "budget", "message": "step budget of 2 model steps used up"}


async def test_endpoints_can_subscribe_to_some_event_types(tmp_path: Path) -> None:
    async with Receiver().running() as receiver:
        settings = settings_for(tmp_path)
        settings.webhooks = [WebhookEndpoint(url=receiver.url, secret=SECRET, events=("thread.done",))]
        app = create_app([deploybot()], settings=settings)
        async with client_for(app) as client:
            thread_id = await launch(client, "deploy to staging")
            await wait_for_status(client, thread_id, "done")
            await receiver.wait_for(1)
            await runtime_of(app).webhooks.idle()
    assert [r.json["type"] for r in receiver.requests] == ["thread.done"]


async def test_a_restart_resumes_pending_deliveries_from_the_database(tmp_path: Path) -> None:
    async with Receiver(script=[500]).running() as receiver:
        # First run: the first attempt fails and the retry is due much later; the server stops meanwhile.
        app = app_for(tmp_path, receiver.url, webhook_backoff_s=60)
        async with client_for(app) as client:
            thread_id = await launch(client, "deploy to production")
            await receiver.wait_for(1)
            for _ in range(200):
                (row,) = await deliveries(client, thread_id)
                if row["attempts"]:
                    break
                await asyncio.sleep(0.01)
        assert row["state"] == "pending" and row["next_attempt_at"] is not None

        # The outbox is in the thread store's file, its migration recorded with the store's.
        store = SQLiteStore(tmp_path / "service.db")
        assert "webhooks_m001_deliveries" in [name for name, _ in store.applied_migrations()]
        store.close()
        log = SQLiteDeliveryLog(str(tmp_path / "service.db"))
        ((delivery, _),) = log.for_thread(thread_id)
        log.close()
        assert delivery.state == "pending"

        # Second run, with a short backoff: the delivery is resumed and its retry is sent at once.
        import sqlite3

        with sqlite3.connect(tmp_path / "service.db") as conn:
            conn.execute("UPDATE webhook_deliveries SET next_attempt_at = 0")
        conn.close()
        again = app_for(tmp_path, receiver.url)
        async with client_for(again) as client:
            second = (await receiver.wait_for(2))[1]
            await runtime_of(again).webhooks.idle()
            (row,) = await deliveries(client, thread_id)
    assert second.headers["webhook-id"] == row["webhook_id"] == receiver.requests[0].headers["webhook-id"]
    assert second.body == receiver.requests[0].body
    assert row["state"] == "delivered" and [a["status_code"] for a in row["attempts"]] == [500, 200]


async def test_without_endpoints_nothing_is_sent_and_the_log_is_empty(tmp_path: Path) -> None:
    app = create_app([deploybot()], settings=ServerSettings(database=str(tmp_path / "s.db")))
    async with client_for(app) as client:
        thread_id = await launch(client, "deploy to production")
        await wait_for_status(client, thread_id, "waiting")
        assert await deliveries(client, thread_id) == []
        assert (await client.get("/v1/threads/nope/deliveries")).status_code == 404


async def test_memory_store_keeps_the_delivery_log_in_memory(tmp_path: Path) -> None:
    async with Receiver().running() as receiver:
        app = app_for(tmp_path, receiver.url, database="memory://")
        async with client_for(app) as client:
            thread_id = await launch(client, "deploy to production")
            await receiver.wait_for(1)
            await runtime_of(app).webhooks.idle()
            (row,) = await deliveries(client, thread_id)
    assert row["state"] == "delivered"


# --- inbound resume ---


def signed(body: dict[str, Any], *, secret: str = INBOUND, msg_id: str = "msg_in_1", ts: int | None = None) -> Any:
    raw = json.dumps(body).encode()
    return {
        "content": raw,
        "headers": {**signed_headers(secret, msg_id, raw, timestamp=ts), "content-type": "application/json"},
    }


async def waiting_thread(client: httpx.AsyncClient) -> tuple[str, str, int]:
    thread_id = await launch(client, "deploy to production")
    body = await wait_for_status(client, thread_id, "waiting")
    return thread_id, body["pending_request"]["call_id"], body["version"]


async def test_a_signed_resume_is_applied_once(tmp_path: Path) -> None:
    async with client_for(app_for(tmp_path)) as client:
        thread_id, request_id, version = await waiting_thread(client)
        answer = {"thread_id": thread_id, "request_id": request_id, "approved": True, "responder": "slack:U123"}
        response = await client.post("/v1/webhooks/resume", **signed(answer))
        assert response.status_code == 200, response.text
        assert response.json()["version"] == version + 1
        done = await wait_for_status(client, thread_id, "done")
        applied = next(e for e in done["events"] if e["type"] == "human_response")
        assert applied["approved"] is True and applied["responder"] == "slack:U123"
        assert applied["idempotency_key"] == "webhook:msg_in_1"

        # The same delivery again (a replay): 409, nothing changes.
        replay = await client.post("/v1/webhooks/resume", **signed(answer))
        assert replay.status_code == 409 and "already received" in replay.json()["detail"]
        assert (await client.get(f"/v1/threads/{thread_id}")).json()["version"] == done["version"]


async def test_a_denial_with_a_reason_through_a_resume_webhook(tmp_path: Path) -> None:
    async with client_for(app_for(tmp_path)) as client:
        thread_id, request_id, _ = await waiting_thread(client)
        answer = {"thread_id": thread_id, "request_id": request_id, "approved": False, "text": "freeze"}
        assert (await client.post("/v1/webhooks/resume", **signed(answer))).status_code == 200
        done = await wait_for_status(client, thread_id, "done")
        assert done["events"][-1]["message"] == "Deploy cancelled by a human (freeze)."


@pytest.mark.parametrize(
    "tamper",
    ["wrong secret", "altered body", "no signature", "stale", "future", "bad timestamp"],
)
async def test_forged_and_stale_resumes_get_401_and_change_nothing(tmp_path: Path, tamper: str) -> None:
    async with client_for(app_for(tmp_path)) as client:
        thread_id, request_id, version = await waiting_thread(client)
        answer = {"thread_id": thread_id, "request_id": request_id, "approved": True}
        request = signed(answer, secret=SECRET if tamper == "wrong secret" else INBOUND)
        if tamper == "altered body":
            request["content"] = request["content"].replace(b"true", b"false")
        elif tamper == "no signature":
            del request["headers"]["webhook-signature"]
        # Far past the 300 s tolerance, so that a loaded machine's delay cannot bring them back within it.
        elif tamper == "stale":
            request = signed(answer, ts=int(time.time()) - 900)
        elif tamper == "future":
            request = signed(answer, ts=int(time.time()) + 900)
        elif tamper == "bad timestamp":
            request["headers"]["webhook-timestamp"] = "yesterday"
        response = await client.post("/v1/webhooks/resume", **request)
        assert response.status_code == 401, response.text
        assert "WWW-Authenticate" in response.headers
        await asyncio.sleep(0.05)
        after = (await client.get(f"/v1/threads/{thread_id}")).json()
        assert after["status"] == "waiting" and after["version"] == version

        # A forged delivery does not use up its id: the genuine one still goes through.
        assert (await client.post("/v1/webhooks/resume", **signed(answer))).status_code == 200


async def test_a_resume_that_does_not_fit_is_refused_and_can_be_retried(tmp_path: Path) -> None:
    async with client_for(app_for(tmp_path)) as client:
        thread_id, request_id, version = await waiting_thread(client)
        wrong = {"thread_id": thread_id, "request_id": "call_999", "approved": True}
        assert (await client.post("/v1/webhooks/resume", **signed(wrong, msg_id="m1"))).status_code == 409
        unknown = {"thread_id": "nope", "request_id": request_id, "approved": True}
        assert (await client.post("/v1/webhooks/resume", **signed(unknown, msg_id="m2"))).status_code == 404
        malformed = {"thread_id": thread_id, "request_id": request_id, "approved": "maybe?"}
        response = await client.post("/v1/webhooks/resume", **signed(malformed, msg_id="m3"))
        assert response.status_code == 422 and "approved" in response.json()["detail"]
        no_verdict = {"thread_id": thread_id, "request_id": request_id}
        assert (await client.post("/v1/webhooks/resume", **signed(no_verdict, msg_id="m4"))).status_code == 422
        assert (await client.get(f"/v1/threads/{thread_id}")).json()["version"] == version
        # m4 was not applied, so a corrected delivery with that id is no replay.
        fixed = {**no_verdict, "approved": True}
        assert (await client.post("/v1/webhooks/resume", **signed(fixed, msg_id="m4"))).status_code == 200


async def test_replayed_ids_are_remembered_across_restarts(tmp_path: Path) -> None:
    async with client_for(app_for(tmp_path)) as client:
        thread_id, request_id, _ = await waiting_thread(client)
        answer = {"thread_id": thread_id, "request_id": request_id, "approved": True}
        request = signed(answer, msg_id="msg_restart")
        assert (await client.post("/v1/webhooks/resume", **request)).status_code == 200
        await wait_for_status(client, thread_id, "done")
    async with client_for(app_for(tmp_path)) as client:
        assert (await client.post("/v1/webhooks/resume", **request)).status_code == 409


async def test_inbound_resume_is_off_without_a_secret(tmp_path: Path) -> None:
    app = app_for(tmp_path, inbound_webhook_secret=None)
    async with client_for(app) as client:
        response = await client.post("/v1/webhooks/resume", **signed({"thread_id": "x", "request_id": "y"}))
    assert response.status_code == 404 and "--inbound-webhook-secret" in response.json()["detail"]


async def test_the_openapi_document_describes_the_webhook_endpoints(tmp_path: Path) -> None:
    async with client_for(app_for(tmp_path)) as client:
        spec = (await client.get("/openapi.json")).json()
    resume = spec["paths"]["/v1/webhooks/resume"]["post"]
    assert "thread_id" in resume["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {p["name"] for p in resume["parameters"]} == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert "/v1/threads/{thread_id}/deliveries" in spec["paths"]


async def test_the_listener_ignores_running_threads_and_repeats() -> None:
    from twelvefactor import HumanRequest, Thread, UserMessage
    from twelvefactor.server.webhooks import status_episode

    running = Thread.new(UserMessage(content="hi"))
    assert status_episode(running) is None
    waiting = Thread.new(UserMessage(content="hi"), HumanRequest(call_id="c1", kind="input", question="?"))
    assert status_episode(waiting) == ("thread.waiting", 1)


async def test_an_oversized_resume_is_refused_before_it_is_read(tmp_path: Path) -> None:
    async with client_for(app_for(tmp_path)) as client:
        request = signed({"thread_id": "t", "request_id": "r", "text": "x" * (1024 * 1024)})
        response = await client.post("/v1/webhooks/resume", **request)
    assert response.status_code == 413 and "1048576 bytes" in response.json()["detail"]
