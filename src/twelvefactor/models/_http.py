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
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from twelvefactor._backoff import backoff_s, retry_after_s
from twelvefactor.errors import UserError
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


@dataclass(frozen=True)
class WireResponse:
    """What came back: the status, lower-cased headers, the JSON body (None if it was not JSON) and text."""

    status: int
    headers: dict[str, str]
    body: Any
    text: str
    attempts: int = 1


class Exchange(Protocol):
    """Sends one request and returns the final response (after any retries)."""

    def __call__(self, request: WireRequest) -> WireResponse: ...


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
                call.cancelled.set()
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


class HTTPExchange:
    """Sends requests with httpx: one connection pool per model, safe to share between threads."""

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
        ssl_context = httpx.create_ssl_context()  # once: loading the CA bundle takes tens of ms
        transport = httpx.HTTPTransport(verify=ssl_context)
        if isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):
            # httpx builds its pool without a way to pass a network backend; ours only adds the
            # socket tracking cancel() needs. Without it, cancel() still works between tries.
            transport._pool = _tracking_pool(self._calls, ssl_context)
        self._client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            headers={"user-agent": USER_AGENT},
        )
        # Pooled connections are closed when the model goes away, not left to the garbage collector.
        weakref.finalize(self, self._client.close)

    def close(self) -> None:
        self._client.close()

    def cancel(self) -> int:
        """Abort every call in flight (they raise ModelCancelled); returns how many there were."""
        return self._calls.cancel()

    def __call__(self, request: WireRequest) -> WireResponse:
        check_real_request(self.model_name, request.url)
        content = json.dumps(request.body, ensure_ascii=False).encode("utf-8")
        headers = {**request.headers, "content-type": "application/json"}
        call = _Call()
        with self._calls.lock:
            self._calls.in_flight.add(call)
        try:
            return self._send(request, content, headers, call)
        finally:
            with self._calls.lock:
                self._calls.in_flight.discard(call)

    def _send(self, request: WireRequest, content: bytes, headers: dict[str, str], call: _Call) -> WireResponse:
        import httpx

        attempt = 0
        while True:
            self._check(call)
            result: WireResponse | None = None
            retry_after: float | None = None
            kind: ProviderErrorKind = "connection"
            detail = ""
            self._calls.local.call = call
            try:
                response = self._client.request(request.method, request.url, content=content, headers=headers)
                self._check(call)
                result = decode(response.status_code, dict(response.headers), response.content, attempt + 1)
            except httpx.TimeoutException as exc:
                self._check(call)
                kind, detail = "timeout", f"no answer within the {self.timeout_s:g} s timeout ({type(exc).__name__})"
            except httpx.TransportError as exc:
                self._check(call)
                kind, detail = "connection", f"cannot reach {request.url}: {str(exc) or type(exc).__name__}"
            finally:
                self._calls.local.call = None
            if result is not None:
                if result.status not in RETRY_STATUSES:
                    return result
                retry_after = retry_after_s(result.headers)
            last = attempt >= self.retry.max_retries
            if last or (retry_after is not None and retry_after > self.retry.max_retry_after_s):
                if result is not None:
                    return result  # the provider says what the status means
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                raise ProviderError(
                    f"{self.model_name}: {detail}{tries}", kind=kind, model=self.model_name, attempts=attempt + 1
                )
            if call.cancelled.wait(self.retry.delay(attempt, retry_after, self._rng)):
                raise ModelCancelled(f"the call to {self.model_name!r} was cancelled while waiting to retry")
            attempt += 1

    def _check(self, call: _Call) -> None:
        if call.cancelled.is_set():
            raise ModelCancelled(f"the call to {self.model_name!r} was cancelled; nothing from it was recorded")
