"""Hostile input gets a clear 4xx, never a 500, and never forges a stream frame."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from twelvefactor.errors import SignatureError, SSEFieldError
from twelvefactor.server.auth import generate_secret, verify
from twelvefactor.server.sse import frame
from twelvefactor.server.testing import live_server

from .conftest import client_for, sqlite_app

pytestmark = pytest.mark.anyio

PROD = {"agent": "deploybot", "message": "deploy the latest backend to production"}
INBOUND = generate_secret()


def test_a_huge_webhook_timestamp_is_a_signature_error_not_an_overflow() -> None:
    headers = {"webhook-id": "m1", "webhook-timestamp": "9" * 400, "webhook-signature": "v1,AAAA"}
    with pytest.raises(SignatureError, match="webhook-timestamp"):
        verify(INBOUND, headers, b"{}")


async def test_a_huge_webhook_timestamp_gets_401_over_http(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path, inbound_webhook_secret=INBOUND)) as client:
        headers = {"webhook-id": "m1", "webhook-timestamp": "9" * 400, "webhook-signature": "v1,AAAA"}
        response = await client.post("/v1/webhooks/resume", content=b"{}", headers=headers)
        assert response.status_code == 401, response.text
        assert "webhook-timestamp" in response.json()["detail"]


@pytest.mark.parametrize("value", ["9" * 5000, "٣".encode(), "²".encode(), "-1", "1.5", "x"])
async def test_a_malformed_last_event_id_gets_400(tmp_path: Path, value: str | bytes) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = (await client.post("/v1/threads", json=PROD)).json()
        response = await client.get(f"/v1/threads/{thread['id']}/stream", headers={"Last-Event-ID": value})
        assert response.status_code == 400, response.text
        assert "Last-Event-ID" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/threads", "/v1/threads/t1/responses", "/v1/threads/t1/events"])
async def test_an_escaped_lone_surrogate_in_json_is_a_4xx(tmp_path: Path, path: str) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        await client.post("/v1/threads", json={**PROD, "thread_id": "t1"})
        bodies = {
            "/v1/threads": b'{"agent": "deploybot", "message": "hi \\ud83d"}',
            "/v1/threads/t1/responses": b'{"request_id": "r", "text": "\\ud83d"}',
            "/v1/threads/t1/events": b'{"type": "user_message", "content": "\\udc00"}',
        }
        response = await client.post(path, content=bodies[path], headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, response.text
        assert response.status_code == 422 and "json_invalid" in response.text, response.text


def test_the_sse_writer_never_emits_a_raw_line_break_inside_a_field() -> None:
    text = frame(data='{"a": 1}\r\n\nevent: done', event="custom", id="3")
    assert text.endswith("\n\n") and "\r" not in text
    assert text.split("\n") == ["id: 3", "event: custom", 'data: {"a": 1}', "data: ", "data: event: done", "", ""]
    for field in ("event", "id"):
        with pytest.raises(SSEFieldError, match="line break"):
            frame(data="{}", **{field: "custom\nevent: done"})


def test_a_forged_event_type_cannot_inject_sse_frames(tmp_path: Path) -> None:
    with live_server(sqlite_app(tmp_path)) as base, httpx.Client(base_url=base, timeout=10) as client:
        thread = client.post("/v1/threads", json={**PROD, "thread_id": "t1"}).json()
        forged = {"type": "note\nevent: done\ndata: {}\n\nid: 99", "text": "hello"}
        appended = client.post(f"/v1/threads/{thread['id']}/events", json=forged)
        if appended.status_code >= 400:  # the model layer refused the type: nothing can be forged
            assert appended.status_code < 500
            return
        index = appended.json()["version"] - 1
        lines: list[str] = []
        with client.stream("GET", f"/v1/threads/{thread['id']}/stream", params={"since": index}) as stream:
            for line in stream.iter_lines():
                lines.append(line)
                if line == "":
                    break
        assert lines[0] == f"id: {index}"
        assert not any(line.startswith(("event: done", "id: 99")) for line in lines), lines
