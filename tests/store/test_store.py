"""Every ThreadStore backend through one parametrised fixture, then what only SQLite can show
(separate processes, a killed writer, corrupt rows, migrations)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twelvefactor.errors import ConflictError, NotWaitingError, ThreadNotFound, UserError
from twelvefactor.events import (
    EVENT_TYPES,
    CustomEvent,
    Done,
    Error,
    Event,
    HumanRequest,
    HumanResponse,
    ModelCall,
    ToolCall,
    ToolResult,
    UserMessage,
)
from twelvefactor.store import (
    MemoryStore,
    SQLiteStore,
    StoreCorruptionError,
    ThreadStore,
    ThreadSummary,
    open_store,
)
from twelvefactor.store.sqlite import MIGRATIONS, _TailFirst, dump_event
from twelvefactor.thread import Thread, fork, reduce


class Deployed(Event):
    """A user-defined event, with a non-None default that None overrides."""

    type: Literal["store_test_deployed"] = "store_test_deployed"
    env: str
    note: str | None = "none given"
    tags: list[str] = []


class Heartbeat(Event):
    """A user-defined event hidden from the context: it must not change the derived status."""

    type: Literal["store_test_heartbeat"] = "store_test_heartbeat"
    shown_in_context: ClassVar[bool] = False


class Shipped(Done):
    """A Done subclass with its own tag: derived status treats it as done (isinstance, like Thread)."""

    type: Literal["store_test_shipped"] = "store_test_shipped"  # type: ignore[assignment]


AT = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

# --- the fixture every backend goes through ---

BACKENDS = ["memory", "sqlite-file", "sqlite-memory", "postgres"]


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> ThreadStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite-file":
        return SQLiteStore(tmp_path / "threads.db")
    if kind == "postgres":
        from twelvefactor.store.postgres import PostgresStore

        # A real server (started once per session), a fresh database per test; skipped without the binaries.
        return PostgresStore(request.getfixturevalue("pg_url"))
    return SQLiteStore(":memory:")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThreadStore]:
    with make_store(request.param, tmp_path, request) as opened:
        yield opened


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "threads.db"


def every_event() -> list[Event]:
    return [
        UserMessage(content="deploy v1.2 to prod — ünïcode ✓", at=AT),
        ModelCall(model="m", raw='{"intent": "deploy"}', input_tokens=120, output_tokens=9, latency_ms=12.5),
        ToolCall(call_id="c1", intent="deploy", arguments={"tag": "v1.2", "dry": None, "n": [1, {"x": None}]}),
        ToolResult(call_id="c1", intent="deploy", result=None),
        ToolResult(call_id="c2", intent="list", result={"items": [1, 2.5, "three", None, True]}),
        Error(source="tool", message="boom", call_id="c2"),
        Error(source="model", message="timeout", fatal=False),
        HumanRequest(call_id="c3", kind="approval", question="ok?", intent="deploy", arguments={"tag": "v1"}),
        HumanResponse(request_id="c3", approved=False, text="not on friday", idempotency_key="k-1"),
        HumanRequest(call_id="c4", kind="input", question="which env?", escalation=True),
        HumanResponse(request_id="c4", text="staging", responder="ana"),
        CustomEvent(type="webhook", payload={"a": [1, None]}, nothing=None, at=AT),
        CustomEvent(type="empty_trigger"),
        Deployed(env="prod", note=None),
        Deployed(env="dev", tags=["a", "b"]),
        Heartbeat(),
        Done(message="deployed"),
    ]


def waiting_thread(
    agent: str = "deployer", call_id: str = "c1", kind: Literal["approval", "input"] = "approval"
) -> Thread:
    return Thread.new(
        UserMessage(content="deploy"),
        ToolCall(call_id=call_id, intent="deploy"),
        HumanRequest(call_id=call_id, kind=kind, question="ok?", intent="deploy"),
        agent=agent,
    )


def responses(thread: Thread) -> list[HumanResponse]:
    return [event for event in thread.events if isinstance(event, HumanResponse)]


# --- round trips ---


def test_every_event_type_round_trips_through_json_and_the_store(store: ThreadStore) -> None:
    thread = Thread.new(*every_event(), agent="deployer")
    assert {type(event) for event in thread.events} >= {
        UserMessage, ModelCall, ToolCall, ToolResult, Error, HumanRequest, HumanResponse, Done, CustomEvent, Deployed
    }  # fmt: skip
    assert Thread.model_validate_json(thread.model_dump_json()) == thread

    assert store.create(thread) == thread
    loaded = store.load(thread.id)

    assert loaded == thread
    assert [type(event) for event in loaded.events] == [type(event) for event in thread.events]
    assert loaded.events[11].model_extra == {"payload": {"a": [1, None]}, "nothing": None}


def test_an_empty_thread_round_trips(store: ThreadStore) -> None:
    thread = Thread(id="empty", agent=None)
    store.create(thread)
    assert store.load("empty") == thread
    assert store.list()[0].status == "running"


def test_saves_append_in_order_and_load_returns_the_latest(store: ThreadStore) -> None:
    thread = Thread.new(UserMessage(content="hi"), agent="a")
    assert store.save(thread, 0) == thread  # save at version 0 of an absent thread creates it
    for n in range(5):
        before = thread.version
        thread = reduce(reduce(thread, ToolCall(call_id=f"c{n}", intent="x")), ToolResult(call_id=f"c{n}", intent="x"))
        store.save(thread, before)
    assert store.load(thread.id) == thread
    assert thread.version == 11


def test_loading_an_unknown_id_raises_thread_not_found(store: ThreadStore) -> None:
    with pytest.raises(ThreadNotFound, match="'nope'"):
        store.load("nope")


def test_creating_an_existing_id_is_a_conflict(store: ThreadStore) -> None:
    thread = store.create(Thread.new(UserMessage(content="a"), UserMessage(content="b")))
    with pytest.raises(ConflictError) as caught:
        store.create(Thread.new(UserMessage(content="other"), id=thread.id))
    assert (caught.value.expected_version, caught.value.actual_version) == (0, 2)
    assert store.load(thread.id) == thread


# --- optimistic concurrency ---


def test_a_stale_save_is_a_conflict_and_writes_nothing(store: ThreadStore) -> None:
    base = store.create(Thread.new(UserMessage(content="hi")))
    mine = reduce(base, UserMessage(content="mine"))
    theirs = reduce(reduce(base, UserMessage(content="theirs")), UserMessage(content="theirs too"))
    store.save(theirs, base.version)

    with pytest.raises(ConflictError, match="expected version 1") as caught:
        store.save(mine, base.version)

    assert (caught.value.thread_id, caught.value.expected_version, caught.value.actual_version) == (base.id, 1, 3)
    assert store.load(base.id) == theirs


def test_saving_at_a_version_of_an_absent_thread_is_a_conflict(store: ThreadStore) -> None:
    thread = Thread.new(UserMessage(content="a"), UserMessage(content="b"))
    with pytest.raises(ConflictError, match="absent") as caught:
        store.save(thread, 1)
    assert caught.value.actual_version is None
    with pytest.raises(ThreadNotFound):
        store.load(thread.id)


def test_saving_nothing_new_still_checks_the_version(store: ThreadStore) -> None:
    thread = store.create(Thread.new(UserMessage(content="a"), UserMessage(content="b")))
    assert store.save(thread, 2) == thread
    with pytest.raises(ConflictError):
        store.save(thread.at(1), 1)
    empty = Thread(id="empty")
    assert store.save(empty, 0) == empty
    assert store.load("empty") == empty


@pytest.mark.parametrize("expected", [-1, 3])
def test_an_expected_version_outside_the_thread_is_misuse(store: ThreadStore, expected: int) -> None:
    thread = Thread.new(UserMessage(content="a"), UserMessage(content="b"))
    with pytest.raises(UserError, match="expected_version"):
        store.save(thread, expected)


def race(workers: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` on ``workers`` threads released together; each result or raised error, by index."""
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as err:
            results[index] = err

    pool = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for worker in pool:
        worker.start()
    for worker in pool:
        worker.join()
    return results


