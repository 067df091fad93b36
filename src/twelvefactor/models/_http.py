"""One HTTP exchange with a provider: timeouts, retries with backoff and jitter, Retry-After, cancellation.

An *exchange* turns a :class:`WireRequest` (the JSON body a provider builds) into a
:class:`WireResponse` (status, headers, parsed body). :class:`HTTPExchange` talks to the network with
httpx (imported here, only when a provider is constructed); the cassette module swaps in exchanges that
record or replay, so everything above this layer runs the same code live and in replay.

Retried: connection errors, timeouts, and statuses 408, 409, 429 and 5xx, with exponential backoff
and jitter, or exactly the wait the server asks for (``Retry-After`` / ``retry-after-ms``) unless that
wait is longer than :attr:`RetryPolicy.max_retry_after_s`. Everything else comes back at once: the
provider turns a 4xx into a clear :class:`ProviderError`.

Cancellation: ``cancel()`` from any thread aborts every call in flight on that exchange: a backoff
sleep wakes up, and a request waiting on the network has its socket shut down, so the blocked read
returns at once. The call raises :class:`ModelCancelled`; a reply that arrives afterwards is thrown
away. Ctrl-C (KeyboardInterrupt) is never caught, so it also stops a call mid-flight.

Both faces: ``exchange(request)`` blocks, ``await exchange.acall(request)`` runs on ``httpx.AsyncClient``.
They share one retry decision (:meth:`HTTPExchange._settle`: what is retried, how long to wait) and one
cancellation registry; only the send and the sleep differ. ``cancel()`` also reaches async calls: their
attempt (or backoff sleep) is abandoned and they raise ModelCancelled, without cancelling the caller's task.

Streaming: a request with a ``sink`` is sent as a stream; each line of a 2xx reply goes to the sink as it
arrives (the provider's SSE reader), and the response carries the whole text (what a cassette records).
An error status before the stream starts is read and retried as usual. A stream that breaks (a transport
error, or the sink raising :class:`StreamBroken` for an ``error`` event) is retried, as kind ``server``,
only while no reply text has reached the user (``sink.delivered``); after that it is a ModelError: the
user saw tokens, so a silent retry would show them a different answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import threading
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from twelvefactor._backoff import backoff_s, retry_after_s
from twelvefactor.errors import ModelError, UserError
from twelvefactor.models.base import check_real_request
from twelvefactor.models.errors import ModelCancelled, ProviderError, ProviderErrorKind

if TYPE_CHECKING:
    import ssl

    import httpcore

RETRY_STATUSES = frozenset((408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529))
USER_AGENT = "twelvefactor/0.1"


@dataclass(frozen=True)
class WireRequest:
    """A provider request: POST ``base_url/endpoint`` with a JSON body (recorded exactly as sent)."""

    url: str
    endpoint: str
    headers: dict[str, str]
    body: dict[str, Any]
    method: str = "POST"
    # Where the lines of a streamed reply go as they arrive; not part of what is sent or recorded.
    sink: LineSink | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class WireResponse:
    """What came back: the status, lower-cased headers, the JSON body (None if it was not JSON) and text."""

    status: int
    headers: dict[str, str]
    body: Any
    text: str
    attempts: int = 1
    streamed: bool = False  # the lines of ``text`` already went to the request's sink, as they arrived


class Exchange(Protocol):
    """Sends one request and returns the final response (after any retries).

    An exchange may also have ``async def acall(request)``; one without it is run in a worker thread by
    ``acomplete``. One that ignores ``request.sink`` is fine: the provider reads the stream from the text.
    """

    def __call__(self, request: WireRequest) -> WireResponse: ...


class StreamBroken(Exception):
    """A stream that cannot go on (an ``error`` event, an early end): raised by a sink, handled by the exchange."""


class LineSink(Protocol):
    """Reads a streamed reply line by line (the provider's SSE reader)."""

    @property
    def delivered(self) -> bool:
        """Whether any reply text has reached the caller's ``on_delta`` (no silent retry after that)."""
        ...

    def line(self, line: str) -> None: ...

    def end(self) -> None:
        """The stream ended; raises StreamBroken if it ended before the reply was complete."""
        ...

    def reset(self) -> None:
        """Forget a broken attempt's lines before a retry."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """How failed calls are retried: ``max_retries`` more tries, backoff doubling from ``initial_delay_s``.

    Each wait is drawn from [d/2, d] (jitter, so many clients do not retry in lockstep), where d grows
    ``initial_delay_s * 2**n`` up to ``max_delay_s``. A server's Retry-After wins over the backoff; one
    longer than ``max_retry_after_s`` ends the retries at once (the error names the wait).
    """

    max_retries: int = 3
    initial_delay_s: float = 0.5
    max_delay_s: float = 20.0
    max_retry_after_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)
        return backoff_s(attempt, initial_s=self.initial_delay_s, max_s=self.max_delay_s, rng=rng)


NO_RETRIES = RetryPolicy(max_retries=0)


def decode(status: int, headers: dict[str, str], content: bytes, attempts: int = 1) -> WireResponse:
    text = content.decode("utf-8", errors="replace")
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
    return WireResponse(status=status, headers=headers, body=body, text=text, attempts=attempts)


# --- cancellation ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Call:
    cancelled: threading.Event = field(default_factory=threading.Event)
    # An async call also waits on an asyncio.Event of its own loop, set from cancel() thread-safely.
    loop: asyncio.AbstractEventLoop | None = None
    woken: asyncio.Event | None = None

    def wake(self) -> None:
        self.cancelled.set()
        if self.loop is not None and self.woken is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to wake
                self.loop.call_soon_threadsafe(self.woken.set)


class _Calls:
    """The calls in flight on one exchange and the sockets they are reading from or writing to."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight: set[_Call] = set()
        self.busy: dict[socket.socket, _Call | None] = {}
        self.local = threading.local()

    def cancel(self) -> int:
        with self.lock:
            calls = list(self.in_flight)
            for call in calls:
                call.wake()
            sockets = list(self.busy)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed: its read has returned
                sock.shutdown(socket.SHUT_RDWR)
        return len(calls)

    def enter_io(self, sock: socket.socket | None) -> bool:
        """Note the socket as in use; False when the current call is already cancelled."""
        call: _Call | None = getattr(self.local, "call", None)
        with self.lock:
            if call is not None and call.cancelled.is_set():
                return False
            if sock is not None:
                self.busy[sock] = call
        return True

    def leave_io(self, sock: socket.socket | None) -> None:
        if sock is not None:
            with self.lock:
                self.busy.pop(sock, None)


def _tracking_pool(calls: _Calls, ssl_context: ssl.SSLContext) -> httpcore.ConnectionPool:
    """httpx's default pool, on a network backend that lets ``cancel()`` reach the sockets in use."""
    import httpcore

    class Stream(httpcore.NetworkStream):
        def __init__(self, inner: httpcore.NetworkStream, sock: socket.socket | None) -> None:
            self._inner = inner
            self._sock = sock

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            if not calls.enter_io(self._sock):
                raise httpcore.ReadError("model call cancelled")
            try:
                return self._inner.read(max_bytes, timeout)
            finally:
                calls.leave_io(self._sock)

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            if not calls.enter_io(self._sock):
                raise httpcore.WriteError("model call cancelled")
            try:
                self._inner.write(buffer, timeout)
            finally:
                calls.leave_io(self._sock)

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
            return Stream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._sock)

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class Backend(httpcore.NetworkBackend):
        def __init__(self) -> None:
            self._inner = httpcore.SyncBackend()

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore.NetworkStream:
            stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
            return Stream(stream, stream.get_extra_info("socket"))

        def connect_unix_socket(
            self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
        ) -> httpcore.NetworkStream:
            stream = self._inner.connect_unix_socket(path, timeout, socket_options)
            return Stream(stream, stream.get_extra_info("socket"))

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    return httpcore.ConnectionPool(
        ssl_context=ssl_context,
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=Backend(),
    )


