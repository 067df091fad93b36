from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from twelvefactor import Agent
from twelvefactor._loader import load_agent
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.testing import free_port as free_port  # re-exported for the test modules
from twelvefactor.server.testing import live_server as live_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def deploybot() -> Agent:
    return load_agent(str(ROOT / "examples" / "deploybot"))


def calculator() -> Agent:
    return load_agent(str(ROOT / "examples" / "calculator"))


@asynccontextmanager
async def client_for(app: FastAPI, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client with the app's lifespan (worker) running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", **kwargs) as client:
            yield client


async def wait_for_status(
    client: httpx.AsyncClient, thread_id: str, *statuses: str, timeout: float = 10
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = (await client.get(f"/v1/threads/{thread_id}")).json()
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"thread {thread_id} stayed {body['status']}, wanted {statuses}")
        await asyncio.sleep(0.01)


def sqlite_app(tmp_path: Path, *agents: Agent, **settings: Any) -> FastAPI:
    config = ServerSettings(database=str(tmp_path / "service.db"), **settings)
    return create_app(list(agents) or [deploybot()], settings=config)