def save_racer(stores: Callable[[int], ThreadStore], base: Thread) -> Callable[[int], Thread]:
    """Writer ``i`` appends its own message to ``base`` and saves it at ``base``'s version."""
    return lambda i: stores(i).save(reduce(base, UserMessage(content=f"w{i}")), base.version)


def test_racing_writers_exactly_one_wins(store: ThreadStore) -> None:
    base = store.create(Thread.new(UserMessage(content="hi")))
    for _ in range(10):
        results = race(4, save_racer(lambda i: store, base))
        winners = [r for r in results if isinstance(r, Thread)]
        assert len(winners) == 1
        assert all(isinstance(r, ConflictError) for r in results if r not in winners)
        assert store.load(base.id) == winners[0]
        base = winners[0]
    assert base.version == 11


def test_racing_writers_on_separate_connections_exactly_one_wins(db_path: Path) -> None:
    stores = [SQLiteStore(db_path) for _ in range(4)]
    try:
        base = stores[0].create(Thread.new(UserMessage(content="hi")))
        for _ in range(10):
            results = race(4, save_racer(stores.__getitem__, base))
            winners = [r for r in results if isinstance(r, Thread)]
            assert len(winners) == 1, results
            assert all(isinstance(r, ConflictError) for r in results if r not in winners)
            base = winners[0]
        assert stores[3].load(base.id) == base
    finally:
        for opened in stores:
            opened.close()


# --- human responses ---


def test_respond_applies_a_response_and_returns_the_new_thread(store: ThreadStore) -> None:
    thread = store.create(waiting_thread())
    answered = store.respond(thread.id, HumanResponse(request_id="c1", approved=True, idempotency_key="click-1"))
    assert answered.status == "running"
    assert answered.version == thread.version + 1
    assert store.load(thread.id) == answered


def test_a_double_clicked_approve_is_applied_once(store: ThreadStore) -> None:
    thread = store.create(waiting_thread())
    click = HumanResponse(request_id="c1", approved=True, idempotency_key="click-1")
    first = store.respond(thread.id, click)
    second = store.respond(thread.id, click.model_copy(update={"at": datetime.now(UTC)}))
    assert second == first == store.load(thread.id)
    assert len(responses(first)) == 1


