"""PostgresMemoryBackend: facts in a PostgresStore's database, on the store's connection pool.

``memory_facts`` holds one row per fact, with a ``tsvector`` of its text (the ``simple`` configuration: no
stemming, no stop words, like SQLite's FTS5 tokenizer) under a GIN index; a search ORs the query's words
(``_fts.fts5_terms``, each a quoted lexeme, passed as a bound value) and ranks with ``ts_rank``. Writes to one
scope take a transaction-scoped advisory lock on it, so two processes writing the same keyless text at once
store it once. Migrations are named ``memory_*`` in the store's ``migrations`` table, applied on first use.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC
from typing import TYPE_CHECKING, Any, Protocol

from twelvefactor._fts import fts5_terms
from twelvefactor.errors import FactNotFound
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

if TYPE_CHECKING:
    import psycopg

    Connection = psycopg.Connection[tuple[Any, ...]]

__all__ = ["MIGRATIONS", "PostgresDatabase", "PostgresMemoryBackend"]

MIGRATIONS: list[tuple[str, tuple[str, ...]]] = [
    (
        "memory_m001_facts",
        (
            """
            CREATE TABLE memory_facts (
                n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                scope TEXT NOT NULL,
                key TEXT,
                text TEXT NOT NULL,
                source_thread TEXT,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                words TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED
            )
            """,
            "CREATE UNIQUE INDEX memory_facts_key ON memory_facts (scope, key) WHERE key IS NOT NULL",
            "CREATE INDEX memory_facts_scope_updated ON memory_facts (scope, updated_at, n)",
            "CREATE INDEX memory_facts_updated ON memory_facts (updated_at, n)",
            # md5: a B-tree entry has a size limit that a long fact's text could pass.
            "CREATE INDEX memory_facts_text ON memory_facts (scope, md5(text))",
            "CREATE INDEX memory_facts_words ON memory_facts USING gin (words)",
        ),
    ),
]

_COLUMNS = "id, scope, text, key, created_at, updated_at, source_thread"
_NEWEST = "ORDER BY updated_at DESC, n DESC"


class PostgresDatabase(Protocol):
    """What the backend needs of a PostgreSQL database: PostgresStore's pooled connections and migrations."""

    def connection(self) -> AbstractContextManager[Connection]: ...

    def transaction(self) -> AbstractContextManager[Connection]: ...

    def migrate(self, migrations: Sequence[tuple[str, Sequence[str]]]) -> builtins.list[str]: ...


