"""The append-oriented store API, and SQLite under a lock held by another process."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from twelvefactor.errors import ConflictError, StoreBusyError
from twelvefactor.events import CustomEvent, Done, ToolResult, UserMessage
from twelvefactor.store import SQLiteStore, ThreadStore
from twelvefactor.thread import Thread

from .test_store import BACKENDS, make_store


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThreadStore]:
    with make_store(request.param, tmp_path, request) as opened:
        yield opened


def test_append_takes_several_events_at_an_expected_version(store: ThreadStore) -> None:
    thread = store.create(Thread.new(UserMessage(content="hi"), id="t"))
    events = [ToolResult(call_id="c", intent="x", result=1), Done(message="ok")]
    appended = store.append("t", events, expected_version=thread.version)
    assert appended.version == 3
    assert store.load("t") == appended
    with pytest.raises(ConflictError) as caught:
        store.append("t", [Done(message="again")], expected_version=1)
    assert caught.value.actual_version == 3
    assert store.load("t").version == 3  # nothing written


def test_an_empty_append_checks_the_version_and_writes_nothing(store: ThreadStore) -> None:
    store.create(Thread.new(UserMessage(content="hi"), id="t"))
    assert store.append("t", [], expected_version=1).version == 1
    with pytest.raises(ConflictError):
        store.append("t", [], expected_version=0)


def test_leases_are_renewed_by_heartbeat_and_expired_ones_are_listed(store: ThreadStore) -> None:
    for name in ("a", "b", "c"):
        store.create(Thread.new(UserMessage(content=name), id=name))
    assert store.claim("a", "w1", ttl_s=60)
    assert store.claim("b", "w1", ttl_s=-1)  # already expired: its holder died
    assert store.claim("c", "w2", ttl_s=60)
    assert store.expired_leases() == ["b"]
    assert store.heartbeat("w1", ["a", "b"], ttl_s=60) == {"a", "b"}
    assert store.expired_leases() == []
    assert store.heartbeat("w1", ["c"], ttl_s=60) == set()  # w2 holds it and is alive
    assert not store.claim("c", "w1", ttl_s=60)


# --- SQLite with another process holding the write lock ---


@pytest.fixture
def locked_db(tmp_path: Path) -> Iterator[tuple[Path, threading.Event]]:
    """A database whose write lock another connection (another process, as far as SQLite knows) holds
    until the test sets the event."""
    path = tmp_path / "locked.db"
    with SQLiteStore(path) as setup:
        setup.create(Thread.new(UserMessage(content="hi"), id="t"))
    release = threading.Event()
    holding = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        holding.set()
        release.wait(30)
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(5)
    yield path, release
    release.set()
    holder.join(10)


def test_reads_do_not_wait_behind_a_write_that_waits_for_the_lock(
    locked_db: tuple[Path, threading.Event],
) -> None:
    path, release = locked_db
    with SQLiteStore(path, busy_timeout_s=20) as store:
        writer = threading.Thread(target=lambda: store.append("t", CustomEvent(type="ping")))
        writer.start()
        try:
            reads_done = threading.Event()

            def read() -> None:
                store.load("t")
                store.list()
                reads_done.set()

            threading.Thread(target=read, daemon=True).start()
            # The reads finish while the writer still waits for the other process's lock.
            assert reads_done.wait(10), "a read waited behind a write that waits for the lock"
            assert writer.is_alive()
        finally:
            release.set()
            writer.join(30)
        assert store.load("t").version == 2  # the write went through once the lock was free


def test_a_write_that_cannot_get_the_lock_is_a_clear_transient_error(
    locked_db: tuple[Path, threading.Event],
) -> None:
    path, _ = locked_db
    with SQLiteStore(path, busy_timeout_s=0.2) as store:
        with pytest.raises(StoreBusyError) as caught:
            store.append("t", CustomEvent(type="ping"))
        assert "locked" in str(caught.value) and str(path) in str(caught.value)
        assert store.load("t").version == 1


def test_an_idempotency_key_reused_with_a_different_decision_is_refused(store: ThreadStore) -> None:
    from twelvefactor.errors import IdempotencyKeyReused
    from twelvefactor.events import HumanRequest, HumanResponse

    store.create(
        Thread.new(UserMessage(content="hi"), HumanRequest(call_id="c1", kind="approval", question="ok?"), id="t")
    )
    store.respond("t", HumanResponse(request_id="c1", approved=True, idempotency_key="k", responder="ana"))
    # The same decision again (another click, another person): a no-op.
    assert store.respond("t", HumanResponse(request_id="c1", approved=True, idempotency_key="k")).version == 3
    with pytest.raises(IdempotencyKeyReused) as caught:
        store.respond("t", HumanResponse(request_id="c1", approved=False, idempotency_key="k"))
    assert isinstance(caught.value, ConflictError)  # the API answers 409
    assert "'k'" in str(caught.value)
    with pytest.raises(IdempotencyKeyReused):
        store.append("t", CustomEvent(type="hook", idempotency_key="k"))
    assert store.load("t").version == 3


def test_closing_the_store_while_other_threads_read_waits_for_them(tmp_path: Path) -> None:
    from twelvefactor.errors import UserError

    for round_ in range(10):
        store = SQLiteStore(tmp_path / f"r{round_}.db")
        for i in range(200):  # listing by status reads every thread's tail: a long read to close under
            store.create(Thread.new(UserMessage(content=str(i)), id=f"t{i}"))
        outcomes: list[str] = []
        started = threading.Barrier(3)

        def read_until_closed(
            store: SQLiteStore = store, started: threading.Barrier = started, outcomes: list[str] = outcomes
        ) -> None:
            started.wait()
            while True:
                try:
                    store.list(status="running")
                except UserError:
                    outcomes.append("closed")
                    return

        readers = [threading.Thread(target=read_until_closed) for _ in range(2)]
        for reader in readers:
            reader.start()
        started.wait()
        time.sleep(0.01 * (round_ % 4))
        store.close()  # with reads in flight: must neither crash nor cut them off
        for reader in readers:
            reader.join(10)
        assert outcomes == ["closed", "closed"]