def test_a_repeated_key_stays_a_no_op_after_the_thread_moved_on(store: ThreadStore) -> None:
    thread = store.create(waiting_thread())
    click = HumanResponse(request_id="c1", approved=True, idempotency_key="click-1")
    answered = store.respond(thread.id, click)
    moved = store.append(thread.id, UserMessage(content="later"))
    assert store.respond(thread.id, click) == moved != answered


def test_concurrent_responses_with_one_key_are_applied_once(store: ThreadStore) -> None:
    thread = store.create(waiting_thread())
    click = HumanResponse(request_id="c1", approved=True, idempotency_key="click-1")
    results = race(6, lambda i: store.respond(thread.id, click))
    assert all(isinstance(r, Thread) for r in results), results
    assert len(responses(store.load(thread.id))) == 1


def test_concurrent_responses_with_different_keys_let_exactly_one_through(store: ThreadStore) -> None:
    thread = store.create(waiting_thread())
    results = race(
        6, lambda i: store.respond(thread.id, HumanResponse(request_id="c1", approved=True, idempotency_key=f"k{i}"))
    )
    assert sum(isinstance(r, Thread) for r in results) == 1
    assert sum(isinstance(r, NotWaitingError) for r in results) == 5
    assert len(responses(store.load(thread.id))) == 1


def test_responding_to_a_thread_that_is_not_waiting_changes_nothing(store: ThreadStore) -> None:
    thread = store.create(Thread.new(UserMessage(content="hi")))
    with pytest.raises(NotWaitingError, match="not waiting"):
        store.respond(thread.id, HumanResponse(request_id="c1", approved=True, idempotency_key="k"))
    assert store.load(thread.id) == thread
    # The failed attempt did not burn its key: once there is a request, the same key applies.
    store.append(thread.id, HumanRequest(call_id="c1", kind="approval", question="ok?"))
    assert store.respond(thread.id, HumanResponse(request_id="c1", approved=True, idempotency_key="k")).version == 3


def test_responding_to_the_wrong_request_changes_nothing(store: ThreadStore) -> None:
    thread = store.create(waiting_thread())
    with pytest.raises(NotWaitingError, match="'c9'"):
        store.respond(thread.id, HumanResponse(request_id="c9", approved=True))
    with pytest.raises(UserError, match="approved=True or False"):
        store.respond(thread.id, HumanResponse(request_id="c1", text="yes please"))
    assert store.load(thread.id) == thread


def test_responding_to_an_unknown_thread_raises_thread_not_found(store: ThreadStore) -> None:
    with pytest.raises(ThreadNotFound):
        store.respond("nope", HumanResponse(request_id="c1", approved=True, idempotency_key="k"))


def test_a_saved_event_reusing_an_applied_key_is_refused(store: ThreadStore) -> None:
    thread = store.create(waiting_thread())
    answered = store.respond(thread.id, HumanResponse(request_id="c1", approved=True, idempotency_key="k"))
    asked = reduce(answered, HumanRequest(call_id="c2", kind="input", question="why?"))
    reused = reduce(asked, HumanResponse(request_id="c2", text="because", idempotency_key="k"))
    with pytest.raises(UserError, match="'k' was already applied"):
        store.save(reused, answered.version)
    twice = reduce(
        reduce(answered, CustomEvent(type="hook", idempotency_key="d")), CustomEvent(type="hook", idempotency_key="d")
    )
    with pytest.raises(UserError, match="'d' was already applied"):
        store.save(twice, answered.version)
    assert store.load(thread.id) == answered


# --- external events (triggers) ---


def test_append_adds_a_trigger_at_the_tail(store: ThreadStore) -> None:
    thread = store.create(Thread.new(UserMessage(content="hi")))
    hook = CustomEvent(type="webhook", payload={"ref": "main"})
    appended = store.append(thread.id, hook)
    assert appended == reduce(thread, hook) == store.load(thread.id)


def test_append_at_a_stale_version_is_a_conflict(store: ThreadStore) -> None:
    thread = store.create(Thread.new(UserMessage(content="hi")))
    store.append(thread.id, UserMessage(content="first"), expected_version=1)
    with pytest.raises(ConflictError) as caught:
        store.append(thread.id, UserMessage(content="second"), expected_version=1)
    assert caught.value.actual_version == 2
    assert store.load(thread.id).version == 2


def test_a_redelivered_trigger_with_a_key_is_appended_once(store: ThreadStore) -> None:
    thread = store.create(Thread.new(UserMessage(content="hi")))
    hook = CustomEvent(type="webhook", delivery="abc", idempotency_key="delivery-abc")
    first = store.append(thread.id, hook)
    assert store.append(thread.id, hook) == first
    assert store.append(thread.id, hook, expected_version=1) == first
    assert store.load(thread.id).version == 2


def test_append_to_an_unknown_thread_raises_thread_not_found(store: ThreadStore) -> None:
    with pytest.raises(ThreadNotFound):
        store.append("nope", UserMessage(content="hi"))


# --- listing ---


