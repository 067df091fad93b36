"""Collections in PostgreSQL: full text (a stored ``tsvector``, a GIN index) ranked by ``ts_rank_cd``.

For deployments whose store is PostgreSQL: the documents live in the same database (tables
``retrieval_*``, created under an advisory lock so processes opening a fresh database at once create
them once). Each row keeps its text search configuration (``language``, e.g. ``english``: stemming and
stop words), so collections in several languages share the tables. A query becomes its words (the
same ``fts5_terms`` as SQLite), each a quoted lexeme OR-ed together and handed to ``to_tsquery`` as a
bound parameter: no text reaches SQL or tsquery syntax. Keyword search only: the local PostgreSQL has
no pgvector; use SQLiteIndex with an embedder for vectors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from twelvefactor._fts import fts5_terms
from twelvefactor.errors import RetrievalError, UserError
from twelvefactor.events import RetrievedDocument
from twelvefactor.retrieval.documents import Document, Passage

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from twelvefactor.retrieval.collection import SearchMode

_LOCK = 0x7266_7472  # the advisory lock key creating the tables holds ("rftr")
_PASSAGES = """
CREATE TABLE IF NOT EXISTS retrieval_documents (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    source TEXT NOT NULL,
    metadata JSONB NOT NULL,
    PRIMARY KEY (collection, id)
);
CREATE TABLE IF NOT EXISTS retrieval_passages (
    pk BIGSERIAL PRIMARY KEY,
    collection TEXT NOT NULL,
    document_id TEXT NOT NULL,
    id TEXT NOT NULL,
    source TEXT NOT NULL,
    text TEXT NOT NULL,
    language REGCONFIG NOT NULL,
    tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector(language, text)) STORED,
    UNIQUE (collection, id)
);
CREATE INDEX IF NOT EXISTS retrieval_passages_document ON retrieval_passages (collection, document_id);
CREATE INDEX IF NOT EXISTS retrieval_passages_tsv ON retrieval_passages USING GIN (tsv);
"""


# The index's schema as a named list: each applied once per database, recorded in retrieval_migrations.
MIGRATIONS: list[tuple[str, str]] = [("r001_passages_tsvector", _PASSAGES)]


def tsquery_text(query: str) -> str | None:
    """``query``'s words as a ``to_tsquery`` input: each a quoted lexeme, OR-ed (None: no word)."""
    terms = fts5_terms(query)  # \w+ only: no quote, operator or parenthesis can be in a term
    return " | ".join(f"'{term}'" for term in terms) if terms else None


class PostgresIndex:
    """Document collections in a PostgreSQL database (``postgresql://...``): full text, BM25-like ranking
    by ``ts_rank_cd``, in the text search configuration ``language``."""

    modes: tuple[SearchMode, ...] = ("keyword",)

    def __init__(self, url: str, *, language: str = "english", max_size: int = 4, timeout_s: float = 10.0) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise UserError("PostgresIndex needs psycopg: pip install 'twelvefactor[postgres]'") from exc
        self._errors: type[Exception] = psycopg.Error
        self.language = language
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url, min_size=1, max_size=max_size, timeout=timeout_s, open=False, kwargs={"autocommit": True}
        )
        try:
            self._pool.open(wait=True, timeout=timeout_s)
        except Exception as exc:
            self._pool.close()
            raise RetrievalError(f"cannot reach the document database: {type(exc).__name__}") from exc
        try:
            with self._connection() as conn:
                if conn.execute("SELECT count(*) FROM pg_ts_config WHERE cfgname = %s", (language,)).fetchone() == (0,):
                    raise UserError(f"PostgresIndex: {language!r} is no text search configuration (try 'english')")
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS retrieval_migrations"
                        " (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                    )
                    applied = {name for (name,) in conn.execute("SELECT name FROM retrieval_migrations")}
                    for name, script in MIGRATIONS:
                        if name not in applied:
                            conn.execute(script)
                            conn.execute("INSERT INTO retrieval_migrations (name) VALUES (%s)", (name,))
        except (RetrievalError, UserError):
            self._pool.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresIndex(language={self.language!r})"

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgresIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except self._errors as exc:
            raise RetrievalError(f"the document database failed: {str(exc).splitlines()[0]}") from exc

    def replace(self, collection: str, documents: Sequence[Document], passages: Sequence[Passage]) -> None:
        with self._connection() as conn, conn.transaction(), conn.cursor() as cursor:
            for document in documents:
                self._delete(cursor, collection, document.id)
            cursor.executemany(
                "INSERT INTO retrieval_documents (collection, id, source, metadata) VALUES (%s, %s, %s, %s)",
                [(collection, d.id, d.source, json.dumps(d.metadata)) for d in documents],
            )
            cursor.executemany(
                "INSERT INTO retrieval_passages (collection, document_id, id, source, text, language)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                [(collection, p.document_id, p.id, p.source, p.text, self.language) for p in passages],
            )

    def delete(self, collection: str, document_id: str) -> bool:
        with self._connection() as conn, conn.transaction(), conn.cursor() as cursor:
            return self._delete(cursor, collection, document_id)

    @staticmethod
    def _delete(cursor: psycopg.Cursor[Any], collection: str, document_id: str) -> bool:
        cursor.execute(
            "DELETE FROM retrieval_passages WHERE collection = %s AND document_id = %s", (collection, document_id)
        )
        cursor.execute("DELETE FROM retrieval_documents WHERE collection = %s AND id = %s", (collection, document_id))
        return cursor.rowcount > 0

    def count(self, collection: str) -> int:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM retrieval_documents WHERE collection = %s", (collection,)
            ).fetchone()
        return int(row[0]) if row else 0

    def get(self, collection: str, document_id: str) -> Document | None:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT source, metadata FROM retrieval_documents WHERE collection = %s AND id = %s",
                (collection, document_id),
            ).fetchone()
            if row is None:
                return None
            texts = conn.execute(
                "SELECT text FROM retrieval_passages WHERE collection = %s AND document_id = %s ORDER BY pk",
                (collection, document_id),
            ).fetchall()
        text = "\n\n".join(t for (t,) in texts)
        return Document(id=document_id, source=row[0], text=text, metadata=row[1])

    def search(self, collection: str, query: str, k: int, mode: SearchMode) -> list[RetrievedDocument]:
        if mode != "keyword":
            raise UserError(f"PostgresIndex searches by keyword only, not {mode!r} (no pgvector here)")
        text = tsquery_text(query)
        if text is None:
            return []
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT id, source, text, ts_rank_cd(tsv, q) AS rank"
                " FROM retrieval_passages, to_tsquery(%s::regconfig, %s) AS q"
                " WHERE collection = %s AND tsv @@ q ORDER BY rank DESC, pk LIMIT %s",
                (self.language, text, collection, k),
            ).fetchall()
        return [RetrievedDocument(id=i, source=s, text=t, score=round(float(r), 4)) for i, s, t, r in rows]
