"""The SQLite store's no-wait path: what the async face makes on the event loop, and what goes to a thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from twelvefactor import SQLiteStore, Thread, UserMessage
from twelvefactor.calls import EventLoopCalls
from twelvefactor.events import Event


def message(text: str) -> Event:
    return UserMessage(content=text)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "t.db", busy_timeout_s=2)
    store.create(Thread.new(message("hi"), id="t"))
    return store


def test_an_uncontended_write_is_made_at_once(store: SQLiteStore) -> None:
    done, thread = store.call_without_waiting(store.append, "t", message("more"))
    assert done and thread is not None and thread.version == 2
    assert store.load("t").version == 2


def test_another_process_holding_the_write_lock_means_nothing_is_written(store: SQLiteStore) -> None:
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process mid-write
    try:
        assert store.call_without_waiting(store.append, "t", message("more")) == (False, None)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.load("t").version == 1
    assert store.call_without_waiting(store.append, "t", message("more"))[0]  # and the lock is usable again
    assert store.load("t").version == 2
    store.close()


def test_another_thread_writing_means_nothing_is_written(store: SQLiteStore) -> None:
    with store._lock:  # another thread of this process holds the write connection
        result: list[tuple[bool, object]] = []
        worker = threading.Thread(
            target=lambda: result.append(store.call_without_waiting(store.append, "t", message("x")))
        )
        worker.start()
        worker.join(5)
    assert result == [(False, None)]
    assert store.load("t").version == 1


def test_after_its_first_write_a_call_is_never_left_half_done(store: SQLiteStore) -> None:
    other = sqlite3.connect(store.path, isolation_level=None, timeout=5, check_same_thread=False)

    def two_writes() -> int:
        store.append("t", message("first"))
        # Another process takes the lock now, and lets go soon: the second write waits for it.
        other.execute("BEGIN IMMEDIATE")
        threading.Timer(0.2, lambda: other.execute("ROLLBACK")).start()
        return store.append("t", message("second")).version

    assert store.call_without_waiting(two_writes) == (True, 3)
    other.close()


def test_the_async_face_writes_in_place_and_goes_to_a_thread_only_when_it_must_wait(store: SQLiteStore) -> None:
    where: list[str] = []

    def append(text: str) -> int:
        where.append(threading.current_thread().name)
        return store.append("t", message(text)).version

    async def main() -> list[int]:
        calls = EventLoopCalls()
        first = await calls.store(store, append, "free")
        other = sqlite3.connect(store.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.2, lambda: (other.execute("ROLLBACK"), other.close()))
        second = await calls.store(store, append, "after a wait")  # waits in a thread, not on the loop
        calls.close()
        return [first, second]

    assert asyncio.run(main()) == [2, 3]
    assert where[0] == "MainThread"
    assert where[-1].startswith("twelvefactor-store")