def status_zoo() -> dict[str, Thread]:
    """Threads with interesting tails; Thread.status (the one definition) says what each one is."""
    hi = UserMessage(content="hi")
    ask = HumanRequest(call_id="r", kind="input", question="?")
    return {
        "a new thread": Thread.new(hi, agent="a"),
        "after a non-fatal error": Thread.new(hi, Error(source="tool", message="x"), agent="b"),
        "asking": Thread.new(hi, ask, agent="a"),
        "asking, then triggers arrive": Thread.new(hi, ask, CustomEvent(type="ping"), Heartbeat(), agent="b"),
        "asking, then many triggers": Thread.new(hi, ask, *[CustomEvent(type="ping", n=n) for n in range(70)]),
        "answered": Thread.new(hi, ask, HumanResponse(request_id="r", text="ok"), agent="a"),
        "done": Thread.new(hi, Done(message="ok"), agent="a"),
        "done, then hidden events": Thread.new(hi, Done(message="ok"), Heartbeat(), Heartbeat()),
        "done, then a model call": Thread.new(hi, Done(message="ok"), ModelCall(model="m", raw="x")),
        "done by a subclass": Thread.new(hi, Shipped(message="shipped"), agent="b"),
        "failed": Thread.new(hi, Error(source="model", message="down", fatal=True), agent="a"),
        "failed, then hidden events": Thread.new(hi, Error(source="agent", message="x", fatal=True), Heartbeat()),
        "done, then a new message": Thread.new(hi, Done(message="ok"), UserMessage(content="again"), agent="b"),
        "empty": Thread(id="empty-zoo", agent="a"),
    }


def test_list_derives_each_threads_status_like_thread_status(store: ThreadStore) -> None:
    zoo = status_zoo()
    assert {thread.status for thread in zoo.values()} == {"running", "waiting", "done", "failed"}
    for thread in zoo.values():
        store.create(thread)
    by_id = {summary.id: summary for summary in store.list()}
    for name, thread in zoo.items():
        assert by_id[thread.id].status == thread.status, name


def test_list_is_newest_first_and_pages(store: ThreadStore) -> None:
    ids = [store.create(Thread.new(UserMessage(content=str(n)), agent="a")).id for n in range(7)]
    listed = store.list()
    assert [s.id for s in listed] == ids[::-1]
    assert [s.id for s in store.list(limit=3, offset=2)] == ids[::-1][2:5]
    assert store.list(limit=0) == []
    assert store.list(offset=10) == []
    first = listed[-1]
    assert isinstance(first, ThreadSummary)
    assert (first.agent, first.version, first.parent_id) == ("a", 1, None)
    assert first.created_at <= first.updated_at


def test_list_filters_by_agent_and_status(store: ThreadStore) -> None:
    zoo = status_zoo()
    for thread in zoo.values():
        store.create(thread)
    newest_first = list(zoo.values())[::-1]
    for agent in ("a", "b", None):
        for status in ("running", "waiting", "done", "failed", None):
            expected = [
                t.id
                for t in newest_first
                if (agent is None or t.agent == agent) and (status is None or t.status == status)
            ]
            assert [s.id for s in store.list(agent=agent, status=status)] == expected, (agent, status)
    running = [t.id for t in newest_first if t.status == "running"]
    assert [s.id for s in store.list(status="running", limit=2, offset=1)] == running[1:3]
    assert store.list(agent="nobody") == []


def test_list_sees_status_change_after_respond(store: ThreadStore) -> None:
    thread = store.create(waiting_thread())
    assert [s.id for s in store.list(status="waiting")] == [thread.id]
    store.respond(thread.id, HumanResponse(request_id="c1", approved=True))
    assert store.list(status="waiting") == []
    [summary] = store.list(status="running")
    assert summary.version == 4


def test_list_rejects_a_page_past_what_sqlite_can_hold(store: ThreadStore) -> None:
    with pytest.raises(UserError, match="between 0 and 2"):
        store.list(offset=2**70)


def test_list_rejects_a_negative_page(store: ThreadStore) -> None:
    with pytest.raises(UserError, match="limit"):
        store.list(limit=-1)


# --- forks, lifecycle ---


def test_a_fork_is_stored_as_a_new_thread_linked_to_its_parent(store: ThreadStore) -> None:
    parent = store.create(Thread.new(*every_event()[:5], agent="deployer"))
    child = store.create(fork(parent, 3))
    loaded = store.load(child.id)
    assert loaded == child
    assert (loaded.parent_id, loaded.forked_at, loaded.version) == (parent.id, 3, 3)
    assert loaded.events == parent.events[:3]
    assert store.load(parent.id) == parent
    summary = next(s for s in store.list() if s.id == child.id)
    assert (summary.parent_id, summary.forked_at) == (parent.id, 3)


def test_stores_satisfy_the_protocol_and_close_as_context_managers(store: ThreadStore) -> None:
    assert isinstance(store, ThreadStore)
    store.close()
    with pytest.raises(UserError, match="closed"):
        store.load("x")
    store.close()  # closing twice is harmless


