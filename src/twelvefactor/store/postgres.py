"""PostgresStore: the ThreadStore on PostgreSQL, for many processes on many machines sharing one database.

Layout and row format are SQLiteStore's (see sqlite.py): ``threads`` holds one row per thread (identity,
lineage, version), ``events`` one row per event keyed by ``(thread_id, seq)``, with the event's JSON from
``dump_event`` in a ``text`` column. Text, not ``jsonb``: ``jsonb`` reorders keys and rewrites numbers,
and the contract is an exact round trip; the same bytes on both stores also make their sizes comparable.
Status is not stored: ``list`` derives it from the event rows with ``Thread.status``, as SQLite does.

Concurrency. Every write is one transaction that takes the thread row's lock before it reads anything
it decides on: ``save`` with ``UPDATE threads ... WHERE id = ? AND version = expected`` (which waits for a
concurrent writer of the row and then re-checks the version against what that writer committed),
``respond`` and ``append`` with ``SELECT ... FOR UPDATE``. Two writers of one thread, in any processes,
therefore queue on the row, and of two appends at the same expected version exactly one succeeds; the
primary key ``(thread_id, seq)`` would refuse a second set of rows anyway. Writers of different threads
never wait for each other.

Failures. Errors are mapped onto the store's error tree: a lost connection, a server shutting down or
starting up, a serialization failure, a deadlock or no free connection within ``timeout_s`` is
StoreBusyError (``errors.is_transient``: retry later); a read-only server or missing privileges is
StoreNotWritable. Pooled connections that the server closed while they sat idle (a restart) are found and
replaced when they are handed out, so a restart costs the callers that were mid-query one transient
error each, and nothing after.

psycopg is imported when a store is opened, not when this module is: SQLite users never need it.
"""

from __future__ import annotations

import builtins
import math
import select
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast
from urllib.parse import urlsplit

from twelvefactor.errors import (
    ConflictError,
    StoreBusyError,
    StoreCorruptionError,
    StoreError,
    StoreNotWritable,
    ThreadNotFound,
    UserError,
    compact,
)
from twelvefactor.events import Event, HumanResponse
from twelvefactor.store import changes
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
)

# The row format is SQLite's, byte for byte: one definition of how an event becomes a row and back.
from twelvefactor.store.sqlite import _event_rows, _load_event, _TailFirst
from twelvefactor.thread import Status, Thread, reduce
from twelvefactor.thread import respond as apply_response

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    Connection = psycopg.Connection[tuple[Any, ...]]

__all__ = ["MIGRATIONS", "PostgresStore", "apply_migrations"]

TIMEOUT_S = 5.0

# --- migrations: a named, ordered list; each is applied once per database, recorded in `migrations` ---

Migrations = Sequence[tuple[str, Sequence[str]]]

MIGRATIONS: list[tuple[str, tuple[str, ...]]] = [
    (
        "m001_threads_and_events",
        (
            """
            CREATE TABLE threads (
                id TEXT PRIMARY KEY,
                agent TEXT,
                parent_id TEXT,
                forked_at INTEGER,
                version INTEGER NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                -- Creation order among threads created at the same instant (SQLite's rowid).
                n BIGINT GENERATED ALWAYS AS IDENTITY
            )
            """,
            # Both listing orders (all threads, one agent's) are backward index walks: a page of the newest
            # threads never sorts the table.
            "CREATE INDEX threads_created ON threads (created_at, n)",
            "CREATE INDEX threads_agent_created ON threads (agent, created_at, n)",
            "CREATE INDEX threads_parent ON threads (parent_id) WHERE parent_id IS NOT NULL",
            """
            CREATE TABLE events (
                thread_id TEXT NOT NULL REFERENCES threads (id),
                seq INTEGER NOT NULL,
                type TEXT NOT NULL,
                data TEXT NOT NULL,
                idempotency_key TEXT,
                PRIMARY KEY (thread_id, seq)
            )
            """,
            "CREATE UNIQUE INDEX events_idempotency ON events (thread_id, idempotency_key)"
            " WHERE idempotency_key IS NOT NULL",
            # The log is append-only; the database refuses edits, not just this code.
            """
            CREATE FUNCTION twelvefactor_events_append_only() RETURNS trigger LANGUAGE plpgsql
            AS $$ BEGIN RAISE EXCEPTION 'events are append-only'; END $$
            """,
            "CREATE TRIGGER events_append_only BEFORE UPDATE ON events"
            " FOR EACH ROW EXECUTE FUNCTION twelvefactor_events_append_only()",
        ),
    ),
    # Who may advance a thread right now. expires_at is wall-clock (time.time()) so that processes agree.
    (
        "m002_leases",
        (
            "CREATE TABLE leases"
            " (thread_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)",
        ),
    ),
    # Live processes look for expired leases (a holder that died) every second or so: an index walk.
    ("m003_lease_expiry", ("CREATE INDEX leases_expiry ON leases (expires_at)",)),
    # prune() walks the threads least recently updated first.
    ("m004_threads_updated", ("CREATE INDEX threads_updated ON threads (updated_at)",)),
    # Every write announces itself (pg_notify in the writing transaction): see store/changes.py.
    changes.MIGRATION,
]

