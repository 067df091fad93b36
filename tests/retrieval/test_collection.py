"""What a collection promises on every backend: SQLite FTS5 (in memory and in a file shared with the
thread store) and PostgreSQL full text on a real server. Queries are untrusted text: hostile ones find
words or nothing, and never fail or change anything."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from twelvefactor import RetrievalError, SQLiteStore, Thread, UserError, UserMessage
from twelvefactor.retrieval import Collection, Document, SQLiteIndex

HANDBOOK = [
    Document(id="refunds", source="policies/refunds.md", text="Refunds are paid within 14 days of a return."),
    Document(id="shipping", source="policies/shipping.md", text="Parcels ship from Rotterdam; delivery takes 3 days."),
    Document(id="warranty", source="policies/warranty.md", text="The warranty covers defects for two years."),
    Document(id="returns", source="policies/returns.md", text="Returns are accepted for 30 days; the refund follows."),
]

HOSTILE = [
    "",
    "   ",
    "!!! ??? ...",
    '"',
    '"""',
    "'",
    "NEAR(",
    "NEAR(refund warranty, 2)",
    "*",
    "refund*",
    "-refund",
    "- OR AND NOT",
    "OR",
    "refund OR",
    "text:refund",
    ":",
    "((refund",
    ")",
    "refund) OR (1=1",
    "x'); DROP TABLE retrieval_passages; --",
    "'refund' & !warranty | <-> :*",
    "^refund",
    "{text}: refund",
    "\x00refund",
    "ref\u0000und",
    "ｒｅｆｕｎｄ",
    "refund " * 2000,
    "a" * 10_000,
    "🙂 " * 3000,
]


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgres"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    if request.param == "sqlite-memory":
        backend: object = SQLiteIndex(":memory:")
    elif request.param == "sqlite-file":
        backend = SQLiteIndex(tmp_path / "docs.db")
    else:
        from twelvefactor.retrieval import PostgresIndex

        backend = PostgresIndex(request.getfixturevalue("pg_empty_url"))
    yield backend
    backend.close()  # type: ignore[attr-defined]


@pytest.fixture
def docs(index: SQLiteIndex) -> Collection:
    collection = Collection("handbook", index)
    collection.add(HANDBOOK)
    return collection


def test_search_finds_the_passage_with_its_source_best_first(docs: Collection) -> None:
    found = docs.search("how many days until my refund is paid?", k=3)
    assert found[0].id == "refunds" and found[0].source == "policies/refunds.md"
    assert found[0].text == HANDBOOK[0].text
    scores = [doc.score for doc in found]
    assert all(score is not None for score in scores) and scores[0] > 0  # type: ignore[operator]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]


def test_words_match_their_other_forms(docs: Collection) -> None:
    assert [doc.id for doc in docs.search("defect", k=1)] == ["warranty"]  # "defects" in the text
    assert [doc.id for doc in docs.search("shipped parcel", k=1)] == ["shipping"]


def test_k_bounds_the_results(docs: Collection) -> None:
    assert len(docs.search("days", k=2)) == 2
    assert len(docs.search("days", k=50)) == 3
    for bad in (0, 51):
        with pytest.raises(UserError, match="k must be between"):
            docs.search("days", k=bad)


def test_adding_an_id_again_replaces_the_document(docs: Collection) -> None:
    docs.add([Document(id="refunds", source="policies/refunds-v2.md", text="Refunds now take 5 days.")])
    assert docs.count() == 4
    found = docs.search("refunds", k=5)
    assert [d.source for d in found if d.id == "refunds"] == ["policies/refunds-v2.md"]
    assert docs.search("return paid") and all("14 days" not in d.text for d in docs.search("return paid", k=5))


def test_a_long_document_is_found_by_its_passage(docs: Collection) -> None:
    filler = "\n\n".join(f"Section {n}: nothing of interest here, only filler text." for n in range(60))
    text = filler + "\n\nThe office cat is called Biscuit.\n\n" + filler
    added = docs.add([Document(id="staff", source="wiki/staff.md", text=text)])
    assert added > 2
    [hit] = docs.search("what is the cat called", k=1)
    assert hit.source.startswith("wiki/staff.md#") and "Biscuit" in hit.text and hit.id.startswith("staff#")
    assert docs.delete("staff") and docs.search("Biscuit") == []


def test_delete_removes_a_document_and_says_whether_there_was_one(docs: Collection) -> None:
    assert docs.delete("warranty") is True
    assert docs.delete("warranty") is False
    assert docs.search("warranty defects") == []
    assert docs.count() == 3


def test_collections_in_one_index_are_separate(docs: Collection, index: SQLiteIndex) -> None:
    other = Collection("other", index)
    other.add([Document(id="refunds", text="Other refunds text.")])
    assert [d.text for d in other.search("refunds")] == ["Other refunds text."]
    assert docs.count() == 4 and other.count() == 1
    other.delete("refunds")
    assert docs.search("refunds")[0].id == "refunds"


def test_get_returns_the_document_with_its_metadata(index: SQLiteIndex) -> None:
    docs = Collection("c", index)
    docs.add([Document(id="a", source="a.md", text="Alpha.", metadata={"team": "ops", "tags": ["x"], "n": 2})])
    got = docs.get("a")
    assert got is not None and got.metadata == {"team": "ops", "tags": ["x"], "n": 2} and got.text == "Alpha."
    assert docs.get("missing") is None


