"""An MCP server's tools as intents of an agent; its resources and prompts as context sources.

    server = MCPServer.stdio("python", ["my_server.py"])
    tools = mcp_tools(server, effects={"search": "read_only"}, requires_approval={"send_email"})
    agent = Agent("mailer", tools=tools, prefetch=[mcp_resources(server, ["notes://today"])])

Each tool's arguments are the server's ``inputSchema`` (through ``tool_from_schema``: every constraint
pydantic can enforce, an inexpressible keyword is a UserError naming it). Like every tool, an MCP tool
is ``irreversible`` unless you say otherwise (the server's annotations are hints from a peer, not
promises), and waits for a person when ``requires_approval`` names it.

A call's result is the tool's structured content (JSON) if it sent any (a plain value the server
wrapped as ``{"result": value}`` for the protocol's sake is unwrapped), else its text joined; an
error result, a refused or malformed answer, or a transport failure is a one-line ToolError the loop
records like any tool error. One session per ``MCPServer`` object, shared by its tools, resources and
prompts. A server that went away (a killed process, a restarted HTTP server) is reconnected before the
next request. A request in flight when it went away is sent again once, on the new session, if the
tool is ``read_only`` or ``idempotent`` (with the same idempotency key); an ``irreversible`` one is
never re-sent blindly: its ToolError says it may have run (``may_have_run``), and the loop reconciles
the call like one interrupted by a crash (the tool's ``reconcile`` hook, then a person).
"""

from __future__ import annotations

import base64
import json
import os
import shlex
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar, cast
from urllib.parse import urlsplit

from mcp_types import (
    CONNECTION_CLOSED,
    INVALID_REQUEST,
    REQUEST_TIMEOUT,
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ResourceLink,
    TextContent,
    TextResourceContents,
)
from mcp_types import Tool as MCPTool
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from mcp import Client, MCPError
from twelvefactor.errors import ToolError, UserError, compact
from twelvefactor.events import CustomEvent, Event
from twelvefactor.mcp._connection import Broken, Connection, Unreachable, describe
from twelvefactor.schema_tools import tool_from_schema
from twelvefactor.thread import Thread
from twelvefactor.tools import EFFECTS, Effect, Tool, ToolContext

__all__ = ["MCPServer", "mcp_prompt", "mcp_resources", "mcp_tools"]

T = TypeVar("T")

IDEMPOTENCY_META_KEY = "twelvefactor/idempotencyKey"
"""The ``_meta`` entry of a tool call carrying the call's stable idempotency key (servers may deduplicate)."""

_MAX_PAGES = 100
_SESSION_GONE = "Session terminated"  # the transport's words for an HTTP 404 on a session the server forgot


