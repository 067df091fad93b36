"""A trigger posted while a tool runs: the tool runs once, its result is kept, the model sees both."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from twelvefactor import Agent, FunctionModel, Message, tool

from .conftest import client_for, sqlite_app, wait_for_status

pytestmark = pytest.mark.anyio


async def test_triggers_posted_while_a_deploy_runs_do_not_cost_its_result(tmp_path: Path) -> None:
    deploys: list[str] = []
    running, triggered = threading.Event(), threading.Event()

    @tool
    def deploy(env: str) -> str:
        """Deploy the backend."""
        deploys.append(env)
        running.set()
        triggered.wait(10)
        return f"deployed to {env}"

    def model(messages: Sequence[Message]) -> dict[str, str]:
        context = messages[-1].content
        if "<tool_result>" in context:
            return {"intent": "done_for_now", "message": f"done; pages seen: {context.count('<pager>')}"}
        return {"intent": "deploy", "env": "production"}

    app = sqlite_app(tmp_path, Agent("deployer", tools=[deploy], model=FunctionModel(model)))
    async with client_for(app) as client:
        thread_id = (await client.post("/v1/threads", json={"agent": "deployer", "message": "ship"})).json()["id"]
        assert await asyncio.to_thread(running.wait, 10)
        for n in range(5):
            posted = await client.post(f"/v1/threads/{thread_id}/events", json={"type": "pager", "n": n})
            assert posted.status_code == 202, posted.text
        triggered.set()
        final = await wait_for_status(client, thread_id, "done")
    assert deploys == ["production"]  # never run again
    types = [e["type"] for e in final["events"]]
    assert types.count("tool_result") == 1 and types.count("pager") == 5
    assert final["events"][-1]["message"] == "done; pages seen: 5"