# --- property: any events, saved in any chunks, come back equal with the same status ---

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
field_names = st.from_regex(r"[a-z][a-z_]{0,6}", fullmatch=True).filter(lambda n: n not in {"type", "at"})
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
call_ids = st.sampled_from(["c1", "c2"])
events = st.one_of(
    st.builds(UserMessage, content=st.text(max_size=20), at=instants),
    st.builds(ModelCall, model=st.just("m"), raw=st.text(max_size=10), input_tokens=st.none() | st.integers(0, 9)),
    st.builds(ToolCall, call_id=call_ids, intent=st.just("x"), arguments=st.dictionaries(field_names, json_values)),
    st.builds(ToolResult, call_id=call_ids, intent=st.just("x"), result=json_values),
    st.builds(Error, source=st.just("tool"), message=st.text(max_size=5), fatal=st.booleans()),
    st.builds(HumanRequest, call_id=call_ids, kind=st.just("input"), question=st.just("?")),
    st.builds(
        HumanResponse, request_id=call_ids, text=st.none() | st.text(max_size=5), approved=st.none() | st.booleans()
    ),
    st.builds(Done, message=st.text(max_size=5)),
    st.builds(Shipped, message=st.just("s")),
    st.builds(Deployed, env=st.text(max_size=3), note=st.none() | st.text(max_size=3)),
    st.builds(Heartbeat),
    st.builds(
        lambda tag, extra: CustomEvent(type=tag, **extra),
        st.from_regex(r"x_[a-z]{1,5}", fullmatch=True).filter(lambda t: t not in EVENT_TYPES),
        st.dictionaries(field_names, json_values, max_size=3),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(events, max_size=12), cuts=st.lists(st.integers(0, 12), max_size=4))
def test_any_events_saved_in_any_chunks_load_back_equal(batch: list[Event], cuts: list[int]) -> None:
    thread = Thread.new(*batch, agent="p")
    assert Thread.model_validate_json(thread.model_dump_json()) == thread
    for opened in (MemoryStore(), SQLiteStore(":memory:")):
        with opened:
            saved = 0
            for cut in [*sorted(c for c in cuts if c <= len(batch)), len(batch)]:
                if cut > saved or (cut == saved == 0):
                    opened.save(thread.at(cut), saved)
                    saved = cut
            assert opened.load(thread.id) == thread
            [summary] = opened.list()
            assert summary.status == thread.status
            assert [s.id for s in opened.list(status=thread.status)] == [thread.id]


# --- open_store ---


def test_open_store_accepts_the_documented_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    thread = Thread.new(UserMessage(content="hi"))
    for url in ("memory://", "sqlite:///:memory:", "sqlite:///rel.db", f"sqlite:///{tmp_path}/abs.db", "bare.db"):
        with open_store(url) as opened:
            opened.create(thread)
            assert opened.load(thread.id) == thread
    with open_store("sqlite:///rel.db") as reopened:
        assert reopened.load(thread.id) == thread
    assert {p.name for p in tmp_path.glob("*.db")} == {"rel.db", "abs.db", "bare.db"}


@pytest.mark.parametrize("url", ["mysql://localhost/db", "redis://x", "sqlite://", "sqlite:///", "", "mem://"])
def test_open_store_names_a_url_it_cannot_open(url: str) -> None:
    with pytest.raises(UserError, match="sqlite:///:memory:") as caught:
        open_store(url)
    assert repr(url) in str(caught.value)


# --- SQLite only ---


def test_sqlite_runs_in_wal_mode_with_normal_sync(db_path: Path) -> None:
    with SQLiteStore(db_path) as opened:
        conn = opened._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_migrations_are_applied_once_each(db_path: Path) -> None:
    for _ in range(3):
        with SQLiteStore(db_path) as opened:
            applied = opened.applied_migrations()
            opened.create(Thread.new(UserMessage(content="hi")))
    assert [name for name, _ in applied] == [name for name, _ in MIGRATIONS]
    with sqlite3.connect(db_path) as raw:
        rows = raw.execute("SELECT name, count(*) FROM migrations GROUP BY name").fetchall()
    raw.close()
    assert sorted(rows) == sorted((name, 1) for name, _ in MIGRATIONS)
    with SQLiteStore(db_path) as reopened:
        assert len(reopened.list()) == 3


def test_event_rows_cannot_be_updated(db_path: Path) -> None:
    with SQLiteStore(db_path) as opened:
        thread = opened.create(Thread.new(UserMessage(content="hi")))
    raw = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE events SET data = '{}' WHERE thread_id = ?", (thread.id,))
    finally:
        raw.close()


def corrupt(db_path: Path, thread_id: str, tag: str, data: str) -> int:
    """Append a raw event row holding ``data`` (and bump the version), as a bad writer or disk would."""
    raw = sqlite3.connect(db_path, isolation_level=None)
    try:
        (version,) = raw.execute("SELECT version FROM threads WHERE id = ?", (thread_id,)).fetchone()
        raw.execute("INSERT INTO events VALUES (?, ?, ?, ?, NULL)", (thread_id, version, tag, data))
        raw.execute("UPDATE threads SET version = version + 1 WHERE id = ?", (thread_id,))
        return int(version)
    finally:
        raw.close()


@pytest.mark.parametrize(
    ("tag", "data", "reason"),
    [
        ("tool_call", '{"type": "tool_call", "call_id": ', "Invalid JSON"),
        ("tool_call", '{"type": "tool_call", "intent": "x"}', "call_id: Field required"),
        ("tool_call", '{"type": "done", "message": "x"}', "type: Input should be 'tool_call'"),
        ("tool_call", "[1, 2]", "first: Input should be an object"),
        ("x_unknown", '{"type": "x_unknown", ', "JSONDecodeError"),
        ("x_unknown", "[1, 2]", "TypeError"),
    ],
)
def test_a_corrupt_row_names_the_thread_and_seq(db_path: Path, tag: str, data: str, reason: str) -> None:
    with SQLiteStore(db_path) as opened:
        thread = opened.create(Thread.new(UserMessage(content="hi"), UserMessage(content="there"), id="t-bad"))
        seq = corrupt(db_path, thread.id, tag, data)
        with pytest.raises(
            StoreCorruptionError, match=r"thread 't-bad', event seq 2: data is not a valid event"
        ) as caught:
            opened.load(thread.id)
        assert (caught.value.thread_id, caught.value.seq) == ("t-bad", seq)
        assert reason in str(caught.value)
        # Listing reads the tail to derive the status, and says what it found rather than guess.
        with pytest.raises(StoreCorruptionError, match="'t-bad', event seq 2"):
            opened.list()


def test_a_missing_event_row_is_reported_as_corruption(db_path: Path) -> None:
    with SQLiteStore(db_path) as opened:
        thread = opened.create(Thread.new(UserMessage(content="hi"), id="t-gap"))
        raw = sqlite3.connect(db_path, isolation_level=None)
        raw.execute("UPDATE threads SET version = 3 WHERE id = 't-gap'")
        raw.execute("INSERT INTO events VALUES ('t-gap', 2, 'user_message', ?, NULL)", (dump_event(thread.events[0]),))
        raw.close()
        with pytest.raises(StoreCorruptionError, match="event seq 1: event row 1 is missing"):
            opened.load("t-gap")


def test_the_lazy_tail_reads_like_the_events_tuple() -> None:
    with SQLiteStore(":memory:") as opened:
        thread = opened.create(Thread.new(*every_event(), *every_event()[:8]))
        opened.create(Thread(id="empty"))
        with opened._read() as conn:
            tail = _TailFirst(conn, thread.id, thread.version)
            assert len(tail) == len(thread.events)
            assert tuple(reversed(tail)) == thread.events[::-1]
            assert tuple(tail) == thread.events
            assert (tail[0], tail[-1], tail[5]) == (thread.events[0], thread.events[-1], thread.events[5])
            assert tail[3:7] == thread.events[3:7]
            with pytest.raises(IndexError):
                tail[len(thread.events)]
            assert tuple(_TailFirst(conn, "empty", 0)) == tuple(reversed(_TailFirst(conn, "empty", 0))) == ()


def test_event_rows_are_compact_and_lossless() -> None:
    assert dump_event(ToolCall(call_id="c", intent="x", at=AT)) == (
        '{"type":"tool_call","at":"2025-01-02T03:04:05.678901Z","call_id":"c","intent":"x"}'
    )
    custom = CustomEvent(type="x", gone=None, at=AT)
    assert dump_event(custom) == '{"type":"x","at":"2025-01-02T03:04:05.678901Z","gone":null}'
    overridden = Deployed(env="e", note=None, at=AT)
    assert '"note":null' in dump_event(overridden)
    with SQLiteStore(":memory:") as opened:
        thread = opened.create(Thread.new(*every_event()))
        assert opened.bytes_for(thread.id) < 160 * thread.version
        assert opened.stats()["events"] == thread.version


def test_writers_on_two_connections_see_each_others_versions(db_path: Path) -> None:
    with SQLiteStore(db_path) as one, SQLiteStore(db_path) as two:
        base = one.create(Thread.new(UserMessage(content="hi")))
        two.save(reduce(base, UserMessage(content="two")), 1)
        with pytest.raises(ConflictError) as caught:
            one.save(reduce(base, UserMessage(content="one")), 1)
        assert caught.value.actual_version == 2
        assert one.load(base.id) == two.load(base.id)


# --- SQLite across processes (spawned children run the functions below) ---

SPAWN = multiprocessing.get_context("spawn")


def respond_in_child(path: str, thread_id: str, key: str, go: Any, results: Any) -> None:
    with SQLiteStore(path) as child:
        go.wait()
        try:
            child.respond(thread_id, HumanResponse(request_id="c1", approved=True, idempotency_key=key))
            results.put("applied")
        except NotWaitingError:
            results.put("not waiting")


def run_children(db_path: Path, thread_id: str, keys: list[str]) -> list[str]:
    go, results = SPAWN.Event(), SPAWN.Queue()
    children = [SPAWN.Process(target=respond_in_child, args=(str(db_path), thread_id, k, go, results)) for k in keys]
    for child in children:
        child.start()
    time.sleep(0.2)  # most children are at the barrier; the store must cope either way
    go.set()
    outcomes = sorted(results.get(timeout=60) for _ in children)
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    return outcomes


@pytest.mark.slow
def test_two_processes_responding_with_one_key_apply_it_once(db_path: Path) -> None:
    with SQLiteStore(db_path) as opened:
        thread = opened.create(waiting_thread())
    assert run_children(db_path, thread.id, ["double-click", "double-click"]) == ["applied", "applied"]
    with SQLiteStore(db_path) as reopened:
        assert len(responses(reopened.load(thread.id))) == 1


@pytest.mark.slow
def test_processes_responding_with_different_keys_let_one_through(db_path: Path) -> None:
    with SQLiteStore(db_path) as opened:
        thread = opened.create(waiting_thread())
    assert run_children(db_path, thread.id, ["a", "b", "c"]) == ["applied", "not waiting", "not waiting"]
    with SQLiteStore(db_path) as reopened:
        assert len(responses(reopened.load(thread.id))) == 1


def batch(n: int) -> tuple[Event, ...]:
    return (
        ToolCall(call_id=f"c{n}", intent="step", arguments={"n": n}),
        ToolResult(call_id=f"c{n}", intent="step", result=n),
        UserMessage(content=f"after {n}"),
    )


def save_batches_in_child(path: str, thread_id: str, kill_after: int | None, report: Any) -> None:
    """Save 3-event batches one by one; SIGKILL itself after ``kill_after`` saves, or let a timer do it."""
    with SQLiteStore(path) as child:
        thread = child.load(thread_id)
        n = 0
        while True:
            if n == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            before = thread.version
            for event in batch(n):
                thread = reduce(thread, event)
            child.save(thread, before)
            n += 1
            report.send(n)
            if n == 1 and kill_after is None:
                # Armed after the first save, so that a loaded machine cannot make it fire before any.
                threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGKILL)).start()


