"""People on their channels: each pending request is sent to its contact chain, escalated on deadlines,
and the messages are updated once it is answered; notifications go out the same way.

``Contacts.listener`` sees every thread this process writes and hands the interesting ones (a thread that
started waiting for a person, one just answered, one that notified) to the event loop; a sweep every
``escalation_sweep_s`` walks the waiting threads, so deadlines pass on time, and requests written by other
processes (workers) or left by a crash are contacted too (on PostgreSQL other processes' writes reach the
listener at once, through ``changefeed.py``). Who is contacted is decided by
``channels.routing`` and recorded as ``HumanContact`` events (once per request and step, whichever process
gets there first); the messages go through the webhook outbox (``Webhooks.add``): durable, retried,
logged per attempt, resumed after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from twelvefactor.channels.base import Answered, Channel, Notice
from twelvefactor.channels.routing import due_contacts, notification_steps
from twelvefactor.errors import ConflictError, ThreadNotFound, UserError
from twelvefactor.events import HumanContact, HumanRequest, HumanResponse, ModelCall, Notification, UserMessage
from twelvefactor.server.deliveries import ChannelEventType, Delivery
from twelvefactor.server.links import approval_link, base_url, make_token
from twelvefactor.server.settings import ServerSettings
from twelvefactor.server.webhooks import ChannelMessage, Webhooks, channel_target
from twelvefactor.store.base import ThreadStore
from twelvefactor.thread import Thread

__all__ = ["Contacts", "check_contacts"]

log = logging.getLogger("twelvefactor.contacts")

_TRIES = 3
_SEEN_MAX = 4096
_PAGE = 200


class Contacts:
    """Routing, escalation and answered-updates for one server process."""

    def __init__(
        self,
        settings: ServerSettings,
        store: ThreadStore,
        outbox: Webhooks,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.outbox = outbox
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[str, int, int] | None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # thread id -> the version this process's listener last looked at (writers call it from many threads)
        self._scanned: OrderedDict[str, int] = OrderedDict()
        self._scanned_lock = threading.Lock()
        self._busy = 0

    @property
    def enabled(self) -> bool:
        return bool(self.settings.contacts)

    # --- the listener (writer's thread) ---

    def listener(self, thread: Thread) -> None:
        """Hand a thread whose new events need a person contacted, updated or notified to the event loop.

        Quick: it reads only the events this process has not looked at yet (a write's own events; the whole
        thread the first time one is seen), so its cost grows with the write, not the thread.
        """
        with self._scanned_lock:
            since = self._scanned.get(thread.id)
            if since is not None and thread.version <= since:
                return  # this write (or a later one) was looked at already
            self._scanned[thread.id] = thread.version
            self._scanned.move_to_end(thread.id)
            if len(self._scanned) > _SEEN_MAX:
                self._scanned.popitem(last=False)
        start = since or 0
        if not any(isinstance(e, HumanRequest | HumanResponse | Notification) for e in thread.events[start:]):
            return
        loop, queue = self._loop, self._queue
        if loop is None or queue is None or loop.is_closed():
            return  # not running: the sweep finds waiting threads once it is
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, (thread.id, start, thread.version))

    # --- lifecycle ---

    async def start(self) -> None:
        if not self.enabled:
            return
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._tasks = [
            asyncio.create_task(self._consume(), name="contacts-consume"),
            asyncio.create_task(self._sweep_forever(), name="contacts-sweep"),
        ]

    async def stop(self) -> None:
        if not self._tasks:
            return
        assert self._queue is not None
        self._queue.put_nowait(None)
        consume, sweep = self._tasks
        sweep.cancel()
        await asyncio.gather(consume, sweep, return_exceptions=True)
        self._tasks, self._loop, self._queue = [], None, None

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until every thread handed over has been routed (tests use it)."""
        deadline = time.monotonic() + timeout
        while (self._queue is not None and not self._queue.empty()) or self._busy:
            if time.monotonic() > deadline:
                raise TimeoutError(f"contacts still routing after {timeout}s")
            await asyncio.sleep(0.01)

    async def _consume(self) -> None:
        assert self._queue is not None
        while True:
            item = await self._queue.get()
            if item is None:
                return
            thread_id, since, version = item
            self._busy += 1
            try:
                await asyncio.to_thread(self.advance, thread_id, version, since)
            except Exception:  # noqa: BLE001 - one bad thread must not stop the others' messages
                log.exception("could not contact people for thread %s", thread_id)
            finally:
                self._busy -= 1

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.sweep)
            except Exception:  # noqa: BLE001 - try again at the next sweep
                log.exception("escalation sweep failed")
            await asyncio.sleep(self.settings.escalation_sweep_s)

    # --- the work (blocking: store and outbox) ---

    def sweep(self) -> int:
        """Advance every waiting thread: first contacts not made yet, deadlines passed. How many messages."""
        sent, offset = 0, 0
        while True:
            page = self.store.list(status="waiting", limit=_PAGE, offset=offset)
            for summary in page:
                try:
                    sent += len(self.advance(summary.id))
                except ThreadNotFound:
                    continue  # deleted meanwhile
            if len(page) < _PAGE:
                return sent
            offset += _PAGE

    def advance(self, thread_id: str, version: int | None = None, since: int | None = None) -> list[Delivery]:
        """Record the contacts due now on ``thread_id`` and queue every message it calls for; the new ones.

        ``version``: the write that woke us; its notifications are sent even if the thread moved on since.
        ``since``: the events before it were looked at already (None: look back over the last step).
        """
        thread = self.store.load(thread_id)
        for _ in range(_TRIES):
            due = due_contacts(thread, self.settings.contacts, self.settings.routes, self._now())
            if not due:
                break
            try:
                # At the version decided on: a thread answered meanwhile is not contacted after the fact.
                thread = self.store.append(thread_id, due, expected_version=thread.version)
                break
            except ConflictError:
                thread = self.store.load(thread_id)
        written = thread if version is None or version > thread.version else thread.at(version)
        deliveries = [*self._requests(thread), *self._notifications(written, since), *self._answered(written)]
        return self.outbox.add(deliveries) if deliveries else []

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _requests(self, thread: Thread) -> list[Delivery]:
        request = thread.waiting_on
        if not isinstance(request, HumanRequest):
            return []
        out = []
        for index in range(len(thread.events) - 1, -1, -1):
            event = thread.events[index]
            if event is request:
                break
            if isinstance(event, HumanContact) and event.request_id == request.call_id:
                notice = self._notice(thread, request, event)
                out.append(self._delivery(thread, "human.request", index, event, ChannelMessage(notice=notice)))
        return out

    def _notifications(self, thread: Thread, since: int | None) -> list[Delivery]:
        out = []
        for index in range(_step_start(thread) if since is None else since, len(thread.events)):
            event = thread.events[index]
            if not isinstance(event, Notification):
                continue
            for step in notification_steps(event, thread.agent, self.settings.contacts, self.settings.routes):
                notice = Notice(
                    thread_id=thread.id,
                    agent=thread.agent,
                    kind="notify",
                    text=event.message,
                    to=step.to,
                    thread_url=self._thread_url(thread.id),
                )
                target = HumanContact(request_id=event.call_id, contact="", channel=step.channel, to=step.to)
                out.append(self._delivery(thread, "human.notify", index, target, ChannelMessage(notice=notice)))
        return out

    def _answered(self, thread: Thread) -> list[Delivery]:
        if not thread.events or not isinstance(thread.events[-1], HumanResponse):
            return []
        response = thread.events[-1]
        answer_index = len(thread.events) - 1
        request: HumanRequest | None = None
        contacts: list[tuple[int, HumanContact]] = []
        for index in range(answer_index - 1, -1, -1):
            event = thread.events[index]
            if isinstance(event, HumanContact) and event.request_id == response.request_id:
                contacts.append((index, event))
            elif isinstance(event, HumanRequest) and event.call_id == response.request_id:
                request = event
                break
        if request is None:
            return []
        answered = Answered.of(response)
        out = []
        for index, contact in contacts:
            channel = self.outbox.channels.get(contact.channel)
            if channel is None or not getattr(channel, "updates_messages", True):
                continue
            message = ChannelMessage(
                notice=self._notice(thread, request, contact), answered=answered, asked_anchor=index
            )
            out.append(self._delivery(thread, "human.answered", answer_index, contact, message))
        return out

    def _notice(self, thread: Thread, request: HumanRequest, contact: HumanContact) -> Notice:
        settings = self.settings
        return Notice.asking(
            request,
            thread_id=thread.id,
            agent=thread.agent,
            to=contact.to,
            step=contact.step,
            escalated=contact.escalated,
            link=approval_link(settings, thread.id, request.call_id),
            reply_token=make_token(settings.secret, thread.id, request.call_id, ttl_s=settings.approval_link_ttl_s),
            thread_url=self._thread_url(thread.id),
        )

    def _thread_url(self, thread_id: str) -> str:
        return f"{base_url(self.settings)}/threads/{thread_id}"

    def _delivery(
        self, thread: Thread, kind: ChannelEventType, anchor: int, contact: HumanContact, message: ChannelMessage
    ) -> Delivery:
        now = time.time()
        return Delivery(
            webhook_id=f"msg_{uuid.uuid4().hex}",
            thread_id=thread.id,
            event_type=kind,
            anchor=anchor,
            url=channel_target(contact.channel, contact.to),
            body=message.model_dump_json(),
            created_at=now,
            next_attempt_at=now,
        )


def _step_start(thread: Thread) -> int:
    """Where the thread's last step begins: after its last model call, contact or user message."""
    for index in range(len(thread.events) - 1, -1, -1):
        if isinstance(thread.events[index], ModelCall | HumanContact | UserMessage):
            return index + 1
    return 0


def check_contacts(
    settings: ServerSettings, channels: Mapping[str, Channel], tool_contacts: Mapping[str, str | None]
) -> None:
    """Refuse a configuration that would lose requests: a chain step on a channel that does not exist, or a
    tool that names a chain that is not defined. ``tool_contacts``: intent (with its agent) -> chain."""
    for chain, steps in settings.contacts.items():
        for step in steps:
            if step.channel not in channels:
                raise UserError(
                    f"contact chain {chain!r} sends on channel {step.channel!r}, which is not configured"
                    f" (channels: {', '.join(sorted(channels)) or 'none'})"
                )
    for where, named in tool_contacts.items():
        if named is not None and named not in settings.contacts:
            raise UserError(
                f"{where} sends its requests to contact chain {named!r}, which is not defined"
                f" (contacts: {', '.join(sorted(settings.contacts)) or 'none'})"
            )
