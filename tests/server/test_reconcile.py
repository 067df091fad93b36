"""A call that may have run before a crash is asked about on every channel: API, web UI, approval link."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from twelvefactor import (
    Agent,
    ScriptedModel,
    SQLiteStore,
    Thread,
    ToolCall,
    ToolContext,
    ToolStarted,
    UserMessage,
    tool,
)
from twelvefactor.server.links import approval_link

from .conftest import client_for, sqlite_app, wait_for_status
from .test_ui import hidden

pytestmark = pytest.mark.anyio

PAID: list[tuple[str, int]] = []


@tool  # irreversible, the default
def pay(invoice: str, ctx: ToolContext) -> str:
    """Pay an invoice."""
    PAID.append((ctx.idempotency_key, ctx.attempt))
    return f"paid {invoice}"


def payer() -> Agent:
    return Agent("payer", tools=[pay], model=ScriptedModel([{"intent": "done_for_now", "message": "ok"}] * 3))


def crashed(tmp_path: Path) -> None:
    """As a process killed inside pay() leaves it: call and start recorded, no result."""
    with SQLiteStore(tmp_path / "service.db") as store:
        store.create(
            Thread.new(
                UserMessage(content="pay INV-7"),
                ToolCall(call_id="call_1", intent="pay", arguments={"invoice": "INV-7"}),
                ToolStarted(call_id="call_1", intent="pay", call_key="t1:call_1"),
                agent="payer",
                id="t1",
            )
        )


@pytest.fixture(autouse=True)
def _clear() -> None:
    PAID.clear()


async def test_the_api_shows_the_question_and_takes_an_outcome(tmp_path: Path) -> None:
    crashed(tmp_path)
    async with client_for(sqlite_app(tmp_path, payer())) as client:
        waiting = await wait_for_status(client, "t1", "waiting")
        request = waiting["pending_request"]
        assert request["kind"] == "reconcile" and request["intent"] == "pay"
        assert PAID == []  # not run blindly
        no_outcome = await client.post("/v1/threads/t1/responses", json={"request_id": request["call_id"]})
        assert no_outcome.status_code == 422 and "outcome" in no_outcome.json()["detail"]
        answered = await client.post(
            "/v1/threads/t1/responses", json={"request_id": request["call_id"], "outcome": "retry"}
        )
        assert answered.status_code == 200, answered.text
        done = await wait_for_status(client, "t1", "done")
    assert PAID == [("t1:call_1", 2)]
    assert [e["decided_by"] for e in done["events"] if e["type"] == "tool_reconciled"] == ["person"]


async def test_the_web_ui_offers_done_retry_and_skip(tmp_path: Path) -> None:
    crashed(tmp_path)
    async with client_for(sqlite_app(tmp_path, payer())) as client:
        await wait_for_status(client, "t1", "waiting")
        page = (await client.get("/threads/t1")).text
        assert "Did this run before a crash?" in page
        for value in ("done", "retry", "skip"):
            assert f'name="decision" value="{value}"' in page
        form = {"request_id": hidden(page, "request_id"), "idempotency_key": hidden(page, "idempotency_key")}
        posted = await client.post("/threads/t1/respond", data={**form, "decision": "skip"})
        assert posted.status_code == 303, posted.text
        done = await wait_for_status(client, "t1", "done")
    assert PAID == []
    assert any(e["type"] == "error" and "skipped" in e["message"] for e in done["events"])


async def test_an_approval_link_answers_it_too(tmp_path: Path) -> None:
    crashed(tmp_path)
    app = sqlite_app(tmp_path, payer())
    async with client_for(app) as client:
        waiting = await wait_for_status(client, "t1", "waiting")
        url = approval_link(app.state.runtime.settings, "t1", waiting["pending_request"]["call_id"])
        path = urlsplit(url).path
        page = (await client.get(path)).text
        assert "Mark done" in page and "Run it again" in page and "Skip it" in page
        posted = await client.post(path, data={"decision": "done", "result": "receipt 77"})
        assert posted.status_code == 200, posted.text
        done: dict[str, Any] = await wait_for_status(client, "t1", "done")
    assert PAID == []
    results = [e["result"] for e in done["events"] if e["type"] == "tool_result"]
    assert results == ["receipt 77"]