def test_ids_repeated_in_one_add_are_refused_and_nothing_is_written(index: SQLiteIndex) -> None:
    docs = Collection("c", index)
    with pytest.raises(UserError, match="same id"):
        docs.add([Document(id="a", text="one"), Document(id="a", text="two")])
    assert docs.count() == 0


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_find_words_or_nothing_and_change_nothing(docs: Collection, query: str) -> None:
    found = docs.search(query, k=5)
    assert all(doc.id in {d.id for d in HANDBOOK} for doc in found)
    if "refund" in query.lower() and "\x00" not in query and "ｒ" not in query:
        assert "refunds" in [doc.id for doc in found] or "returns" in [doc.id for doc in found]
    assert docs.count() == 4
    assert docs.search("warranty")[0].id == "warranty"


def test_the_index_may_share_the_thread_stores_file(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with SQLiteStore(path) as store:
        thread = Thread.new(UserMessage(content="hi"))
        store.create(thread)
        index = SQLiteIndex(path)
        docs = Collection("handbook", index)
        docs.add(HANDBOOK)
        assert store.load(thread.id) == thread
        assert docs.search("warranty")[0].id == "warranty"
        index.close()
    reopened = Collection("handbook", SQLiteIndex(path))
    assert reopened.count() == 4


def test_a_file_that_is_no_database_is_a_retrieval_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just text " * 100)
    with pytest.raises(RetrievalError, match="cannot open the document index"):
        SQLiteIndex(path)
    with SQLiteIndex(tmp_path / "fine.db") as index:
        assert Collection("c", index).search("x") == []


def test_a_write_the_database_refuses_is_a_retrieval_error(tmp_path: Path) -> None:
    path = tmp_path / "docs.db"
    docs = Collection("c", SQLiteIndex(path))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock past the timeout
    try:
        slow = Collection("c", SQLiteIndex(path, timeout_s=0.05))
        with pytest.raises(RetrievalError, match="cannot write the document index"):
            slow.add([Document(id="a", text="x")])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert docs.count() == 0


def test_bad_names_modes_and_sizes_are_user_errors(index: SQLiteIndex) -> None:
    with pytest.raises(UserError, match="name"):
        Collection("", index)
    with pytest.raises(UserError, match="max_chars"):
        Collection("c", index, max_chars=10)
    with pytest.raises(UserError, match="no vectors"):
        Collection("c", index, mode="vector")
    with pytest.raises(UserError, match="not one of"):
        Collection("c", index).search("x", mode="fuzzy")  # type: ignore[arg-type]


def test_a_large_index_ranks_the_same_without_the_words_in_most_passages() -> None:
    # Words in more than half the passages carry no BM25 weight: from 1,000 passages on they are left out
    # of the search, and the ranking must not change.
    index = SQLiteIndex()
    docs = Collection("big", index)
    rare = {n: f"zeta{n % 7}" for n in range(0, 1200, 37)}
    docs.add(
        Document(id=f"d{n}", text=f"common words everywhere {rare.get(n, '')} item {n} " + "filler " * (n % 5))
        for n in range(1200)
    )
    query = "common everywhere zeta3 zeta5"
    pruned = [d.id for d in docs.search(query, k=10)]
    full = index._conn.execute(
        "SELECT p.id FROM retrieval_fts JOIN retrieval_passages AS p ON p.pk = retrieval_fts.rowid"
        " WHERE retrieval_fts MATCH ? ORDER BY bm25(retrieval_fts) LIMIT 10",
        ('"common" OR "everywhere" OR "zeta3" OR "zeta5"',),
    ).fetchall()
    assert pruned == [i for (i,) in full][: len(pruned)]
    assert len(pruned) == sum(1 for word in rare.values() if word in ("zeta3", "zeta5"))
    assert len(docs.search("common everywhere", k=10)) == 10  # all common: the rarest is kept


def test_the_schema_is_applied_once_per_database_and_recorded(index: SQLiteIndex, tmp_path: Path) -> None:
    from twelvefactor.retrieval import postgres, sqlite

    if isinstance(index, SQLiteIndex):
        if index.path == ":memory:":
            return  # one process, one connection: nothing to share
        again = SQLiteIndex(index.path)
        rows = again._conn.execute("SELECT name FROM retrieval_migrations").fetchall()
        again.close()
        assert [name for (name,) in rows] == [name for name, _ in sqlite.MIGRATIONS]
    else:
        with index._connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute("SELECT name FROM retrieval_migrations").fetchall()
        assert [name for (name,) in rows] == [name for name, _ in postgres.MIGRATIONS]


def test_threads_sharing_one_index_add_and_search_at_once(index: SQLiteIndex) -> None:
    import threading

    docs = Collection("shared", index)
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(15):
                docs.add([Document(id=f"t{n}-{i}", text=f"worker{n} wrote item {i} about parcels")])
                assert docs.search(f"worker{n}", k=50)
        except BaseException as exc:  # collected: an assertion in a thread would go unseen
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    assert docs.count() == 60
    assert len(docs.search("worker2", k=50)) == 15
