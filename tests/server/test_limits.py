"""Bounded input: bodies are capped while they stream in, long texts are refused with a clear message."""

from __future__ import annotations

import json
import select
import socket
from pathlib import Path

import httpx
import pytest

from twelvefactor.server import ServerSettings
from twelvefactor.server.testing import live_server

from .conftest import client_for, sqlite_app

pytestmark = pytest.mark.anyio

PROD = {"agent": "deploybot", "message": "deploy the latest backend to production"}
KIB = 1024


def test_limits_are_settings_with_sensible_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = ServerSettings()
    assert defaults.max_body_bytes == 1024 * KIB and defaults.max_text_chars == 64 * KIB
    monkeypatch.setenv("TWELVEFACTOR_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("TWELVEFACTOR_MAX_TEXT_CHARS", "100")
    configured = ServerSettings.from_env()
    assert (configured.max_body_bytes, configured.max_text_chars) == (2048, 100)


@pytest.mark.parametrize("path", ["/v1/threads", "/v1/threads/t1/events", "/v1/webhooks/resume", "/threads"])
async def test_a_declared_length_over_the_cap_gets_413_json(tmp_path: Path, path: str) -> None:
    async with client_for(sqlite_app(tmp_path, max_body_bytes=4 * KIB)) as client:
        response = await client.post(path, content=b"x" * (5 * KIB), headers={"content-type": "application/json"})
        assert response.status_code == 413, response.text
        assert "4096 bytes" in response.json()["detail"] and "TWELVEFACTOR_MAX_BODY_BYTES" in response.json()["detail"]


async def test_a_chunked_body_over_the_cap_gets_413_json(tmp_path: Path) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b" " * KIB

    async with client_for(sqlite_app(tmp_path, max_body_bytes=4 * KIB)) as client:
        response = await client.post("/v1/threads", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413, response.text
        assert "4096 bytes" in response.json()["detail"]
        assert (await client.get("/v1/threads")).json() == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/threads", {**PROD, "message": "x" * (64 * KIB + 1)}),
        ("/v1/threads/t1/events", {"type": "user_message", "content": "x" * (64 * KIB + 1)}),
        ("/v1/threads/t1/events", {"type": "note", "payload": {"deep": ["x" * (64 * KIB + 1)]}}),
        ("/v1/threads/t1/responses", {"request_id": "r", "text": "x" * (64 * KIB + 1)}),
    ],
)
async def test_texts_over_the_field_cap_are_refused_with_a_clear_message(
    tmp_path: Path, path: str, body: dict[str, object]
) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        await client.post("/v1/threads", json={"agent": "deploybot", "message": "hi", "thread_id": "t1"})
        response = await client.post(path, json=body)
        assert response.status_code in (413, 422), response.text
        assert "65536" in response.json()["detail"] and "TWELVEFACTOR_MAX_TEXT_CHARS" in response.json()["detail"]
        assert "x" * 1000 not in (await client.get("/v1/threads/t1")).text  # nothing of it was recorded
        assert len((await client.get("/v1/threads")).json()) == 1


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.mark.parametrize("path", ["/v1/threads", "/v1/webhooks/resume"])
def test_a_real_server_answers_413_before_a_huge_chunked_body_is_sent(tmp_path: Path, path: str) -> None:
    total, piece = 64 * 1024 * KIB, 256 * KIB  # 64 MiB offered; far more than any socket buffer holds
    app = sqlite_app(tmp_path, max_body_bytes=64 * KIB, inbound_webhook_secret="whsec_" + "A" * 43)
    with live_server(app) as base:
        port = int(base.rsplit(":", 1)[1])
        sent = 0
        reply = b""
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            sock.sendall(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n")
            while sent < total:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered
                try:
                    sock.sendall(_chunk(b" " * piece))
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += piece
            sock.settimeout(10)
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert sent < total, "the whole body went out before the server answered"
        detail = json.loads(reply.split(b"\r\n\r\n", 1)[1])["detail"]
        assert "65536 bytes" in detail
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/v1/threads").json() == []
    assert (tmp_path / "service.db").stat().st_size < 1024 * KIB