def assert_whole_batches(thread: Thread, count: int) -> None:
    assert thread.version == 1 + 3 * count
    for n in range(count):
        assert [e.type for e in thread.events[1 + 3 * n : 4 + 3 * n]] == ["tool_call", "tool_result", "user_message"]
        assert thread.events[1 + 3 * n].arguments == {"n": n}  # type: ignore[attr-defined]


@pytest.mark.slow
def test_a_killed_writer_leaves_exactly_its_committed_saves(db_path: Path) -> None:
    with SQLiteStore(db_path) as opened:
        thread = opened.create(Thread.new(UserMessage(content="go"), agent="crash"))
    receive, send = SPAWN.Pipe(duplex=False)
    child = SPAWN.Process(target=save_batches_in_child, args=(str(db_path), thread.id, 7, send))
    child.start()
    send.close()
    assert [receive.recv() for _ in range(7)] == [1, 2, 3, 4, 5, 6, 7]
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL
    with SQLiteStore(db_path) as reopened:
        survived = reopened.load(thread.id)
        assert_whole_batches(survived, 7)
        more = survived
        for event in batch(7):
            more = reduce(more, event)
        reopened.save(more, survived.version)
        assert_whole_batches(reopened.load(thread.id), 8)


@pytest.mark.slow
def test_a_writer_killed_at_a_random_moment_never_leaves_a_partial_save(db_path: Path) -> None:
    with SQLiteStore(db_path) as opened:
        thread = opened.create(Thread.new(UserMessage(content="go"), agent="crash"))
    receive, send = SPAWN.Pipe(duplex=False)
    child = SPAWN.Process(target=save_batches_in_child, args=(str(db_path), thread.id, None, send))
    child.start()
    send.close()  # the child's death closes the last write end, which ends the loop below
    reported = 0
    while True:
        try:
            reported = receive.recv()
        except EOFError:
            break
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL
    with SQLiteStore(db_path) as reopened:
        survived = reopened.load(thread.id)
    stored = (survived.version - 1) // 3
    assert reported > 0
    # A save can commit and the process die before it reports, never the other way round.
    print(f"killed after {reported} reported saves, {stored} stored")
    assert reported <= stored <= reported + 1
    assert_whole_batches(survived, stored)


