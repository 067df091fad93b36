"""Webhooks: signed notifications out when a thread needs a human, finishes or fails; signed resumes in.

Outbound. ``Webhooks.listener`` sees every thread written (on the writer's thread) and hands each new
*status episode* (the thread became waiting on request N, or done / failed at event N) to the event
loop. There the message is written to a durable outbox (one row per endpoint, in the thread store's
SQLite file), then POSTed with the Standard Webhooks headers, re-signed at each attempt. Connection
errors, timeouts, 408, 429 and 5xx are retried with exponential backoff and jitter (a ``Retry-After``
is honoured) up to ``webhook_max_attempts``; every attempt is logged (``GET
/v1/threads/{id}/deliveries``). Receivers get at-least-once delivery and should dedupe on
``webhook-id``, as the standard asks. On PostgreSQL every web process also hears other processes' writes
(``changefeed.py``); the outbox keeps one row per episode and endpoint, so the first process to add it
sends it and the others add nothing.

Restarts. A delivery in the outbox is never lost: a stopping server persists everything handed to it
and releases its claims; the next start (or, within ``webhook_sweep_s``, another server on the same
file) resumes each pending delivery where its retry schedule stood. An attempt cut off by the stop is
sent again. Not covered: a process killed between committing a thread and writing its outbox row (a
few microseconds on the event loop) loses that one notification; the thread itself is unaffected and
the web UI / API still show it waiting. With MemoryStore the outbox is in memory and dies with it.

Inbound. ``POST /v1/webhooks/resume`` answers a pending request (Slack app, email gateway): verified
with ``inbound_webhook_secret``; forged or stale (outside ``webhook_tolerance_s``, either way)
deliveries get 401, a replayed ``webhook-id`` (remembered durably for the tolerance window) 409, and
neither changes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from twelvefactor._backoff import backoff_s, retry_after_s
from twelvefactor.channels.base import Answered, Channel, ChannelError, Notice, Receipt
from twelvefactor.errors import SignatureError, TwelveFactorError, compact
from twelvefactor.events import Done, Error, HumanResponse
from twelvefactor.server._state import runtime_of
from twelvefactor.server.auth import signed_headers, verify
from twelvefactor.server.deliveries import (
    Attempt,
    Delivery,
    DeliveryEventType,
    DeliveryLog,
    DeliveryState,
    MemoryDeliveryLog,
    PostgresDeliveryLog,
    SQLiteDeliveryLog,
)
from twelvefactor.server.limits import check_texts
from twelvefactor.server.links import approval_link, base_url
from twelvefactor.server.schemas import ErrorView, ThreadView
from twelvefactor.server.settings import ServerSettings, WebhookEndpoint, WebhookEventType
from twelvefactor.store.base import ThreadStore
from twelvefactor.store.postgres import PostgresStore
from twelvefactor.store.sqlite import SQLiteStore
from twelvefactor.thread import Thread

if TYPE_CHECKING:
    import httpx


__all__ = [
    "DeliveryView",
    "ResumeWebhook",
    "Webhooks",
    "inbound_router",
    "payload",
    "router",
    "status_episode",
]

log = logging.getLogger("twelvefactor.webhooks")
_T = TypeVar("_T")

RETRY_AFTER_MAX_S = 3600.0
_CLAIM_MARGIN_S = 60.0
_SEEN_MAX = 4096
_EVENT_OF_STATUS: dict[str, WebhookEventType] = {
    "waiting": "thread.waiting",
    "done": "thread.done",
    "failed": "thread.failed",
}


# --- outbound ---


def status_episode(thread: Thread) -> tuple[WebhookEventType, int] | None:
    """The webhook event a thread's state calls for, and the index of the event that caused it.

    None while the thread is running. The pair identifies the episode: later writes that leave the
    thread waiting on the same request (or done at the same event) map to the same pair.
    """
    event_type = _EVENT_OF_STATUS.get(thread.status)
    if event_type is None:
        return None
    events = thread.events
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if event_type == "thread.waiting" and event.type == "human_request":
            return event_type, index
        if event_type != "thread.waiting" and event.shown_in_context:
            return event_type, index
    return None


def payload(settings: ServerSettings, thread: Thread, event_type: WebhookEventType, anchor: int) -> dict[str, Any]:
    """The JSON body of a webhook: ``{"type", "timestamp", "data"}`` as Standard Webhooks suggests."""
    event = thread.events[anchor]
    base = base_url(settings)
    data: dict[str, Any] = {
        "thread_id": thread.id,
        "agent": thread.agent,
        "status": thread.status,
        "version": thread.version,
    }
    links: dict[str, str] = {"thread": f"{base}/v1/threads/{thread.id}"}
    pending = thread.pending_request
    if event_type == "thread.waiting" and pending is not None:
        data["pending_request"] = pending.model_dump(mode="json", exclude={"type", "at"})
        links["respond"] = approval_link(settings, thread.id, pending.call_id)
    elif isinstance(event, Done):
        data["message"] = event.message
    elif isinstance(event, Error):
        data["error"] = {"source": event.source, "message": event.message}
    data["links"] = links
    timestamp = event.at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return {"type": event_type, "timestamp": timestamp, "data": data}


@dataclass(frozen=True, slots=True)
class _Outcome:
    status_code: int | None
    error: str | None
    retry_after: float | None
    duration_ms: float
    sent: bool = False  # a channel delivered (channels have no HTTP status of their own)
    permanent: bool = False  # a channel said trying again cannot help (a bad address, a revoked token)
    receipt: str | None = None

    @property
    def delivered(self) -> bool:
        return self.sent or (self.status_code is not None and 200 <= self.status_code < 300)

    @property
    def retryable(self) -> bool:
        if self.permanent:
            return False
        if self.status_code is None:
            return True  # connection error or timeout
        return self.status_code in (408, 429) or self.status_code >= 500


class Webhooks:
    """Outbound deliveries for one server process, and the log the API reads."""

    def __init__(
        self,
        settings: ServerSettings,
        delivery_log: DeliveryLog,
        *,
        owner: str | None = None,
        channels: Mapping[str, Channel] | None = None,
    ) -> None:
        self.settings = settings
        self.log = delivery_log
        # People's channels (email, Slack, ...): their messages go through this same outbox (targets
        # ``channel:NAME:ADDRESS``), with the same durability, retries and attempt log as webhooks.
        self.channels: dict[str, Channel] = dict(channels or {})
        self.owner = owner or f"webhooks-{uuid.uuid4().hex[:8]}"
        self.endpoints: dict[str, WebhookEndpoint] = {endpoint.url: endpoint for endpoint in settings.webhooks}
        self._seen: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        self._seen_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._incoming: asyncio.Queue[Thread | None] | None = None
        self._busy = 0
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._writes: set[asyncio.Future[Any]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._stopping = False

    @classmethod
    def for_store(
        cls, settings: ServerSettings, store: ThreadStore, *, channels: Mapping[str, Channel] | None = None
    ) -> Webhooks:
        """Keep the delivery log next to the threads: in the same SQLite file or PostgreSQL database, else in
        memory."""
        inner = getattr(store, "inner", store)
        if isinstance(inner, SQLiteStore) and inner.path not in ("", ":memory:") and "mode=memory" not in inner.path:
            return cls(settings, SQLiteDeliveryLog(inner.path), channels=channels)
        if isinstance(inner, PostgresStore):
            return cls(settings, PostgresDeliveryLog(inner), channels=channels)
        return cls(settings, MemoryDeliveryLog(), channels=channels)

    @property
    def enabled(self) -> bool:
        return bool(self.endpoints) or bool(self.channels)

    def add(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Put deliveries made elsewhere (people's channels) in the outbox and send them; the ones that were
        new. Blocking (the log): call it from a worker thread. Thread-safe."""
        now = time.time()
        added = [d for d in deliveries if self.log.add(d, owner=self.owner, claimed_until=now + self._hold_s)]
        loop = self._loop
        if added and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the sweep resumes them
                loop.call_soon_threadsafe(self._spawn_all, added)
        return added

    def _spawn_all(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            self._spawn(delivery)

    @property
    def _hold_s(self) -> float:
        return self.settings.webhook_timeout_s + _CLAIM_MARGIN_S

    # --- the listener (writer's thread) ---

    def listener(self, thread: Thread) -> None:
        """Notifier listener: hand a thread that entered a new waiting/done/failed episode to the loop."""
        episode = status_episode(thread)
        if episode is None:
            return
        key = (thread.id, *episode)
        with self._seen_lock:
            if key in self._seen:
                return
            self._seen[key] = None
            if len(self._seen) > _SEEN_MAX:
                self._seen.popitem(last=False)
        loop, queue = self._loop, self._incoming
        if loop is None or queue is None or loop.is_closed():
            log.warning("webhook for thread %s (%s) dropped: webhooks are not running", thread.id, episode[0])
            return
        try:
            loop.call_soon_threadsafe(queue.put_nowait, thread)
        except RuntimeError:  # the loop closed meanwhile
            log.warning("webhook for thread %s (%s) dropped: the event loop is closed", thread.id, episode[0])

    # --- lifecycle ---

    async def start(self) -> None:
        """Start delivering (and resume the deliveries a previous process left pending)."""
        if not self.enabled:
            return
        import httpx

        if self.settings.public_url is None and not self.settings.loopback:
            log.warning(
                "webhook links point at %s, which people cannot reach: set --public-url (TWELVEFACTOR_PUBLIC_URL)",
                base_url(self.settings),
            )

        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._incoming = asyncio.Queue()
        self._client = httpx.AsyncClient(
            timeout=self.settings.webhook_timeout_s,
            follow_redirects=False,
            headers={"user-agent": "twelvefactor-webhooks/1", "content-type": "application/json"},
        )
        self._background = [
            asyncio.create_task(self._consume(), name=f"{self.owner}-consume"),
            asyncio.create_task(self._sweep(), name=f"{self.owner}-sweep"),
        ]

    async def stop(self) -> None:
        """Persist what was handed over, stop sending; pending deliveries resume at the next start."""
        if not self._background:
            await self._close_channels()
            self.log.close()
            return
        self._stopping = True
        consume, sweep = self._background
        assert self._incoming is not None
        self._incoming.put_nowait(None)  # drains the queue into the outbox, then ends
        sweep.cancel()
        await asyncio.gather(consume, sweep, return_exceptions=True)
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Log writes outlive a cancelled task (an attempt that was made is still recorded): let them land.
        await asyncio.gather(*self._writes, return_exceptions=True)
        await asyncio.to_thread(self.log.release, self.owner)
        if self._client is not None:
            await self._client.aclose()
        self._client, self._loop, self._incoming, self._background = None, None, None, []
        await self._close_channels()
        self.log.close()

    async def _close_channels(self) -> None:
        for name, channel in self.channels.items():
            try:
                await channel.aclose()
            except Exception:  # noqa: BLE001 - one channel that fails to close must not keep the others open
                log.exception("channel %s did not close cleanly", name)

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until every delivery handed over has finished (delivered or failed); tests use it."""
        deadline = time.monotonic() + timeout
        while (self._incoming is not None and not self._incoming.empty()) or self._busy or self._inflight:
            if time.monotonic() > deadline:
                raise TimeoutError(f"webhook deliveries still running after {timeout}s: {sorted(self._inflight)}")
            await asyncio.sleep(0.01)

    # --- event loop side ---

    async def _consume(self) -> None:
        assert self._incoming is not None
        while True:
            thread = await self._incoming.get()
            if thread is None:
                return
            self._busy += 1
            try:
                for delivery in await asyncio.to_thread(self._add, thread):
                    self._spawn(delivery)
            except Exception:  # noqa: BLE001 - a broken log row must not stop later notifications
                log.exception("could not queue webhooks for thread %s", thread.id)
            finally:
                self._busy -= 1

    def _add(self, thread: Thread) -> list[Delivery]:
        episode = status_episode(thread)
        if episode is None:
            return []
        event_type, anchor = episode
        targets = [e for e in self.endpoints.values() if event_type in e.events]
        if not targets:
            return []
        body = json.dumps(payload(self.settings, thread, event_type, anchor), separators=(",", ":"))
        now = time.time()
        added = []
        for endpoint in targets:
            delivery = Delivery(
                webhook_id=f"msg_{uuid.uuid4().hex}",
                thread_id=thread.id,
                event_type=event_type,
                anchor=anchor,
                url=endpoint.url,
                body=body,
                created_at=now,
                next_attempt_at=now,
            )
            if self.log.add(delivery, owner=self.owner, claimed_until=now + self._hold_s):
                added.append(delivery)
        return added

    async def _sweep(self) -> None:
        while True:
            try:
                for delivery in await self._in_thread(
                    self.log.claim_due, self.owner, now=time.time(), hold_s=self._hold_s
                ):
                    self._spawn(delivery)
            except Exception:  # noqa: BLE001 - try again at the next sweep
                log.exception("could not resume pending webhook deliveries")
            await asyncio.sleep(self.settings.webhook_sweep_s)

    async def _in_thread(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """``fn`` in a worker thread, finished even if the caller is cancelled (stop() waits for it)."""
        write = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        return await asyncio.shield(write)

    def _spawn(self, delivery: Delivery) -> None:
        if self._stopping or delivery.webhook_id in self._inflight:
            return
        task = asyncio.create_task(self._deliver(delivery), name=f"webhook-{delivery.webhook_id}")
        self._inflight[delivery.webhook_id] = task
        task.add_done_callback(lambda _: self._inflight.pop(delivery.webhook_id, None))

    async def _deliver(self, delivery: Delivery) -> None:
        while delivery.state == "pending":
            delay = delivery.next_attempt_at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            number = delivery.attempts + 1
            abandon = False
            if delivery.url.startswith(CHANNEL_PREFIX):
                outcome = await self._to_channel(delivery)
            elif (endpoint := self.endpoints.get(delivery.url)) is not None:
                outcome = await self._post(delivery, endpoint)
            else:
                outcome = _Outcome(None, "endpoint no longer configured: delivery abandoned", None, 0.0)
                abandon = True
            delivery, retry_in = self._next(delivery, number, outcome, abandon=abandon)
            attempt = Attempt(
                webhook_id=delivery.webhook_id,
                thread_id=delivery.thread_id,
                event_type=delivery.event_type,
                url=delivery.url,
                attempt=number,
                at=time.time(),
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
                retry_in_s=retry_in,
            )
            claimed_until = delivery.next_attempt_at + self._hold_s
            await self._in_thread(self.log.record, attempt, delivery, claimed_until=claimed_until)
            if delivery.state == "failed":
                log.warning(
                    "webhook %s for thread %s to %s failed after %d attempt(s): %s",
                    delivery.webhook_id,
                    delivery.thread_id,
                    _redact(delivery.url),
                    number,
                    outcome.error or f"HTTP {outcome.status_code}",
                )

    async def _post(self, delivery: Delivery, endpoint: WebhookEndpoint) -> _Outcome:
        import httpx

        assert self._client is not None
        body = delivery.body.encode()
        headers = signed_headers(endpoint.secret, delivery.webhook_id, body)
        started = time.perf_counter()
        try:
            response = await self._client.post(endpoint.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return _Outcome(None, f"timeout: {type(exc).__name__}", None, _ms(started))
        except httpx.HTTPError as exc:
            return _Outcome(None, compact(f"{type(exc).__name__}: {exc}", 300), None, _ms(started))
        retry_after = retry_after_s(response.headers)
        return _Outcome(response.status_code, None, retry_after, _ms(started))

    async def _to_channel(self, delivery: Delivery) -> _Outcome:
        name = delivery.url[len(CHANNEL_PREFIX) :].partition(":")[0]
        channel = self.channels.get(name)
        if channel is None:
            return _Outcome(
                None, f"channel {name!r} is no longer configured: delivery abandoned", None, 0.0, permanent=True
            )
        message = ChannelMessage.model_validate_json(delivery.body)
        started = time.perf_counter()
        try:
            if message.answered is None:
                receipt = await channel.send(message.notice)
                return _Outcome(None, None, None, _ms(started), sent=True, receipt=receipt.ref)
            asked = await asyncio.to_thread(self._receipt_of, delivery.thread_id, message.asked_anchor, delivery.url)
            if asked is None:
                return _Outcome(
                    None, "the request's message was never delivered: nothing to update", None, 0.0, permanent=True
                )
            await channel.update(message.notice, Receipt(ref=asked), message.answered)
            return _Outcome(None, None, None, _ms(started), sent=True)
        except ChannelError as exc:
            error = compact(f"{name}: {exc}", 300)
            return _Outcome(None, error, exc.retry_after_s, _ms(started), permanent=not exc.retryable)
        except Exception as exc:  # noqa: BLE001 - a channel's bug is one failed attempt, never a dead outbox
            log.exception("channel %s failed on delivery %s", name, delivery.webhook_id)
            return _Outcome(None, compact(f"{name}: {type(exc).__name__}: {exc}", 300), None, _ms(started))

    def _receipt_of(self, thread_id: str, anchor: int | None, url: str) -> str | None:
        for sent, _ in self.log.for_thread(thread_id):
            if sent.event_type == "human.request" and sent.anchor == anchor and sent.url == url:
                return sent.receipt
        return None

    def _next(
        self, delivery: Delivery, number: int, outcome: _Outcome, *, abandon: bool
    ) -> tuple[Delivery, float | None]:
        if outcome.delivered:
            return replace(delivery, state="delivered", attempts=number, receipt=outcome.receipt), None
        if abandon or not outcome.retryable or number >= self.settings.webhook_max_attempts:
            return replace(delivery, state="failed", attempts=number), None
        retry_in = self.backoff(number, outcome.retry_after)
        return replace(delivery, attempts=number, next_attempt_at=time.time() + retry_in), retry_in

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt``: the server's Retry-After if it gave
        one (up to an hour), else exponential (``webhook_backoff_s * 2**(attempt-1)``, capped) with
        "equal jitter" (between half and all of it), so a crowd of retries spreads out."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), RETRY_AFTER_MAX_S)
        return backoff_s(
            attempt - 1, initial_s=self.settings.webhook_backoff_s, max_s=self.settings.webhook_backoff_max_s
        )


CHANNEL_PREFIX = "channel:"


class ChannelMessage(BaseModel):
    """The body of a delivery to a person's channel: what to send, or (``answered``) how to update the
    message sent for the delivery anchored at ``asked_anchor``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    notice: Notice
    answered: Answered | None = None
    asked_anchor: int | None = None


def channel_target(channel: str, to: str) -> str:
    """The outbox target of a person's address on a channel (a delivery's ``url``)."""
    return f"{CHANNEL_PREFIX}{channel}:{to}"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _redact(url: str) -> str:
    """The URL without credentials or query (they may hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


# --- the API ---


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


class AttemptView(BaseModel):
    attempt: int = Field(description="1 for the first POST")
    at: str
    status_code: int | None = Field(description="the receiver's HTTP status; null when no response came")
    error: str | None = Field(description="connection error or timeout, when no response came")
    duration_ms: float
    retry_in_s: float | None = Field(description="delay before the next attempt; null when none follows")


class DeliveryView(BaseModel):
    webhook_id: str = Field(description="the webhook-id header: the same on every attempt of this delivery")
    event_type: DeliveryEventType
    url: str = Field(description="the endpoint, without credentials or query")
    state: DeliveryState
    created_at: str
    next_attempt_at: str | None = Field(description="when a pending delivery is tried next")
    payload: dict[str, Any]
    receipt: str | None = Field(
        default=None, description="a channel's own id of the delivered message (email Message-ID, Slack channel:ts)"
    )
    attempts: list[AttemptView]

    @classmethod
    def of(cls, delivery: Delivery, attempts: list[Attempt]) -> DeliveryView:
        return cls(
            webhook_id=delivery.webhook_id,
            event_type=delivery.event_type,
            url=_redact(delivery.url),
            state=delivery.state,
            created_at=_iso(delivery.created_at) or "",
            next_attempt_at=_iso(delivery.next_attempt_at) if delivery.state == "pending" else None,
            payload=json.loads(delivery.body),
            receipt=delivery.receipt,
            attempts=[
                AttemptView(
                    attempt=a.attempt,
                    at=_iso(a.at) or "",
                    status_code=a.status_code,
                    error=a.error,
                    duration_ms=a.duration_ms,
                    retry_in_s=a.retry_in_s,
                )
                for a in attempts
            ],
        )


router = APIRouter(prefix="/v1", tags=["webhooks"])


@router.get(
    "/threads/{thread_id}/deliveries",
    response_model=list[DeliveryView],
    responses={404: {"model": ErrorView, "description": "no such thread"}},
)
async def list_deliveries(thread_id: str, request: Request) -> list[DeliveryView]:
    """The outbound webhooks sent for a thread, oldest first, with every attempt."""
    rt = runtime_of(request)
    await asyncio.to_thread(rt.store.load, thread_id)  # 404 for an unknown thread
    rows = await asyncio.to_thread(rt.webhooks.log.for_thread, thread_id)
    return [DeliveryView.of(delivery, attempts) for delivery, attempts in rows]


class ResumeWebhook(BaseModel):
    """An answer to a thread's pending request, delivered as a signed webhook."""

    model_config = ConfigDict(extra="forbid")

    thread_id: str = Field(min_length=1)
    request_id: str = Field(min_length=1, description="the pending request's id (`pending_request.call_id`)")
    approved: bool | None = Field(default=None, description="for approval requests")
    text: str | None = Field(default=None, description="the answer, or the reason for a denial")
    responder: str | None = Field(default=None, max_length=200)


inbound_router = APIRouter(prefix="/v1", tags=["webhooks"])

SIGNATURE_CHALLENGE = {"WWW-Authenticate": 'webhook-signature realm="twelvefactor"'}


async def read_signed(
    request: Request, webhook_id: str | None, webhook_timestamp: str | None, webhook_signature: str | None
) -> tuple[bytes, str, int]:
    """The body, id and timestamp of an inbound delivery signed with ``inbound_webhook_secret`` (Standard
    Webhooks); 404 while inbound webhooks are off, 401 when forged or stale. Replays are the caller's to refuse
    (``log.remember``), once it knows whether the delivery applies."""
    rt = runtime_of(request)
    secret = rt.settings.inbound_webhook_secret
    if secret is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "inbound webhooks are not enabled here: start the server with --inbound-webhook-secret"
            " (or TWELVEFACTOR_INBOUND_WEBHOOK_SECRET)",
        )
    body = await request.body()  # at most max_body_bytes: limits.BodyLimit stops reading past it
    headers = {
        "webhook-id": webhook_id or "",
        "webhook-timestamp": webhook_timestamp or "",
        "webhook-signature": webhook_signature or "",
    }
    try:
        msg_id, timestamp = verify(secret, headers, body, tolerance_s=rt.settings.webhook_tolerance_s)
    except SignatureError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers=SIGNATURE_CHALLENGE) from None
    return body, msg_id, timestamp