# One advisory lock serialises every process's migrations on a database ("tfmigrat" in ASCII): two
# processes opening a fresh database at once would otherwise both see an empty `migrations` table and
# race to create the same tables.
_MIGRATION_LOCK = 0x74666D6967726174


def apply_migrations(conn: Connection, migrations: Migrations) -> builtins.list[str]:
    """Apply the migrations the database has not recorded, in order, in one transaction; their names.

    DDL is transactional in PostgreSQL: a migration that fails leaves nothing behind, and no process ever
    sees half of one. Used by PostgresStore and by anything that keeps its own tables in the same database
    (the webhook delivery log) under its own migration names.
    """
    import psycopg

    # Usually everything is applied: say so with one read, taking no lock and writing nothing (so a store
    # also opens on a read-only replica or for a user who may not run DDL).
    wanted = [name for name, _ in migrations]
    try:
        recorded = conn.execute("SELECT name FROM migrations WHERE name = ANY(%s)", (wanted,)).fetchall()
    except psycopg.errors.UndefinedTable:  # a fresh database (autocommit: no transaction is left aborted)
        recorded = []
    if {row[0] for row in recorded} >= set(wanted):
        return []
    applied_now: builtins.list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)")
        # Read after taking the lock: a process that held it before us has committed what it applied.
        applied = {row[0] for row in conn.execute("SELECT name FROM migrations").fetchall()}
        for name, statements in migrations:
            if name in applied:
                continue
            for sql in statements:
                conn.execute(sql)  # our own constant DDL, never built from values
            # clock_timestamp, not now(): migrations applied in one transaction keep their order.
            conn.execute("INSERT INTO migrations (name, applied_at) VALUES (%s, clock_timestamp())", (name,))
            applied_now.append(name)
    return applied_now


# --- errors ---

# SQLSTATE classes and codes that mean "try again later": connection exceptions (08), transaction
# rollbacks (40: serialization failure, deadlock), insufficient resources (53, e.g. too many connections),
# operator intervention (57: shutdown, starting up, a statement timeout) and a lock not available (55P03).
_TRANSIENT_CLASSES = ("08", "40", "53", "57")
_TRANSIENT_STATES = {"55P03"}
# A connection the server refused for good (libpq gives these no SQLSTATE, only the server's words): a wrong
# user, password or database name is not worth retrying.
_CONFIG_FAILURES = ("does not exist", "authentication failed", "no pg_hba.conf entry", "no password supplied")
# Read-only transaction (a hot standby, default_transaction_read_only), no privilege, disk full.
_NOT_WRITABLE_STATES = {"25006", "42501", "53100"}


def translate(err: Exception, where: str) -> StoreError | UserError:
    """The store error for a psycopg (or pool) error, its message one line that says what to do."""
    import psycopg
    from psycopg_pool import PoolTimeout

    state = getattr(err, "sqlstate", None) or ""
    detail = compact(str(err), 300)
    if isinstance(err, PoolTimeout):
        return StoreBusyError(
            f"no connection to PostgreSQL at {where} within the store's timeout ({detail}): the server is down,"
            " restarting or out of connections, or every pooled connection is busy; nothing was written: retry later"
        )
    if not state and isinstance(err, psycopg.OperationalError) and any(w in detail for w in _CONFIG_FAILURES):
        return UserError(
            f"cannot connect to PostgreSQL at {where} ({detail}): check the URL's user, password and database name,"
            " and that the server lets this user in"
        )
    if state in _NOT_WRITABLE_STATES:
        return StoreNotWritable(
            f"PostgreSQL at {where} refuses writes ({detail}): check that it is the primary (not a read-only"
            " replica), that the user may write the store's tables, and free disk space"
        )
    if (
        state[:2] in _TRANSIENT_CLASSES
        or state in _TRANSIENT_STATES
        or (not state and isinstance(err, psycopg.OperationalError))
    ):
        return StoreBusyError(
            f"PostgreSQL at {where} is unavailable or busy ({detail}): retry later (a write cut off by a lost"
            " connection either committed whole or not at all; a retry at the same expected version or with"
            " the same idempotency key cannot apply twice)"
        )
    if isinstance(err, psycopg.DataError):
        return UserError(f"PostgreSQL at {where} cannot store this value ({detail})")
    return StoreError(f"PostgreSQL at {where} failed: {detail}")