# --- leases: one thread advanced in one place at a time ---


def test_a_lease_is_exclusive_until_released_or_expired(store: ThreadStore) -> None:
    assert store.claim("t1", "worker-a", ttl_s=30)
    assert not store.claim("t1", "worker-b", ttl_s=30)
    assert store.claim("t1", "worker-a", ttl_s=30)  # renewing your own lease
    assert store.claim("t2", "worker-b", ttl_s=30)  # other threads are independent
    store.release("t1", "worker-b")  # not the holder: no effect
    assert not store.claim("t1", "worker-b", ttl_s=30)
    store.release("t1", "worker-a")
    assert store.claim("t1", "worker-b", ttl_s=30)


def test_an_expired_lease_of_a_crashed_worker_can_be_taken(store: ThreadStore) -> None:
    assert store.claim("t1", "crashed", ttl_s=-1)
    assert store.claim("t1", "survivor", ttl_s=30)


def _claim_in_child(path: str, owner: str, barrier: Any, results: Any) -> None:
    store = SQLiteStore(path)
    barrier.wait()
    results.put((owner, store.claim("t-lease", owner, ttl_s=30)))
    store.close()


def test_two_processes_claiming_one_thread_get_exactly_one_lease(db_path: Path) -> None:
    SQLiteStore(db_path).close()
    barrier = SPAWN.Barrier(3)
    results = SPAWN.Queue()
    children = [SPAWN.Process(target=_claim_in_child, args=(str(db_path), f"p{i}", barrier, results)) for i in range(3)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=30) for _ in children]
    for child in children:
        child.join(timeout=30)
    assert sorted(won for _, won in outcomes) == [False, False, True]


# --- bounded storage: delete and prune ---


