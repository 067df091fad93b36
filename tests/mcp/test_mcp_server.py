"""Our agents as an MCP server, driven by the SDK's own client: as a stdio subprocess
(``python -m twelvefactor.mcp``), over streamable HTTP on 127.0.0.1, and in-process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.stdio import stdio_client
from mcp_helpers import ROOT, SRC, free_port, stop, wait_for_port

from mcp import Client, StdioServerParameters
from twelvefactor import Agent, HumanResponse, MemoryStore, ScriptedModel, SQLiteStore
from twelvefactor._loader import load_agent
from twelvefactor.errors import UserError
from twelvefactor.mcp import build_mcp_server, serve_mcp

DEPLOY = "deploy v1.4.2 to production"


def drive(server: Any, script: Callable[[Client], Awaitable[Any]], timeout_s: float = 60) -> Any:
    """Run ``script`` with an SDK client connected to ``server``, bounded."""

    async def main() -> Any:
        with anyio.fail_after(timeout_s):
            async with Client(server, read_timeout_seconds=30) as client:
                return await script(client)

    return asyncio.run(main())


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    text = result.content[0]
    assert text.type == "text"
    return text.text


def test_deploybot_over_stdio_is_launched_approved_over_mcp_and_done(tmp_path: Path) -> None:
    db = tmp_path / "threads.db"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "twelvefactor.mcp", "examples/deploybot", "--db", str(db)],
        env={"PYTHONPATH": str(SRC)},
        cwd=ROOT,
    )

    async def script(client: Client) -> tuple[dict[str, Any], ...]:
        names = sorted(tool.name for tool in (await client.list_tools()).tools)
        assert names == ["answer_request", "launch_thread", "list_waiting", "read_thread"]
        launched = await call(client, "launch_thread", agent="deploybot", message=DEPLOY)
        waiting = await call(client, "list_waiting")
        request = launched["pending_request"]
        answered = await call(
            client, "answer_request", thread_id=launched["thread_id"], request_id=request["request_id"], approved=True
        )
        read = await call(client, "read_thread", thread_id=launched["thread_id"], events=2)
        return launched, waiting, answered, read

    with (tmp_path / "stderr").open("w") as errlog:  # the server's logs go to a file, not the test's output
        launched, waiting, answered, read = drive(stdio_client(params, errlog=errlog), script)

    assert launched["status"] == "waiting"
    assert launched["pending_request"] == {
        "request_id": launched["pending_request"]["request_id"],
        "kind": "approval",
        "question": 'Approve deploy_backend {"environment": "production", "tag": "v1.4.2"}?',
        "intent": "deploy_backend",
        "arguments": {"environment": "production", "tag": "v1.4.2"},
        "answer_with": "answer_request with approved=true or approved=false (text: the reason for a denial)",
    }
    assert [t["thread_id"] for t in waiting["threads"]] == [launched["thread_id"]]
    assert answered["status"] == "done" and answered["final_message"] == "Deployed v1.4.2 to production."
    assert (
        'tool_result: deploy_backend -> {"status": "deployed", "environment": "production", "tag": "v1.4.2"}'
        in (answered["last_events"])
    )
    assert read["status"] == "done" and read["last_events"] == [
        'tool_result: deploy_backend -> {"status": "deployed", "environment": "production", "tag": "v1.4.2"}',
        "done: Deployed v1.4.2 to production.",
    ]
    with SQLiteStore(db) as store:  # the store is the record: any process sees the same thread
        thread = store.load(launched["thread_id"])
    assert thread.status == "done" and thread.agent == "deploybot"
    responses = [e for e in thread.events if isinstance(e, HumanResponse)]
    assert [(r.approved, r.responder) for r in responses] == [(True, "mcp")]


def test_deploybot_over_http_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "twelvefactor.mcp", "examples/deploybot", "--db", "memory://", "--http", str(port)]
    with (tmp_path / "log").open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=log, stderr=log
        )
        try:
            wait_for_port(port, process)

            async def script(client: Client) -> dict[str, Any]:
                launched = await call(client, "launch_thread", agent="deploybot", message="deploy v1.4.1 to staging")
                return launched

            launched = drive(f"http://127.0.0.1:{port}/mcp", script)
        finally:
            stop(process)
    assert launched["status"] == "done" and launched["final_message"] == "Deployed v1.4.1 to staging."


def test_questions_denials_and_bad_answers_in_process() -> None:
    store = MemoryStore()
    server = build_mcp_server([load_agent("examples/deploybot")], store)

    async def script(client: Client) -> None:
        asked = await call(client, "launch_thread", agent="deploybot", message="deploy the backend")
        request = asked["pending_request"]
        assert asked["status"] == "waiting" and request["kind"] == "input"
        assert request["question"] == "Deploy to staging or to production?"
        thread_id, request_id = asked["thread_id"], request["request_id"]
        assert "asks a question: give the answer in text" in await refused(
            client, "answer_request", thread_id=thread_id, request_id=request_id, approved=True
        )
        assert "is not the pending request" in await refused(
            client, "answer_request", thread_id=thread_id, request_id="call_999", text="production"
        )
        approval = await call(
            client,
            "answer_request",
            thread_id=thread_id,
            request_id=request_id,
            text="production",
            idempotency_key="a1",
        )
        again = await call(
            client,
            "answer_request",
            thread_id=thread_id,
            request_id=request_id,
            text="production",
            idempotency_key="a1",
        )
        assert approval["pending_request"]["kind"] == "approval" and again["status"] == "waiting"
        denied = await call(
            client,
            "answer_request",
            thread_id=thread_id,
            request_id=approval["pending_request"]["request_id"],
            approved=False,
            text="change freeze",
        )
        assert denied["status"] == "done"
        assert denied["final_message"] == "Deploy cancelled by a human (change freeze)."
        assert (await call(client, "list_waiting"))["threads"] == []
        assert "no agent 'nobot' is served here; agents: deploybot" in await refused(
            client, "launch_thread", agent="nobot", message="hi"
        )
        assert "no thread with id 'nope'" in await refused(client, "read_thread", thread_id="nope")

    drive(server, script)
    [summary] = store.list()
    responses = [e for e in store.load(summary.id).events if isinstance(e, HumanResponse)]
    assert [(r.text, r.approved) for r in responses] == [("production", None), ("change freeze", False)]


def test_an_escalation_and_a_failure_are_reported_with_their_words() -> None:
    def offline(thread: Any) -> list[Any]:
        raise RuntimeError("the tag service is down")

    escalates = Agent("escalates", model=ScriptedModel([]), max_consecutive_errors=1)
    fails = Agent("fails", model=ScriptedModel([]), prefetch=[offline])
    server = build_mcp_server([escalates, fails], MemoryStore())

    async def script(client: Client) -> tuple[dict[str, Any], dict[str, Any]]:
        first = await call(client, "launch_thread", agent="escalates", message="go")
        second = await call(client, "launch_thread", agent="fails", message="go")
        return first, second

    escalated, failed = drive(server, script)
    assert escalated["status"] == "waiting" and escalated["pending_request"]["kind"] == "input"
    assert "I hit 1 errors in a row" in escalated["pending_request"]["question"]
    assert failed["status"] == "failed"
    assert failed["error"] == "agent 'fails' failed: RuntimeError: the tag service is down"


def test_serving_needs_agents_with_distinct_names_on_loopback() -> None:
    agent = load_agent("examples/deploybot")
    with pytest.raises(UserError, match="two agents are named 'deploybot'"):
        build_mcp_server([agent, agent], MemoryStore())
    with pytest.raises(UserError, match="needs at least one agent"):
        build_mcp_server([], MemoryStore())
    with pytest.raises(UserError, match="binds loopback only"):
        serve_mcp([agent], MemoryStore(), http_port=free_port(), host="0.0.0.0")
