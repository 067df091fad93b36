"""What the OpenAI-compatible and Anthropic clients share: the call, error mapping and accounting.

A provider builds the exact JSON body (:meth:`HTTPModel.build_body`), hands it to an exchange (live
HTTP, or a cassette recording or replaying it) and reads the reply back (:meth:`HTTPModel.read`) into
a :class:`ModelResponse` that carries the body it sent, the tokens and model name the provider
reported, why the model stopped, and the cost from the price table.

``complete`` and ``acomplete`` are one call with two faces: :meth:`HTTPModel.prepare` builds the request,
the exchange sends it (blocking, or awaited), :meth:`HTTPModel.finish` reads and prices the reply. With
``on_delta`` the request asks the provider to stream; the provider's :class:`StreamReader` reads the
events as they arrive and assembles the body a non-streamed reply would have had, so :meth:`read` is the
one reading of a reply either way (see ``_stream`` for what the deltas are in each output mode).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from twelvefactor._backoff import retry_after_s
from twelvefactor.errors import ModelError, UserError, compact
from twelvefactor.models import _schemas
from twelvefactor.models._http import (
    Exchange,
    HTTPExchange,
    RetryPolicy,
    StreamBroken,
    WireRequest,
    WireResponse,
)
from twelvefactor.models._stream import SSE, DeltaCallback, Deltas, StepText, is_event_stream
from twelvefactor.models.base import OUTPUT_MODES, Message, ModelResponse, OutputMode, OutputSpec, is_loopback
from twelvefactor.models.errors import ProviderError, ProviderErrorKind
from twelvefactor.models.prices import PriceLike, PriceTable, default_prices
from twelvefactor.tools import intent_of

DEFAULT_TIMEOUT_S = 120.0

_CONTEXT_HINTS = ("context_length", "context length", "context window", "maximum context", "prompt is too long")


@dataclass(frozen=True)
class Reply:
    """A provider's answer read off the wire, before accounting."""

    text: str
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    finish_reason: str | None
    truncated: bool
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None


class StreamReader:
    """A provider's streamed reply, read event by event into the body its non-streamed reply would have."""

    def __init__(self, model: HTTPModel, output: OutputSpec | None, on_delta: DeltaCallback | None) -> None:
        self.model = model
        self.output = output
        self.deltas = Deltas(on_delta, model.name)
        tools = output.tools if output is not None else ()
        self._wire_names = {_schemas.wire_name(intent_of(cls)): intent_of(cls) for cls in tools}
        self.reset()

    @property
    def delivered(self) -> bool:
        return self.deltas.delivered

    def line(self, line: str) -> None:
        self._sse.line(line)

    def reset(self) -> None:
        """Start over (a retry after a stream that broke before any text was delivered)."""
        self._sse = SSE(self.event)
        mode = self.output.mode if self.output is not None else "prompted"
        self.step = StepText(self.deltas, mode, self._wire_names)

    def event(self, name: str, data: Any) -> None:
        raise NotImplementedError

    def end(self) -> None:
        raise NotImplementedError

    def body(self) -> dict[str, Any]:
        raise NotImplementedError

    def broken(self, data: Any) -> StreamBroken:
        """An ``error`` event: the provider's own words."""
        error = data.get("error") if isinstance(data, dict) else None
        said = error.get("message") if isinstance(error, dict) else None
        kind = error.get("type") if isinstance(error, dict) else None
        return StreamBroken(compact(f"{kind or 'error'}: {said or data!r}", 300))


@dataclass(frozen=True)
class Prepared:
    """A call ready to send: the request (with the stream reader as its sink when streaming)."""

    request: WireRequest
    output: OutputSpec | None
    reader: StreamReader | None
    on_delta: DeltaCallback | None


