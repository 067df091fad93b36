"""SQLiteMemoryBackend: facts in a SQLite file, beside a SQLiteStore's threads (the same file, its own tables).

``memory_facts`` holds one row per fact; ``memory_facts_fts`` is an FTS5 index over their text, kept in
step by triggers, so a search is a ``MATCH`` ranked by BM25. The query is untrusted text (the model's):
it reaches ``MATCH`` only as ``_fts.fts5_query`` made it (its words, each quoted) and as a bound value.
Tables are created by named migrations recorded in the file's ``migrations`` table (``memory_*`` names),
as the store and the delivery log do, so opening is idempotent and processes sharing the file agree.
"""

from __future__ import annotations

import builtins
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from twelvefactor._fts import fts5_query
from twelvefactor.errors import FactNotFound, StoreBusyError
from twelvefactor.memory.facts import (
    StoredFact,
    check_edit,
    check_page,
    check_put,
    duplicate_key,
    new_fact_id,
    now,
    scopes_to_read,
)

__all__ = ["MIGRATIONS", "SQLiteMemoryBackend"]

BUSY_TIMEOUT_S = 5.0

MIGRATIONS: list[tuple[str, tuple[str, ...]]] = [
    (
        "memory_m001_facts",
        (
            # n: the rowid, which the FTS index refers to; id: what people and models name a fact by.
            """
            CREATE TABLE memory_facts (
                n INTEGER PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                scope TEXT NOT NULL,
                key TEXT,
                text TEXT NOT NULL,
                source_thread TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )
            """,
            "CREATE UNIQUE INDEX memory_facts_key ON memory_facts (scope, key) WHERE key IS NOT NULL",
            # A scope's newest facts (a recall, a listing) are an index walk, never a sort of the table.
            "CREATE INDEX memory_facts_scope_updated ON memory_facts (scope, updated_at)",
            "CREATE INDEX memory_facts_updated ON memory_facts (updated_at)",
            # A keyless write looks for the same text in its scope first.
            "CREATE INDEX memory_facts_text ON memory_facts (scope, text)",
            "CREATE VIRTUAL TABLE memory_facts_fts USING fts5(text, content='memory_facts', content_rowid='n')",
            "CREATE TRIGGER memory_facts_ai AFTER INSERT ON memory_facts BEGIN"
            " INSERT INTO memory_facts_fts (rowid, text) VALUES (new.n, new.text); END",
            "CREATE TRIGGER memory_facts_ad AFTER DELETE ON memory_facts BEGIN"
            " INSERT INTO memory_facts_fts (memory_facts_fts, rowid, text) VALUES ('delete', old.n, old.text); END",
            "CREATE TRIGGER memory_facts_au AFTER UPDATE OF text ON memory_facts BEGIN"
            " INSERT INTO memory_facts_fts (memory_facts_fts, rowid, text) VALUES ('delete', old.n, old.text);"
            " INSERT INTO memory_facts_fts (rowid, text) VALUES (new.n, new.text); END",
        ),
    ),
]

_COLUMNS = "id, scope, text, key, created_at, updated_at, source_thread"
_NEWEST = "ORDER BY updated_at DESC, n DESC"