def describe(url: str) -> str:
    """``host:port/dbname`` of a URL (or a libpq ``key=value`` string), for messages: never the password."""
    if "://" not in url:
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(url)
        except Exception:  # psycopg says what is wrong with it when the store connects
            return "the configured server"
        return f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a malformed port: still say which server, without the credentials
        return "the configured server"
    return f"{host}{port}{parts.path or '/'}"


def _alive(conn: Connection) -> bool:
    """Whether a connection the pool hands out still works; costs one poll() and, usually, no round trip.

    An idle connection has nothing to read. One the server closed while it sat in the pool (a restart, an
    idle timeout, a proxy) has the server's goodbye or an EOF waiting: only then is it pinged.
    """
    if conn.closed:
        return False
    fd = conn.fileno()
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        readable = bool(poller.poll(0))
    else:  # pragma: no cover - Windows
        readable = bool(select.select([fd], [], [], 0)[0])
    if not readable:
        return True
    import psycopg
    from psycopg_pool import ConnectionPool

    try:
        ConnectionPool.check_connection(conn)  # a notice, say, is harmless: the ping works
    except psycopg.Error:
        return False
    return True


# --- SQL (parameters only: no value is ever formatted into a statement) ---

_LOAD_SQL = (
    "SELECT t.agent, t.parent_id, t.forked_at, t.version, e.seq, e.type, e.data"
    " FROM threads t LEFT JOIN events e ON e.thread_id = t.id WHERE t.id = %s ORDER BY e.seq"
)
_INSERT_EVENT_SQL = "INSERT INTO events (thread_id, seq, type, data, idempotency_key) VALUES (%s, %s, %s, %s, %s)"
# ON CONFLICT DO NOTHING: a concurrent create of the same id waits for the other transaction and then
# inserts nothing, instead of aborting this transaction, so the conflict can report the version it met.
_INSERT_THREAD_SQL = (
    "INSERT INTO threads (id, agent, parent_id, forked_at, version, created_at, updated_at)"
    " VALUES (%s, %s, %s, %s, %s, now(), now()) ON CONFLICT (id) DO NOTHING"
)
_ADVANCE_SQL = "UPDATE threads SET version = %s, updated_at = now() WHERE id = %s AND version = %s"
# A save in one statement, so one round trip and its own transaction: the version check that locks the row,
# and the event rows, inserted only if it matched. The rows returned say which happened.
_SAVE_SQL = (
    "WITH advanced AS (" + _ADVANCE_SQL + " RETURNING id)"
    " INSERT INTO events (thread_id, seq, type, data, idempotency_key)"
    " SELECT advanced.id, e.seq, e.type, e.data, e.key FROM advanced,"
    " unnest(%s::int[], %s::text[], %s::text[], %s::text[]) AS e (seq, type, data, key) RETURNING seq"
)
_VERSION_SQL = "SELECT version FROM threads WHERE id = %s"
_LOCK_SQL = "SELECT version FROM threads WHERE id = %s FOR UPDATE"
_TAIL_SQL = "SELECT seq, type, data FROM events WHERE thread_id = %s AND seq < %s ORDER BY seq DESC LIMIT %s"
# Each listed thread comes with its last few event rows (newest first), which is usually all that deriving
# its status reads: one query for a page, where a query per thread would pay a round trip each.
_LIST_SQL = (
    "SELECT t.id, t.agent, t.parent_id, t.forked_at, t.version, t.created_at, t.updated_at,"
    " tail.seqs, tail.types, tail.datas FROM threads t"
    " LEFT JOIN LATERAL (SELECT array_agg(seq) AS seqs, array_agg(type) AS types, array_agg(data) AS datas"
    " FROM (SELECT seq, type, data FROM events WHERE thread_id = t.id AND seq < t.version"
    " ORDER BY seq DESC LIMIT %s) last) tail ON true"
)
_LIST_AGENT_SQL = _LIST_SQL + " WHERE t.agent = %s"
_ORDER_SQL = " ORDER BY t.created_at DESC, t.n DESC"
_KEY_SQL = "SELECT seq, type, data FROM events WHERE thread_id = %s AND idempotency_key = %s"
_KEYS_SQL = "SELECT idempotency_key FROM events WHERE thread_id = %s AND idempotency_key = ANY(%s) LIMIT 1"
# Deleting threads (an array of ids): events first (they reference the row), then leases and rows. The
# append-only trigger refuses UPDATE of an event row, never DELETE: retention removes whole threads.
_DELETE_SQL = (
    "DELETE FROM events WHERE thread_id = ANY(%s)",
    "DELETE FROM leases WHERE thread_id = ANY(%s)",
    "DELETE FROM threads WHERE id = ANY(%s)",
)
# Candidates for prune, least recently updated first, each row locked as it is read; a row another writer
# holds is being written right now (so it is not stale) and is skipped rather than waited for.
_STALE_SQL = (
    "SELECT id, version FROM threads WHERE updated_at < %s{agent} ORDER BY updated_at, n FOR UPDATE SKIP LOCKED"
)
# Take the lease where it is free, ours, or expired; leave a live one of another owner alone. RETURNING
# lists exactly the rows inserted or updated: the leases `owner` holds now.
_LEASE_SQL = (
    "INSERT INTO leases (thread_id, owner, expires_at) SELECT unnest(%s::text[]), %s, %s"
    " ON CONFLICT (thread_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
    " WHERE leases.owner = excluded.owner OR leases.expires_at <= %s RETURNING thread_id"
)


