"""An MCP server's tools as intents, against a real server process (stdio and streamable HTTP on 127.0.0.1).

The server is ``tiny_server.py``, built with the official SDK. Nothing here mocks the transport: servers
are killed, restarted and garbled for real.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from mcp_helpers import PROXY, HttpServer, http_server, stdio_server

from twelvefactor import (
    Agent,
    CustomEvent,
    Error,
    FunctionModel,
    HumanResponse,
    MemoryStore,
    Message,
    ScriptedModel,
    SQLiteStore,
    Thread,
    ToolResult,
    run,
)
from twelvefactor.errors import ToolError, UserError
from twelvefactor.mcp import MCPServer, mcp_prompt, mcp_resources, mcp_tools
from twelvefactor.thread import respond

DONE = {"intent": "done_for_now", "message": "ok"}


@pytest.fixture(scope="module")
def outbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outbox") / "outbox.jsonl"


@pytest.fixture(scope="module")
def stdio(outbox: Path) -> Iterator[MCPServer]:
    server = stdio_server(TINY_OUTBOX=str(outbox))
    yield server
    server.close()


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    with http_server(tmp_path_factory.mktemp("http")) as server:
        yield server


@pytest.fixture(scope="module", params=["stdio", "http"])
def server(request: pytest.FixtureRequest, stdio: MCPServer, http: HttpServer) -> Iterator[MCPServer]:
    if request.param == "stdio":
        yield stdio
        return
    client = http.client()
    yield client
    client.close()


def sent(outbox: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in outbox.read_text().splitlines()] if outbox.exists() else []


def mailer(server: MCPServer, script: list[dict[str, Any]], **options: Any) -> Agent:
    options.setdefault("effects", {"add": "read_only", "lookup": "read_only"})
    options.setdefault("requires_approval", {"send_email"})
    tools = mcp_tools(server, only=["add", "lookup", "send_email"], **options)
    return Agent("mailer", tools=tools, model=ScriptedModel(script))


def results(thread: Thread) -> list[Any]:
    return [e.result for e in thread.events if isinstance(e, ToolResult)]


def test_the_servers_tools_become_intents_with_their_schema_effects_and_approvals(server: MCPServer) -> None:
    tools = {
        t.intent_name(): t for t in mcp_tools(server, effects={"add": "read_only"}, requires_approval={"send_email"})
    }
    assert {"add", "send_email", "lookup", "crash", "garble", "garbage"} <= set(tools)
    assert tools["add"].effect == "read_only" and not tools["add"].requires_approval
    assert tools["send_email"].effect == "irreversible" and tools["send_email"].requires_approval
    assert tools["lookup"].effect == "irreversible"  # the default, like every tool: annotations are only hints
    assert tools["add"].model_json_schema()["required"] == ["a", "b"]
    assert tools["add"].__doc__ == "Add two integers."
    prefixed = mcp_tools(server, only=["add"], prefix="tiny.")
    assert [t.intent_name() for t in prefixed] == ["tiny.add"]


def test_an_agent_built_from_the_servers_tools_completes_a_task(server: MCPServer) -> None:
    agent = mailer(
        server,
        [
            {"intent": "add", "a": 2, "b": 40},
            {"intent": "lookup", "user": "ann"},
            {"intent": "done_for_now", "message": "42, and ann@example.com"},
        ],
    )
    thread = run(agent, agent.new_thread("add 2 and 40, then find ann"))
    assert thread.status == "done"
    assert results(thread) == [42, {"user": "ann", "email": "ann@example.com"}]


def test_an_irreversible_tool_that_requires_approval_waits_then_runs_once_approved(
    server: MCPServer, tmp_path: Path, outbox: Path, http: HttpServer
) -> None:
    box = outbox if server.url is None else Path(http.env["TINY_OUTBOX"])
    body = f"release notes {server.name} {time.monotonic_ns()}"
    agent = mailer(server, [{"intent": "send_email", "to": "ann@example.com", "body": body}, DONE])
    with SQLiteStore(tmp_path / "threads.db") as store:
        thread = run(agent, agent.new_thread("mail ann the notes"), store=store)
        request = thread.pending_request
        assert thread.status == "waiting" and request is not None and request.kind == "approval"
        assert request.intent == "send_email" and not any(m["body"] == body for m in sent(box))
        store.respond(thread.id, HumanResponse(request_id=request.call_id, approved=True, idempotency_key="k1"))
        store.respond(thread.id, HumanResponse(request_id=request.call_id, approved=True, idempotency_key="k1"))
        thread = run(agent, store.load(thread.id), store=store)
    assert thread.status == "done" and results(thread) == ["sent to ann@example.com"]
    assert [m for m in sent(box) if m["body"] == body] == [{"to": "ann@example.com", "body": body}]


def test_a_denied_call_is_never_sent(stdio: MCPServer, outbox: Path) -> None:
    agent = mailer(stdio, [{"intent": "send_email", "to": "bob@example.com", "body": "denied mail"}, DONE])
    thread = run(agent, agent.new_thread("mail bob"))
    assert thread.pending_request is not None
    thread = respond(thread, HumanResponse(request_id=thread.pending_request.call_id, approved=False, text="not now"))
    thread = run(agent, thread)
    assert thread.status == "done" and not any(m["body"] == "denied mail" for m in sent(outbox))


def test_an_error_result_is_a_compact_tool_error_the_model_sees(stdio: MCPServer) -> None:
    agent = mailer(stdio, [{"intent": "lookup", "user": "nobody"}, DONE])
    thread = run(agent, agent.new_thread("find nobody"))
    errors = [e for e in thread.events if isinstance(e, Error)]
    assert [e.message for e in errors] == [
        "MCP tool 'lookup' of server 'tiny' failed: Error executing tool lookup: no user 'nobody'"
    ]
    assert thread.status == "done"


def test_resources_and_prompts_are_context_sources(server: MCPServer) -> None:
    model = ScriptedModel([DONE])
    agent = Agent("reader", model=model, prefetch=[mcp_resources(server, ["notes://today"])])
    thread = run(agent, agent.new_thread("what is on today?"))
    note = thread.events[1]
    assert isinstance(note, CustomEvent) and note.type == "mcp_resource"
    assert note.model_dump(include={"uri", "mime_type", "text"}) == {
        "uri": "notes://today",
        "mime_type": "text/plain",
        "text": "standup at 10; release at 16",
    }
    assert (
        "<mcp_resource>\nuri: notes://today\nmime_type: text/plain\ntext: standup at 10; release at 16\n</mcp_resource>"
        in (model.calls[0][-1].content)
    )
    assert mcp_prompt(server, "review", {"topic": "database"}) == "Review the database change carefully."


def test_a_missing_resource_or_prompt_is_a_clear_error(stdio: MCPServer) -> None:
    with pytest.raises(ToolError, match=r"refused to read resource 'notes://nope': .*notes://nope"):
        mcp_resources(stdio, ["notes://nope"])(Thread.new())
    with pytest.raises(ToolError, match=r"refused to get prompt 'nope'"):
        mcp_prompt(stdio, "nope")
    with pytest.raises(UserError, match="prompt arguments are strings: 'topic' is int 3"):
        mcp_prompt(stdio, "review", {"topic": 3})  # type: ignore[dict-item]


def test_names_the_server_does_not_have_are_refused_not_skipped(stdio: MCPServer) -> None:
    with pytest.raises(UserError, match=r"MCP server 'tiny' has no tool 'send_mail'; its tools: add, crash, "):
        mcp_tools(stdio, requires_approval={"send_mail"})
    with pytest.raises(UserError, match=r"effects\['add'\] is 'readonly', not one of read_only, idempotent"):
        mcp_tools(stdio, effects={"add": "readonly"})  # type: ignore[dict-item]
    with pytest.raises(UserError, match="a set of tool names, not a string"):
        mcp_tools(stdio, requires_approval="send_email")


def test_a_tool_schema_we_cannot_express_is_a_user_error_naming_the_keyword(tmp_path: Path) -> None:
    server = stdio_server(TINY_ODD="1")
    try:
        with pytest.raises(UserError, match=r"MCP server 'tiny', tool 'odd': .*'not'"):
            mcp_tools(server)
        assert [t.intent_name() for t in mcp_tools(server, only=["add"])] == ["add"]
    finally:
        server.close()


def test_an_unreachable_server_is_a_clear_error() -> None:
    missing = MCPServer.stdio("twelvefactor-no-such-command", connect_timeout_s=10)
    with pytest.raises(UserError, match=r"cannot reach MCP server .*no-such-command.*FileNotFoundError"):
        mcp_tools(missing)
    from mcp_helpers import free_port

    closed = MCPServer.http(f"http://127.0.0.1:{free_port()}/mcp", connect_timeout_s=10)
    with pytest.raises(UserError, match=r"cannot reach MCP server .*ConnectError"):
        mcp_tools(closed)
    with pytest.raises(UserError, match="needs an http"):
        MCPServer.http("127.0.0.1:8000/mcp")


def _pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


def between_calls(do: Callable[[], None], *script: dict[str, Any]) -> FunctionModel:
    """A model that plays ``script``, and calls ``do()`` (kill a server...) before its second step."""
    steps = list(script)

    def next_step(messages: Sequence[Message]) -> dict[str, Any]:
        if len(steps) == len(script) - 1:
            do()
        return steps.pop(0)

    return FunctionModel(next_step)


def test_a_stdio_server_killed_between_calls_is_restarted_by_the_next_call(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    server = stdio_server(TINY_PIDFILE=str(pidfile), TINY_OUTBOX=str(tmp_path / "outbox.jsonl"))
    try:
        tools = mcp_tools(server, only=["add", "send_email"], effects={"add": "read_only"})

        def kill() -> None:
            os.kill(_pids(pidfile)[-1], signal.SIGKILL)
            time.sleep(0.05)

        script = [{"intent": "add", "a": 1, "b": 1}, {"intent": "add", "a": 2, "b": 2}, DONE]
        agent = Agent("adder", tools=tools, model=between_calls(kill, *script))
        thread = run(agent, agent.new_thread("add twice"), store=MemoryStore())
        assert thread.status == "done" and results(thread) == [2, 4]
        assert len(_pids(pidfile)) == 2  # a new server process answered the second call
        # Killed again, just before an irreversible call: the session is found dead before sending, so the
        # call goes to a fresh server (no doubt whether it ran, no question for a person).
        mail = [{"intent": "send_email", "to": "ann", "body": "after a restart"}, DONE]
        agent = Agent("mailer", tools=tools, model=ScriptedModel(mail))
        os.kill(_pids(pidfile)[-1], signal.SIGKILL)  # no pause: the probe before the call finds it dead
        thread = run(agent, agent.new_thread("mail ann"))
        assert thread.status == "done" and results(thread) == ["sent to ann"]
        assert len(_pids(pidfile)) == 3
    finally:
        server.close()


def test_an_http_server_restarted_between_calls_is_reached_again(tmp_path: Path) -> None:
    with http_server(tmp_path) as http:
        server = http.client()

        def restart() -> None:
            http.kill()
            http.start()

        script = [{"intent": "add", "a": 1, "b": 1}, {"intent": "add", "a": 2, "b": 2}, DONE]
        agent = Agent(
            "adder", tools=mcp_tools(server, only=["add"], effect="read_only"), model=between_calls(restart, *script)
        )
        thread = run(agent, agent.new_thread("add twice"))
        assert thread.status == "done" and results(thread) == [2, 4]
        server.close()


def test_a_read_only_call_to_a_server_that_dies_mid_call_is_retried_once_then_a_compact_error(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "pids"
    with (tmp_path / "stderr").open("w") as errlog:
        server = stdio_server(errlog, TINY_PIDFILE=str(pidfile))
        try:
            tools = mcp_tools(server, only=["add", "crash"], effects={"add": "read_only", "crash": "read_only"})
            script = [{"intent": "add", "a": 1, "b": 2}, {"intent": "crash"}, {"intent": "add", "a": 3, "b": 4}, DONE]
            agent = Agent("crasher", tools=tools, model=ScriptedModel(script))
            with SQLiteStore(tmp_path / "threads.db") as store:
                thread = run(agent, agent.new_thread("go"), store=store)
                stored = store.load(thread.id)
            assert stored.events == thread.events and thread.status == "done"
            errors = [e.message for e in thread.events if isinstance(e, Error)]
            assert errors == [
                "MCP tool 'crash' of server 'tiny': the server went away again after reconnecting"
                " (the connection closed); try later"
            ]
            assert results(thread) == [3, 7]  # before the crash, and after it
            assert len(_pids(pidfile)) == 3  # the first, the one the retry crashed, the one that added 3 + 4
        finally:
            server.close()


def test_an_idempotent_call_in_flight_when_the_server_died_is_sent_again_with_the_same_key(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    with (tmp_path / "stderr").open("w") as errlog:
        server = stdio_server(errlog, TINY_PIDFILE=str(pidfile), TINY_CRASH_ONCE=str(tmp_path / "crashed"))
        try:
            tools = mcp_tools(server, only=["upsert"], effect="idempotent")
            agent = Agent("writer", tools=tools, model=ScriptedModel([{"intent": "upsert", "key": "k"}, DONE]))
            thread = run(agent, agent.new_thread("write k"))
        finally:
            server.close()
    assert thread.status == "done" and len(_pids(pidfile)) == 2  # died in the call, answered by a new process
    assert results(thread) == [{"key": "k", "idempotency_key": f"{thread.id}:call_2"}]


def test_an_irreversible_call_to_a_server_that_dies_mid_call_is_reconciled_not_resent(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    with (tmp_path / "stderr").open("w") as errlog:
        server = stdio_server(errlog, TINY_PIDFILE=str(pidfile))
        try:
            tools = mcp_tools(server, only=["add", "crash"], effects={"add": "read_only"})
            agent = Agent(
                "crasher",
                tools=tools,
                model=ScriptedModel([{"intent": "add", "a": 1, "b": 2}, {"intent": "crash"}, DONE]),
            )
            with SQLiteStore(tmp_path / "threads.db") as store:
                thread = run(agent, agent.new_thread("go"), store=store)
                request = thread.pending_request
                assert thread.status == "waiting" and request is not None and request.kind == "reconcile"
                assert "crash {} may have run (attempt 1: MCP tool 'crash' of server 'tiny': the server went away" in (
                    request.question
                )
                assert "an irreversible call is not sent again blindly" in request.question
                assert len(_pids(pidfile)) == 1  # not sent again
                assert store.load(thread.id).events == thread.events and results(thread) == [3]
                store.respond(thread.id, HumanResponse(request_id=request.call_id, outcome="skip"))
                thread = run(agent, store.load(thread.id), store=store)
            assert thread.status == "done"
            [skipped] = [e.message for e in thread.events if isinstance(e, Error)]
            assert skipped.endswith("was skipped by a person after a crash: it may not have happened")
        finally:
            server.close()


def test_a_malformed_result_or_message_is_a_clear_tool_error(tmp_path: Path) -> None:
    with (tmp_path / "stderr").open("w") as errlog:
        server = stdio_server(errlog, script=PROXY)
        try:
            tools = mcp_tools(server, only=["add", "garble", "garbage"], effect="read_only")
            script = [{"intent": "garble"}, {"intent": "garbage"}, {"intent": "add", "a": 1, "b": 1}, DONE]
            agent = Agent("garbled", tools=tools, model=ScriptedModel(script))
            thread = run(agent, agent.new_thread("go"))
        finally:
            server.close()
    errors = [e.message for e in thread.events if isinstance(e, Error)]
    assert errors[0] == (
        "MCP tool 'garble' of server 'tiny' sent a malformed result: CallToolResult.content: Input should be a valid list"
    )
    assert errors[1].startswith("MCP tool 'garbage' of server 'tiny': the server went away again after reconnecting")
    assert "malformed message" in errors[1]
    assert len(errors) == 2 and results(thread) == [2] and thread.status == "done"