class SQLiteMemoryBackend:
    """Facts in the SQLite file at ``path`` (``":memory:"``: a private in-memory database).

    One connection behind a lock; each write is one ``BEGIN IMMEDIATE`` transaction, so writers in other
    processes queue on SQLite's lock (up to ``busy_timeout_s``, then StoreBusyError: nothing written).
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = os.fspath(path)
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        with self._lock:
            self._connection()  # now: a file that cannot be opened fails here, not at the first fact

    def __repr__(self) -> str:
        return f"SQLiteMemoryBackend({self.path!r})"

    def put(self, scope: str, text: str, *, key: str | None = None, source_thread: str | None = None) -> StoredFact:
        scope, text, key = check_put(scope, text, key)
        with self._write() as conn:
            if key is not None:
                row = conn.execute(f"SELECT n, {_COLUMNS} FROM memory_facts WHERE scope = ? AND key = ?", (scope, key))
            else:
                row = conn.execute(
                    f"SELECT n, {_COLUMNS} FROM memory_facts WHERE scope = ? AND text = ? LIMIT 1", (scope, text)
                )
            found = row.fetchone()
            if found is not None and key is None:
                return _fact(found[1:])
            moment = _iso(now())
            if found is not None:
                conn.execute(
                    "UPDATE memory_facts SET text = ?, updated_at = ?, source_thread = ? WHERE n = ?",
                    (text, moment, source_thread, found[0]),
                )
                return _fact((found[1], scope, text, key, found[5], moment, source_thread))
            values = (new_fact_id(), scope, text, key, moment, moment, source_thread)
            conn.execute(f"INSERT INTO memory_facts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", values)
            return _fact(values)

    def get(self, fact_id: str) -> StoredFact:
        with self._read() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM memory_facts WHERE id = ?", (fact_id,)).fetchone()
        if row is None:
            raise FactNotFound(fact_id)
        return _fact(row)

    def edit(
        self, fact_id: str, *, text: str | None = None, scope: str | None = None, key: str | None = None
    ) -> StoredFact:
        changes = check_edit(text, scope, key)
        with self._write() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM memory_facts WHERE id = ?", (fact_id,)).fetchone()
            if row is None:
                raise FactNotFound(fact_id)
            fact = _fact(row).model_copy(update={**changes, "updated_at": now()})
            try:
                conn.execute(
                    "UPDATE memory_facts SET scope = ?, key = ?, text = ?, updated_at = ? WHERE id = ?",
                    (fact.scope, fact.key, fact.text, _iso(fact.updated_at), fact_id),
                )
            except sqlite3.IntegrityError as err:  # the unique (scope, key) index
                assert fact.key is not None
                raise duplicate_key(fact.scope, fact.key) from err
            return fact

    def delete(self, fact_id: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM memory_facts WHERE id = ?", (fact_id,)).rowcount == 1

    def facts(
        self, scopes: Sequence[str] | None = None, *, limit: int = 100, offset: int = 0
    ) -> builtins.list[StoredFact]:
        check_page(limit, offset)
        params: list[str | int]
        if scopes is None:
            sql, params = f"SELECT {_COLUMNS} FROM memory_facts {_NEWEST} LIMIT ? OFFSET ?", [limit, offset]
        else:
            wanted = scopes_to_read(scopes)
            if not wanted:
                return []
            marks = ", ".join("?" * len(wanted))
            sql = f"SELECT {_COLUMNS} FROM memory_facts WHERE scope IN ({marks}) {_NEWEST} LIMIT ? OFFSET ?"
            params = [*wanted, limit, offset]
        with self._read() as conn:
            return [_fact(row) for row in conn.execute(sql, params).fetchall()]

    def search(self, query: str, scopes: Sequence[str], *, limit: int = 10) -> builtins.list[StoredFact]:
        check_page(limit, 0)
        match = fts5_query(query)
        wanted = scopes_to_read(scopes)
        if match is None or not wanted:
            return []
        marks = ", ".join("?" * len(wanted))
        sql = (
            f"SELECT {', '.join('f.' + c for c in _COLUMNS.split(', '))} FROM memory_facts_fts AS s"
            f" JOIN memory_facts AS f ON f.n = s.rowid WHERE memory_facts_fts MATCH ? AND f.scope IN ({marks})"
            " ORDER BY bm25(memory_facts_fts), f.updated_at DESC, f.n DESC LIMIT ?"
        )
        with self._read() as conn:
            return [_fact(row) for row in conn.execute(sql, [match, *wanted, limit]).fetchall()]

    def scopes(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute("SELECT scope, count(*) FROM memory_facts GROUP BY scope ORDER BY scope").fetchall()
        return {scope: int(count) for scope, count in rows}

    def close(self) -> None:
        """Close the connection; the next call opens it again (a server's lifespan may start twice)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # --- internals ---

    def _connection(self) -> sqlite3.Connection:
        """The open connection (under ``_lock``), opened and migrated on first use."""
        if self._conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")  # as the store: durable once a process commits
                _migrate(conn, self.path)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _write_transaction(self._connection(), self.path) as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # A deferred transaction that only reads: one WAL snapshot, never waiting for a writer.
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    applied = {name for (name,) in conn.execute("SELECT name FROM migrations")}
    for name, statements in MIGRATIONS:
        if name in applied:
            continue
        with _write_transaction(conn, path) as tx:
            # Another process may have applied it since we looked; the write lock makes this exact.
            if tx.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone() is None:
                for sql in statements:
                    tx.execute(sql)  # our own constant DDL
                tx.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, _iso(now())))


@contextmanager
def _write_transaction(conn: sqlite3.Connection, path: str) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error; a lock another
    writer held past the busy timeout is StoreBusyError (nothing written)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as err:
        if "locked" in str(err) or "busy" in str(err):
            raise StoreBusyError(
                f"the database {path!r} is locked by another writer past the busy timeout; no fact was written:"
                " retry later"
            ) from err
        raise
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back by itself (a full disk)
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def _fact(row: Sequence[Any]) -> StoredFact:
    fact_id, scope, text, key, created_at, updated_at, source_thread = row
    return StoredFact(
        id=fact_id,
        scope=scope,
        text=text,
        key=key,
        created_at=datetime.fromisoformat(created_at),
        updated_at=datetime.fromisoformat(updated_at),
        source_thread=source_thread,
    )
