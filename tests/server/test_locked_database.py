"""The service while another process holds SQLite's write lock: reads answer at once, a write that
cannot get the lock is a clear 503 to retry, and no thread is left behind once the lock is free."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from twelvefactor import Agent, FunctionModel, Message
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.store import SQLiteStore

from .conftest import client_for, deploybot, wait_for_status

pytestmark = pytest.mark.anyio

STAGING = {"agent": "deploybot", "message": "deploy the latest backend to staging"}


def hold_write_lock(path: Path, release: threading.Event, holding: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    holding.set()
    release.wait(30)
    conn.execute("ROLLBACK")
    conn.close()


async def test_reads_answer_writes_say_retry_and_no_thread_is_stranded(tmp_path: Path) -> None:
    path = tmp_path / "service.db"
    store = SQLiteStore(path, busy_timeout_s=0.3)
    release, holding = threading.Event(), threading.Event()

    def model(messages: Sequence[Message]) -> dict[str, str]:
        holding.wait(10)  # the answer comes while another process holds the lock: it cannot be saved yet
        return {"intent": "done_for_now", "message": "all good"}

    settings = ServerSettings(database=str(path))
    app = create_app([deploybot(), Agent("patient", model=FunctionModel(model))], settings=settings, store=store)
    async with client_for(app) as client:
        done = await wait_for_status(client, (await client.post("/v1/threads", json=STAGING)).json()["id"], "done")
        patient = (await client.post("/v1/threads", json={"agent": "patient", "message": "check"})).json()
        holder = threading.Thread(target=hold_write_lock, args=(path, release, holding))
        holder.start()
        try:
            assert await asyncio.to_thread(holding.wait, 5)
            started = time.monotonic()
            read = await client.get(f"/v1/threads/{done['id']}")
            listed = await client.get("/v1/threads")
            assert read.status_code == listed.status_code == 200
            assert holder.is_alive()  # answered while the other process still held the lock
            busy = await client.post("/v1/threads", json=STAGING)
            assert busy.status_code == 503, busy.text
            assert "locked" in busy.json()["detail"] and busy.headers.get("retry-after")
            assert time.monotonic() - started < 5
        finally:
            release.set()
            await asyncio.to_thread(holder.join, 10)
        # Its step could not be saved while the lock was held: retried, not stranded.
        finished = await wait_for_status(client, patient["id"], "done", timeout=20)
        assert finished["events"][-1]["message"] == "all good"
    store.close()