def keyed_thread(thread_id: str = "kept-key", agent: str = "deployer") -> Thread:
    """A finished thread that applied an idempotency key."""
    return Thread.new(
        UserMessage(content="deploy"),
        CustomEvent(type="pager_alert", idempotency_key="alert-1"),
        Done(message="ok"),
        agent=agent,
        id=thread_id,
    )


def test_delete_removes_the_thread_its_events_and_its_lease(store: ThreadStore) -> None:
    thread = store.create(keyed_thread())
    other = store.create(waiting_thread())
    assert store.claim(thread.id, "worker-1", 30)
    assert store.delete(thread.id) is True
    with pytest.raises(ThreadNotFound):
        store.load(thread.id)
    assert store.lease_of(thread.id) is None
    assert [row.id for row in store.list()] == [other.id]
    assert store.load(other.id) == other
    assert store.delete(thread.id) is False  # absent: False, nothing changes
    assert store.delete("never-there") is False


def test_a_deleted_threads_id_and_idempotency_keys_are_free_again(store: ThreadStore) -> None:
    store.create(keyed_thread())
    store.delete("kept-key")
    again = Thread.new(UserMessage(content="again"), agent="deployer", id="kept-key")
    store.create(again)
    # The old thread's key neither makes this a redelivery nor refuses it as a reuse.
    alert = CustomEvent(type="pager_alert", idempotency_key="alert-1", severity="high")
    grown = store.append("kept-key", alert)
    assert grown.version == 2 and grown.events[-1] == alert
    assert store.load("kept-key").events == (again.events[0], alert)


def test_deleting_a_parent_leaves_its_fork_with_a_dangling_parent_id(store: ThreadStore) -> None:
    parent = store.create(keyed_thread("parent"))
    child = store.create(fork(parent, at=1))
    assert store.delete(parent.id)
    assert store.load(child.id).parent_id == "parent"
    assert [row.parent_id for row in store.list()] == ["parent"]


def test_prune_deletes_finished_threads_older_than_the_cutoff_only(store: ThreadStore) -> None:
    zoo = status_zoo()
    stored = {name: store.create(thread) for name, thread in zoo.items()}
    finished = {name for name, thread in stored.items() if thread.status in ("done", "failed")}
    unfinished = set(stored) - finished
    assert finished and {"asking", "a new thread", "answered"} <= unfinished
    assert store.prune(older_than=datetime(2000, 1, 1, tzinfo=UTC)) == 0  # nothing that old
    assert store.claim(stored["asking"].id, "worker-1", 30)

    assert store.prune(older_than=datetime.now(UTC) + timedelta(hours=1)) == len(finished)
    left = {row.id for row in store.list(limit=100)}
    assert left == {stored[name].id for name in unfinished}  # never a running or waiting thread
    assert {row.status for row in store.list(limit=100)} == {"running", "waiting"}
    assert store.lease_of(stored["asking"].id) is not None
    assert store.prune(older_than=datetime.now(UTC) + timedelta(hours=1)) == 0


def test_prune_filters_by_agent_and_status_and_stops_at_the_limit(store: ThreadStore) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    done = [store.create(keyed_thread(f"done-{n}", agent="a" if n % 2 else "b")) for n in range(5)]
    failed = store.create(Thread.new(UserMessage(content="x"), Error(source="model", message="down", fatal=True)))
    assert store.prune(older_than=later, statuses=("failed",)) == 1
    with pytest.raises(ThreadNotFound):
        store.load(failed.id)
    assert store.prune(older_than=later, agent="a") == 2  # done-1, done-3
    assert sorted(row.id for row in store.list()) == ["done-0", "done-2", "done-4"]
    assert store.prune(older_than=later, limit=2) == 2  # the least recently updated first
    assert [row.id for row in store.list()] == ["done-4"]
    assert store.prune(older_than=later, limit=0) == 0
    assert len(done) == 5


def test_prune_counts_from_the_last_update_not_the_creation(store: ThreadStore) -> None:
    thread = store.create(keyed_thread())
    time.sleep(0.01)
    middle = datetime.now(UTC)
    time.sleep(0.01)
    store.append(thread.id, Heartbeat())  # hidden from the context: the thread stays done, updated now
    assert store.load(thread.id).status == "done"
    assert store.prune(older_than=middle) == 0
    assert store.prune(older_than=datetime.now(UTC) + timedelta(seconds=1)) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"older_than": datetime(2030, 1, 1)}, "timezone-aware"),
        ({"older_than": AT, "statuses": ("running",)}, "finished threads only"),
        ({"older_than": AT, "statuses": ("done", "waiting")}, "finished threads only"),
        ({"older_than": AT, "limit": -1}, "limit"),
    ],
)
def test_prune_refuses_misuse(store: ThreadStore, kwargs: dict[str, Any], message: str) -> None:
    store.create(keyed_thread())
    with pytest.raises(UserError, match=message):
        store.prune(**kwargs)
    assert store.load("kept-key").version == 3


def test_after_deletes_event_rows_still_cannot_be_updated(db_path: Path) -> None:
    with SQLiteStore(db_path) as opened:
        opened.create(keyed_thread("gone"))
        kept = opened.create(keyed_thread("kept"))
        assert opened.delete("gone")
        assert opened.prune(older_than=AT) == 0
    raw = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE events SET data = '{}' WHERE thread_id = ?", (kept.id,))
    finally:
        raw.close()
