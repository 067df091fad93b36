"""Thread store speed: µs per save (1 and 3 events, committed), per load of a 30-event thread, per list
page, and stored bytes per event and per run. A plain script, not a timed test:

    PYTHONPATH=src python bench/store_speed.py [--saves N] [--no-postgres]

PostgreSQL: on the server TWELVEFACTOR_PG_URL names (its store tables are created there; use a scratch
database), else on a throwaway server started like the tests' one (tests/pgserver.py: initdb + pg_ctl on
127.0.0.1, but with fsync on), skipped when the binaries are not installed. Over loopback, so each
statement's round trip (tens of µs) is in the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from twelvefactor.events import Done, Event, HumanRequest, ModelCall, ToolCall, ToolResult, UserMessage
from twelvefactor.store import MemoryStore, SQLiteStore, ThreadStore
from twelvefactor.thread import Thread, reduce


def step_events(n: int) -> tuple[Event, Event, Event]:
    """One agent step as the loop records it: the model call, the tool call it chose, the result."""
    return (
        ModelCall(
            model="qwen2.5-0.5b", raw=f'{{"intent": "fetch", "id": {n}}}', input_tokens=812, output_tokens=14,
            latency_ms=231.4,
        ),
        ToolCall(call_id=f"call_{n}", intent="fetch", arguments={"id": n}),
        ToolResult(call_id=f"call_{n}", intent="fetch", result={"status": "ok", "rows": n % 7}),
    )  # fmt: skip


def per_call_us(fn: Callable[[], object], repeat: int) -> float:
    """Median over 5 rounds of the mean µs per call."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        rounds.append((time.perf_counter() - start) / repeat * 1e6)
    return statistics.median(rounds)


def bench_saves(store: ThreadStore, events_per_save: int, saves: int) -> float:
    """µs per ``store.save`` of ``events_per_save`` new events (each save commits), round-robin over 50
    threads. The threads to save are built before timing: only the store is measured."""
    plans: list[tuple[Thread, int]] = []
    for thread in [store.create(Thread.new(UserMessage(content="go"))) for _ in range(50)]:
        for n in range(saves // 50):
            before = thread.version
            for event in step_events(n)[:events_per_save]:
                thread = reduce(thread, event)
            plans.append((thread, before))
    plans.sort(key=lambda plan: plan[1])  # every thread's next version, then the one after, ...
    rounds = []
    for chunk in range(5):
        part = plans[chunk * len(plans) // 5 : (chunk + 1) * len(plans) // 5]
        start = time.perf_counter()
        for thread, before in part:
            store.save(thread, before)
        rounds.append((time.perf_counter() - start) / len(part) * 1e6)
    return statistics.median(rounds)


def bench_load(store: ThreadStore, loads: int) -> tuple[float, str]:
    thread = Thread.new(UserMessage(content="deploy the thing"), agent="bench")
    for n in range(10):
        for event in step_events(n):
            thread = reduce(thread, event)
    thread = Thread.new(*thread.events[:29], HumanRequest(call_id="h", kind="approval", question="ok?"))
    store.create(thread)
    assert store.load(thread.id) == thread and thread.version == 30
    return per_call_us(lambda: store.load(thread.id), loads // 5), thread.id


def bench_list(store: ThreadStore, threads: int) -> tuple[float, float]:
    for n in range(threads):
        thread = Thread.new(UserMessage(content=f"job {n}"), *step_events(n), agent=f"agent{n % 3}")
        if n % 4 == 0:
            thread = reduce(thread, Done(message="ok"))
        store.create(thread)
    page = per_call_us(lambda: store.list(limit=100), 20)
    filtered = per_call_us(lambda: store.list(agent="agent1", status="done", limit=100), 20)
    return page, filtered


@contextlib.contextmanager
def postgres_url() -> Iterator[str | None]:
    """TWELVEFACTOR_PG_URL, or a throwaway server's fresh database; None without either."""
    given = os.environ.get("TWELVEFACTOR_PG_URL")
    if given:
        yield given
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from pgserver import PostgresServer, find_binaries

    binaries = find_binaries()
    if binaries is None:
        yield None
        return
    # Durable like a real server (fsync, full page writes), unlike the tests' throwaway settings.
    durable = {"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on"}
    server = PostgresServer(binaries, settings=durable).start()
    try:
        yield server.url(server.fresh_database())
    finally:
        server.stop()


def with_options(url: str, **options: str) -> str:
    """The URL with libpq ``options`` (session settings) added."""
    value = "%20".join(f"-c%20{name}%3D{setting}" for name, setting in options.items())
    return f"{url}{'&' if '?' in url else '?'}options={value}"


@contextlib.contextmanager
def scratch_schema(url: str, name: str, **options: str) -> Iterator[str]:
    """A schema of the bench's own (dropped after), so a given database keeps nothing and loses nothing."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield with_options(url, search_path=name, **options)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def report(name: str, store: ThreadStore, saves: int) -> None:
    save1 = bench_saves(store, 1, saves)
    save3 = bench_saves(store, 3, saves)
    load, thread_id = bench_load(store, 2000)
    page, filtered = bench_list(store, 5000)
    print(f"{name}:")
    print(f"  save, 1 event   {save1:8.1f} µs")
    print(f"  save, 3 events  {save3:8.1f} µs")
    print(f"  load, 30 events {load:8.1f} µs")
    print(f"  list 100 of ~5k threads {page:8.0f} µs; filtered by agent+status {filtered:8.0f} µs")
    sized: Any = store
    if hasattr(sized, "stats"):
        stats = sized.stats()
        run = sized.bytes_for(thread_id)
        print(f"  bytes per run (the 30-event thread): {run} in rows, {run / 30:.0f} per event;")
        print(
            f"    {stats['data_bytes'] / stats['events']:.0f} of event JSON on average over"
            f" {stats['events']} events, {stats['db_bytes'] / stats['events']:.0f} per event as stored"
            " (pages incl. indexes and free space)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--saves", type=int, default=5000)
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL store")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        backends: list[tuple[str, Callable[[], ThreadStore]]] = [
            ("sqlite file (WAL, synchronous=NORMAL)", lambda: SQLiteStore(Path(tmp) / "bench.db")),
            ("sqlite :memory:", lambda: SQLiteStore(":memory:")),
            ("memory", MemoryStore),
        ]
        for name, opener in backends:
            with opener() as store:
                report(name, store, args.saves)
    if args.no_postgres:
        return
    with postgres_url() as url:
        if url is None:
            print("postgres: skipped (no TWELVEFACTOR_PG_URL, and no initdb/pg_ctl installed)")
            return
        from twelvefactor.store import PostgresStore

        with scratch_schema(url, f"tf_bench_{os.getpid()}") as scratch, PostgresStore(scratch) as store:
            report("postgres (synchronous_commit=on: each commit waits for its WAL flush)", store, args.saves)
        # SQLite's NORMAL promise: a commit survives the process, not a power loss. In PostgreSQL terms,
        # commits that do not wait for the WAL flush (a crash may lose the last few, never corrupts).
        relaxed = scratch_schema(url, f"tf_bench_{os.getpid()}_async", synchronous_commit="off")
        with relaxed as scratch, PostgresStore(scratch) as store:
            report("postgres (synchronous_commit=off, as SQLite's NORMAL)", store, args.saves)


if __name__ == "__main__":
    main()