@dataclass(frozen=True, eq=False)
class MCPServer:
    """Where an MCP server is: a command to run (stdio) or a streamable HTTP URL. Build with
    :meth:`stdio` or :meth:`http`.

    ``timeout_s`` bounds each request (a call, a read), ``connect_timeout_s`` opening a session. The
    object owns its session: use the same object for a server's tools, resources and prompts.
    """

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 60.0
    connect_timeout_s: float = 30.0
    errlog: TextIO | None = None
    _connection: Connection = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise UserError("an MCPServer needs a command (MCPServer.stdio) or a URL (MCPServer.http), not both")
        if not (self.timeout_s > 0 and self.connect_timeout_s > 0):
            raise UserError(f"timeouts must be positive, got {self.timeout_s!r} and {self.connect_timeout_s!r}")
        object.__setattr__(self, "_connection", Connection(self))

    @classmethod
    def stdio(
        cls,
        command: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 30.0,
        errlog: TextIO | None = None,
    ) -> MCPServer:
        """A server this process starts and talks to over its stdin/stdout.

        ``env`` is added to the few variables the SDK passes on (PATH, HOME...): the server does not
        see this process's environment otherwise. ``errlog`` receives its stderr (default: ours).
        """
        if not command.strip():
            raise UserError("MCPServer.stdio needs a command, e.g. MCPServer.stdio('python', ['server.py'])")
        if isinstance(args, str):
            raise UserError(f"args is a list of arguments, not a string: use {shlex.split(args)!r}")
        script = bool(args) and os.path.basename(command).startswith("python")
        label = name or os.path.basename(args[0] if script else command)
        return cls(
            name=label,
            command=command,
            args=tuple(args),
            env=tuple(sorted((env or {}).items())),
            cwd=None if cwd is None else os.fspath(cwd),
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            errlog=errlog,
        )

    @classmethod
    def http(
        cls,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 30.0,
    ) -> MCPServer:
        """A server reached over streamable HTTP at ``url`` (``http://127.0.0.1:8000/mcp``); ``headers``
        go with every request (``{"Authorization": "Bearer ..."}``)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UserError(f"MCPServer.http needs an http(s) URL such as 'http://127.0.0.1:8000/mcp', got {url!r}")
        return cls(
            name=name or parts.netloc,
            url=url,
            headers=tuple(sorted((headers or {}).items())),
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
        )

    def __repr__(self) -> str:
        where = self.url if self.url is not None else shlex.join([self.command or "", *self.args])
        return f"MCPServer({self.name!r}, {where!r})"

    def close(self) -> None:
        """Close the session (a stdio server is stopped); the next request opens a new one."""
        connection = self._connection
        connection.run(connection.close(), self.connect_timeout_s + 10)

    def list_tools(self) -> list[MCPTool]:
        """The server's tool definitions, as it lists them (every page)."""

        async def send(client: Client) -> list[MCPTool]:
            tools: list[MCPTool] = []
            cursor: str | None = None
            for _ in range(_MAX_PAGES):
                page = await client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break
            return tools

        return self._request("list tools", send, setup=True)

    def _request(self, what: str, send: Callable[[Client], Awaitable[T]], *, setup: bool = False) -> T:
        """A request that is safe to send twice (a list, a read): reconnected and sent again once if the
        session broke under it. ``setup``: failing to connect is a configuration problem (UserError)."""
        connection = self._connection

        async def attempt() -> T:
            for retry in (False, True):
                try:
                    client = await connection.client()
                except Unreachable as exc:
                    error = UserError if setup else ToolError
                    raise error(f"cannot reach MCP server {self!r}: {exc}") from None
                try:
                    return await connection.request(send, client)
                except (Broken, MCPError) as exc:
                    if not _session_lost(exc):
                        raise ToolError(f"MCP server {self.name!r} refused to {what}: {_message(exc)}") from None
                    connection.lost(client, _message(exc))
                    if retry:
                        raise ToolError(f"MCP server {self.name!r} went away twice while asked to {what}") from None
                except (ValidationError, RuntimeError) as exc:
                    raise ToolError(
                        f"MCP server {self.name!r} sent a malformed answer to {what}: {_first(exc)}"
                    ) from None
            raise AssertionError("unreachable")

        return self._wait(attempt(), what)

    def _wait(self, coro: Coroutine[Any, Any, T], what: str) -> T:
        try:
            return self._connection.run(coro, self.connect_timeout_s + 2 * self.timeout_s + 10)
        except TimeoutError:
            raise ToolError(f"MCP server {self.name!r} did not answer in time to {what}") from None


def mcp_tools(
    server: MCPServer,
    *,
    effect: Effect = "irreversible",
    effects: Mapping[str, Effect] | None = None,
    requires_approval: bool | Collection[str] = False,
    only: Iterable[str] | None = None,
    prefix: str = "",
) -> list[type[Tool]]:
    """The server's tools as Tool classes (intent: ``prefix`` + the tool's name).

    ``effect`` is every tool's effect kind and ``effects`` one tool's (by its MCP name);
    ``requires_approval`` is True for all, or the names that wait for a person; ``only`` keeps those
    tools. A name in ``effects``, ``requires_approval`` or ``only`` that the server does not have is a
    UserError (a typo would otherwise silently skip an approval).
    """
    effects = dict(effects or {})
    for name, kind in {"": effect, **effects}.items():
        if kind not in EFFECTS:
            where = f"effects[{name!r}]" if name else "effect"
            raise UserError(f"{where} is {kind!r}, not one of {', '.join(EFFECTS)}")
    if isinstance(requires_approval, str):
        raise UserError(f"requires_approval takes a set of tool names, not a string: use {{{requires_approval!r}}}")
    approvals = requires_approval if isinstance(requires_approval, bool) else set(requires_approval)
    wanted = None if only is None else set(only)
    listed = server.list_tools()
    names = {tool.name for tool in listed}
    named = set(effects) | (set() if isinstance(approvals, bool) else approvals) | (wanted or set())
    unknown = sorted(named - names)
    if unknown:
        missing = ", ".join(map(repr, unknown))
        raise UserError(f"MCP server {server.name!r} has no tool {missing}; its tools: {', '.join(sorted(names))}")
    tools: list[type[Tool]] = []
    for spec in listed:
        if wanted is not None and spec.name not in wanted:
            continue
        approval = approvals if isinstance(approvals, bool) else spec.name in approvals
        tools.append(_tool(server, spec, prefix, effects.get(spec.name, effect), approval))
    return tools


