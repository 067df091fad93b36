"""Your agents as an MCP server: any MCP client can launch threads, read them, answer their pending
requests (approve or deny a step, answer a question, settle a call that may have run) and list the
threads that wait for a person.

    serve_mcp([agent], SQLiteStore("twelvefactor.db"))                  # stdio
    serve_mcp([agent], store, http_port=8765)                           # http://127.0.0.1:8765/mcp
    python -m twelvefactor.mcp examples/deploybot --db twelvefactor.db  # the same, from a shell

A thread is advanced here, in this process, with ``twelvefactor.run`` on the store, until it waits or
ends, while this process holds the thread's lease (so a ``twelvefactor serve`` worker on the same
store never advances it at the same time). Answers go through ``store.respond``: a repeated
``idempotency_key`` is applied once. Every tool answers with the thread's state in short: status, the
pending request (and how to answer it), the final message or the failure, and the last events.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Sequence
from typing import Any, Literal

from mcp.server import MCPServer as _SDKServer
from mcp.server.mcpserver.exceptions import ToolError as _MCPToolError

from twelvefactor.agent import Agent
from twelvefactor.context import event_body
from twelvefactor.errors import TwelveFactorError, UserError, compact
from twelvefactor.events import Done, Error, Event, HumanRequest, HumanResponse, ToolCall, ToolResult
from twelvefactor.loop import pending_tool_call
from twelvefactor.loop import run as run_loop
from twelvefactor.store.base import ThreadStore
from twelvefactor.thread import Thread
from twelvefactor.workers.leases import DEFAULT_LEASE_S, Leases, new_owner

__all__ = ["build_mcp_server", "main", "serve_mcp", "thread_state"]

_HOW_TO_ANSWER = {
    "approval": "answer_request with approved=true or approved=false (text: the reason for a denial)",
    "input": "answer_request with text (the answer to the question)",
    "reconcile": "answer_request with outcome='done' (text: its result), 'retry' or 'skip'",
}
_MAX_EVENTS = 50


def build_mcp_server(
    agents: Sequence[Agent],
    store: ThreadStore,
    *,
    name: str = "twelvefactor",
    lease_s: float = DEFAULT_LEASE_S,
    last_events: int = 8,
) -> _SDKServer[Any]:
    """The MCP server (the SDK's ``MCPServer``) exposing ``agents`` on ``store``; run it yourself, or
    connect to it in-process with ``mcp.Client(server)``. See :func:`serve_mcp`."""
    return _build(agents, store, name=name, lease_s=lease_s, last_events=last_events)[0]


def _build(
    agents: Sequence[Agent], store: ThreadStore, *, name: str, lease_s: float, last_events: int
) -> tuple[_SDKServer[Any], _Tools]:
    by_name = _by_name(agents)
    tools = _Tools(by_name, store, Leases(store, new_owner("mcp"), lease_s), last_events)
    listing = "; ".join(f"{n} ({a.description})" if a.description else n for n, a in by_name.items())
    server: _SDKServer[Any] = _SDKServer(
        name,
        instructions=f"Agents served here: {listing}. Launch a thread, read it, answer what it asks.",
        log_level="WARNING",
    )
    server.add_tool(
        tools.launch_thread,
        description=f"Start a thread of an agent with a message and run it until it waits or ends. Agents: {listing}.",
    )
    server.add_tool(tools.read_thread, description="A thread's status, pending request and last events.")
    server.add_tool(
        tools.answer_request,
        description="Answer a thread's pending request (approve or deny a step, answer a question, or say"
        " whether a call that may have run before a crash is done, to retry or to skip), then run it on.",
    )
    server.add_tool(tools.list_waiting, description="Threads that wait for a person, newest first.")
    return server, tools


def serve_mcp(
    agents: Sequence[Agent],
    store: ThreadStore,
    *,
    http_port: int | None = None,
    host: str = "127.0.0.1",
    lease_s: float = DEFAULT_LEASE_S,
) -> None:
    """Serve ``agents`` over MCP until stopped: on stdin/stdout, or with ``http_port`` over streamable
    HTTP at ``http://{host}:{http_port}/mcp`` (loopback only: there is no sign-in here)."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise UserError(f"the MCP server binds loopback only (127.0.0.1), not {host!r}: it has no sign-in")
    server, tools = _build(agents, store, name="twelvefactor", lease_s=lease_s, last_events=8)
    try:
        if http_port is None:
            server.run("stdio")
        else:
            server.run("streamable-http", host=host, port=http_port)
    finally:
        tools.close()


class _Tools:
    """The four tools, over one store; each runs in a worker thread of the SDK (the loop blocks)."""

    def __init__(self, agents: dict[str, Agent], store: ThreadStore, leases: Leases, last_events: int) -> None:
        self.agents = agents
        self.store = store
        self.leases = leases
        self.last_events = last_events
        self._heartbeat = threading.Lock()
        self._beating = False

    def launch_thread(self, agent: str, message: str) -> dict[str, Any]:
        """Start a thread of ``agent`` with ``message``; returns its state when it waits or ends."""
        with _as_tool_errors():
            served = self._agent(agent)
            if not message.strip():
                raise UserError("a thread starts with a message: say what the agent should do")
            thread = served.new_thread(message)
            self.store.create(thread)
            return self._state(self._advance(served, thread))

    def read_thread(self, thread_id: str, events: int | None = None) -> dict[str, Any]:
        """The thread's state: status, pending request, final message or failure, the last ``events`` events."""
        with _as_tool_errors():
            return thread_state(self.store.load(thread_id), self._events(events))

    def answer_request(
        self,
        thread_id: str,
        request_id: str,
        approved: bool | None = None,
        text: str | None = None,
        outcome: Literal["done", "retry", "skip"] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Answer the pending request ``request_id`` (see ``pending_request.answer_with``), then run on."""
        with _as_tool_errors():
            response = HumanResponse(
                request_id=request_id,
                approved=approved,
                text=text,
                outcome=outcome,
                responder="mcp",
                idempotency_key=idempotency_key,
            )
            thread = self.store.respond(thread_id, response)
            agent = self.agents.get(thread.agent or "")
            if agent is None:
                state = self._state(thread)
                state["note"] = f"answered; agent {thread.agent!r} is not served here, so the thread was not run on"
                return state
            return self._state(self._advance(agent, thread))

    def list_waiting(self, agent: str | None = None, limit: int = 20) -> dict[str, Any]:
        """Threads waiting for a person (newest first), each with its pending request."""
        with _as_tool_errors():
            if agent is not None:
                self._agent(agent)
            rows = self.store.list(agent=agent, status="waiting", limit=max(1, min(limit, 100)))
            waiting = []
            for row in rows:
                request = self.store.load(row.id).pending_request
                item: dict[str, Any] = {
                    "thread_id": row.id,
                    "agent": row.agent,
                    "updated_at": row.updated_at.isoformat(),
                }
                if request is not None:
                    item["pending_request"] = _request(request)
                waiting.append(item)
            return {"threads": waiting}

    def _agent(self, name: str) -> Agent:
        agent = self.agents.get(name)
        if agent is None:
            raise UserError(f"no agent {name!r} is served here; agents: {', '.join(self.agents)}")
        return agent

    def _advance(self, agent: Agent, thread: Thread) -> Thread:
        if thread.status != "running":
            return thread
        self._start_heartbeat()
        self.leases.claim_or_raise(thread.id)
        try:
            return run_loop(agent, thread, store=self.store, should_stop=lambda: thread.id in self.leases.lost)
        finally:
            self.leases.release(thread.id)

    def close(self) -> None:
        """Stop renewing leases (the threads this process advanced are released already)."""
        with self._heartbeat:
            if self._beating:
                self.leases.stop()
                self._beating = False

    def _start_heartbeat(self) -> None:
        with self._heartbeat:
            if not self._beating:
                self.leases.start()
                self._beating = True

    def _events(self, events: int | None) -> int:
        return self.last_events if events is None else max(0, min(events, _MAX_EVENTS))

    def _state(self, thread: Thread) -> dict[str, Any]:
        return thread_state(thread, self.last_events)


def thread_state(thread: Thread, last_events: int = 8) -> dict[str, Any]:
    """A thread in short, as the MCP tools answer: what a client needs to decide its next call."""
    state: dict[str, Any] = {"thread_id": thread.id, "agent": thread.agent, "status": thread.status}
    request = thread.pending_request
    if request is not None:
        state["pending_request"] = _request(request)
    elif thread.status == "running" and (call := pending_tool_call(thread)) is not None:
        state["pending_tool_call"] = {"call_id": call.call_id, "intent": call.intent, "arguments": call.arguments}
    if thread.status == "done":
        state["final_message"] = next(e.message for e in reversed(thread.events) if isinstance(e, Done))
    if thread.status == "failed":
        state["error"] = next(e.message for e in reversed(thread.events) if isinstance(e, Error) and e.fatal)
    shown = [e for e in thread.events if e.shown_in_context]
    state["last_events"] = [_line(e) for e in (shown[-last_events:] if last_events else [])]
    return state


def _line(event: Event) -> str:
    """One event on one line: ``tool_call: deploy_backend {"tag": "v1.4.2"}``."""
    if isinstance(event, ToolCall):
        body = f"{event.intent} {_json(event.arguments)}"
    elif isinstance(event, ToolResult):
        body = f"{event.intent} -> {_json(event.result)}"
    elif isinstance(event, HumanRequest):
        body = f"{event.kind}: {event.question}"
    else:
        body = event_body(event)
    return f"{event.type}: {compact(body, 300)}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _request(request: HumanRequest) -> dict[str, Any]:
    data: dict[str, Any] = {"request_id": request.call_id, "kind": request.kind, "question": request.question}
    if request.intent is not None:
        data["intent"] = request.intent
        data["arguments"] = request.arguments or {}
    data["answer_with"] = _HOW_TO_ANSWER[request.kind]
    return data


class _as_tool_errors:
    """Our errors carry their fix in one line: the client gets that line as the tool's error result."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> Literal[False]:
        if isinstance(exc, TwelveFactorError):
            raise _MCPToolError(compact(str(exc), 500)) from None
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m twelvefactor.mcp AGENT... [--db PATH] [--http PORT]`` (what ``twelvefactor mcp`` runs)."""
    from twelvefactor._loader import load_agent
    from twelvefactor.store import open_store

    parser = argparse.ArgumentParser(prog="twelvefactor mcp", description="Serve agents over MCP (stdio or HTTP).")
    parser.add_argument("agents", nargs="+", metavar="AGENT", help="examples/deploybot, file.py:agent, pkg.mod:agent")
    parser.add_argument("--db", default="twelvefactor.db", metavar="PATH", help="Store: a SQLite file path, memory://")
    parser.add_argument("--http", type=int, metavar="PORT", help="Serve streamable HTTP on 127.0.0.1:PORT (/mcp)")
    options = parser.parse_args(argv)
    try:
        agents = [load_agent(ref) for ref in options.agents]
        store = open_store(options.db)
    except TwelveFactorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with store:
        serve_mcp(agents, store, http_port=options.http)
    return 0


def _by_name(agents: Sequence[Agent]) -> dict[str, Agent]:
    by_name: dict[str, Agent] = {}
    for agent in agents:
        if not isinstance(agent, Agent):
            raise UserError(f"serve_mcp serves agents, got {type(agent).__name__} {agent!r}")
        if agent.name in by_name:
            raise UserError(f"two agents are named {agent.name!r}: names pick the agent, so they must differ")
        by_name[agent.name] = agent
    if not by_name:
        raise UserError("serve_mcp needs at least one agent")
    return by_name
