"""An external tool's call completed over REST: the thread goes on."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

import pytest

from twelvefactor import Agent, ScriptedModel, Tool

from .conftest import client_for, sqlite_app, wait_for_status

pytestmark = pytest.mark.anyio


class LookupCustomer(Tool):
    """Look a customer up in the CRM (your code does it)."""

    intent: Literal["lookup_customer"] = "lookup_customer"
    email: str


async def test_an_external_call_is_completed_over_rest(tmp_path: Path) -> None:
    script: list[Any] = [
        {"intent": "lookup_customer", "email": "a@example.com"},
        {"intent": "done_for_now", "message": "ok"},
    ]
    bot = Agent("crm", tools=[LookupCustomer], model=ScriptedModel(script))
    async with client_for(sqlite_app(tmp_path, bot)) as client:
        thread_id = (await client.post("/v1/threads", json={"agent": "crm", "message": "who?"})).json()["id"]
        for _ in range(500):
            view = (await client.get(f"/v1/threads/{thread_id}")).json()
            if view["events"][-1]["type"] == "tool_call":
                break
            await asyncio.sleep(0.01)
        call_id = view["events"][-1]["call_id"]
        url = f"/v1/threads/{thread_id}/tool-results"
        assert (await client.post(url, json={"call_id": "nope", "result": 1})).status_code == 409
        for blank in ("", " ", "\x1c", "\x85\u2003"):  # white space to Python, some not to JSON Schema's \s
            refused = await client.post(url, json={"call_id": call_id, "error": blank})
            assert refused.status_code == 422, (blank, refused.text)
        posted = await client.post(url, json={"call_id": call_id, "result": {"name": "Ada"}})
        assert posted.status_code == 200, posted.text
        again = await client.post(url, json={"call_id": call_id, "result": {"name": "Ada"}})
        assert again.status_code == 200  # a retried delivery
        done = await wait_for_status(client, thread_id, "done")
    assert [e["result"] for e in done["events"] if e["type"] == "tool_result"] == [{"name": "Ada"}]
