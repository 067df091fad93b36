"""Collections in SQLite: FTS5 full text ranked by BM25, and vectors beside it when given an embedder.

The tables are the index's own (``retrieval_*``), so the file may be a SQLiteStore's: its threads and
its documents then back up together. ``":memory:"`` keeps an index in this process only. Words are
matched by their Porter stems (English: "refunds" finds "refund"), accents ignored. A query is
made safe by ``_fts.fts5_query`` (its words, each quoted, joined with OR): no text can reach FTS5's
query syntax. A keyword score is BM25 negated (higher is better); a vector score is the cosine
similarity; a hybrid score is the reciprocal-rank fusion of both rankings.

One connection behind a lock: writes are one transaction each (a document's old passages leave and
its new ones arrive together), reads are short. The vectors of a collection are read into one matrix
on its first vector search and again only after a write (this process's, or another's: ``PRAGMA
data_version``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twelvefactor._fts import fts5_query, fts5_terms
from twelvefactor.errors import RetrievalError, UserError
from twelvefactor.events import RetrievedDocument
from twelvefactor.retrieval.documents import Document, Passage
from twelvefactor.retrieval.vectors import Embed, embed_matrix, fuse, nearest, numpy_module

if TYPE_CHECKING:
    from twelvefactor.retrieval.collection import SearchMode
    from twelvefactor.retrieval.vectors import Matrix

_PASSAGES = """
CREATE TABLE IF NOT EXISTS retrieval_documents (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    source TEXT NOT NULL,
    metadata TEXT NOT NULL,
    PRIMARY KEY (collection, id)
);
CREATE TABLE IF NOT EXISTS retrieval_passages (
    pk INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    document_id TEXT NOT NULL,
    id TEXT NOT NULL,
    source TEXT NOT NULL,
    text TEXT NOT NULL,
    UNIQUE (collection, id)
);
CREATE INDEX IF NOT EXISTS retrieval_passages_document ON retrieval_passages (collection, document_id);
CREATE VIRTUAL TABLE IF NOT EXISTS retrieval_fts USING fts5(
    text, content='retrieval_passages', content_rowid='pk', tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TABLE IF NOT EXISTS retrieval_vectors (pk INTEGER PRIMARY KEY, vector BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS retrieval_passages_ai AFTER INSERT ON retrieval_passages BEGIN
    INSERT INTO retrieval_fts (rowid, text) VALUES (new.pk, new.text);
END;
CREATE TRIGGER IF NOT EXISTS retrieval_passages_ad AFTER DELETE ON retrieval_passages BEGIN
    INSERT INTO retrieval_fts (retrieval_fts, rowid, text) VALUES ('delete', old.pk, old.text);
    DELETE FROM retrieval_vectors WHERE pk = old.pk;
END;
"""

# The index's schema as a named list: each applied once per database, recorded in retrieval_migrations.
MIGRATIONS: list[tuple[str, str]] = [("r001_passages_fts_vectors", _PASSAGES)]

_COUNT = "SELECT count(*) FROM retrieval_fts WHERE retrieval_fts MATCH ?"
# From this many passages on, a keyword search drops terms that are in more than half of them.
_PRUNE_FROM = 1000
# Each hybrid search ranks this many candidates per side (at least) before fusing them.
_HYBRID_DEPTH = 20


class SQLiteIndex:
    """Document collections in a SQLite file (``":memory:"`` too): FTS5/BM25 always; with ``embed``,
    vectors too, and searches may be ``"vector"`` or ``"hybrid"``."""

    def __init__(self, path: str | Path = ":memory:", *, embed: Embed | None = None, timeout_s: float = 5.0) -> None:
        self.path = str(path)
        self.embed = embed
        if embed is not None:
            numpy_module()  # say now, not at the first add, that the extra is missing
        self.modes: tuple[SearchMode, ...] = ("keyword", "vector", "hybrid") if embed else ("keyword",)
        self._lock = threading.Lock()
        self._writes = 0
        self._matrices: dict[str, tuple[tuple[int, int], list[int], Matrix]] = {}
        self._counts: tuple[tuple[int, int], int, dict[str, int]] = ((-1, -1), 0, {})
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise RetrievalError(f"cannot open the document index {self.path!r}: {exc}") from exc
        try:
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._migrate()
        except sqlite3.Error as exc:
            self._conn.close()
            raise RetrievalError(f"cannot open the document index {self.path!r}: {exc}") from exc

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS retrieval_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        applied = {name for (name,) in conn.execute("SELECT name FROM retrieval_migrations")}
        for name, script in MIGRATIONS:
            if name in applied:
                continue  # no write lock to open a file whose schema is current
            conn.execute("BEGIN IMMEDIATE")  # a process opening the file at the same time waits, then skips it
            try:
                if conn.execute("SELECT 1 FROM retrieval_migrations WHERE name = ?", (name,)).fetchone() is None:
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO retrieval_migrations (name, applied_at) VALUES (?, datetime('now'))", (name,)
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def __repr__(self) -> str:
        return f"SQLiteIndex({self.path!r}, modes={self.modes})"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
                self._writes += 1
            except sqlite3.Error as exc:
                raise RetrievalError(f"cannot write the document index {self.path!r}: {exc}") from exc

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise RetrievalError(f"cannot read the document index {self.path!r}: {exc}") from exc

    # --- writing ---

    def replace(self, collection: str, documents: Sequence[Document], passages: Sequence[Passage]) -> None:
        """Put ``documents`` (split as ``passages``) in ``collection``, in place of any with their ids."""
        vectors = None
        if self.embed is not None and passages:
            vectors = embed_matrix(self.embed, [p.text for p in passages], self._dim(collection))
        with self._transaction() as tx:
            for document in documents:
                self._delete(tx, collection, document.id)
                tx.execute(
                    "INSERT INTO retrieval_documents (collection, id, source, metadata) VALUES (?, ?, ?, ?)",
                    (collection, document.id, document.source, json.dumps(document.metadata)),
                )
            for row, passage in enumerate(passages):
                cursor = tx.execute(
                    "INSERT INTO retrieval_passages (collection, document_id, id, source, text) VALUES (?, ?, ?, ?, ?)",
                    (collection, passage.document_id, passage.id, passage.source, passage.text),
                )
                if vectors is not None:
                    tx.execute(
                        "INSERT INTO retrieval_vectors (pk, vector) VALUES (?, ?)",
                        (cursor.lastrowid, vectors[row].tobytes()),
                    )

    def delete(self, collection: str, document_id: str) -> bool:
        with self._transaction() as tx:
            return self._delete(tx, collection, document_id)

    @staticmethod
    def _delete(tx: sqlite3.Connection, collection: str, document_id: str) -> bool:
        tx.execute("DELETE FROM retrieval_passages WHERE collection = ? AND document_id = ?", (collection, document_id))
        cursor = tx.execute(
            "DELETE FROM retrieval_documents WHERE collection = ? AND id = ?", (collection, document_id)
        )
        return cursor.rowcount > 0

    # --- reading ---

    def count(self, collection: str) -> int:
        return int(self._read("SELECT count(*) FROM retrieval_documents WHERE collection = ?", (collection,))[0][0])

    def get(self, collection: str, document_id: str) -> Document | None:
        rows = self._read(
            "SELECT source, metadata FROM retrieval_documents WHERE collection = ? AND id = ?",
            (collection, document_id),
        )
        if not rows:
            return None
        texts = self._read(
            "SELECT text FROM retrieval_passages WHERE collection = ? AND document_id = ? ORDER BY pk",
            (collection, document_id),
        )
        source, metadata = rows[0]
        text = "\n\n".join(t for (t,) in texts)
        return Document(id=document_id, source=source, text=text, metadata=json.loads(metadata))

    def search(self, collection: str, query: str, k: int, mode: SearchMode) -> list[RetrievedDocument]:
        if mode not in self.modes:
            raise UserError(f"this index searches by {', '.join(self.modes)}, not {mode!r}: give it an embed=")
        if mode == "keyword":
            return self._keyword(collection, query, k)
        if mode == "vector":
            return self._vector(collection, query, k)
        depth = max(k, _HYBRID_DEPTH)
        return fuse([self._keyword(collection, query, depth), self._vector(collection, query, depth)], k)

    def _keyword(self, collection: str, query: str, k: int) -> list[RetrievedDocument]:
        match = fts5_query(" ".join(self._informative(fts5_terms(query))))
        if match is None:
            return []
        rows = self._read(
            "SELECT p.id, p.source, p.text, bm25(retrieval_fts) AS rank"
            " FROM retrieval_fts JOIN retrieval_passages AS p ON p.pk = retrieval_fts.rowid"
            " WHERE retrieval_fts MATCH ? AND p.collection = ? ORDER BY rank LIMIT ?",
            (match, collection, k),
        )
        return [RetrievedDocument(id=i, source=s, text=t, score=round(-rank, 6)) for i, s, t, rank in rows]

    def _vector(self, collection: str, query: str, k: int) -> list[RetrievedDocument]:
        assert self.embed is not None
        pks, matrix = self._matrix(collection)
        if not pks:
            return []
        hits = nearest(matrix, embed_matrix(self.embed, [query], matrix.shape[1]), k)
        if not hits:
            return []
        wanted = [pks[row] for row, _ in hits]
        marks = ",".join("?" * len(wanted))
        found = {
            pk: (i, s, t)
            for pk, i, s, t in self._read(
                f"SELECT pk, id, source, text FROM retrieval_passages WHERE pk IN ({marks})", wanted
            )
        }
        return [
            RetrievedDocument(id=found[pk][0], source=found[pk][1], text=found[pk][2], score=round(score, 4))
            for pk, (_, score) in zip(wanted, hits, strict=True)
            if pk in found
        ]

    def _informative(self, terms: list[str]) -> list[str]:
        """``terms`` less those in more than half the index's passages (the rarest kept if that is all).

        BM25 gives such a term no weight (FTS5 clamps its negative IDF to 1e-6), yet ranking by it
        scores every passage it is in: dropping it keeps the ranking and spares most of the work. Small
        indexes rank everything; what a term's count is stays cached until the next write.
        """
        version = self._version()
        if self._counts[0] != version:
            total = int(self._read("SELECT count(*) FROM retrieval_passages", ())[0][0])
            self._counts = (version, total, {})
        _, total, counts = self._counts
        if total < _PRUNE_FROM or len(terms) < 2:
            return terms
        for term in terms:
            if term not in counts:
                match = fts5_query(term)
                counts[term] = int(self._read(_COUNT, (match,))[0][0]) if match else 0
        kept = [term for term in terms if counts[term] <= total / 2]
        return kept or [min(terms, key=counts.__getitem__)]

    def _version(self) -> tuple[int, int]:
        """Changes with every write to the file, this process's or another's."""
        return self._writes, int(self._read("PRAGMA data_version", ())[0][0])

    def _dim(self, collection: str) -> int | None:
        rows = self._read(
            "SELECT length(v.vector) / 4 FROM retrieval_vectors AS v JOIN retrieval_passages AS p ON p.pk = v.pk"
            " WHERE p.collection = ? LIMIT 1",
            (collection,),
        )
        return int(rows[0][0]) if rows else None

    def _matrix(self, collection: str) -> tuple[list[int], Matrix]:
        np = numpy_module()
        version = self._version()
        cached = self._matrices.get(collection)
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        rows = self._read(
            "SELECT v.pk, v.vector FROM retrieval_vectors AS v JOIN retrieval_passages AS p ON p.pk = v.pk"
            " WHERE p.collection = ? ORDER BY v.pk",
            (collection,),
        )
        pks = [pk for pk, _ in rows]
        dim = len(rows[0][1]) // 4 if rows else 0
        matrix = np.frombuffer(b"".join(blob for _, blob in rows), dtype=np.float32).reshape(len(rows), dim)
        self._matrices[collection] = (version, pks, matrix)
        return pks, matrix


def _statements(script: str) -> Iterator[str]:
    """The statements of ``script`` one by one (a trigger's body holds semicolons of its own)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
