"""The delivery log: the outbound webhook outbox, every attempt, and the inbound replay memory.

``SQLiteDeliveryLog`` keeps it in the thread store's own SQLite file (its own tables and connection,
its migrations recorded in the store's ``migrations`` table under ``webhooks_*`` names), so a restart
resumes pending deliveries; ``PostgresDeliveryLog`` does the same in a PostgresStore's database, through
the store's connection pool, so every web process shares one outbox; ``MemoryDeliveryLog`` serves
MemoryStore and ``:memory:`` databases.
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from twelvefactor.server.settings import WebhookEventType
from twelvefactor.store.sqlite import write_transaction

if TYPE_CHECKING:
    from twelvefactor.store.postgres import PostgresStore

__all__ = [
    "Attempt",
    "ChannelEventType",
    "Delivery",
    "DeliveryEventType",
    "DeliveryLog",
    "DeliveryState",
    "MemoryDeliveryLog",
    "PostgresDeliveryLog",
    "SQLiteDeliveryLog",
]

DeliveryState = Literal["pending", "delivered", "failed"]
ChannelEventType = Literal["human.request", "human.notify", "human.answered"]
# What a delivery carries: a webhook's status episode, or a channel's message to a person.
DeliveryEventType = WebhookEventType | ChannelEventType


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to one endpoint, and where its retry schedule stands."""

    webhook_id: str
    thread_id: str
    event_type: DeliveryEventType
    anchor: int  # index of the event that made the status (the request, the Done, the fatal Error)
    url: str
    body: str
    created_at: float
    state: DeliveryState = "pending"
    attempts: int = 0
    next_attempt_at: float = 0.0
    # A channel's own id of the message it delivered (an email Message-ID, a Slack "channel:ts"): how a reply
    # or a button press is matched back to the request, and how the message is updated once answered.
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST of a delivery: what came back (a status code) or what went wrong (an error)."""

    webhook_id: str
    thread_id: str
    event_type: DeliveryEventType
    url: str
    attempt: int
    at: float
    status_code: int | None
    error: str | None
    duration_ms: float
    retry_in_s: float | None = None


class DeliveryLog(Protocol):
    """The outbox, the attempt log and the inbound replay memory. Thread-safe."""

    def add(self, delivery: Delivery, *, owner: str, claimed_until: float) -> bool:
        """Store a new pending delivery claimed by ``owner``; False if this message to this URL exists."""
        ...

    def record(self, attempt: Attempt, delivery: Delivery, *, claimed_until: float) -> None:
        """Log an attempt and store the delivery's new state, in one transaction."""
        ...

    def claim_due(self, owner: str, *, now: float, hold_s: float) -> builtins.list[Delivery]:
        """Claim pending deliveries no live process holds (left by a stopped or crashed one)."""
        ...

    def release(self, owner: str) -> None:
        """Drop ``owner``'s claims so that the next process resumes its pending deliveries at once."""
        ...

    def for_thread(self, thread_id: str) -> builtins.list[tuple[Delivery, builtins.list[Attempt]]]:
        """A thread's deliveries, oldest first, each with its attempts in order."""
        ...

    def find_receipt(self, receipt: str) -> Delivery | None:
        """The delivered message a channel knows by ``receipt`` (e.g. a Slack ``channel:ts``), if any."""
        ...

    def remember(self, webhook_id: str, *, expires_at: float, now: float) -> bool:
        """Note an inbound webhook-id until ``expires_at``; False if it is already noted (a replay)."""
        ...

    def forget(self, webhook_id: str) -> None:
        """Drop an inbound webhook-id (its delivery could not be applied, so a retry may come)."""
        ...

    def close(self) -> None: ...