# --- the live exchange ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    """An attempt that got no HTTP response to hand back: what to call it if it is the last one."""

    kind: ProviderErrorKind
    detail: str


_Attempt = tuple[WireResponse | None, _Failure | None]


class HTTPExchange:
    """Sends requests with httpx: one connection pool per model (and per event loop for async calls),
    safe to share between threads."""

    def __init__(self, model_name: str, *, timeout_s: float, retry: RetryPolicy, seed: int | None = None) -> None:
        try:
            import httpcore
            import httpx
        except ImportError as exc:  # pragma: no cover - httpx is a dependency of twelvefactor
            raise UserError(f"model {model_name!r} needs httpx, which is not installed: pip install httpx") from exc
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.retry = retry
        self._rng = random.Random(seed)
        self._calls = _Calls()
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self._ssl_context = httpx.create_ssl_context()  # once: loading the CA bundle takes tens of ms
        transport = httpx.HTTPTransport(verify=self._ssl_context)
        if isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):
            # httpx builds its pool without a way to pass a network backend; ours only adds the
            # socket tracking cancel() needs. Without it, cancel() still works between tries.
            transport._pool = _tracking_pool(self._calls, self._ssl_context)
        self._client = httpx.Client(transport=transport, timeout=self._timeout, headers={"user-agent": USER_AGENT})
        # An async client's connections belong to the event loop that opened them, so each loop gets its own,
        # closed by aclose() or, at the latest, when the loop shuts down (see _async_client).
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, Any]] = (
            weakref.WeakKeyDictionary()
        )
        # Pooled connections are closed when the model goes away, not left to the garbage collector.
        weakref.finalize(self, self._client.close)

    def close(self) -> None:
        self._client.close()

    async def aclose(self) -> None:
        """Close the async connection pool of the running event loop (and the sync one)."""
        entry = self._async_clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()  # its finally closes the client
        self.close()

    def cancel(self) -> int:
        """Abort every call in flight, sync or async (they raise ModelCancelled); returns how many there were."""
        return self._calls.cancel()

    # --- what both faces share ----------------------------------------------------------------------------

    def _prepare(self, request: WireRequest) -> tuple[bytes, dict[str, str]]:
        check_real_request(self.model_name, request.url)
        content = json.dumps(request.body, ensure_ascii=False).encode("utf-8")
        return content, {**request.headers, "content-type": "application/json"}

    def _settle(self, attempt: int, result: WireResponse | None, failure: _Failure | None) -> WireResponse | float:
        """After attempt ``attempt``: the response to return, or the seconds to wait before trying again.

        Raises the ProviderError of a last attempt that got no response.
        """
        retry_after: float | None = None
        if result is not None:
            if result.status not in RETRY_STATUSES:
                return result
            retry_after = retry_after_s(result.headers)
        last = attempt >= self.retry.max_retries
        if last or (retry_after is not None and retry_after > self.retry.max_retry_after_s):
            if result is not None:
                return result  # the provider says what the status means
            assert failure is not None
            tries = f" (after {attempt + 1} attempts)" if attempt else ""
            raise ProviderError(
                f"{self.model_name}: {failure.detail}{tries}",
                kind=failure.kind,
                model=self.model_name,
                attempts=attempt + 1,
            )
        return self.retry.delay(attempt, retry_after, self._rng)

    def _failure(self, exc: Exception, request: WireRequest, *, streaming: bool) -> _Failure:
        """What a failed attempt was; a stream broken after the user saw part of the reply is not retried."""
        import httpx

        if streaming:
            detail = str(exc) or type(exc).__name__
            if request.sink is not None and request.sink.delivered:
                raise ModelError(
                    f"{self.model_name}: the reply stream broke after part of it was delivered ({detail});"
                    " not retried, since a retry would be a different reply"
                ) from exc
            if request.sink is not None:
                request.sink.reset()
            return _Failure("server", f"the reply stream broke before any text arrived ({detail})")
        if isinstance(exc, httpx.TimeoutException):
            return _Failure("timeout", f"no answer within the {self.timeout_s:g} s timeout ({type(exc).__name__})")
        return _Failure("connection", f"cannot reach {request.url}: {str(exc) or type(exc).__name__}")

    def _check(self, call: _Call) -> None:
        if call.cancelled.is_set():
            raise ModelCancelled(f"the call to {self.model_name!r} was cancelled; nothing from it was recorded")

    def _waited_out(self) -> ModelCancelled:
        return ModelCancelled(f"the call to {self.model_name!r} was cancelled while waiting to retry")

    def _enter(self, call: _Call) -> None:
        with self._calls.lock:
            self._calls.in_flight.add(call)

    def _leave(self, call: _Call) -> None:
        with self._calls.lock:
            self._calls.in_flight.discard(call)

    # --- the sync face ------------------------------------------------------------------------------------

    def __call__(self, request: WireRequest) -> WireResponse:
        content, headers = self._prepare(request)
        call = _Call()
        self._enter(call)
        try:
            attempt = 0
            while True:
                self._check(call)
                result, failure = self._attempt(request, content, headers, call, attempt)
                outcome = self._settle(attempt, result, failure)
                if isinstance(outcome, WireResponse):
                    return outcome
                if call.cancelled.wait(outcome):
                    raise self._waited_out()
                attempt += 1
        finally:
            self._leave(call)

    def _attempt(
        self, request: WireRequest, content: bytes, headers: dict[str, str], call: _Call, attempt: int
    ) -> _Attempt:
        import httpx

        streaming = False
        self._calls.local.call = call
        try:
            if request.sink is None:
                response = self._client.request(request.method, request.url, content=content, headers=headers)
                self._check(call)
                return decode(response.status_code, dict(response.headers), response.content, attempt + 1), None
            with self._client.stream(request.method, request.url, content=content, headers=headers) as response:
                if not 200 <= response.status_code < 300:
                    response.read()
                    self._check(call)
                    return decode(response.status_code, dict(response.headers), response.content, attempt + 1), None
                streaming = True
                text = _fed(request.sink, response.iter_lines())
                self._check(call)
                return _streamed(response.status_code, dict(response.headers), text, attempt + 1), None
        except (httpx.TransportError, StreamBroken) as exc:
            self._check(call)
            return None, self._failure(exc, request, streaming=streaming or isinstance(exc, StreamBroken))
        finally:
            self._calls.local.call = None

    # --- the async face -----------------------------------------------------------------------------------

    async def acall(self, request: WireRequest) -> WireResponse:
        """The same exchange on ``httpx.AsyncClient``: same retries, waits, timeouts and cancellation."""
        content, headers = self._prepare(request)
        loop = asyncio.get_running_loop()
        call = _Call(loop=loop, woken=asyncio.Event())
        self._enter(call)
        try:
            attempt = 0
            while True:
                self._check(call)
                result, failure = await self._unless_cancelled(call, self._aattempt(request, content, headers, attempt))
                outcome = self._settle(attempt, result, failure)
                if isinstance(outcome, WireResponse):
                    return outcome
                assert call.woken is not None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(call.woken.wait(), outcome)
                    raise self._waited_out()
                attempt += 1
        finally:
            self._leave(call)

    async def _unless_cancelled(self, call: _Call, work: Any) -> _Attempt:
        # The attempt runs as a task of its own, so cancel() abandons it without cancelling the caller's task.
        assert call.woken is not None
        attempt: asyncio.Task[_Attempt] = asyncio.ensure_future(work)
        woken = asyncio.ensure_future(call.woken.wait())
        try:
            await asyncio.wait((attempt, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            if not attempt.done():
                attempt.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await attempt
        self._check(call)
        return attempt.result()

    async def _aattempt(self, request: WireRequest, content: bytes, headers: dict[str, str], attempt: int) -> _Attempt:
        import httpx

        client = await self._async_client()
        streaming = False
        try:
            if request.sink is None:
                response = await client.request(request.method, request.url, content=content, headers=headers)
                return decode(response.status_code, dict(response.headers), response.content, attempt + 1), None
            async with client.stream(request.method, request.url, content=content, headers=headers) as response:
                if not 200 <= response.status_code < 300:
                    await response.aread()
                    return decode(response.status_code, dict(response.headers), response.content, attempt + 1), None
                streaming = True
                text = await _afed(request.sink, response.aiter_lines())
                return _streamed(response.status_code, dict(response.headers), text, attempt + 1), None
        except (httpx.TransportError, StreamBroken) as exc:
            return None, self._failure(exc, request, streaming=streaming or isinstance(exc, StreamBroken))

    async def _async_client(self) -> Any:
        import httpx

        loop = asyncio.get_running_loop()
        entry = self._async_clients.get(loop)
        if entry is None:
            client = httpx.AsyncClient(
                verify=self._ssl_context, timeout=self._timeout, headers={"user-agent": USER_AGENT}
            )
            # asyncio.run (and every Runner) closes a loop's live async generators before closing the loop, so
            # this one closes the client's connections in their own loop even when nobody calls aclose().
            closer = _closing(client)
            await closer.__anext__()
            entry = self._async_clients[loop] = (client, closer)
        return entry[0]


async def _closing(client: Any) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await client.aclose()


def _fed(sink: LineSink, lines: Iterator[str]) -> str:
    seen = []
    for line in lines:
        seen.append(line)
        sink.line(line)
    sink.end()
    return "\n".join(seen)


async def _afed(sink: LineSink, lines: AsyncIterator[str]) -> str:
    seen = []
    async for line in lines:
        seen.append(line)
        sink.line(line)
    sink.end()
    return "\n".join(seen)


def _streamed(status: int, headers: dict[str, str], text: str, attempts: int) -> WireResponse:
    return WireResponse(status=status, headers=headers, body=None, text=text, attempts=attempts, streamed=True)
