"""Honest health and answers: a database that cannot be written is reported, and pages say what was recorded."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from twelvefactor.errors import StoreNotWritable
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.health import check_writable
from twelvefactor.server.links import approval_link
from twelvefactor.store.memory import MemoryStore
from twelvefactor.store.sqlite import SQLiteStore

from .conftest import client_for, deploybot, sqlite_app, wait_for_status

pytestmark = pytest.mark.anyio

PROD = {"agent": "deploybot", "message": "deploy the latest backend to production"}


def read_only(store: SQLiteStore) -> SQLiteStore:
    # What a read-only file (or a full disk) looks like to SQLite; chmod does not stop root, who runs CI here.
    store._conn.execute("PRAGMA query_only = ON")
    return store


def test_check_writable_sees_through_wrappers_and_passes_memory_stores(tmp_path: Path) -> None:
    check_writable(MemoryStore())
    writable = SQLiteStore(tmp_path / "ok.db")
    check_writable(writable)
    with pytest.raises(StoreNotWritable, match="not writable"):
        check_writable(read_only(SQLiteStore(tmp_path / "ro.db")))
    writable.close()


def test_create_app_refuses_a_database_it_cannot_write(tmp_path: Path) -> None:
    store = read_only(SQLiteStore(tmp_path / "ro.db"))
    with pytest.raises(StoreNotWritable) as refused:
        create_app([deploybot()], settings=ServerSettings(database=str(tmp_path / "ro.db")), store=store)
    message = str(refused.value)
    assert "\n" not in message and "ro.db" in message and "not writable" in message
    store.close()


async def test_healthz_is_503_once_the_database_cannot_be_written(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    app = create_app([deploybot()], settings=ServerSettings(database=str(tmp_path / "s.db")), store=store)
    async with client_for(app) as client:
        healthy = await client.get("/healthz")
        assert healthy.status_code == 200 and healthy.json()["status"] == "ok"
        read_only(store)
        sick = await client.get("/healthz")
        assert sick.status_code == 503, sick.text
        assert sick.json()["status"] == "unavailable" and "not writable" in sick.json()["detail"]
        write = await client.post("/v1/threads", json=PROD)
        assert write.status_code == 503 and "not writable" in write.json()["detail"], write.text
    store.close()


async def test_concurrent_posts_of_one_link_confirm_only_the_answer_recorded(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)
    async with client_for(app) as client:
        launched = await client.post("/v1/threads", json=PROD)
        thread = await wait_for_status(client, launched.json()["id"], "waiting")
        url = approval_link(app.state.runtime.settings, thread["id"], thread["pending_request"]["call_id"])
        path = urlsplit(url).path
        forms = [{"decision": "approve"} if i % 2 else {"decision": "deny", "reason": f"no {i}"} for i in range(20)]
        pages = await asyncio.gather(*(client.post(path, data=form) for form in forms))
        final = (await client.get(f"/v1/threads/{thread['id']}")).json()
        recorded = [e for e in final["events"] if e["type"] == "human_response"]
        assert len(recorded) == 1
        verdict = "Approved" if recorded[0]["approved"] else "Denied"
        confirmed = [p for p in pages if p.status_code == 200]
        assert len(confirmed) == 1, [p.status_code for p in pages]
        for page in pages:
            title = re.search(r"<h1>(.*?)</h1>", page.text)
            assert title is not None
            wrong = "Denied" if verdict == "Approved" else "Approved"
            assert wrong not in page.text, page.text  # no page contradicts the record


def test_serve_refuses_a_database_it_cannot_open_for_writing_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twelvefactor.cli import app as cli

    # A directory where the database file should be: SQLite cannot open it (what a read-only mount does
    # to root too, who runs these tests and whom file permissions do not stop).
    result = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path), "--port", "0"])
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.split())  # the terminal wraps the one-line message
    assert said.startswith("error: cannot open the database") and str(tmp_path) in said, result.output
    assert "Traceback" not in result.output
