"""Workflows over the API: launched like agents, paused on people and sub-agents, resumed by answers."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, Literal

import pytest

from twelvefactor import Agent, Flow, ScriptedModel, Tool, workflow
from twelvefactor._loader import load_target
from twelvefactor.server import ServerSettings, create_app

from .conftest import ROOT, client_for, wait_for_status

pytestmark = pytest.mark.anyio


def release_app(tmp_path: Path, *targets: Any) -> Any:
    settings = ServerSettings(database=str(tmp_path / "service.db"))
    return create_app(list(targets) or [load_target(str(ROOT / "examples" / "release"))], settings=settings)


async def test_the_release_example_runs_over_the_api_and_production_waits_for_a_person(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    monkeypatch.setenv("RELEASE_LEDGER", str(ledger))
    async with client_for(release_app(tmp_path)) as client:
        agents = {a["name"]: a for a in (await client.get("/v1/agents")).json()}
        assert agents["release"]["kind"] == "workflow" and agents["release"]["intents"] == ["rollout"]
        assert agents["rollout"]["kind"] == "agent"  # its sub-agent is served with it

        launched = await client.post("/v1/threads", json={"agent": "release", "message": "ship the latest"})
        assert launched.status_code == 202, launched.text
        thread_id = launched.json()["id"]
        waiting = await wait_for_status(client, thread_id, "waiting")
        for _ in range(500):  # first it waits on its sub-agent's thread, then for a person
            if waiting["pending_request"] is not None:
                break
            await asyncio.sleep(0.01)
            waiting = await wait_for_status(client, thread_id, "waiting")
        request = waiting["pending_request"]
        assert request["kind"] == "approval" and request["arguments"] == {"tag": "v1.4.2", "environment": "production"}
        deploys = [json.loads(line) for line in ledger.read_text().splitlines()]
        assert [(d["effect"], d.get("environment")) for d in deploys] == [("deploy", "staging")]

        rollout_call = next(e for e in waiting["events"] if e["type"] == "tool_call" and e["intent"] == "rollout")
        child = (await client.get(f"/v1/threads/{rollout_call['arguments']['thread_id']}")).json()
        assert child["parent_id"] == thread_id and child["status"] == "done" and child["agent"] == "rollout"

        answered = await client.post(
            f"/v1/threads/{thread_id}/responses", json={"request_id": request["call_id"], "approved": True}
        )
        assert answered.status_code == 200, answered.text
        done = await wait_for_status(client, thread_id, "done")
    assert done["events"][-1]["message"] == "released v1.4.2 to production"
    effects = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [(d["effect"], d.get("environment")) for d in effects] == [
        ("deploy", "staging"),
        ("deploy", "production"),
        ("post", None),
    ]
    assert "RELEASE_LEDGER" in os.environ  # the example wrote to the file, not its in-memory default


class Verdict(Tool):
    """Give the pipeline your verdict."""

    intent: Literal["verdict"] = "verdict"
    go: bool


async def test_a_sub_agent_question_is_answered_on_its_own_thread_and_the_workflow_goes_on(tmp_path: Path) -> None:
    reviewer = Agent(
        "reviewer",
        tools=[Verdict],
        model=ScriptedModel(
            [{"intent": "request_human_input", "question": "Freeze over?"}, {"intent": "verdict", "go": False}]
        ),
    )

    @workflow(agents=[reviewer])
    def gate(wf: Flow) -> str:
        return "go" if wf.agent(reviewer, "review", output=Verdict).go else "held"

    async with client_for(release_app(tmp_path, gate)) as client:
        thread_id = (await client.post("/v1/threads", json={"agent": "gate", "message": "1.4"})).json()["id"]
        parent = await wait_for_status(client, thread_id, "waiting")
        assert parent["pending_request"] is None  # the question is the sub-agent's
        wait = parent["events"][-1]
        assert wait["type"] == "wait" and wait["thread_id"]
        child = await wait_for_status(client, wait["thread_id"], "waiting")
        assert child["parent_id"] == thread_id
        on_parent = await client.post(
            f"/v1/threads/{thread_id}/responses", json={"request_id": child["pending_request"]["call_id"], "text": "no"}
        )
        assert on_parent.status_code == 409  # answers go to the thread that asked
        answered = await client.post(
            f"/v1/threads/{child['id']}/responses",
            json={"request_id": child["pending_request"]["call_id"], "text": "not yet"},
        )
        assert answered.status_code == 200, answered.text
        done = await wait_for_status(client, thread_id, "done")
    assert done["events"][-1]["message"] == "held"