class MemoryDeliveryLog:
    """The delivery log in process memory: for MemoryStore and ``:memory:`` databases."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deliveries: dict[str, Delivery] = {}
        self._claims: dict[str, tuple[str, float]] = {}
        self._messages: set[tuple[str, str, int, str]] = set()
        self._attempts: dict[str, list[Attempt]] = {}
        self._inbound: dict[str, float] = {}

    def add(self, delivery: Delivery, *, owner: str, claimed_until: float) -> bool:
        key = (delivery.thread_id, delivery.event_type, delivery.anchor, delivery.url)
        with self._lock:
            if key in self._messages:
                return False
            self._messages.add(key)
            self._deliveries[delivery.webhook_id] = delivery
            self._claims[delivery.webhook_id] = (owner, claimed_until)
            self._attempts[delivery.webhook_id] = []
            return True

    def record(self, attempt: Attempt, delivery: Delivery, *, claimed_until: float) -> None:
        with self._lock:
            self._attempts.setdefault(delivery.webhook_id, []).append(attempt)
            self._deliveries[delivery.webhook_id] = delivery
            owner = self._claims.get(delivery.webhook_id, ("", 0.0))[0]
            self._claims[delivery.webhook_id] = (owner, claimed_until)

    def claim_due(self, owner: str, *, now: float, hold_s: float) -> builtins.list[Delivery]:
        claimed = []
        with self._lock:
            for webhook_id, delivery in self._deliveries.items():
                held = self._claims.get(webhook_id)
                if delivery.state != "pending" or (held is not None and held[0] and held[1] > now):
                    continue
                self._claims[webhook_id] = (owner, max(delivery.next_attempt_at, now) + hold_s)
                claimed.append(delivery)
        return claimed

    def release(self, owner: str) -> None:
        with self._lock:
            for webhook_id, (holder, _) in list(self._claims.items()):
                if holder == owner:
                    self._claims[webhook_id] = ("", 0.0)

    def for_thread(self, thread_id: str) -> builtins.list[tuple[Delivery, builtins.list[Attempt]]]:
        with self._lock:
            rows = [d for d in self._deliveries.values() if d.thread_id == thread_id]
            return [(d, list(self._attempts.get(d.webhook_id, ()))) for d in sorted(rows, key=lambda d: d.created_at)]

    def find_receipt(self, receipt: str) -> Delivery | None:
        with self._lock:
            return next((d for d in self._deliveries.values() if d.receipt == receipt), None)

    def remember(self, webhook_id: str, *, expires_at: float, now: float) -> bool:
        with self._lock:
            for seen, until in list(self._inbound.items()):
                if until <= now:
                    del self._inbound[seen]
            if webhook_id in self._inbound:
                return False
            self._inbound[webhook_id] = expires_at
            return True

    def forget(self, webhook_id: str) -> None:
        with self._lock:
            self._inbound.pop(webhook_id, None)

    def close(self) -> None:
        pass


_MIGRATIONS: list[tuple[str, tuple[str, ...]]] = [
    (
        "webhooks_m001_deliveries",
        (
            """
            CREATE TABLE webhook_deliveries (
                webhook_id TEXT PRIMARY KEY,
                thread_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                anchor INTEGER NOT NULL,
                url TEXT NOT NULL,
                body TEXT NOT NULL,
                created_at REAL NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                next_attempt_at REAL NOT NULL,
                claimed_by TEXT,
                claimed_until REAL
            )
            """,
            # One message per status episode per endpoint, whichever process or write saw it first.
            "CREATE UNIQUE INDEX webhook_deliveries_message ON webhook_deliveries (thread_id, event_type, anchor, url)",
            "CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (next_attempt_at) WHERE state = 'pending'",
            """
            CREATE TABLE webhook_attempts (
                webhook_id TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                thread_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                url TEXT NOT NULL,
                at REAL NOT NULL,
                status_code INTEGER,
                error TEXT,
                duration_ms REAL NOT NULL,
                retry_in_s REAL,
                PRIMARY KEY (webhook_id, attempt)
            ) WITHOUT ROWID
            """,
            "CREATE INDEX webhook_attempts_thread ON webhook_attempts (thread_id)",
            "CREATE TABLE webhook_inbound (webhook_id TEXT PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID",
        ),
    ),
    (
        "webhooks_m002_receipts",
        (
            "ALTER TABLE webhook_deliveries ADD COLUMN receipt TEXT",
            "CREATE INDEX webhook_deliveries_receipt ON webhook_deliveries (receipt) WHERE receipt IS NOT NULL",
        ),
    ),
]

_DELIVERY_COLUMNS = (
    "webhook_id, thread_id, event_type, anchor, url, body, created_at, state, attempts, next_attempt_at, receipt"
)


class SQLiteDeliveryLog:
    """The delivery log in the thread store's SQLite file: its own tables, its own connection.

    Its migrations are recorded in the store's ``migrations`` table under ``webhooks_*`` names.
    The connection opens on first use and reopens after :meth:`close`.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA busy_timeout = 5000")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
                for name, statements in _MIGRATIONS:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        if conn.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone() is None:
                            for sql in statements:
                                conn.execute(sql)
                            applied = datetime.now(UTC).isoformat(timespec="microseconds")
                            conn.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, applied))
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, write_transaction(self._connect()) as conn:
            yield conn

    def add(self, delivery: Delivery, *, owner: str, claimed_until: float) -> bool:
        d = delivery
        with self._write() as conn:
            inserted = conn.execute(
                f"INSERT OR IGNORE INTO webhook_deliveries ({_DELIVERY_COLUMNS}, claimed_by, claimed_until)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (d.webhook_id, d.thread_id, d.event_type, d.anchor, d.url, d.body, d.created_at, d.state)
                + (d.attempts, d.next_attempt_at, d.receipt, owner, claimed_until),
            )
            return inserted.rowcount == 1

    def record(self, attempt: Attempt, delivery: Delivery, *, claimed_until: float) -> None:
        a = attempt
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO webhook_attempts (webhook_id, attempt, thread_id, event_type, url, at,"
                " status_code, error, duration_ms, retry_in_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (a.webhook_id, a.attempt, a.thread_id, a.event_type, a.url, a.at, a.status_code, a.error)
                + (a.duration_ms, a.retry_in_s),
            )
            conn.execute(
                "UPDATE webhook_deliveries SET state = ?, attempts = ?, next_attempt_at = ?, claimed_until = ?,"
                " receipt = ? WHERE webhook_id = ?",
                (delivery.state, delivery.attempts, delivery.next_attempt_at, claimed_until, delivery.receipt)
                + (delivery.webhook_id,),
            )

    def claim_due(self, owner: str, *, now: float, hold_s: float) -> builtins.list[Delivery]:
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE state = 'pending'"
                " AND (claimed_by IS NULL OR claimed_until IS NULL OR claimed_until <= ?)"
                " ORDER BY next_attempt_at LIMIT 500",
                (now,),
            ).fetchall()
            conn.executemany(
                "UPDATE webhook_deliveries SET claimed_by = ?, claimed_until = ? WHERE webhook_id = ?",
                [(owner, max(row[9], now) + hold_s, row[0]) for row in rows],
            )
        return [_delivery(row) for row in rows]

    def release(self, owner: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ?", (owner,)
            )

    def for_thread(self, thread_id: str) -> builtins.list[tuple[Delivery, builtins.list[Attempt]]]:
        with self._lock:
            conn = self._connect()
            deliveries = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE thread_id = ? ORDER BY created_at, rowid",
                (thread_id,),
            ).fetchall()
            attempts = conn.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM webhook_attempts WHERE thread_id = ? ORDER BY webhook_id, attempt",
                (thread_id,),
            ).fetchall()
        return _with_attempts(deliveries, attempts)

    def find_receipt(self, receipt: str) -> Delivery | None:
        with self._lock:
            row = (
                self._connect()
                .execute(f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE receipt = ? LIMIT 1", (receipt,))
                .fetchone()
            )
        return None if row is None else _delivery(row)

    def remember(self, webhook_id: str, *, expires_at: float, now: float) -> bool:
        with self._write() as conn:
            conn.execute("DELETE FROM webhook_inbound WHERE expires_at <= ?", (now,))
            inserted = conn.execute(
                "INSERT OR IGNORE INTO webhook_inbound (webhook_id, expires_at) VALUES (?, ?)", (webhook_id, expires_at)
            )
            return inserted.rowcount == 1

    def forget(self, webhook_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM webhook_inbound WHERE webhook_id = ?", (webhook_id,))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


_ATTEMPT_COLUMNS = "webhook_id, thread_id, event_type, url, attempt, at, status_code, error, duration_ms, retry_in_s"


def _with_attempts(
    deliveries: builtins.list[Any], attempts: builtins.list[Any]
) -> builtins.list[tuple[Delivery, builtins.list[Attempt]]]:
    """Each delivery row with its attempt rows (both log backends read them the same way)."""
    by_id: dict[str, list[Attempt]] = {}
    for row in attempts:
        by_id.setdefault(row[0], []).append(Attempt(*row))
    return [(_delivery(row), by_id.get(row[0], [])) for row in deliveries]


def _delivery(row: tuple[Any, ...]) -> Delivery:
    return Delivery(*row)


# The same tables in PostgreSQL's types; `n` orders a thread's deliveries as SQLite's rowid does.
_PG_MIGRATIONS: list[tuple[str, tuple[str, ...]]] = [
    (
        "webhooks_m001_deliveries",
        (
            """
            CREATE TABLE webhook_deliveries (
                webhook_id TEXT PRIMARY KEY,
                thread_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                anchor INTEGER NOT NULL,
                url TEXT NOT NULL,
                body TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                next_attempt_at DOUBLE PRECISION NOT NULL,
                claimed_by TEXT,
                claimed_until DOUBLE PRECISION,
                n BIGINT GENERATED ALWAYS AS IDENTITY
            )
            """,
            # One message per status episode per endpoint, whichever process or write saw it first.
            "CREATE UNIQUE INDEX webhook_deliveries_message ON webhook_deliveries (thread_id, event_type, anchor, url)",
            "CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (next_attempt_at) WHERE state = 'pending'",
            """
            CREATE TABLE webhook_attempts (
                webhook_id TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                thread_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                url TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                status_code INTEGER,
                error TEXT,
                duration_ms DOUBLE PRECISION NOT NULL,
                retry_in_s DOUBLE PRECISION,
                PRIMARY KEY (webhook_id, attempt)
            )
            """,
            "CREATE INDEX webhook_attempts_thread ON webhook_attempts (thread_id)",
            "CREATE TABLE webhook_inbound (webhook_id TEXT PRIMARY KEY, expires_at DOUBLE PRECISION NOT NULL)",
        ),
    ),
    (
        "webhooks_m002_receipts",
        (
            "ALTER TABLE webhook_deliveries ADD COLUMN receipt TEXT",
            "CREATE INDEX webhook_deliveries_receipt ON webhook_deliveries (receipt) WHERE receipt IS NOT NULL",
        ),
    ),
]


class PostgresDeliveryLog:
    """The delivery log in a PostgresStore's database, on the store's connection pool.

    Its migrations are recorded in the store's ``migrations`` table under ``webhooks_*`` names, applied
    on first use. Claims use ``FOR UPDATE SKIP LOCKED``, so web processes sharing the database never
    claim the same pending delivery. The store owns the connections: :meth:`close` leaves them alone.
    """

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self._migrated = False
        self._migrate_lock = threading.Lock()

    def _ready(self) -> PostgresStore:
        if not self._migrated:
            with self._migrate_lock:
                if not self._migrated:
                    self.store.migrate(_PG_MIGRATIONS)
                    self._migrated = True
        return self.store

    def add(self, delivery: Delivery, *, owner: str, claimed_until: float) -> bool:
        d = delivery
        with self._ready().transaction() as conn:
            inserted = conn.execute(
                f"INSERT INTO webhook_deliveries ({_DELIVERY_COLUMNS}, claimed_by, claimed_until)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (d.webhook_id, d.thread_id, d.event_type, d.anchor, d.url, d.body, d.created_at, d.state)
                + (d.attempts, d.next_attempt_at, d.receipt, owner, claimed_until),
            )
            return inserted.rowcount == 1

    def record(self, attempt: Attempt, delivery: Delivery, *, claimed_until: float) -> None:
        a = attempt
        with self._ready().transaction() as conn:
            conn.execute(
                "INSERT INTO webhook_attempts (webhook_id, attempt, thread_id, event_type, url, at, status_code,"
                " error, duration_ms, retry_in_s) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (webhook_id, attempt) DO UPDATE SET at = excluded.at, status_code = excluded.status_code,"
                " error = excluded.error, duration_ms = excluded.duration_ms, retry_in_s = excluded.retry_in_s",
                (a.webhook_id, a.attempt, a.thread_id, a.event_type, a.url, a.at, a.status_code, a.error)
                + (a.duration_ms, a.retry_in_s),
            )
            conn.execute(
                "UPDATE webhook_deliveries SET state = %s, attempts = %s, next_attempt_at = %s, claimed_until = %s,"
                " receipt = %s WHERE webhook_id = %s",
                (delivery.state, delivery.attempts, delivery.next_attempt_at, claimed_until, delivery.receipt)
                + (delivery.webhook_id,),
            )

    def claim_due(self, owner: str, *, now: float, hold_s: float) -> builtins.list[Delivery]:
        with self._ready().transaction() as conn:
            # SKIP LOCKED: a delivery another process is claiming right now is its, not a second one's.
            rows = conn.execute(
                "UPDATE webhook_deliveries d SET claimed_by = %s, claimed_until = GREATEST(d.next_attempt_at, %s) + %s"
                " FROM (SELECT webhook_id FROM webhook_deliveries WHERE state = 'pending'"
                " AND (claimed_by IS NULL OR claimed_until IS NULL OR claimed_until <= %s)"
                " ORDER BY next_attempt_at LIMIT 500 FOR UPDATE SKIP LOCKED) due"
                f" WHERE d.webhook_id = due.webhook_id RETURNING {_qualified('d')}",
                (owner, now, hold_s, now),
            ).fetchall()
        return sorted((_delivery(row) for row in rows), key=lambda d: d.next_attempt_at)

    def release(self, owner: str) -> None:
        with self._ready().transaction() as conn:
            conn.execute(
                "UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = %s", (owner,)
            )

    def for_thread(self, thread_id: str) -> builtins.list[tuple[Delivery, builtins.list[Attempt]]]:
        with self._ready().connection() as conn:
            deliveries = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE thread_id = %s ORDER BY created_at, n",
                (thread_id,),
            ).fetchall()
            attempts = conn.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM webhook_attempts WHERE thread_id = %s ORDER BY webhook_id, attempt",
                (thread_id,),
            ).fetchall()
        return _with_attempts(deliveries, attempts)

    def find_receipt(self, receipt: str) -> Delivery | None:
        with self._ready().connection() as conn:
            row = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE receipt = %s LIMIT 1", (receipt,)
            ).fetchone()
        return None if row is None else _delivery(row)

    def remember(self, webhook_id: str, *, expires_at: float, now: float) -> bool:
        with self._ready().transaction() as conn:
            conn.execute("DELETE FROM webhook_inbound WHERE expires_at <= %s", (now,))
            inserted = conn.execute(
                "INSERT INTO webhook_inbound (webhook_id, expires_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (webhook_id, expires_at),
            )
            return inserted.rowcount == 1

    def forget(self, webhook_id: str) -> None:
        with self._ready().connection() as conn:
            conn.execute("DELETE FROM webhook_inbound WHERE webhook_id = %s", (webhook_id,))

    def close(self) -> None:
        pass  # the store's pool is the store's to close


def _qualified(alias: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in _DELIVERY_COLUMNS.split(","))
