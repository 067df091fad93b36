"""SQLiteStore: the embedded default ThreadStore (stdlib sqlite3, one file, zero setup).

Layout: ``threads`` holds one row per thread (identity, lineage, version); ``events`` holds one row
per event, keyed by ``(thread_id, seq)`` where ``seq`` is the event's 0-based index in the thread, with
the event's JSON in ``data``. Event rows are only ever inserted. Status is not stored: ``list`` derives
it from the event rows (see :meth:`SQLiteStore.list`).

Every write is one ``BEGIN IMMEDIATE`` transaction, which takes SQLite's single write lock up front,
so concurrent writers in other threads or processes queue (up to the busy timeout) instead of failing
half-way, and the version check and the append see the same snapshot.
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar, cast, overload

from pydantic import ValidationError

from twelvefactor.errors import ConflictError, StoreBusyError, StoreCorruptionError, ThreadNotFound, UserError
from twelvefactor.events import EVENT_TYPES, Event, HumanResponse, event_from_json
from twelvefactor.store.base import (
    FINISHED,
    ThreadSummary,
    as_events,
    check_page,
    check_prune,
    check_repeat,
    check_save,
    duplicate_key_error,
    idempotency_key,
    rebased,
    unapplied,
    utcnow,
)
from twelvefactor.thread import Status, Thread, reduce
from twelvefactor.thread import respond as apply_response

T = TypeVar("T")

BUSY_TIMEOUT_S = 5.0

# --- migrations: a named, ordered list; each is applied once per database, recorded in `migrations` ---

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def _migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@_migration
def m001_threads_and_events(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE threads (
            id TEXT PRIMARY KEY,
            agent TEXT,
            parent_id TEXT,
            forked_at INTEGER,
            version INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    # Both listing orders (all threads, one agent's) are index walks, so a page of the newest threads
    # never sorts the whole table.
    conn.execute("CREATE INDEX threads_created ON threads (created_at)")
    conn.execute("CREATE INDEX threads_agent_created ON threads (agent, created_at)")
    conn.execute("CREATE INDEX threads_parent ON threads (parent_id) WHERE parent_id IS NOT NULL")
    # WITHOUT ROWID clusters a thread's events by (thread_id, seq): loading a thread is one range scan,
    # and the key is not stored twice (table + primary-key index).
    conn.execute(
        """
        CREATE TABLE events (
            thread_id TEXT NOT NULL REFERENCES threads (id),
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            data TEXT NOT NULL,
            idempotency_key TEXT,
            PRIMARY KEY (thread_id, seq)
        ) WITHOUT ROWID
        """
    )
    conn.execute(
        "CREATE UNIQUE INDEX events_idempotency ON events (thread_id, idempotency_key)"
        " WHERE idempotency_key IS NOT NULL"
    )
    # The log is append-only; the database refuses edits, not just this code.
    conn.execute(
        "CREATE TRIGGER events_append_only BEFORE UPDATE ON events"
        " BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
    )


@_migration
def m002_leases(conn: sqlite3.Connection) -> None:
    # Who may advance a thread right now. expires_at is wall-clock (time.time()) so that processes agree.
    conn.execute("CREATE TABLE leases (thread_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL)")


@_migration
def m003_lease_expiry(conn: sqlite3.Connection) -> None:
    # Live processes look for expired leases (a holder that died) every second or so: an index walk.
    conn.execute("CREATE INDEX leases_expiry ON leases (expires_at)")


@_migration
def m004_threads_updated(conn: sqlite3.Connection) -> None:
    # prune() walks the threads least recently updated first.
    conn.execute("CREATE INDEX threads_updated ON threads (updated_at)")


@contextmanager
def write_transaction(
    conn: sqlite3.Connection, *, name: str = "the database", wait: bool = True
) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error.

    A lock another writer held past the busy timeout is StoreBusyError (transient, nothing written);
    with ``wait=False`` (on a connection whose busy timeout is 0) it is :class:`WouldWait`, nothing written.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as err:
        if "locked" in str(err) or "busy" in str(err):
            if not wait:
                raise WouldWait from err
            raise StoreBusyError(
                f"{name} is locked by another writer past the busy timeout; nothing was written: retry later"
            ) from err
        raise
    try:
        yield conn
    except BaseException:
        # SQLite may already have rolled back by itself (e.g. disk full); a second ROLLBACK would raise
        # and hide the original error.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class WouldWait(BaseException):  # noqa: N818 - a signal, not an error: no ``except Exception`` may swallow it
    """A store call made without waiting (``call_without_waiting``) would have had to wait: nothing was written."""


# --- event rows ---

_TYPE_DEFAULTS: dict[type[Event], Any] = {}
_UNSET = object()


def dump_event(event: Event) -> str:
    """The event's compact JSON: fields equal to their default are left out, ``type`` always kept.

    ``exclude_none`` would be smaller still but is lossy (a ``None`` extra field of a CustomEvent, or a
    ``None`` overriding a non-``None`` default, would come back different); ``exclude_defaults`` is
    exact because loading fills the same defaults back in.
    """
    body = event.model_dump_json(exclude_defaults=True)
    cls = type(event)
    default = _TYPE_DEFAULTS.get(cls, _UNSET)
    if default is _UNSET:
        field = cls.model_fields.get("type")
        default = _TYPE_DEFAULTS[cls] = field.default if field is not None else None
    if event.type != default:
        return body
    # `type` equalled its default so it was dropped; put it back first (the row must name its class).
    tag = json.dumps(event.type)
    return '{"type":' + tag + ("}" if body == "{}" else "," + body[1:])


def _event_rows(thread_id: str, start: int, events: Sequence[Event]) -> list[tuple[Any, ...]]:
    rows = []
    seen: set[str] = set()
    for seq, event in enumerate(events, start):
        key = idempotency_key(event)
        if key is not None:
            if key in seen:
                raise duplicate_key_error(thread_id, key)
            seen.add(key)
        rows.append((thread_id, seq, event.type, dump_event(event), key))
    return rows


def _load_event(thread_id: str, seq: int, tag: str, data: Any) -> Event:
    cls = EVENT_TYPES.get(tag)
    try:
        # The row's type column picks the class, so pydantic-core parses the JSON itself: about 2.5x
        # faster than event_from_json's json.loads + dict validation, and JSON-mode validation also
        # accepts what JSON-mode serialisation wrote for strict user models. A wrong tag cannot slip
        # through: the class's literal `type` rejects any other data. Unknown tags (CustomEvent) take
        # the general path.
        return cls.model_validate_json(data) if cls is not None else event_from_json(data)
    except (ValueError, TypeError) as err:  # JSONDecodeError and ValidationError are ValueErrors
        if isinstance(err, ValidationError):
            first = err.errors()[0]
            loc = ".".join(str(part) for part in first["loc"])
            reason = f"{err.error_count()} validation error(s), first: {loc + ': ' if loc else ''}{first['msg']}"
        else:
            reason = f"{type(err).__name__}: {err}"
        raise StoreCorruptionError(thread_id, seq, f"data is not a valid event ({reason})") from err


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


# --- derived status for listing ---


class _Rows(Protocol):
    def fetchall(self) -> builtins.list[Any]: ...


class _Executes(Protocol):
    """What the lazy tail needs of a connection: sqlite3's and psycopg's both fit."""

    def execute(self, sql: str, params: tuple[str, int, int], /) -> _Rows: ...


class _TailFirst(Sequence[Event]):
    """A stored thread's events, read from the end on demand.

    ``list`` hands this to ``Thread.status`` (in place of a loaded tuple), so the status is computed by
    the same code as everywhere else and never re-implemented here; ``reversed()``, which that scan
    uses, reads and parses rows only as far back as the scan goes (usually one or two rows), in small
    batches. Only valid inside the read transaction that ``list`` holds. PostgresStore uses it too, with
    its own ``sql`` (the same query in psycopg's placeholders).
    """

    _FIRST_BATCH = 4
    _NEXT_BATCH = 64

    def __init__(
        self,
        conn: _Executes,
        thread_id: str,
        length: int,
        sql: str | None = None,
        last: Sequence[tuple[int, str, Any]] | None = None,
    ) -> None:
        self._conn = conn
        self._thread_id = thread_id
        self._length = length
        self._sql = _TAIL_SQL if sql is None else sql
        # The last _FIRST_BATCH rows, newest first, when the listing query brought them along.
        self._last = last

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | Sequence[Event]:
        if isinstance(index, slice):
            return tuple(self)[index]
        position = index + self._length if index < 0 else index
        if not 0 <= position < self._length:
            raise IndexError(index)
        return next(self._rows(position + 1, 1))

    def __iter__(self) -> Iterator[Event]:
        if not self._length:
            return iter(())
        return iter(reversed(tuple(self._rows(self._length, self._length))))

    def __reversed__(self) -> Iterator[Event]:
        end, batch = self._length, self._FIRST_BATCH
        while end > 0:
            for event in self._rows(end, batch):
                end -= 1
                yield event
            batch = self._NEXT_BATCH

    def _rows(self, end: int, count: int) -> Iterator[Event]:
        """Events ``end - 1``, ``end - 2``, ... (at most ``count``), checking no row is missing."""
        if self._last is not None and end == self._length and count == self._FIRST_BATCH:
            rows: Sequence[tuple[int, str, Any]] = self._last
        else:
            rows = self._conn.execute(self._sql, (self._thread_id, end, count)).fetchall()
        if not rows:
            raise StoreCorruptionError(self._thread_id, end - 1, f"event row {end - 1} is missing")
        for back, (seq, tag, data) in enumerate(rows, start=1):
            if seq != end - back:
                raise StoreCorruptionError(self._thread_id, end - back, f"event row {end - back} is missing")
            yield _load_event(self._thread_id, seq, tag, data)


# --- the store ---

_LOAD_SQL = (
    "SELECT t.agent, t.parent_id, t.forked_at, t.version, e.seq, e.type, e.data"
    " FROM threads t LEFT JOIN events e ON e.thread_id = t.id WHERE t.id = ? ORDER BY e.seq"
)
_INSERT_EVENT_SQL = "INSERT INTO events (thread_id, seq, type, data, idempotency_key) VALUES (?, ?, ?, ?, ?)"
_INSERT_THREAD_SQL = (
    "INSERT INTO threads (id, agent, parent_id, forked_at, version, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_ADVANCE_SQL = "UPDATE threads SET version = ?, updated_at = ? WHERE id = ? AND version = ?"
_VERSION_SQL = "SELECT version FROM threads WHERE id = ?"
_TAIL_SQL = "SELECT seq, type, data FROM events WHERE thread_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?"
_LIST_SQL = (
    "SELECT id, agent, parent_id, forked_at, version, created_at, updated_at FROM threads{where}"
    " ORDER BY created_at DESC, rowid DESC{page}"
)
_KEY_SQL = "SELECT seq, type, data FROM events WHERE thread_id = ? AND idempotency_key = ?"
# Deleting a thread: its events first (they reference the row), then its lease and its row. The
# append-only trigger refuses UPDATE of an event row, never DELETE: retention removes whole threads.
_DELETE_SQL = (
    "DELETE FROM events WHERE thread_id = ?",
    "DELETE FROM leases WHERE thread_id = ?",
    "DELETE FROM threads WHERE id = ?",
)
_STALE_SQL = "SELECT id, version FROM threads WHERE updated_at < ?{agent} ORDER BY updated_at, rowid"
# Take the lease where it is free, ours, or expired; leave a live one of another owner alone.
_LEASE_SQL = (
    "INSERT INTO leases (thread_id, owner, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT (thread_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
    " WHERE leases.owner = excluded.owner OR leases.expires_at <= ?"
)


class SQLiteStore:
    """ThreadStore on one SQLite file (or ``":memory:"``), safe across threads and processes.

    Writes go through one connection behind a lock (SQLite has one writer at a time anyway); each
    thread that reads gets a connection of its own, so in WAL mode a read never waits, neither for
    another process's write lock nor for a write of this store that waits for it. Other processes
    coordinate through SQLite's own locking. A write that cannot get the lock within
    ``busy_timeout_s`` raises StoreBusyError (transient: nothing was written, retry later).
    """

    def __init__(
        self, path: str | os.PathLike[str] = "twelvefactor.db", *, busy_timeout_s: float = BUSY_TIMEOUT_S
    ) -> None:
        self.path = os.fspath(path)
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()  # the write connections
        self._nowait: sqlite3.Connection | None = None
        self._closed = False
        self._local = threading.local()
        self._readers: builtins.list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._readers_idle = threading.Condition(self._readers_lock)
        self._reading = 0  # reads in flight, on any thread
        # A private in-memory database exists only on its one connection: reads share it.
        self._shared_reads = self.path == ":memory:" or self.path.startswith("file::memory:")
        self._conn = self._connect()
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a commit is durable once it returns as far as a killed or crashed
            # *process* goes (the WAL is written before COMMIT returns). Only an OS crash or power loss
            # can lose the last commits (never corrupt the file); that is the promise we make. FULL would
            # add an fsync per commit, which is most of a save's cost.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: autocommit, so the only transactions are the explicit BEGIN ones.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        return conn

    # --- protocol ---

    def create(self, thread: Thread) -> Thread:
        """Store a new thread with all its events; ConflictError(id, 0, actual) if the id exists."""
        rows = _event_rows(thread.id, 0, thread.events)
        with self._write() as conn:
            self._insert_thread(conn, thread, rows)
        return thread

    def save(self, thread: Thread, expected_version: int) -> Thread:
        """Append ``thread.events[expected_version:]`` iff the stored version is ``expected_version``."""
        check_save(thread, expected_version)
        if thread.version == expected_version:
            return self._save_nothing(thread, expected_version)
        rows = _event_rows(thread.id, expected_version, thread.events[expected_version:])
        now = _iso(utcnow())
        with self._write() as conn:
            advanced = conn.execute(_ADVANCE_SQL, (thread.version, now, thread.id, expected_version))
            if advanced.rowcount == 1:
                self._insert_events(conn, thread.id, expected_version, rows)
                return thread
            actual = self._version(conn, thread.id)
            if actual is None and expected_version == 0:
                self._insert_thread(conn, thread, rows)
                return thread
            raise ConflictError(thread.id, expected_version, actual)

    def load(self, thread_id: str) -> Thread:
        """The stored thread; ThreadNotFound if there is none, StoreCorruptionError for a bad row."""
        with self._read() as conn:
            return self._load(conn, thread_id)

    def list(
        self,
        *,
        agent: str | None = None,
        status: Status | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[ThreadSummary]:
        """Thread summaries, newest first, filtered by agent and derived status.

        The status of each thread looked at is ``Thread.status`` itself, run over the thread's events read
        lazily from the tail (see ``_TailFirst``): exact, and typically one small indexed query per thread
        whatever its length. Without a status filter only the page's threads are looked at; with one,
        threads are classified newest first until the page is full (a few ms per thousand threads).
        All reads share one snapshot, so a concurrent writer cannot make a row disagree with its events.
        """
        check_page(limit, offset)
        params: builtins.list[Any] = [] if agent is None else [agent]
        if status is None:
            params += [limit, offset]
        sql = _LIST_SQL.format(
            where=" WHERE agent = ?" if agent is not None else "",
            page=" LIMIT ? OFFSET ?" if status is None else "",
        )
        summaries: builtins.list[ThreadSummary] = []
        skip = 0 if status is None else offset
        with self._read() as conn:
            cursor = conn.execute(sql, params)
            try:
                for row in cursor:
                    if len(summaries) >= limit:
                        break
                    # Duck-typed on purpose: status only iterates the events, and the tail reads lazily.
                    tail = cast("tuple[Event, ...]", _TailFirst(conn, row[0], row[4]))
                    derived = Thread.model_construct(id=row[0], events=tail, version=row[4]).status
                    if status is not None and derived != status:
                        continue
                    if skip:
                        skip -= 1
                        continue
                    summaries.append(_summary(row, derived))
            finally:
                cursor.close()
        return summaries

    def respond(self, thread_id: str, response: HumanResponse) -> Thread:
        """Apply a human response atomically; an already-applied ``idempotency_key`` is a no-op."""
        key = idempotency_key(response)
        with self._write() as conn:
            if key is not None:
                applied = self._applied(conn, thread_id, key)
                if applied is not None:
                    check_repeat(thread_id, key, applied, response)
                    return self._load(conn, thread_id)
            thread = self._load(conn, thread_id)
            answered = apply_response(thread, response)
            self._advance(conn, thread, (response,))
            return answered

    def append(
        self,
        thread_id: str,
        events: Event | Sequence[Event],
        expected_version: int | None = None,
        *,
        rebase: bool = False,
    ) -> Thread:
        """Append events at the tail (or at ``expected_version``, re-based if asked); repeated keys skipped."""
        new = as_events(events)
        with self._write() as conn:
            fresh = unapplied(thread_id, new, lambda key: self._applied(conn, thread_id, key))
            thread = self._load(conn, thread_id)
            if new and not fresh:
                return thread  # a redelivery: a no-op whatever version the sender last saw
            kept = rebased(thread, fresh, expected_version, rebase)
            if kept:
                self._advance(conn, thread, kept)
                for event in kept:
                    thread = reduce(thread, event)
            return thread

    def delete(self, thread_id: str) -> bool:
        """Remove the thread's row, events (with their idempotency keys) and lease in one transaction."""
        with self._write() as conn:
            if self._version(conn, thread_id) is None:
                return False
            for sql in _DELETE_SQL:
                conn.execute(sql, (thread_id,))
            return True

    def prune(
        self,
        *,
        older_than: datetime,
        agent: str | None = None,
        statuses: Iterable[Status] = FINISHED,
        limit: int = 1000,
    ) -> int:
        """Delete up to ``limit`` finished threads last updated before ``older_than``, in one transaction.

        Candidates are walked least recently updated first; each one's status is ``Thread.status`` over
        its events read from the tail (as ``list`` does), under the write lock, so no writer can move a
        thread between the check and the delete.
        """
        wanted = check_prune(older_than, statuses, limit)
        params: builtins.list[Any] = [_iso(older_than.astimezone(UTC))] + ([] if agent is None else [agent])
        sql = _STALE_SQL.format(agent="" if agent is None else " AND agent = ?")
        victims: builtins.list[tuple[str]] = []
        with self._write() as conn:
            cursor = conn.execute(sql, params)
            try:
                for thread_id, version in cursor:
                    if len(victims) >= limit:
                        break
                    tail = cast("tuple[Event, ...]", _TailFirst(conn, thread_id, version))
                    if Thread.model_construct(id=thread_id, events=tail, version=version).status in wanted:
                        victims.append((thread_id,))
            finally:
                cursor.close()
            for statement in _DELETE_SQL:
                conn.executemany(statement, victims)
        return len(victims)

    def claim(self, thread_id: str, owner: str, ttl_s: float) -> bool:
        """Take or renew the thread's lease; False while another owner's lease has not expired."""
        return thread_id in self.heartbeat(owner, (thread_id,), ttl_s)

    def release(self, thread_id: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM leases WHERE thread_id = ? AND owner = ?", (thread_id, owner))

    def heartbeat(self, owner: str, thread_ids: Iterable[str], ttl_s: float) -> set[str]:
        """Renew or take ``owner``'s leases on ``thread_ids`` in one transaction; the ids it now holds."""
        ids = builtins.list(thread_ids)
        if not ids:
            return set()
        now = time.time()
        with self._write() as conn:
            conn.executemany(_LEASE_SQL, [(thread_id, owner, now + ttl_s, now) for thread_id in ids])
            return {
                thread_id
                for thread_id in ids
                if conn.execute("SELECT owner FROM leases WHERE thread_id = ?", (thread_id,)).fetchone()[0] == owner
            }

    def expired_leases(self, limit: int = 100) -> builtins.list[str]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT thread_id FROM leases WHERE expires_at <= ? ORDER BY expires_at LIMIT ?", (time.time(), limit)
            ).fetchall()
        return [row[0] for row in rows]

    def lease_of(self, thread_id: str) -> tuple[str, float] | None:
        with self._read() as conn:
            row = conn.execute("SELECT owner, expires_at FROM leases WHERE thread_id = ?", (thread_id,)).fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

    def close(self) -> None:
        """Close every connection, after the reads in flight on other threads have ended.

        Closing a connection another thread is reading on would crash the interpreter (sqlite3 frees
        what the read is using), so a read in flight is waited for, up to the busy timeout.
        """
        with self._lock, self._readers_lock:
            if self._closed:
                return
            self._closed = True  # new reads now fail with a clear error; running ones finish
            self._readers_idle.wait_for(lambda: self._reading == 0, timeout=self.busy_timeout_s + 5)
            self._conn.close()
            if self._nowait is not None:
                self._nowait.close()
            for reader in self._readers:
                reader.close()
            self._readers.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- introspection (benchmarks, ops) ---

    def bytes_for(self, thread_id: str) -> int:
        """Bytes of the values in the thread's rows (thread row + event rows), before SQLite's page and
        b-tree overhead (a few bytes per row)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT COALESCE(SUM(length(CAST(thread_id AS BLOB)) + length(CAST(type AS BLOB))"
                " + length(CAST(data AS BLOB)) + COALESCE(length(CAST(idempotency_key AS BLOB)), 0)"
                " + 8), 0) FROM events WHERE thread_id = ?",
                (thread_id,),
            ).fetchone()
            head = conn.execute(
                "SELECT length(CAST(id AS BLOB)) + COALESCE(length(CAST(agent AS BLOB)), 0)"
                " + COALESCE(length(CAST(parent_id AS BLOB)), 0) + length(created_at) + length(updated_at)"
                " + 16 FROM threads WHERE id = ?",
                (thread_id,),
            ).fetchone()
        if head is None:
            raise ThreadNotFound(thread_id)
        return int(row[0]) + int(head[0])

    def stats(self) -> dict[str, int]:
        """Counts and sizes: threads, events, data_bytes (event JSON), db_bytes (main file pages)."""
        with self._read() as conn:
            threads = conn.execute("SELECT count(*) FROM threads").fetchone()[0]
            events, data = conn.execute(
                "SELECT count(*), COALESCE(SUM(length(CAST(data AS BLOB))), 0) FROM events"
            ).fetchone()
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        return {
            "threads": int(threads),
            "events": int(events),
            "data_bytes": int(data),
            "db_bytes": int(pages) * int(page_size),
        }

    def applied_migrations(self) -> builtins.list[tuple[str, datetime]]:
        """(name, applied_at) for each migration recorded in this database, in the order applied."""
        with self._read() as conn:
            rows = conn.execute("SELECT name, applied_at FROM migrations ORDER BY rowid").fetchall()
        return [(name, datetime.fromisoformat(at)) for name, at in rows]

    # --- internals ---

    def _nowait_conn(self) -> sqlite3.Connection:
        """A second write connection (used under the same lock) whose busy timeout is 0: another process's
        lock fails its BEGIN at once instead of waiting."""
        self._open_conn()  # closed: a clear error
        conn = self._nowait
        if conn is None:
            conn = self._nowait = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA synchronous = NORMAL")  # per connection, like the main one's
        return conn

    def _open_conn(self) -> sqlite3.Connection:
        if self._closed:
            raise UserError(f"the SQLiteStore on {self.path!r} is closed; open a new store")
        return self._conn

    def call_without_waiting(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[bool, T | None]:
        """``fn(*args, **kwargs)`` (this store's methods, or code calling them) made here and now if it need not
        wait: ``(True, result)``; ``(False, None)`` with nothing written if its first write would wait, for this
        store's write connection (busy on another thread) or another process's write lock.

        The async face calls the store this way on the event loop, and goes to a thread only when a wait is
        due: an uncontended write costs no thread handoff. After a first write, ``fn`` goes on (waiting if
        need be), so it is never left half done; before it, ``fn`` may only have read (it is made again).
        """
        local = self._local
        if getattr(local, "nowait", False):  # nested: the outer call decides
            return True, fn(*args, **kwargs)
        local.nowait, local.wrote = True, False
        try:
            return True, fn(*args, **kwargs)
        except WouldWait:
            return False, None
        finally:
            local.nowait = False

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        local = self._local
        if getattr(local, "nowait", False) and not local.wrote:
            if not self._lock.acquire(blocking=False):
                raise WouldWait
            try:
                # A private in-memory database has one connection and no other process: the lock was all.
                conn, wait = (self._open_conn(), True) if self._shared_reads else (self._nowait_conn(), False)
                with write_transaction(conn, name=f"the database {self.path!r}", wait=wait) as tx:
                    yield tx
                local.wrote = True
            finally:
                self._lock.release()
            return
        with self._lock, write_transaction(self._open_conn(), name=f"the database {self.path!r}") as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if self._shared_reads:
            if getattr(self._local, "nowait", False) and not self._local.wrote:
                if not self._lock.acquire(blocking=False):
                    raise WouldWait
                try:
                    yield from self._snapshot(self._open_conn())
                finally:
                    self._lock.release()
                return
            with self._lock:
                yield from self._snapshot(self._open_conn())
            return
        with self._readers_lock:
            self._open_conn()  # closed: a clear error, never a closed connection
            self._reading += 1
        try:
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._reader()
            yield from self._snapshot(conn)
        finally:
            with self._readers_lock:
                self._reading -= 1
                self._readers_idle.notify_all()

    @staticmethod
    def _snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        # A deferred transaction that only reads holds one WAL snapshot and never blocks writers.
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _reader(self) -> sqlite3.Connection:
        conn = self._connect()
        with self._readers_lock:
            self._readers.append(conn)
        self._local.conn = conn
        return conn

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        applied = {name for (name,) in conn.execute("SELECT name FROM migrations")}
        for name, migrate in MIGRATIONS:
            if name in applied:
                continue
            with self._write() as tx:
                # Another process may have applied it since we looked; the write lock makes this exact.
                if tx.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone() is None:
                    migrate(tx)
                    tx.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, _iso(utcnow())))

    def _save_nothing(self, thread: Thread, expected_version: int) -> Thread:
        with self._read() as conn:
            actual = self._version(conn, thread.id)
        if actual is None and expected_version == 0:
            return self.create(thread)
        if actual != expected_version:
            raise ConflictError(thread.id, expected_version, actual)
        return thread

    @staticmethod
    def _version(conn: sqlite3.Connection, thread_id: str) -> int | None:
        row = conn.execute(_VERSION_SQL, (thread_id,)).fetchone()
        return None if row is None else int(row[0])

    def _insert_thread(self, conn: sqlite3.Connection, thread: Thread, rows: builtins.list[tuple[Any, ...]]) -> None:
        now = _iso(utcnow())
        try:
            conn.execute(
                _INSERT_THREAD_SQL,
                (thread.id, thread.agent, thread.parent_id, thread.forked_at, thread.version, now, now),
            )
        except sqlite3.IntegrityError:
            raise ConflictError(thread.id, 0, self._version(conn, thread.id)) from None
        self._insert_events(conn, thread.id, 0, rows)

    @staticmethod
    def _insert_events(
        conn: sqlite3.Connection, thread_id: str, start: int, rows: builtins.list[tuple[Any, ...]]
    ) -> None:
        try:
            conn.executemany(_INSERT_EVENT_SQL, rows)
        except sqlite3.IntegrityError as err:
            for row in rows:
                key = row[4]
                if key is not None and conn.execute(_KEY_SQL, (thread_id, key)).fetchone() is not None:
                    raise duplicate_key_error(thread_id, key) from None
            raise StoreCorruptionError(
                thread_id, start, f"event rows already exist past the stored version ({err})"
            ) from err

    @staticmethod
    def _applied(conn: sqlite3.Connection, thread_id: str, key: str) -> Event | None:
        row = conn.execute(_KEY_SQL, (thread_id, key)).fetchone()
        return None if row is None else _load_event(thread_id, row[0], row[1], row[2])

    def _advance(self, conn: sqlite3.Connection, thread: Thread, events: Iterable[Event]) -> None:
        new = tuple(events)
        rows = _event_rows(thread.id, thread.version, new)
        conn.execute(_ADVANCE_SQL, (thread.version + len(new), _iso(utcnow()), thread.id, thread.version))
        self._insert_events(conn, thread.id, thread.version, rows)

    @staticmethod
    def _load(conn: sqlite3.Connection, thread_id: str) -> Thread:
        # One statement, so one snapshot: a writer in another process cannot land between reading the
        # thread row and its events.
        rows = conn.execute(_LOAD_SQL, (thread_id,)).fetchall()
        if not rows:
            raise ThreadNotFound(thread_id)
        agent, parent_id, forked_at, version = rows[0][:4]
        events = []
        for index, row in enumerate(rows):
            seq, tag, data = row[4], row[5], row[6]
            if seq is None:  # LEFT JOIN of a thread without events
                break
            if seq != index:
                raise StoreCorruptionError(thread_id, index, f"event row {index} is missing (next row is {seq})")
            events.append(_load_event(thread_id, seq, tag, data))
        if len(events) != version:
            raise StoreCorruptionError(
                thread_id, None, f"the thread row says version {version} but {len(events)} event rows exist"
            )
        return Thread(
            id=thread_id, agent=agent, events=tuple(events), version=version, parent_id=parent_id, forked_at=forked_at
        )


def _summary(row: Sequence[Any], status: Status) -> ThreadSummary:
    return ThreadSummary(
        id=row[0],
        agent=row[1],
        parent_id=row[2],
        forked_at=row[3],
        version=row[4],
        created_at=datetime.fromisoformat(row[5]),
        updated_at=datetime.fromisoformat(row[6]),
        status=status,
    )
