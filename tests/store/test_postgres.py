"""What only PostgreSQL can show: several processes and connection pools on one database, migrations
raced by processes, the server restarting under a writer, and errors mapped onto the store's error tree.

The contract every backend honours runs on PostgreSQL too, through test_store's parametrised fixture.
Each test gets an emptied database (or a fresh one) on one server the session starts (tests/pgserver.py).
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgserver import PostgresServer
from twelvefactor.errors import (
    ConflictError,
    NotWaitingError,
    StoreBusyError,
    StoreCorruptionError,
    StoreNotWritable,
    UserError,
    is_transient,
)
from twelvefactor.events import CustomEvent, Event, HumanResponse, UserMessage
from twelvefactor.store import PostgresStore, open_store
from twelvefactor.store.postgres import MIGRATIONS
from twelvefactor.store.sqlite import dump_event
from twelvefactor.thread import Thread, reduce

from .test_store import events, every_event, waiting_thread

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    with PostgresStore(pg_url) as opened:
        yield opened


def raw(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """One statement on a connection of its own, as another program sharing the database would run it."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


# --- opening ---


def test_open_store_opens_postgresql_and_postgres_urls(pg_url: str) -> None:
    thread = Thread.new(UserMessage(content="hi"))
    with open_store(pg_url) as first:
        assert isinstance(first, PostgresStore)
        first.create(thread)
    with open_store(pg_url.replace("postgresql://", "postgres://", 1)) as second:
        assert isinstance(second, PostgresStore)
        assert second.load(thread.id) == thread


def test_a_server_that_is_not_there_is_a_transient_error_naming_it_without_the_password(
    pg_server: PostgresServer,
) -> None:
    from pgserver import _free_port

    url = f"postgresql://ana:s3cret@127.0.0.1:{_free_port()}/threads"
    with pytest.raises(StoreBusyError) as caught:
        PostgresStore(url, timeout_s=1)
    assert is_transient(caught.value)
    assert "127.0.0.1" in str(caught.value) and "/threads" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_wrong_database_name_is_a_clear_error_not_a_retry(pg_server: PostgresServer) -> None:
    with pytest.raises(UserError, match='database "no_such_db" does not exist') as caught:
        PostgresStore(pg_server.url("no_such_db"))
    assert not is_transient(caught.value)