def _tool(server: MCPServer, spec: MCPTool, prefix: str, effect: Effect, requires_approval: bool) -> type[Tool]:
    name = spec.name
    try:
        cls = tool_from_schema(
            prefix + name,
            spec.input_schema,
            description=spec.description or spec.title or "",
            effect=effect,
            requires_approval=requires_approval,
        )
    except UserError as exc:
        raise UserError(f"MCP server {server.name!r}, tool {name!r}: {exc}") from None

    def run(self: Tool, ctx: ToolContext | None = None) -> Any:
        arguments = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        arguments.pop("intent", None)
        key = None if ctx is None or effect == "read_only" else ctx.idempotency_key
        return call_tool(server, name, arguments, effect=effect, idempotency_key=key)

    cls.run = run  # type: ignore[method-assign]
    return cls


def call_tool(
    server: MCPServer,
    name: str,
    arguments: Mapping[str, Any],
    *,
    effect: Effect = "irreversible",
    idempotency_key: str | None = None,
) -> Any:
    """Call one tool of ``server`` and return its result as an MCP tool's ``run`` does (see the module)."""
    connection = server._connection
    meta = cast(Any, {IDEMPOTENCY_META_KEY: idempotency_key}) if idempotency_key else None
    label = f"MCP tool {name!r} of server {server.name!r}"

    async def send(client: Client) -> CallToolResult:
        return await client.call_tool(name, dict(arguments), meta=meta)

    async def connect() -> Client:
        try:
            client = await connection.client()
            if effect != "irreversible" or server.url is not None:
                return client
            # A server process can die between two calls, unnoticed yet: a call sent to it would be lost in
            # a way that cannot be told from a crash inside the tool. A probe first narrows that to a crash.
            # (Over HTTP a request that cannot connect fails before anything is sent.)
            try:
                await connection.request(_probe, client)
            except (Broken, MCPError) as exc:
                if not _session_lost(exc):
                    return client  # a server that does not answer pings: the call tells
                connection.lost(client, _message(exc))
                client = await connection.client()
            return client
        except Unreachable as exc:
            raise ToolError(f"{label}: cannot reach the server: {exc}") from None  # nothing was sent

    async def attempt() -> CallToolResult:
        for retry in (False, True):
            client = await connect()
            try:
                return await connection.request(send, client)
            except (Broken, MCPError) as exc:
                if isinstance(exc, MCPError) and exc.code == REQUEST_TIMEOUT:
                    raise ToolError(
                        f"{label} did not answer within {server.timeout_s:g} s", may_have_run=effect != "read_only"
                    ) from None
                if not _session_lost(exc):
                    raise ToolError(f"{label} was refused: {_message(exc)}") from None
                connection.lost(client, _message(exc))
                delivered = not (isinstance(exc, MCPError) and exc.message == _SESSION_GONE)
                if retry or (delivered and effect == "irreversible"):
                    raise ToolError(_lost(label, exc, effect, retry), may_have_run=delivered) from None
            except (ValidationError, RuntimeError) as exc:  # RuntimeError: content against its output schema
                raise ToolError(f"{label} sent a malformed result: {_first(exc)}", may_have_run=True) from None
        raise AssertionError("unreachable")

    try:
        result = connection.run(attempt(), server.connect_timeout_s + 2 * server.timeout_s + 10)
    except TimeoutError:
        raise ToolError(f"{label} did not answer in time", may_have_run=effect != "read_only") from None
    return tool_result(result, label)


def _lost(label: str, exc: BaseException, effect: Effect, retried: bool) -> str:
    why = _message(exc)
    if retried:
        return f"{label}: the server went away again after reconnecting ({why}); try later"
    return (
        f"{label}: the server went away during the call ({why}), so it may or may not have run; an"
        f" {effect} call is not sent again blindly (the next call reconnects)"
    )


def tool_result(result: CallToolResult, label: str) -> Any:
    """An MCP tool's result as the model sees it: structured content, else the text joined; an error
    result is a ToolError."""
    if result.is_error:
        text = _content_text(result.content) or "no message"
        raise ToolError(f"{label} failed: {compact(text, 400)}")
    text = _content_text(result.content)
    structured = result.structured_content
    if structured is None:
        return text
    if set(structured) == {"result"} and _says(text, structured["result"]):
        return structured["result"]  # a plain value the server wrapped (MCP wants an object): the value itself
    return structured


