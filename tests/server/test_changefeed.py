"""Live updates across processes on PostgreSQL: every write announces itself (NOTIFY on commit), and a
server hears the other processes' writes: SSE streams wake at once, and webhooks go out once per episode
and endpoint however many processes hear the write."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from channels.recording import RecordingChannel
from pgserver import PostgresServer
from twelvefactor import Thread, UserMessage
from twelvefactor.channels.config import ContactStep, Route
from twelvefactor.errors import ConflictError, StoreBusyError
from twelvefactor.events import CustomEvent, Done, HumanContact, HumanRequest, HumanResponse
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.bus import Notifier
from twelvefactor.server.changefeed import ChangeFeed
from twelvefactor.store import PostgresStore
from twelvefactor.store.changes import CHANNEL, DELETED, UNKNOWN, Change, parse
from twelvefactor.thread import reduce

from .conftest import client_for, deploybot, live_server
from .test_webhooks import Receiver, app_for, deliveries, runtime_of

pytestmark = pytest.mark.anyio

AWAY = "elsewhere"  # an agent no test server serves: only the test's writes move these threads


def waiting(thread_id: str) -> Thread:
    request = HumanRequest(call_id="c1", kind="approval", question="deploy?")
    return Thread.new(UserMessage(content="deploy"), request, agent=AWAY, id=thread_id)


@pytest.fixture
def other(pg_url: str) -> Iterator[PostgresStore]:
    """Another process's store (a `twelvefactor worker`'s): its writes carry another origin."""
    with PostgresStore(pg_url) as store:
        yield store


def notifications(url: str, write: Any, count: int, timeout: float = 5) -> list[str]:
    """The payloads on the change channel while ``write()`` runs."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        write()
        return [note.payload for note in conn.notifies(timeout=timeout, stop_after=count)][:count]


# --- the store announces every write, on commit only ---


def test_every_write_announces_the_thread_its_version_and_the_writer(pg_url: str, other: PostgresStore) -> None:
    def writes() -> None:
        other.create(waiting("t:1"))  # a colon in the id: the payload is read from the right
        other.respond("t:1", HumanResponse(request_id="c1", approved=True))
        other.append("t:1", CustomEvent(type="tick"))
        other.save(reduce(other.load("t:1"), Done(message="ok")), 4)
        with pytest.raises(ConflictError):  # refused: rolled back, announces nothing
            other.append("t:1", CustomEvent(type="late"), expected_version=1)
        other.delete("t:1")

    payloads = notifications(pg_url, writes, 5)
    assert [parse(p) for p in payloads] == [Change("t:1", version, other.origin) for version in (2, 3, 4, 5, DELETED)]
    assert all(len(p.encode()) < 200 for p in payloads)


def test_an_id_too_long_to_announce_is_announced_as_unknown(pg_url: str, other: PostgresStore) -> None:
    (payload,) = notifications(pg_url, lambda: other.create(Thread.new(UserMessage(content="x"), id="i" * 9000)), 1)
    assert parse(payload) == Change(UNKNOWN, 1, other.origin)


# --- the feed ---


async def wait_until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


async def test_the_feed_hands_on_other_processes_writes_once_and_skips_its_own(
    pg_url: str, other: PostgresStore
) -> None:
    with PostgresStore(pg_url) as mine:
        notifier = Notifier()
        notifier.bind(asyncio.get_running_loop())
        seen: list[tuple[str, int]] = []
        feed = ChangeFeed(mine, notifier)
        notifier.listeners += [feed.saw, lambda thread: seen.append((thread.id, thread.version))]
        await feed.start()
        try:
            await asyncio.wait_for(feed.connected.wait(), 5)
            await asyncio.to_thread(other.create, waiting("theirs"))
            await asyncio.to_thread(mine.create, waiting("mine"))  # a write this process makes...
            await wait_until(lambda: ("theirs", 2) in seen)
            await asyncio.sleep(0.3)
            assert seen == [("theirs", 2)]  # ...reaches its notifier through NotifyingStore, not the feed
        finally:
            await feed.stop()


def restarted(pg_server: PostgresServer) -> None:
    pg_server.pg_ctl("restart", "-m", "fast")


def retried(write: Any) -> Any:
    for _ in range(100):
        try:
            return write()
        except StoreBusyError:
            time.sleep(0.05)
    raise AssertionError("the store stayed busy")