def test_sqlite_users_never_import_psycopg() -> None:
    code = (
        "import sys, twelvefactor, twelvefactor.server;"
        " from twelvefactor.store import PostgresStore, open_store;"
        " open_store('sqlite:///:memory:').close();"
        " print(sorted(m for m in sys.modules if m.startswith('psycopg')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- migrations ---


def test_migrations_are_applied_once_each(pg_empty_url: str) -> None:
    for _ in range(3):
        with PostgresStore(pg_empty_url) as opened:
            applied = opened.applied_migrations()
            opened.create(Thread.new(UserMessage(content="hi")))
    assert [name for name, _ in applied] == [name for name, _ in MIGRATIONS]
    counts = raw(pg_empty_url, "SELECT name, count(*) FROM migrations GROUP BY name")
    assert sorted(counts) == sorted((name, 1) for name, _ in MIGRATIONS)
    with PostgresStore(pg_empty_url) as reopened:
        assert len(reopened.list()) == 3


def open_in_child(url: str, go: Any, results: Any) -> None:
    go.wait()
    try:
        with PostgresStore(url) as child:
            child.create(Thread.new(UserMessage(content="opened")))
        results.put("ok")
    except Exception as err:  # reported, so the parent's assertion shows it
        results.put(f"{type(err).__name__}: {err}")


@pytest.mark.slow
def test_processes_opening_a_fresh_database_at_once_apply_each_migration_once(pg_empty_url: str) -> None:
    go, results = SPAWN.Event(), SPAWN.Queue()
    children = [SPAWN.Process(target=open_in_child, args=(pg_empty_url, go, results)) for _ in range(3)]
    for child in children:
        child.start()
    time.sleep(0.5)  # most children are waiting to open; the advisory lock must cope either way
    go.set()
    assert [results.get(timeout=60) for _ in children] == ["ok", "ok", "ok"]
    for child in children:
        child.join(timeout=60)
    counts = raw(pg_empty_url, "SELECT name, count(*) FROM migrations GROUP BY name")
    assert sorted(counts) == sorted((name, 1) for name, _ in MIGRATIONS)
    with PostgresStore(pg_empty_url) as opened:
        assert len(opened.list()) == 3


# --- rows ---


def test_event_rows_are_sqlites_bytes_and_cannot_be_updated(store: PostgresStore, pg_url: str) -> None:
    thread = store.create(Thread.new(*every_event(), agent="deployer"))
    rows = raw(pg_url, "SELECT data FROM events WHERE thread_id = %s ORDER BY seq", (thread.id,))
    assert [data for (data,) in rows] == [dump_event(event) for event in thread.events]
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        raw(pg_url, "UPDATE events SET data = '{}' WHERE thread_id = %s", (thread.id,))
    assert store.bytes_for(thread.id) < 160 * thread.version
    stats = store.stats()
    assert (stats["threads"], stats["events"]) == (1, thread.version)
    assert stats["db_bytes"] > stats["data_bytes"] > 0


def test_deletes_go_through_and_event_rows_still_cannot_be_updated(store: PostgresStore, pg_url: str) -> None:
    gone = store.create(Thread.new(*every_event(), agent="deployer"))
    kept = store.create(Thread.new(UserMessage(content="hi"), agent="deployer"))
    assert store.delete(gone.id)
    assert raw(pg_url, "SELECT count(*) FROM events WHERE thread_id = %s", (gone.id,)) == [(0,)]
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        raw(pg_url, "UPDATE events SET data = '{}' WHERE thread_id = %s", (kept.id,))
    assert store.load(kept.id) == kept


def test_a_corrupt_or_missing_row_is_reported_with_the_thread_and_seq(store: PostgresStore, pg_url: str) -> None:
    store.create(Thread.new(UserMessage(content="hi"), id="t-bad"))
    raw(pg_url, "INSERT INTO events VALUES ('t-bad', 1, 'tool_call', '{\"type\": \"tool_call\"}', NULL)")
    raw(pg_url, "UPDATE threads SET version = 2 WHERE id = 't-bad'")
    with pytest.raises(StoreCorruptionError, match="'t-bad', event seq 1: data is not a valid event"):
        store.load("t-bad")
    with pytest.raises(StoreCorruptionError, match="'t-bad', event seq 1"):
        store.list()
    store.create(Thread.new(UserMessage(content="hi"), id="t-gap"))
    raw(pg_url, "UPDATE threads SET version = 3 WHERE id = 't-gap'")
    raw(
        pg_url,
        "INSERT INTO events VALUES ('t-gap', 2, 'user_message', %s, NULL)",
        (dump_event(UserMessage(content="x")),),
    )
    with pytest.raises(StoreCorruptionError, match="event seq 1: event row 1 is missing"):
        store.load("t-gap")


def test_a_value_postgresql_cannot_hold_is_a_clear_error_that_writes_nothing(store: PostgresStore) -> None:
    with pytest.raises(UserError, match="NUL"):
        store.create(Thread.new(UserMessage(content="hi"), id="nul\x00id"))
    assert store.list() == []


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=st.lists(events, max_size=12), cuts=st.lists(st.integers(0, 12), max_size=4))
def test_any_events_saved_in_any_chunks_load_back_equal(
    store: PostgresStore, batch: list[Event], cuts: list[int]
) -> None:
    # One database for every example: each example's thread (and agent, which list() filters on) is new.
    thread = Thread.new(*batch)
    thread = thread.model_copy(update={"agent": f"p-{thread.id}"})
    saved = 0
    for cut in [*sorted(c for c in cuts if c <= len(batch)), len(batch)]:
        if cut > saved or (cut == saved == 0):
            store.save(thread.at(cut), saved)
            saved = cut
    assert store.load(thread.id) == thread
    [summary] = store.list(agent=thread.agent)
    assert summary.status == thread.status
    assert [s.id for s in store.list(agent=thread.agent, status=thread.status)] == [thread.id]


# --- concurrency across pools and processes ---