@inbound_router.post(
    "/webhooks/resume",
    response_model=ThreadView,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ResumeWebhook.model_json_schema()}},
        }
    },
    responses={
        401: {"model": ErrorView, "description": "forged (bad signature) or stale (timestamp outside the window)"},
        404: {"model": ErrorView, "description": "no such thread, or inbound webhooks are not enabled"},
        409: {"model": ErrorView, "description": "a replayed webhook-id, or the thread is not waiting for this"},
        413: {"model": ErrorView, "description": "body over max_body_bytes (default 1 MiB)"},
        422: {"model": ErrorView, "description": "the body is not a valid answer"},
    },
)
async def resume_webhook(
    request: Request,
    webhook_id: Annotated[str | None, Header(description="unique message id (replays are rejected)")] = None,
    webhook_timestamp: Annotated[str | None, Header(description="seconds since the epoch, when signed")] = None,
    webhook_signature: Annotated[str | None, Header(description="v1,<base64 HMAC-SHA256>")] = None,
) -> ThreadView:
    """Resume a waiting thread from a signed Standard Webhooks delivery (authenticated by signature, not token)."""
    rt = runtime_of(request)
    body, msg_id, timestamp = await read_signed(request, webhook_id, webhook_timestamp, webhook_signature)
    tolerance = rt.settings.webhook_tolerance_s
    try:
        answer = ResumeWebhook.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid resume webhook: {where}: {first['msg']}"
        ) from None
    check_texts(rt.settings.max_text_chars, "text", answer.text)  # before the id is remembered: a retry may fix it
    # Ids are kept past the window (either side), after which the timestamp check rejects a replay anyway.
    fresh = await asyncio.to_thread(
        rt.webhooks.log.remember, msg_id, expires_at=timestamp + tolerance + _CLAIM_MARGIN_S, now=time.time()
    )
    if not fresh:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"webhook-id {msg_id!r} was already received: a replay changes nothing"
        )
    response = HumanResponse(
        request_id=answer.request_id,
        approved=answer.approved,
        text=answer.text,
        responder=answer.responder or "webhook",
        idempotency_key=f"webhook:{msg_id}",
    )
    try:
        thread = await asyncio.to_thread(rt.store.respond, answer.thread_id, response)
    except TwelveFactorError:
        # Not applied (unknown thread, not waiting, malformed answer): let a corrected retry through.
        await asyncio.to_thread(rt.webhooks.log.forget, msg_id)
        raise
    rt.worker.submit(answer.thread_id)
    return ThreadView.of(thread)