class PostgresStore:
    """ThreadStore on a PostgreSQL database (``postgresql://user:password@host:port/dbname``).

    Connections come from a psycopg_pool ``ConnectionPool`` (``min_size``..``max_size``, autocommit, each
    write an explicit transaction); the store is safe to share between threads, and any number of
    processes may open the same database. Migrations are applied when the store opens.
    ``timeout_s`` bounds connecting and waiting for a free pooled connection: past it an operation
    raises StoreBusyError.
    """

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10, timeout_s: float = TIMEOUT_S) -> None:
        if not 0 <= min_size <= max_size or max_size < 1:
            raise UserError(
                f"PostgresStore needs 0 <= min_size <= max_size and max_size >= 1, got {min_size} and {max_size}"
            )
        if not timeout_s > 0:
            raise UserError(f"PostgresStore timeout_s must be positive, got {timeout_s!r}")
        try:
            import psycopg
            from psycopg.conninfo import conninfo_to_dict
            from psycopg_pool import ConnectionPool
        except ImportError as err:
            raise UserError(
                f"a PostgreSQL store needs psycopg 3 and psycopg-pool ({err}): pip install 'twelvefactor[postgres]'"
            ) from err
        self.url = url
        self.timeout_s = timeout_s
        self.where = describe(url)
        # Names this store's writes in the change feed, so this process can tell them from other processes'.
        self.origin = uuid.uuid4().hex
        self._closed = False
        self._close_lock = threading.Lock()
        with self._translated():
            # libpq waits for an unreachable host as long as the OS does: bound it (unless the URL says).
            extra: dict[str, Any] = {}
            if "connect_timeout" not in conninfo_to_dict(url):
                extra["connect_timeout"] = max(2, math.ceil(timeout_s))
            # A connection of its own, not the pool's: a wrong password or database name fails here with
            # the server's own words, where the pool would retry in the background and time out.
            with psycopg.connect(url, autocommit=True, **extra) as conn:
                apply_migrations(conn, MIGRATIONS)
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            url,
            kwargs={"autocommit": True, **extra},
            min_size=min_size,
            max_size=max_size,
            timeout=timeout_s,
            configure=self._configure,
            open=True,
            name=f"twelvefactor {self.where}",
        )

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"

    def _configure(self, conn: Connection) -> None:
        """Each new pooled connection: its writes' change notifications carry this store's origin."""
        conn.execute("SELECT set_config(%s, %s, false)", (changes.ORIGIN_SETTING, self.origin))

    # --- protocol ---

    def create(self, thread: Thread) -> Thread:
        """Store a new thread with all its events; ConflictError(id, 0, actual) if the id exists."""
        rows = _event_rows(thread.id, 0, thread.events)
        with self.transaction() as conn:
            self._insert_thread(conn, thread, rows)
        return thread

    def save(self, thread: Thread, expected_version: int) -> Thread:
        """Append ``thread.events[expected_version:]`` iff the stored version is ``expected_version``."""
        check_save(thread, expected_version)
        if thread.version == expected_version:
            return self._save_nothing(thread, expected_version)
        import psycopg

        rows = _event_rows(thread.id, expected_version, thread.events[expected_version:])
        if all(row[4] is None for row in rows):
            # The usual save (an agent's step): one statement. Its version check locks the row; a concurrent
            # writer of this thread makes it wait, then it re-reads the version that writer committed (and
            # matches nothing). Events with idempotency keys take the path below, which names a reused key.
            with self.connection() as conn:
                try:
                    inserted = conn.execute(_SAVE_SQL, (thread.version, thread.id, expected_version, *_columns(rows)))
                    saved = len(inserted.fetchall()) == len(rows)
                except psycopg.errors.UniqueViolation as err:
                    raise _rows_exist(thread.id, expected_version, err) from err
            if saved:
                return thread
        # Keyed events, or the fast path matched nothing: the thread is absent (create it at version 0),
        # moved on (a conflict), or this save reuses an applied key (named by _insert_events).
        with self.transaction() as conn:
            if conn.execute(_ADVANCE_SQL, (thread.version, thread.id, expected_version)).rowcount == 1:
                self._insert_events(conn, thread.id, expected_version, rows)
                return thread
            actual = self._version(conn, thread.id)
            if actual is None and expected_version == 0:
                self._insert_thread(conn, thread, rows)
                return thread
            raise ConflictError(thread.id, expected_version, actual)

    def load(self, thread_id: str) -> Thread:
        """The stored thread; ThreadNotFound if there is none, StoreCorruptionError for a bad row."""
        with self.connection() as conn:
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

        As in SQLiteStore, each thread's status is ``Thread.status`` run over its events read lazily from
        the tail; the listing query brings each thread's last few rows along, usually all that takes, so
        a page is usually one query. Without a status filter only the page's
        threads are looked at; with one, threads are classified newest first until the page is full,
        through a server-side cursor. One REPEATABLE READ snapshot for the whole listing.
        """
        check_page(limit, offset)
        params: builtins.list[Any] = [_TailFirst._FIRST_BATCH] + ([] if agent is None else [agent])
        sql = (_LIST_SQL if agent is None else _LIST_AGENT_SQL) + _ORDER_SQL
        if status is None:
            sql += " LIMIT %s OFFSET %s"
            params += [limit, offset]
        summaries: builtins.list[ThreadSummary] = []
        skip = 0 if status is None else offset
        with self.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # Unfiltered: the page itself. Filtered: a server-side cursor, so that a table of many
            # threads is read in batches as far as the page needs, never fetched whole.
            cursor = conn.cursor() if status is None else conn.cursor(name="twelvefactor_list")
            with cursor:
                cursor.execute(sql, params)
                for row in cursor:
                    if len(summaries) >= limit:
                        break
                    # Duck-typed on purpose: status only iterates the events, and the tail reads lazily.
                    # array_agg keeps the subquery's order here (no ORDER BY or grouping above it).
                    last = builtins.list(zip(row[7], row[8], row[9], strict=True)) if row[7] else []
                    tail = cast("tuple[Event, ...]", _TailFirst(conn, row[0], row[4], _TAIL_SQL, last))
                    derived = Thread.model_construct(id=row[0], events=tail, version=row[4]).status
                    if status is not None and derived != status:
                        continue
                    if skip:
                        skip -= 1
                        continue
                    summaries.append(_summary(row, derived))
        return summaries

    def respond(self, thread_id: str, response: HumanResponse) -> Thread:
        """Apply a human response atomically; an already-applied ``idempotency_key`` is a no-op."""
        key = idempotency_key(response)
        with self._locked(thread_id) as (conn, thread):
            if key is not None:
                applied = self._applied(conn, thread_id, key)
                if applied is not None:
                    check_repeat(thread_id, key, applied, response)
                    return thread
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
        with self._locked(thread_id) as (conn, thread):
            fresh = unapplied(thread_id, new, lambda key: self._applied(conn, thread_id, key))
            if new and not fresh:
                return thread  # a redelivery: a no-op whatever version the sender last saw
            kept = rebased(thread, fresh, expected_version, rebase)
            if kept:
                self._advance(conn, thread, kept)
                for event in kept:
                    thread = reduce(thread, event)
            return thread

    def delete(self, thread_id: str) -> bool:
        """Remove the thread's row, events (with their idempotency keys) and lease in one transaction.

        The thread row's lock first, so a concurrent writer of the thread either committed before (and its
        events go too) or waits and then finds no thread.
        """
        with self.transaction() as conn:
            if conn.execute(_LOCK_SQL, (thread_id,)).fetchone() is None:
                return False
            for sql in _DELETE_SQL:
                conn.execute(sql, ([thread_id],))
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

        Candidates are read least recently updated first through a server-side cursor, each thread row
        locked as it is read (rows a writer holds right now are skipped), and classified by
        ``Thread.status`` over their events read from the tail, as ``list`` does: no writer can move a
        thread between the check and the delete.
        """
        wanted = check_prune(older_than, statuses, limit)
        params: builtins.list[Any] = [older_than] + ([] if agent is None else [agent])
        sql = _STALE_SQL.format(agent="" if agent is None else " AND agent = %s")
        victims: builtins.list[str] = []
        with self.transaction() as conn:
            with conn.cursor(name="twelvefactor_prune") as cursor:
                cursor.execute(sql, params)
                for thread_id, version in cursor:
                    if len(victims) >= limit:
                        break
                    tail = cast("tuple[Event, ...]", _TailFirst(conn, thread_id, version, _TAIL_SQL))
                    if Thread.model_construct(id=thread_id, events=tail, version=version).status in wanted:
                        victims.append(thread_id)
            if victims:
                for statement in _DELETE_SQL:
                    conn.execute(statement, (victims,))
        return len(victims)

    def claim(self, thread_id: str, owner: str, ttl_s: float) -> bool:
        """Take or renew the thread's lease; False while another owner's lease has not expired."""
        return thread_id in self.heartbeat(owner, (thread_id,), ttl_s)

    def release(self, thread_id: str, owner: str) -> None:
        with self.connection() as conn:
            conn.execute("DELETE FROM leases WHERE thread_id = %s AND owner = %s", (thread_id, owner))

    def heartbeat(self, owner: str, thread_ids: Iterable[str], ttl_s: float) -> set[str]:
        """Renew or take ``owner``'s leases on ``thread_ids`` in one statement; the ids it now holds."""
        # Sorted and unique: every heartbeat locks lease rows in one order, so two workers renewing
        # overlapping sets cannot deadlock (and one statement may not touch a row twice).
        ids = sorted(set(thread_ids))
        if not ids:
            return set()
        now = time.time()
        with self.connection() as conn:
            rows = conn.execute(_LEASE_SQL, (ids, owner, now + ttl_s, now)).fetchall()
        return {row[0] for row in rows}

    def expired_leases(self, limit: int = 100) -> builtins.list[str]:
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT thread_id FROM leases WHERE expires_at <= %s ORDER BY expires_at LIMIT %s", (time.time(), limit)
            ).fetchall()
        return [row[0] for row in rows]

    def lease_of(self, thread_id: str) -> tuple[str, float] | None:
        with self.connection() as conn:
            row = conn.execute("SELECT owner, expires_at FROM leases WHERE thread_id = %s", (thread_id,)).fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

    def close(self) -> None:
        """Close the pool: connections in use are closed when they come back; the store cannot be used after."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- health, introspection (the server's /healthz, benchmarks, ops) ---

    def check_writable(self) -> None:
        """StoreNotWritable unless this database takes writes now (a replica or a read-only user does not)."""
        with self.transaction() as conn:
            # Refused in a read-only transaction and without UPDATE privilege; touches no row.
            conn.execute("UPDATE threads SET version = version WHERE false")

    def bytes_for(self, thread_id: str) -> int:
        """Bytes of the values in the thread's rows (thread row + event rows): text lengths, 8 for each
        timestamp and bigint, 4 for each integer; before PostgreSQL's tuple headers (about 28 bytes a row),
        indexes and TOAST compression. Comparable with SQLiteStore.bytes_for (same event rows)."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT COALESCE(SUM(octet_length(thread_id) + octet_length(type) + octet_length(data)"
                " + COALESCE(octet_length(idempotency_key), 0) + 4), 0) FROM events WHERE thread_id = %s",
                (thread_id,),
            ).fetchone()
            head = conn.execute(
                "SELECT octet_length(id) + COALESCE(octet_length(agent), 0) + COALESCE(octet_length(parent_id), 0)"
                " + 4 + 4 + 8 + 8 + 8 FROM threads WHERE id = %s",
                (thread_id,),
            ).fetchone()
        if head is None or row is None:
            raise ThreadNotFound(thread_id)
        return int(row[0]) + int(head[0])

    def stats(self) -> dict[str, int]:
        """Counts and sizes: threads, events, data_bytes (event JSON), db_bytes (the store's tables with
        their indexes and TOAST, as stored)."""
        with self.connection() as conn:
            threads = conn.execute("SELECT count(*) FROM threads").fetchone()
            events = conn.execute("SELECT count(*), COALESCE(SUM(octet_length(data)), 0) FROM events").fetchone()
            size = conn.execute(
                "SELECT pg_total_relation_size('threads') + pg_total_relation_size('events')"
                " + pg_total_relation_size('leases')"
            ).fetchone()
        assert threads is not None and events is not None and size is not None
        return {
            "threads": int(threads[0]),
            "events": int(events[0]),
            "data_bytes": int(events[1]),
            "db_bytes": int(size[0]),
        }

    def applied_migrations(self) -> builtins.list[tuple[str, datetime]]:
        """(name, applied_at) for each migration recorded in this database, in the order applied."""
        with self.connection() as conn:
            rows = conn.execute("SELECT name, applied_at FROM migrations ORDER BY applied_at, name").fetchall()
        return [(name, at.astimezone(UTC)) for name, at in rows]

    def migrate(self, migrations: Migrations) -> builtins.list[str]:
        """Apply other tables' migrations (the webhook delivery log's) to this database; the names applied."""
        with self.connection() as conn:
            return apply_migrations(conn, migrations)

    # --- connections (also for tables that live beside the threads, like the delivery log) ---

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A pooled autocommit connection, psycopg and pool errors mapped onto the store's error tree."""
        if self._closed:
            raise self._closed_error()
        from psycopg_pool import PoolClosed

        try:
            with self._translated():
                conn = self._checkout()
                try:
                    with conn:  # a pooled connection: commits or rolls back, never closes (as pool.connection())
                        yield conn
                finally:
                    self._pool.putconn(conn)
        except StoreBusyError as err:
            if isinstance(err.__cause__, PoolClosed):  # closed by another thread meanwhile
                raise self._closed_error() from None
            raise

    def _checkout(self) -> Connection:
        conn = self._pool.getconn()
        if _alive(conn):
            return conn
        # The server closed it while it sat idle, most likely with all its idle siblings (a restart). Not
        # the pool's own `check` callback: that backs off a second or more per dead connection it meets.
        # Instead: drop this one, have the pool test the others now (replacements connect in the
        # background), and wait for a live one.
        conn.close()  # the pool replaces a closed connection that is given back
        self._pool.putconn(conn)
        self._pool.check()
        return self._pool.getconn()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A pooled connection inside one transaction: committed on success, rolled back on any error."""
        with self.connection() as conn, conn.transaction():
            yield conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.Error as err:
            raise translate(err, self.where) from err

    def _closed_error(self) -> UserError:
        return UserError(f"the PostgresStore on {self.where!r} is closed; open a new store")

    # --- internals ---

    def _save_nothing(self, thread: Thread, expected_version: int) -> Thread:
        with self.connection() as conn:
            actual = self._version(conn, thread.id)
        if actual is None and expected_version == 0:
            return self.create(thread)
        if actual != expected_version:
            raise ConflictError(thread.id, expected_version, actual)
        return thread

    @staticmethod
    def _version(conn: Connection, thread_id: str) -> int | None:
        row = conn.execute(_VERSION_SQL, (thread_id,)).fetchone()
        return None if row is None else int(row[0])

    def _insert_thread(self, conn: Connection, thread: Thread, rows: builtins.list[tuple[Any, ...]]) -> None:
        inserted = conn.execute(
            _INSERT_THREAD_SQL, (thread.id, thread.agent, thread.parent_id, thread.forked_at, thread.version)
        )
        if inserted.rowcount != 1:
            raise ConflictError(thread.id, 0, self._version(conn, thread.id))
        self._insert_events(conn, thread.id, 0, rows)

    @staticmethod
    def _insert_events(conn: Connection, thread_id: str, start: int, rows: builtins.list[tuple[Any, ...]]) -> None:
        import psycopg

        keys = [row[4] for row in rows if row[4] is not None]
        if keys:
            # This transaction holds the thread row's lock, so no writer can add a key meanwhile: looking
            # first is exact, and names the key (a unique violation would abort the transaction first).
            found = conn.execute(_KEYS_SQL, (thread_id, keys)).fetchone()
            if found is not None:
                raise duplicate_key_error(thread_id, found[0])
        try:
            with conn.cursor() as cursor:
                cursor.executemany(_INSERT_EVENT_SQL, rows)  # pipelined: one round trip for the batch
        except psycopg.errors.UniqueViolation as err:
            raise _rows_exist(thread_id, start, err) from err

    @staticmethod
    def _applied(conn: Connection, thread_id: str, key: str) -> Event | None:
        row = conn.execute(_KEY_SQL, (thread_id, key)).fetchone()
        return None if row is None else _load_event(thread_id, row[0], row[1], row[2])

    @contextmanager
    def _locked(self, thread_id: str) -> Iterator[tuple[Connection, Thread]]:
        """A transaction that holds the thread row's lock, and the thread as stored under it.

        The lock first: a concurrent writer of the thread (a responder with the same key, another append)
        waits here, then sees what this one wrote. Pipelined: BEGIN, the lock and the load go in one round
        trip; the load is a statement of its own, so its snapshot is taken once the lock is held.
        """
        with self.connection() as conn, conn.pipeline(), conn.transaction():
            lock = conn.execute(_LOCK_SQL, (thread_id,))
            load = conn.execute(_LOAD_SQL, (thread_id,))
            if lock.fetchone() is None:
                raise ThreadNotFound(thread_id)
            yield conn, _thread_from(thread_id, load.fetchall())

    @staticmethod
    def _advance(conn: Connection, thread: Thread, events: Iterable[Event]) -> None:
        """Append events to a thread whose row this transaction has locked, their keys already checked."""
        import psycopg

        new = tuple(events)
        rows = _event_rows(thread.id, thread.version, new)
        try:
            inserted = conn.execute(_SAVE_SQL, (thread.version + len(new), thread.id, thread.version, *_columns(rows)))
            count = len(inserted.fetchall())
        except psycopg.errors.UniqueViolation as err:
            raise _rows_exist(thread.id, thread.version, err) from err
        if count != len(rows):  # cannot happen under the row lock; never append past a moved thread
            raise ConflictError(thread.id, thread.version, None)

    @staticmethod
    def _load(conn: Connection, thread_id: str) -> Thread:
        # One statement, so one snapshot: a writer in another process cannot land between reading the
        # thread row and its events.
        return _thread_from(thread_id, conn.execute(_LOAD_SQL, (thread_id,)).fetchall())


def _thread_from(thread_id: str, rows: Sequence[tuple[Any, ...]]) -> Thread:
    """The thread from _LOAD_SQL's rows (the thread row LEFT JOINed with its events, in order)."""
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


def _columns(rows: Sequence[tuple[Any, ...]]) -> tuple[builtins.list[Any], ...]:
    """Event rows as the four arrays _SAVE_SQL unnests: seq, type, data, idempotency key."""
    return tuple(builtins.list(column) for column in zip(*(row[1:] for row in rows), strict=True)) or ([], [], [], [])


def _rows_exist(thread_id: str, start: int, err: Exception) -> StoreCorruptionError:
    # The thread row's version said these seqs were free; rows already there mean the two disagree.
    detail = compact(str(err), 200)
    return StoreCorruptionError(thread_id, start, f"event rows already exist past the stored version ({detail})")


def _summary(row: Sequence[Any], status: Status) -> ThreadSummary:
    return ThreadSummary(
        id=row[0],
        agent=row[1],
        parent_id=row[2],
        forked_at=row[3],
        version=row[4],
        created_at=row[5].astimezone(UTC),
        updated_at=row[6].astimezone(UTC),
        status=status,
    )
