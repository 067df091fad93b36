"""One MCP session per server, on a private event loop, for the synchronous loop to call.

The SDK is async; the control loop is not. Every session of this process runs on one event loop in a
daemon thread (``_Loop``); a blocking call hands a coroutine to it and waits, bounded. Each server has
one session (``Connection``), shared by its tools, resources and prompts, owned by a task of its own
(an anyio context must be left by the task that entered it). The session watches its transport: when
the server goes away (a killed process, a restarted HTTP server, a malformed message on the wire) the
session is marked broken and the next request opens a new one first, so nothing is sent on a dead one.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.message import SessionMessage
from mcp_types import Implementation

from mcp import Client, StdioServerParameters
from twelvefactor.errors import compact

if TYPE_CHECKING:
    from mcp.client.session import IncomingMessage

    from twelvefactor.mcp.client import MCPServer

T = TypeVar("T")

# Time a session gets to close (a stdio server: stdin closed, then SIGTERM, then SIGKILL, 2 s each).
_CLOSE_S = 8.0


class Unreachable(Exception):
    """The session could not be opened: nothing was sent."""


class Broken(Exception):
    """The session broke while a request was in flight (the server went away, or garbled the wire)."""


class _Loop:
    """The private event loop every MCP session of this process runs on, in a daemon thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="twelvefactor-mcp", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Run ``coro`` on the loop and wait for it, at most ``timeout_s`` (then TimeoutError)."""
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("an MCP request was made from the MCP event loop itself; call it from another thread")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None


_lock = threading.Lock()
_loop: _Loop | None = None


def event_loop() -> _Loop:
    """The loop of this process (a fresh one after a fork: threads do not survive it)."""
    global _loop
    with _lock:
        if _loop is None or _loop.pid != os.getpid():
            _loop = _Loop()
        return _loop


class _WatchedRead:
    """The transport's read stream, telling the connection when it ends (the server went away)."""

    def __init__(self, inner: Any, on_end: Callable[[str], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        try:
            item: SessionMessage | Exception = await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end("the connection closed")
            raise
        return item

    def __aiter__(self) -> _WatchedRead:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _WatchedRead:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        await self.aclose()
        return None


class Connection:
    """The session with one server: opened on first use, re-opened after it broke."""

    def __init__(self, server: MCPServer) -> None:
        self.server = server
        self._pid = os.getpid()
        self._client: Client | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._broken: str | None = None
        self._in_flight: set[anyio.CancelScope] = set()
        self.opened = 0  # sessions opened so far: each one's own generation (the tests count reconnections)

    @property
    def alive(self) -> bool:
        return self._client is not None and self._broken is None

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        if self._pid != os.getpid():  # a forked child: the parent's session lives on the parent's loop
            self._pid = os.getpid()
            self._client, self._owner, self._stop, self._lock, self._broken = None, None, None, None, None
            self._in_flight = set()
        return event_loop().run(coro, timeout_s)

    async def client(self) -> Client:
        """The open session; a broken or never opened one is (re)opened first. Unreachable if it cannot be."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.alive and self._client is not None:
                return self._client
            await self._close()
            return await self._open()

    async def request(self, send: Callable[[Client], Awaitable[T]], client: Client) -> T:
        """``send(client)``, failed at once (Broken) if the session breaks meanwhile."""
        with anyio.CancelScope() as scope:
            self._in_flight.add(scope)
            try:
                return await send(client)
            finally:
                self._in_flight.discard(scope)
        raise Broken(self._broken or "the session was closed")

    def lost(self, client: Client, why: str) -> None:
        """A request on ``client`` found its session gone: mark it broken (unless a newer one replaced it)."""
        if client is self._client:
            self.mark_broken(why)

    def mark_broken(self, why: str, generation: int | None = None) -> None:
        """The session is done for (``generation``: only if it is still that session, not a newer one)."""
        if generation is not None and generation != self.opened:
            return
        if self._broken is None:
            self._broken = why
        for scope in list(self._in_flight):
            scope.cancel()

    async def close(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self._close()

    async def _open(self) -> Client:
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        self._broken = None
        self._stop = stop
        self.opened += 1
        owner = self._own(ready, stop, self.opened)
        self._owner = asyncio.create_task(owner, name=f"mcp-session-{self.server.name}-{self.opened}")
        try:
            client = await asyncio.wait_for(asyncio.shield(ready), self.server.connect_timeout_s)
        except TimeoutError:
            await self._close()
            raise Unreachable(f"it did not answer within {self.server.connect_timeout_s:g} s") from None
        except Exception as exc:  # noqa: BLE001 - whatever failed, the session did not open
            await self._close()
            raise Unreachable(describe(exc)) from exc
        self._client = client
        with _lock:
            _open.add(self)
        return client

    async def _own(self, ready: asyncio.Future[Client], stop: asyncio.Event, generation: int) -> None:
        """Enter the session, hand it over, keep it until asked to stop (or the transport dies)."""

        def broken(why: str) -> None:
            self.mark_broken(why, generation)

        async def on_message(message: IncomingMessage) -> None:
            if isinstance(message, Exception):
                # A line that is not JSON-RPC: the wire is out of step, and a request may never be answered.
                broken(f"it sent a malformed message ({describe(message, 160)})")

        client = Client(
            self._transport(broken),
            read_timeout_seconds=self.server.timeout_s,
            message_handler=on_message,
            client_info=Implementation(name="twelvefactor", version=_version()),
            cache=None,  # every read reaches the server: a prefetch wants today's data
        )
        try:
            async with client:
                if not ready.done():
                    ready.set_result(client)
                await stop.wait()
        except BaseException as exc:  # noqa: BLE001 - recorded for the requests; cancellation re-raised
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else Unreachable("cancelled"))
            broken(f"the session failed: {describe(exc)}")
            if not isinstance(exc, Exception):
                raise
        finally:
            broken("the session was closed")

    async def _close(self) -> None:
        owner, stop = self._owner, self._stop
        self._client, self._owner, self._stop = None, None, None
        with _lock:
            _open.discard(self)
        if owner is None or stop is None:
            return
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(owner), _CLOSE_S)
        except (TimeoutError, Exception):  # noqa: BLE001 - a session that will not close cleanly is dropped
            owner.cancel()

    def _transport(self, broken: Callable[[str], None]) -> AbstractAsyncContextManager[Any]:
        server = self.server
        if server.url is not None:
            http = create_mcp_http_client(headers=dict(server.headers) or None)
            inner: AbstractAsyncContextManager[Any] = _http_transport(server.url, http)
        else:
            assert server.command is not None
            params = StdioServerParameters(
                command=server.command, args=list(server.args), env=dict(server.env) or None, cwd=server.cwd
            )
            inner = stdio_client(params, errlog=server.errlog or sys.stderr)
        return _watched(inner, broken)


@asynccontextmanager
async def _watched(
    inner: AbstractAsyncContextManager[Any], broken: Callable[[str], None]
) -> AsyncIterator[tuple[Any, Any]]:
    async with inner as (read, write):
        yield _WatchedRead(read, broken), write
    broken("the connection closed")


@asynccontextmanager
async def _http_transport(url: str, http: Any) -> AsyncIterator[tuple[Any, Any]]:
    async with http, streamable_http_client(url, http_client=http) as streams:
        yield streams


def describe(exc: BaseException, limit: int = 240) -> str:
    """One line for an exception, the innermost cause of an exception group (anyio raises those)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    if type(exc).__module__ != "builtins" or isinstance(exc, OSError):
        text = f"{type(exc).__name__}: {text}"
    return compact(text, limit)


def _version() -> str:
    from twelvefactor import __version__

    return __version__


_open: set[Connection] = set()  # the sessions open now: closed at exit


@atexit.register
def close_all() -> None:
    """Close every session this process opened (stdio servers are stopped), bounded."""
    with _lock:
        connections, loop = list(_open), _loop
    if loop is None or loop.pid != os.getpid():
        return
    for connection in connections:
        # At exit, a session that will not close is left to the OS (a stdio server sees its stdin close).
        with contextlib.suppress(Exception):
            loop.run(connection.close(), _CLOSE_S + 1)