class PostgresMemoryBackend:
    """Facts in ``database`` (a PostgresStore): its pool, its error mapping (StoreBusyError to retry).

    The store owns the connections: :meth:`close` leaves them alone.
    """

    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database
        self._migrated = False
        self._migrate_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresMemoryBackend({self.database!r})"

    def put(self, scope: str, text: str, *, key: str | None = None, source_thread: str | None = None) -> StoredFact:
        scope, text, key = check_put(scope, text, key)
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("twelvefactor.memory:" + scope,))
            if key is not None:
                found = conn.execute(
                    f"SELECT {_COLUMNS} FROM memory_facts WHERE scope = %s AND key = %s", (scope, key)
                ).fetchone()
            else:
                found = conn.execute(
                    f"SELECT {_COLUMNS} FROM memory_facts WHERE scope = %s AND md5(text) = md5(%s) AND text = %s"
                    " LIMIT 1",
                    (scope, text, text),
                ).fetchone()
            if found is not None and key is None:
                return _fact(found)
            moment = now()
            if found is not None:
                row = conn.execute(
                    f"UPDATE memory_facts SET text = %s, updated_at = %s, source_thread = %s WHERE id = %s"
                    f" RETURNING {_COLUMNS}",
                    (text, moment, source_thread, found[0]),
                ).fetchone()
            else:
                row = conn.execute(
                    f"INSERT INTO memory_facts ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                    (new_fact_id(), scope, text, key, moment, moment, source_thread),
                ).fetchone()
            assert row is not None
            return _fact(row)

    def get(self, fact_id: str) -> StoredFact:
        with self._connection() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM memory_facts WHERE id = %s", (fact_id,)).fetchone()
        if row is None:
            raise FactNotFound(fact_id)
        return _fact(row)

    def edit(
        self, fact_id: str, *, text: str | None = None, scope: str | None = None, key: str | None = None
    ) -> StoredFact:
        import psycopg

        changes = check_edit(text, scope, key)
        with self._transaction() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM memory_facts WHERE id = %s FOR UPDATE", (fact_id,)).fetchone()
            if row is None:
                raise FactNotFound(fact_id)
            fact = _fact(row).model_copy(update={**changes, "updated_at": now()})
            try:
                with conn.transaction():  # a savepoint: the unique violation is ours to name
                    conn.execute(
                        "UPDATE memory_facts SET scope = %s, key = %s, text = %s, updated_at = %s WHERE id = %s",
                        (fact.scope, fact.key, fact.text, fact.updated_at, fact_id),
                    )
            except psycopg.errors.UniqueViolation as err:
                assert fact.key is not None
                raise duplicate_key(fact.scope, fact.key) from err
            return fact

    def delete(self, fact_id: str) -> bool:
        with self._transaction() as conn:
            return conn.execute("DELETE FROM memory_facts WHERE id = %s", (fact_id,)).rowcount == 1

    def facts(
        self, scopes: Sequence[str] | None = None, *, limit: int = 100, offset: int = 0
    ) -> builtins.list[StoredFact]:
        check_page(limit, offset)
        params: tuple[Any, ...]
        if scopes is None:
            sql, params = f"SELECT {_COLUMNS} FROM memory_facts {_NEWEST} LIMIT %s OFFSET %s", (limit, offset)
        else:
            wanted = scopes_to_read(scopes)
            if not wanted:
                return []
            sql = f"SELECT {_COLUMNS} FROM memory_facts WHERE scope = ANY(%s) {_NEWEST} LIMIT %s OFFSET %s"
            params = (wanted, limit, offset)
        with self._connection() as conn:
            return [_fact(row) for row in conn.execute(sql, params).fetchall()]

    def search(self, query: str, scopes: Sequence[str], *, limit: int = 10) -> builtins.list[StoredFact]:
        check_page(limit, 0)
        terms = fts5_terms(query)
        wanted = scopes_to_read(scopes)
        if not terms or not wanted:
            return []
        # Each word is \w+ (no quote, backslash or operator) and is quoted once more as a lexeme: the
        # tsquery is a disjunction of plain words whatever the text said.
        tsquery = " | ".join(f"'{term}'" for term in terms)
        sql = (
            f"SELECT {_COLUMNS} FROM memory_facts, to_tsquery('simple', %s) AS q"
            " WHERE words @@ q AND scope = ANY(%s) ORDER BY ts_rank(words, q) DESC, updated_at DESC, n DESC LIMIT %s"
        )
        with self._connection() as conn:
            return [_fact(row) for row in conn.execute(sql, (tsquery, wanted, limit)).fetchall()]

    def scopes(self) -> dict[str, int]:
        with self._connection() as conn:
            rows = conn.execute(
                'SELECT scope, count(*) FROM memory_facts GROUP BY scope ORDER BY scope COLLATE "C"'
            ).fetchall()
        return {scope: int(count) for scope, count in rows}

    def close(self) -> None:
        """The store owns the pool: nothing to close here."""

    # --- internals ---

    def _ready(self) -> PostgresDatabase:
        if not self._migrated:
            with self._migrate_lock:
                if not self._migrated:
                    self.database.migrate(MIGRATIONS)
                    self._migrated = True
        return self.database

    def _connection(self) -> AbstractContextManager[Connection]:
        return self._ready().connection()

    def _transaction(self) -> AbstractContextManager[Connection]:
        return self._ready().transaction()


def _fact(row: Sequence[Any]) -> StoredFact:
    fact_id, scope, text, key, created_at, updated_at, source_thread = row
    return StoredFact(
        id=fact_id,
        scope=scope,
        text=text,
        key=key,
        created_at=created_at.astimezone(UTC),
        updated_at=updated_at.astimezone(UTC),
        source_thread=source_thread,
    )