class HTTPModel:
    """Base of the HTTP providers; see :class:`OpenAIModel` and :class:`AnthropicModel`."""

    provider: ClassVar[str]
    endpoint: ClassVar[str]
    output_modes: frozenset[OutputMode] = OUTPUT_MODES
    streams: bool = True

    def __init__(
        self,
        model: str,
        *,
        prefix: str,
        base_url: str,
        api_key: str | None,
        key_env: str | None,
        key_required: bool,
        timeout_s: float,
        retry: RetryPolicy | None,
        prices: PriceTable | Mapping[str, PriceLike] | None,
        headers: Mapping[str, str] | None,
        exchange: Exchange | None,
    ) -> None:
        if not model:
            raise UserError(f"{prefix}: a model name is needed, e.g. {prefix}:MODEL")
        if timeout_s <= 0:
            raise UserError(f"timeout_s must be positive, got {timeout_s!r}")
        self.model = model
        self.prefix = prefix
        self.base_url = base_url.rstrip("/")
        self.key_env = key_env
        self._api_key = api_key if api_key is not None else (os.environ.get(key_env) if key_env else None)
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.prices = prices if isinstance(prices, PriceTable) or prices is None else PriceTable(prices)
        self.extra_headers = dict(headers or {})
        if exchange is None:
            if key_required and not self._api_key and not is_loopback(self.base_url):
                where = f"set {key_env} or pass api_key=..." if key_env else "pass api_key=..."
                raise UserError(f"model {self.name!r} needs an API key: {where}")
            exchange = HTTPExchange(self.name, timeout_s=timeout_s, retry=self.retry)
        self.exchange: Exchange = exchange

    @property
    def name(self) -> str:
        return f"{self.prefix}:{self.model}"

    @property
    def api_key(self) -> str | None:
        return self._api_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, base_url={self.base_url!r})"

    # --- the call -----------------------------------------------------------------------------------

    def complete(
        self,
        messages: Sequence[Message],
        *,
        output: OutputSpec | None = None,
        on_delta: DeltaCallback | None = None,
    ) -> ModelResponse:
        """One call: build the body, send it (with retries), read the reply, price it.

        With ``on_delta`` the reply is streamed and each piece of its text is passed to it as it arrives.
        """
        prepared = self.prepare(messages, output, on_delta)
        return self.finish(prepared, self.exchange(prepared.request))

    async def acomplete(
        self,
        messages: Sequence[Message],
        *,
        output: OutputSpec | None = None,
        on_delta: DeltaCallback | None = None,
    ) -> ModelResponse:
        """:meth:`complete` without blocking the event loop (``httpx.AsyncClient``; same retries and reading).

        An exchange with no async face (a cassette's, your own) runs in a worker thread; replay is instant.
        """
        prepared = self.prepare(messages, output, on_delta)
        send = getattr(self.exchange, "acall", None)
        if callable(send):
            response = await send(prepared.request)
        else:
            response = await asyncio.to_thread(self.exchange, prepared.request)
        return self.finish(prepared, response)

    def prepare(
        self, messages: Sequence[Message], output: OutputSpec | None, on_delta: DeltaCallback | None = None
    ) -> Prepared:
        """The request of one call, exactly as it is sent (``"stream": true`` and a reader when streaming)."""
        if output is not None and output.mode not in self.output_modes:
            modes = ", ".join(sorted(self.output_modes))
            raise UserError(f"model {self.name!r} does not support output_mode={output.mode!r}; it supports {modes}")
        body = self.build_body(messages, output)
        reader = None
        if on_delta is not None:
            body.update(self.stream_fields())
            reader = self.stream_reader(output, on_delta)
        request = WireRequest(
            url=self.request_url(),
            endpoint=self.endpoint,
            headers={**self.auth_headers(), **self.extra_headers},
            body=body,
            sink=reader,
        )
        return Prepared(request, output, reader, on_delta)

    def finish(self, prepared: Prepared, response: WireResponse) -> ModelResponse:
        """The reply read, priced, and (when streaming) the rest of its text delivered."""
        if not 200 <= response.status < 300:
            raise self.error(response)
        reader = prepared.reader
        if is_event_stream(response.headers, response.body, response.text):
            reader = reader or self.stream_reader(prepared.output, None)
            if not response.streamed:  # an exchange that did not feed the reader (a cassette, your own)
                self._feed(reader, response)
            body = reader.body()
            response = replace(response, body=body, text=json.dumps(body))
        reply = self.read(response, prepared.output)
        if reader is not None:
            reader.step.end()
            reader.deltas.finish(reply.text)
        elif prepared.on_delta is not None:  # the server answered without streaming: one piece
            Deltas(prepared.on_delta, self.name).finish(reply.text)
        model = reply.model or self.model
        prices = self.prices if self.prices is not None else default_prices()
        return ModelResponse(
            text=reply.text,
            model=model,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            request=prepared.request.body,
            finish_reason=reply.finish_reason,
            truncated=reply.truncated,
            cost_usd=prices.cost(
                model,
                reply.input_tokens,
                reply.output_tokens,
                cached_input_tokens=reply.cached_input_tokens,
                cache_write_tokens=reply.cache_write_tokens,
            ),
            cached_input_tokens=reply.cached_input_tokens,
            cache_write_tokens=reply.cache_write_tokens,
        )

    def _feed(self, reader: StreamReader, response: WireResponse) -> None:
        try:
            for line in response.text.splitlines():
                reader.line(line)
            reader.end()
        except StreamBroken as exc:
            if reader.delivered:
                raise ModelError(f"{self.name}: the recorded reply stream broke after part of it ({exc})") from exc
            raise ProviderError(
                f"{self.name}: the reply stream broke before any text arrived ({exc})",
                kind="server",
                model=self.name,
                status=response.status,
                attempts=response.attempts,
            ) from exc

    def stream_fields(self) -> dict[str, Any]:
        """What a request adds to ask for a streamed reply."""
        raise NotImplementedError

    def stream_reader(self, output: OutputSpec | None, on_delta: DeltaCallback | None) -> StreamReader:
        raise NotImplementedError

    def request_url(self) -> str:
        return f"{self.base_url}/{self.endpoint}"

    def build_body(self, messages: Sequence[Message], output: OutputSpec | None) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, response: WireResponse, output: OutputSpec | None) -> Reply:
        raise NotImplementedError

    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The settings that shape the request body (what a cassette needs to rebuild it)."""
        raise NotImplementedError

    # --- errors -------------------------------------------------------------------------------------

    def malformed(self, response: WireResponse, what: str) -> ProviderError:
        return ProviderError(
            f"{self.name}: the reply is not {what}: {compact(response.text, 200) or '(empty body)'}",
            kind="malformed",
            model=self.name,
            status=response.status,
            attempts=response.attempts,
        )

    def error(self, response: WireResponse) -> ProviderError:
        """A clear, one-line error for a non-2xx reply: what happened, the provider's words, what to do."""
        status = response.status
        detail, code = _error_detail(response)
        text = f"{detail} {code}".lower()
        kind: ProviderErrorKind
        if status in (401, 403):
            kind = "auth"
            hint = f"check {self.key_env}" if self.key_env else "check the API key"
            what = f"the API key was refused ({hint})"
        elif status == 404:
            kind, what = "not_found", f"unknown model {self.model!r} or wrong base URL {self.base_url!r}"
        elif status == 413 or any(hint in text for hint in _CONTEXT_HINTS):
            kind = "context_length"
            what = "the context is too long for the model (compact the thread or use a larger model)"
        elif status == 429:
            kind, what = "rate_limit", "rate limited"
        elif status >= 500 or status in (408, 409):
            kind, what = "server", "the provider failed"
        else:
            kind, what = "bad_request", "the request was refused"
        tries = f" after {response.attempts} attempts" if response.attempts > 1 else ""
        wait = retry_after_s(response.headers)
        later = f"; retry after {wait:g} s" if wait is not None and kind in ("rate_limit", "server") else ""
        said = f": {detail}" if detail else ""
        return ProviderError(
            f"{self.name}: HTTP {status}{tries}, {what}{said}{later}",
            kind=kind,
            model=self.name,
            status=status,
            attempts=response.attempts,
            retry_after=wait,
        )

    # --- lifecycle ------------------------------------------------------------------------------------

    def with_exchange(self, exchange: Exchange) -> HTTPModel:
        """A copy of this model that sends through ``exchange`` (how recording and replay plug in)."""
        clone = copy.copy(self)
        clone.exchange = exchange
        return clone

    def cancel(self) -> int:
        """Abort the calls in flight on this model (they raise ModelCancelled); returns how many."""
        cancel = getattr(self.exchange, "cancel", None)
        return int(cancel()) if callable(cancel) else 0

    def close(self) -> None:
        """Close the connection pool (also done when the model is garbage-collected)."""
        close = getattr(self.exchange, "close", None)
        if callable(close):
            close()

    async def aclose(self) -> None:
        """Close the async connection pool of the running event loop, and the sync one."""
        aclose = getattr(self.exchange, "aclose", None)
        if callable(aclose):
            await aclose()
        else:
            self.close()

    async def __aenter__(self) -> HTTPModel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> HTTPModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error_detail(response: WireResponse) -> tuple[str, str]:
    """The provider's own message and code from an error body (OpenAI and Anthropic shapes)."""
    body = response.body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        code = str(error.get("code") or error.get("type") or "")
        return compact(message, 300), code
    if isinstance(error, str):
        return compact(error, 300), ""
    return compact(response.text, 200), ""


def text_tokens(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