def test_racing_writers_on_separate_pools_exactly_one_wins(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(4)]
    try:
        base = stores[0].create(Thread.new(UserMessage(content="hi")))
        for _ in range(10):
            barrier = threading.Barrier(4)
            results: list[Any] = [None] * 4

            def write(
                i: int, base: Thread = base, barrier: threading.Barrier = barrier, results: list[Any] = results
            ) -> None:
                barrier.wait()
                try:
                    results[i] = stores[i].save(reduce(base, UserMessage(content=f"w{i}")), base.version)
                except ConflictError as err:
                    results[i] = err

            workers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            winners = [r for r in results if isinstance(r, Thread)]
            assert len(winners) == 1, results
            assert all(
                isinstance(r, ConflictError) and r.actual_version == base.version + 1
                for r in results
                if r not in winners
            )
            base = winners[0]
        assert stores[3].load(base.id) == base
    finally:
        for opened in stores:
            opened.close()


def append_rounds_in_child(url: str, thread_id: str, name: str, rounds: int, barrier: Any, results: Any) -> None:
    """Each round, every child appends at the same expected version; the round's barrier lines them up."""
    with PostgresStore(url, max_size=1) as child:
        for round_ in range(rounds):
            barrier.wait()
            try:
                child.append(thread_id, UserMessage(content=f"{name}-{round_}"), expected_version=1 + round_)
                results.put((round_, name, "won", None))
            except ConflictError as err:
                results.put((round_, name, "conflict", err.actual_version))
            barrier.wait()


@pytest.mark.slow
def test_processes_appending_at_the_same_expected_version_exactly_one_wins(store: PostgresStore, pg_url: str) -> None:
    thread = store.create(Thread.new(UserMessage(content="go")))
    rounds, names = 15, ["p0", "p1", "p2"]
    barrier, results = SPAWN.Barrier(len(names)), SPAWN.Queue()
    children = [
        SPAWN.Process(target=append_rounds_in_child, args=(pg_url, thread.id, name, rounds, barrier, results))
        for name in names
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in range(rounds * len(names))]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    for round_ in range(rounds):
        this = [o for o in outcomes if o[0] == round_]
        assert sorted(o[2] for o in this) == ["conflict", "conflict", "won"], this
        assert all(o[3] == round_ + 2 for o in this if o[2] == "conflict")
    stored = store.load(thread.id)
    assert stored.version == 1 + rounds
    winners = {o[0]: o[1] for o in outcomes if o[2] == "won"}
    assert [e.content for e in stored.events[1:]] == [f"{winners[r]}-{r}" for r in range(rounds)]  # type: ignore[attr-defined]


def respond_and_trigger_in_child(url: str, thread_id: str, key: str, go: Any, results: Any) -> None:
    with PostgresStore(url, max_size=1) as child:
        go.wait()
        try:
            child.respond(thread_id, HumanResponse(request_id="c1", approved=True, idempotency_key=key))
            outcome = "applied"
        except NotWaitingError:
            outcome = "not waiting"
        child.append(thread_id, CustomEvent(type="hook", delivery="d1", idempotency_key="delivery-d1"))
        results.put(outcome)


@pytest.mark.slow
def test_idempotency_keys_hold_across_processes(store: PostgresStore, pg_url: str) -> None:
    thread = store.create(waiting_thread())
    go, results = SPAWN.Event(), SPAWN.Queue()
    keys = ["double-click", "double-click", "double-click", "other-click"]
    children = [
        SPAWN.Process(target=respond_and_trigger_in_child, args=(pg_url, thread.id, k, go, results)) for k in keys
    ]
    for child in children:
        child.start()
    time.sleep(0.5)  # most children are at the barrier; the store must cope either way
    go.set()
    outcomes = sorted(results.get(timeout=60) for _ in children)
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    # One response went in: either the double-click (all three of its clicks are "applied": a no-op
    # after the first) or the other click (then the double-clicks find the request answered).
    assert outcomes in (["applied", "applied", "applied", "not waiting"], ["applied"] + ["not waiting"] * 3)
    stored = store.load(thread.id)
    assert sum(isinstance(e, HumanResponse) for e in stored.events) == 1
    assert sum(isinstance(e, CustomEvent) for e in stored.events) == 1  # the redelivered trigger, once


