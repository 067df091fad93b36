"""Every memory backend keeps the same contract: in process memory, in a SQLiteStore's file and in a
PostgresStore's database (a real server, tests/pgserver.py), through one parametrised fixture."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from twelvefactor.errors import FactNotFound, UserError
from twelvefactor.memory import InMemoryBackend, MemoryBackend, SQLiteMemoryBackend
from twelvefactor.memory.facts import MAX_FACT_CHARS
from twelvefactor.store import MemoryStore, SQLiteStore, memory_backend_for

BACKENDS = ["memory", "sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MemoryBackend]:
    if request.param == "memory":
        yield InMemoryBackend()
    elif request.param == "sqlite":
        with SQLiteStore(tmp_path / "t.db") as store:
            yield memory_backend_for(store)
    else:
        from twelvefactor.store.postgres import PostgresStore

        url = request.getfixturevalue("pg_url")
        with PostgresStore(url) as store:
            yield memory_backend_for(store)


def texts(facts: list) -> list[str]:  # type: ignore[type-arg]
    return [fact.text for fact in facts]


# --- writes ---


def test_a_fact_is_kept_with_its_scope_and_read_back_by_id(backend: MemoryBackend) -> None:
    fact = backend.put("user:alice", "  Alice prefers\ntea   to coffee ", source_thread="t1")
    assert (fact.scope, fact.text, fact.key, fact.source_thread) == (
        "user:alice",
        "Alice prefers tea to coffee",
        None,
        "t1",
    )
    assert fact.created_at == fact.updated_at
    assert backend.get(fact.id) == fact
    assert backend.facts(["user:alice"]) == [fact]
    assert backend.facts(["user:bob"]) == []


def test_the_same_text_in_the_same_scope_is_kept_once(backend: MemoryBackend) -> None:
    first = backend.put("user:alice", "Alice is vegetarian")
    again = backend.put("user:alice", "Alice  is vegetarian", source_thread="other")
    assert again == first
    elsewhere = backend.put("user:bob", "Alice is vegetarian")
    assert elsewhere.id != first.id
    assert len(backend.facts()) == 2


def test_writers_racing_to_keep_the_same_fact_keep_it_once(backend: MemoryBackend) -> None:
    # A tool run again after a crash, two processes remembering the same thing: one fact, one id.
    barrier = threading.Barrier(6)

    def write(n: int) -> str:
        barrier.wait()
        keyed = backend.put("user:alice", f"Alice's city is Lyon ({n % 2})", key="city")
        plain = backend.put("user:alice", "Alice likes tea")
        return f"{keyed.id} {plain.id}"

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(write, range(6)))
    assert len({pair.split()[0] for pair in ids}) == 1 and len({pair.split()[1] for pair in ids}) == 1
    assert len(backend.facts()) == 2


def test_a_key_makes_a_write_replace_the_scopes_fact_of_that_key(backend: MemoryBackend) -> None:
    first = backend.put("user:alice", "Alice's timezone is UTC", key="timezone")
    second = backend.put("user:alice", "Alice's timezone is Europe/Paris", key="timezone", source_thread="t9")
    assert second.id == first.id and second.created_at == first.created_at
    assert second.updated_at >= first.updated_at and second.source_thread == "t9"
    assert texts(backend.facts(["user:alice"])) == ["Alice's timezone is Europe/Paris"]
    # The same key in another scope is another fact.
    other = backend.put("user:bob", "Bob's timezone is UTC", key="timezone")
    assert other.id != first.id
    assert backend.get(first.id).text == "Alice's timezone is Europe/Paris"


def test_edit_changes_text_scope_and_key_and_refuses_a_key_the_scope_has(backend: MemoryBackend) -> None:
    fact = backend.put("user:alice", "likes tea")
    backend.put("global", "the office is closed on Fridays", key="office")
    edited = backend.edit(fact.id, text="likes green tea", key="drink")
    assert (edited.text, edited.key, edited.scope) == ("likes green tea", "drink", "user:alice")
    assert backend.get(fact.id) == edited
    assert backend.search("green", ["user:alice"]) == [edited]
    assert backend.search("likes tea", ["user:alice"]) == [edited]  # "tea" still matches, the old text is gone
    moved = backend.edit(fact.id, scope="tenant:acme", key="")
    assert (moved.scope, moved.key) == ("tenant:acme", None)
    with pytest.raises(UserError, match="scope 'global' already has a fact with key 'office'"):
        backend.edit(fact.id, scope="global", key="office")
    assert backend.get(fact.id) == moved  # nothing changed
    with pytest.raises(FactNotFound, match="no memory fact with id 'f_nope'"):
        backend.edit("f_nope", text="x")


def test_delete_removes_a_fact_once(backend: MemoryBackend) -> None:
    fact = backend.put("user:alice", "likes tea")
    assert backend.delete(fact.id) is True
    assert backend.delete(fact.id) is False
    with pytest.raises(FactNotFound):
        backend.get(fact.id)
    assert backend.search("tea", ["user:alice"]) == []


@pytest.mark.parametrize(
    ("scope", "text", "key", "message"),
    [
        ("alice", "x", None, "is not 'global' or 'kind:name'"),
        ("user:", "x", None, "is not 'global' or 'kind:name'"),
        ("user:al ice", "x", None, "is not 'global' or 'kind:name'"),
        ("User:alice", "x", None, "is not 'global' or 'kind:name'"),
        ("user:alice\n", "x", None, "is not 'global' or 'kind:name'"),
        ("user:alice", " \n\t", None, "blank"),
        ("user:alice", "x" * (MAX_FACT_CHARS + 1), None, f"at most {MAX_FACT_CHARS} characters"),
        ("user:alice", "x", "k\x00", "a memory key is a short name"),
        ("user:alice", "x", "k" * 201, "a memory key is a short name"),
    ],
)
def test_bad_writes_are_refused_with_what_to_fix(
    backend: MemoryBackend, scope: str, text: str, key: str | None, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        backend.put(scope, text, key=key)
    assert backend.facts() == []


# --- reads ---


def test_listings_are_newest_first_filtered_by_scope_and_paged(backend: MemoryBackend) -> None:
    for n in range(5):
        backend.put("user:alice", f"fact {n}")
    backend.put("global", "a global fact")
    backend.put("user:alice", "fact 0 again", key="k")
    assert texts(backend.facts(["user:alice"], limit=3)) == ["fact 0 again", "fact 4", "fact 3"]
    assert texts(backend.facts(["user:alice"], limit=3, offset=3)) == ["fact 2", "fact 1", "fact 0"]
    assert texts(backend.facts(limit=2)) == ["fact 0 again", "a global fact"]
    assert len(backend.facts(["global", "user:alice", "global"])) == 7
    assert backend.scopes() == {"global": 1, "user:alice": 6}
    with pytest.raises(UserError, match="a page of facts is 1 to 1000 long"):
        backend.facts(limit=0)


def test_search_ranks_facts_sharing_more_words_first_within_the_scopes_given(backend: MemoryBackend) -> None:
    backend.put("user:alice", "Alice likes green tea in the morning")
    backend.put("user:alice", "Alice drinks coffee at work")
    backend.put("user:alice", "Alice takes her green tea without sugar")
    backend.put("user:bob", "Bob likes green tea too")
    found = backend.search("green tea sugar", ["user:alice"])
    assert texts(found) == ["Alice takes her green tea without sugar", "Alice likes green tea in the morning"]
    assert texts(backend.search("COFFEE", ["user:alice", "global"])) == ["Alice drinks coffee at work"]
    assert texts(backend.search("tea", ["user:bob"])) == ["Bob likes green tea too"]
    assert backend.search("tea", []) == []
    assert len(backend.search("green tea", ["user:alice", "user:bob"], limit=2)) == 2


HOSTILE = [
    '"',
    '""',
    'tea"',
    "'tea'",
    "tea*",
    "*",
    "NEAR(tea coffee)",
    "NEAR(",
    "tea OR",
    "OR",
    "AND NOT",
    "-tea",
    "tea - coffee",
    "text:tea",
    "{text}: tea",
    "^tea",
    "tea) OR (1=1",
    "'; DROP TABLE memory_facts; --",
    "tea & coffee | !sugar",
    "tea:*",
    "\\",
    "\x00tea",
    "",
    "   ",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_search_text_is_words_and_never_syntax(backend: MemoryBackend, query: str) -> None:
    tea = backend.put("user:alice", "Alice likes tea")
    backend.put("user:alice", "Alice drinks coffee")
    found = backend.search(query, ["user:alice"])
    words = {w for w in ("tea", "coffee", "sugar", "text", "near", "or", "and", "not") if w in query.lower()}
    if "tea" in words and "coffee" not in words:
        assert found == [tea]
    if not words & {"tea", "coffee", "alice", "likes", "drinks"}:
        assert found == []
    assert len(backend.facts()) == 2  # nothing dropped, nothing written


def test_a_search_for_many_words_is_bounded(backend: MemoryBackend) -> None:
    backend.put("user:alice", "word199 is here")
    query = " ".join(f"word{n}" for n in range(200))
    # Only the first words of a long query count (_fts.MAX_TERMS): a huge query is not a huge MATCH.
    assert backend.search(query, ["user:alice"]) == []
    assert texts(backend.search("word199 " + query, ["user:alice"])) == ["word199 is here"]


# --- the store's own database ---


def test_sqlite_facts_live_in_the_stores_file_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with SQLiteStore(path) as store:
        backend = memory_backend_for(store)
        fact = backend.put("user:alice", "likes tea", key="drink")
        assert memory_backend_for(store).get(fact.id) == fact  # the server and your code: one database
        assert [name for name, _ in store.applied_migrations() if name.startswith("memory_")] == ["memory_m001_facts"]
    reopened = SQLiteMemoryBackend(path)  # opening again applies nothing twice
    assert reopened.get(fact.id) == fact
    assert reopened.search("tea", ["user:alice"]) == [fact]
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"threads", "events", "memory_facts", "memory_facts_fts"} <= tables
        assert conn.execute("SELECT count(*) FROM migrations WHERE name = 'memory_m001_facts'").fetchone() == (1,)


def test_two_backends_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    one, two = SQLiteMemoryBackend(tmp_path / "m.db"), SQLiteMemoryBackend(tmp_path / "m.db")
    fact = one.put("global", "deploys freeze on Fridays")
    assert two.get(fact.id) == fact
    assert two.put("global", "deploys freeze on Fridays") == fact
    assert two.delete(fact.id) and one.facts() == []


def test_memory_stores_and_private_sqlite_databases_keep_facts_in_process_memory() -> None:
    store = MemoryStore()
    assert isinstance(memory_backend_for(store), InMemoryBackend)
    assert memory_backend_for(store) is memory_backend_for(store)  # the server and your code share its facts
    assert memory_backend_for(MemoryStore()) is not memory_backend_for(store)
    with SQLiteStore(":memory:") as private:
        assert isinstance(memory_backend_for(private), InMemoryBackend)
        assert memory_backend_for(private) is memory_backend_for(private)
    with pytest.raises(UserError, match="no memory backend for a dict"):
        memory_backend_for({})


def test_postgres_facts_live_in_the_stores_database(pg_url: str) -> None:
    import psycopg

    from twelvefactor.store.postgres import PostgresStore

    with PostgresStore(pg_url) as store:
        fact = memory_backend_for(store).put("user:alice", "likes tea")
        assert "memory_m001_facts" in [name for name, _ in store.applied_migrations()]
    with PostgresStore(pg_url) as store:  # another process's view: the same rows
        assert memory_backend_for(store).get(fact.id) == fact
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM memory_facts").fetchone() == (1,)