async def test_the_feed_reconnects_after_a_restart_and_catches_up_on_what_it_missed(
    pg_server: PostgresServer, pg_url: str, other: PostgresStore
) -> None:
    with PostgresStore(pg_url) as mine:
        notifier = Notifier()
        notifier.bind(asyncio.get_running_loop())
        seen: set[tuple[str, int]] = set()
        feed = ChangeFeed(mine, notifier, backoff_s=1.0, max_backoff_s=1.0)
        notifier.listeners.append(lambda thread: seen.add((thread.id, thread.version)))
        await feed.start()
        try:
            await asyncio.wait_for(feed.connected.wait(), 5)
            await asyncio.to_thread(restarted, pg_server)
            await wait_until(lambda: not feed.connected.is_set())
            await asyncio.wait_for(feed.connected.wait(), 10)
            await asyncio.to_thread(retried, lambda: other.create(waiting("after-restart")))
            await wait_until(lambda: ("after-restart", 2) in seen)

            # Cut off while the database stays up: a write made before the feed is back is caught up.
            caught_up = feed.caught_up
            pg_server.admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                ("twelvefactor-changefeed",),
            )
            await wait_until(lambda: not feed.connected.is_set())
            await asyncio.to_thread(other.create, waiting("while-away"))
            await wait_until(lambda: ("while-away", 2) in seen)
            assert feed.caught_up > caught_up and feed.reconnects >= 2
        finally:
            await feed.stop()


# --- the server ---


async def test_an_sse_stream_sees_another_process_write_at_once(
    tmp_path: Path, pg_url: str, other: PostgresStore
) -> None:
    other.create(waiting("live"))
    app = app_for(tmp_path, database=pg_url, stream_poll_s=30)  # the periodic re-read would take 30 s
    with live_server(app) as base:
        await wait_until(runtime_of(app).feed.connected.is_set)  # set on the server's loop, in its thread
        arrived: list[float] = []

        def read() -> None:
            with (
                httpx.Client(base_url=base, timeout=20) as client,
                client.stream("GET", "/v1/threads/live/stream", params={"since": 2}) as stream,
            ):
                for line in stream.iter_lines():
                    if line.startswith("event: human_response"):
                        arrived.append(time.monotonic())
                        return

        reader = threading.Thread(target=read)
        reader.start()
        await asyncio.sleep(0.5)  # the stream is open and waiting
        written = time.monotonic()
        await asyncio.to_thread(other.respond, "live", HumanResponse(request_id="c1", approved=True))
        await asyncio.to_thread(reader.join, 15)
        # Wakes the server's side of the stream, which then finds its reader gone and ends (no 30 s wait).
        await asyncio.to_thread(other.append, "live", CustomEvent(type="tick"))
        await asyncio.sleep(0.2)
    assert arrived and arrived[0] - written < 2.0, arrived


async def test_two_servers_hearing_a_workers_writes_send_each_webhook_once(
    tmp_path: Path, pg_url: str, other: PostgresStore
) -> None:
    async with Receiver().running() as receiver:
        one = app_for(tmp_path / "one", receiver.url, database=pg_url)
        two = app_for(tmp_path / "two", receiver.url, database=pg_url)
        async with client_for(one) as client, client_for(two):
            for app in (one, two):
                await asyncio.wait_for(runtime_of(app).feed.connected.wait(), 5)
            await asyncio.to_thread(other.create, waiting("w"))
            await receiver.wait_for(1)
            await asyncio.to_thread(other.respond, "w", HumanResponse(request_id="c1", approved=True))
            await asyncio.to_thread(other.append, "w", Done(message="deployed"))
            await receiver.wait_for(2)
            await asyncio.sleep(1.0)  # time for a duplicate to arrive, if one were sent
            for app in (one, two):
                await runtime_of(app).webhooks.idle()
            rows = await deliveries(client, "w")
    assert sorted(json.loads(r.body)["type"] for r in receiver.requests) == ["thread.done", "thread.waiting"]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 2
    assert [(row["event_type"], row["state"], len(row["attempts"])) for row in rows] == [
        ("thread.waiting", "delivered", 1),
        ("thread.done", "delivered", 1),
    ]


async def test_two_servers_hearing_a_workers_request_contact_the_person_once(
    tmp_path: Path, pg_url: str, other: PostgresStore
) -> None:
    settings = ServerSettings(
        database=pg_url,
        public_url="https://agents.example.test",
        contacts={"release": [ContactStep(channel="fake", to="#deploys")]},
        routes=[Route(contact="release", kind="approval")],
        webhook_backoff_s=0.05,
        escalation_sweep_s=3600.0,  # no sweep: only the feed can tell these servers about the request
    )
    channels = [RecordingChannel(), RecordingChannel()]
    apps = [create_app([deploybot()], settings=settings, channels={"fake": channel}) for channel in channels]
    async with client_for(apps[0]), client_for(apps[1]):
        for app in apps:
            await asyncio.wait_for(runtime_of(app).feed.connected.wait(), 5)
        await asyncio.to_thread(other.create, waiting("ask"))
        await wait_until(lambda: sum(len(c.sent) for c in channels) >= 1)
        await asyncio.to_thread(other.respond, "ask", HumanResponse(request_id="c1", approved=True))
        await wait_until(lambda: sum(len(c.updated) for c in channels) >= 1)
        await asyncio.sleep(1.0)  # time for a duplicate, if one were sent
        for app in apps:
            await runtime_of(app).contacts.idle()
            await runtime_of(app).webhooks.idle()
    assert [n.to for c in channels for n in c.sent] == ["#deploys"]
    assert sum(len(c.updated) for c in channels) == 1
    assert [e.to for e in other.load("ask").events if isinstance(e, HumanContact)] == ["#deploys"]