def test_leases_hold_across_two_pools(pg_url: str) -> None:
    with PostgresStore(pg_url) as one, PostgresStore(pg_url) as two:
        assert one.claim("t1", "worker-a", ttl_s=30)
        assert not two.claim("t1", "worker-b", ttl_s=30)
        assert two.heartbeat("worker-b", ["t1", "t2"], ttl_s=30) == {"t2"}
        owner, expires = cast_lease(two.lease_of("t1"))
        assert owner == "worker-a" and expires > time.time() + 20
        two.release("t1", "worker-b")  # not the holder: no effect
        assert one.lease_of("t1") is not None
        one.release("t1", "worker-a")
        assert two.claim("t1", "worker-b", ttl_s=30)
        # A crashed holder's lease expires; the other pool sees it and takes it over.
        assert one.claim("t3", "crashed", ttl_s=-1)
        assert two.expired_leases() == ["t3"]
        assert two.claim("t3", "survivor", ttl_s=30)
        assert one.expired_leases() == []

        # Eight claimants on two pools at once: one lease.
        barrier, won = threading.Barrier(8), []

        def claim(i: int) -> None:
            barrier.wait()
            if (one, two)[i % 2].claim("contended", f"w{i}", ttl_s=30):
                won.append(i)

        workers = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert len(won) == 1


def cast_lease(lease: tuple[str, float] | None) -> tuple[str, float]:
    assert lease is not None
    return lease


# --- the server going away ---


def test_a_read_only_database_refuses_writes_as_not_writable(pg_server: PostgresServer, pg_empty_url: str) -> None:
    pg_url = pg_empty_url  # a database of its own: this test makes it read-only
    with PostgresStore(pg_url) as opened:
        opened.create(Thread.new(UserMessage(content="hi"), id="t"))
    name = pg_url.rsplit("/", 1)[1]
    from psycopg import sql

    pg_server.admin(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(sql.Identifier(name)))
    with PostgresStore(pg_url) as read_only:  # migrations only read when there is nothing to apply
        assert read_only.load("t").version == 1
        with pytest.raises(StoreNotWritable, match="refuses writes") as caught:
            read_only.append("t", UserMessage(content="more"))
        assert not is_transient(caught.value)
        with pytest.raises(StoreNotWritable):
            read_only.check_writable()
        assert read_only.load("t").version == 1


def tick(n: int) -> CustomEvent:
    return CustomEvent(type="tick", n=n, idempotency_key=f"tick-{n}")


@pytest.mark.slow
def test_the_server_restarting_under_a_writer_costs_transient_errors_and_loses_nothing(
    pg_server: PostgresServer, pg_url: str
) -> None:
    with PostgresStore(pg_url, min_size=2, timeout_s=1) as opened:
        opened.create(Thread.new(UserMessage(content="go"), id="t"))

        # A restart between uses: idle pooled connections died with the old server, and are replaced
        # before they are handed out. Nobody sees an error.
        opened.load("t")
        pg_server.pg_ctl("restart", "-m", "fast")
        assert opened.load("t").version == 1
        opened.append("t", tick(0))

        # A writer that keeps appending (each event keyed, so a retried append is never doubled)
        # while the server stops for longer than the store's timeout, then comes back.
        transient: list[StoreBusyError] = []
        count = 60

        def write() -> None:
            for n in range(1, count):
                while True:
                    try:
                        opened.append("t", tick(n))
                        break
                    except StoreBusyError as err:
                        assert is_transient(err)
                        transient.append(err)
                        time.sleep(0.05)
                time.sleep(0.005)

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.1)
        pg_server.pg_ctl("stop", "-m", "fast")
        time.sleep(1.5)
        pg_server.pg_ctl("start")
        writer.join(timeout=60)
        assert not writer.is_alive()

        assert transient, "the writer never saw the server gone"
        assert all("PostgreSQL at 127.0.0.1" in str(err) for err in transient)
        thread = opened.load("t")
        assert [e.n for e in thread.events[1:]] == list(range(count))  # type: ignore[attr-defined]