def _says(text: str, value: Any) -> bool:
    """Whether the text content is ``value`` written out (a string, or its JSON)."""
    if isinstance(value, str):
        return text == value
    try:
        return bool(json.loads(text) == value)
    except ValueError:
        return False


def _content_text(blocks: Iterable[Any]) -> str:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, TextContent):
            parts.append(block.text)
        elif isinstance(block, EmbeddedResource):
            parts.append(_resource_text(block.resource))
        elif isinstance(block, ResourceLink):
            parts.append(f"[resource {block.uri}]")
        else:  # image, audio: the model gets a note, not base64
            mime = getattr(block, "mime_type", None) or "unknown type"
            size = len(base64.b64decode(getattr(block, "data", "") or "", validate=False))
            parts.append(f"[{getattr(block, 'type', 'content')} {mime}, {size} bytes]")
    return "\n".join(parts)


def _resource_text(contents: TextResourceContents | BlobResourceContents) -> str:
    if isinstance(contents, TextResourceContents):
        return contents.text
    size = len(base64.b64decode(contents.blob or "", validate=False))
    return f"[{contents.mime_type or 'binary'} {contents.uri}, {size} bytes]"


def mcp_resources(server: MCPServer, uris: Iterable[str]) -> Callable[[Thread], list[Event]]:
    """A pre-fetch hook (``Agent(prefetch=[...])``): each resource read before the first model call and
    added as an ``mcp_resource`` event (``uri``, ``text``, ``mime_type``), rendered like any event."""
    wanted = list(uris)
    if isinstance(uris, str) or not wanted:
        raise UserError(f"mcp_resources takes a list of resource URIs, got {uris!r}")

    def prefetch(thread: Thread) -> list[Event]:
        return [
            CustomEvent(type="mcp_resource", uri=uri, mime_type=mime, text=text)
            for uri in wanted
            for mime, text in read_resource(server, uri)
        ]

    prefetch.__name__ = prefetch.__qualname__ = f"mcp_resources[{server.name}]"
    return prefetch


def read_resource(server: MCPServer, uri: str) -> list[tuple[str | None, str]]:
    """``(mime_type, text)`` for each content of a resource (binary content as a short note)."""

    async def send(client: Client) -> list[tuple[str | None, str]]:
        result = await client.read_resource(uri)
        return [(contents.mime_type, _resource_text(contents)) for contents in result.contents]

    return server._request(f"read resource {uri!r}", send)


def mcp_prompt(server: MCPServer, name: str, arguments: Mapping[str, str] | None = None) -> str:
    """The text of one of the server's prompts, filled in with ``arguments`` (its messages' text joined
    by blank lines, each after its role when they have more than one): use it in your own prompt."""
    for key, value in (arguments or {}).items():
        if not isinstance(value, str):
            raise UserError(f"prompt arguments are strings: {key!r} is {type(value).__name__} {value!r}")

    async def send(client: Client) -> str:
        result = await client.get_prompt(name, dict(arguments or {}))
        roles = {message.role for message in result.messages}
        texts = [
            (f"{message.role}: " if len(roles) > 1 else "") + _content_text([message.content])
            for message in result.messages
        ]
        return "\n\n".join(texts)

    return server._request(f"get prompt {name!r}", send)


async def _probe(client: Client) -> object:
    """The cheapest request that proves the server is there: ping (removed in modern protocol versions,
    where ``server/discover`` takes its place without changing the session)."""
    if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return await client.session.send_discover(client.protocol_version)
    return await client.session.send_ping()


def _session_lost(exc: BaseException) -> bool:
    """Whether the session is gone (the server went away), as opposed to an answer refusing the request."""
    if isinstance(exc, Broken):
        return True
    assert isinstance(exc, MCPError)
    return exc.code == CONNECTION_CLOSED or (exc.code == INVALID_REQUEST and exc.message == _SESSION_GONE)


def _message(exc: BaseException) -> str:
    if isinstance(exc, MCPError | Broken):
        return compact(exc.message if isinstance(exc, MCPError) else str(exc), 240)
    return describe(exc)


def _first(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the result"
        return compact(f"{where}: {first['msg']}", 240)
    return compact(str(exc), 240)
