"""What only PostgreSQL shows: its text search configuration, and a server that is not there."""

from __future__ import annotations

import pytest

from twelvefactor import RetrievalError, UserError
from twelvefactor.retrieval import Collection, Document
from twelvefactor.retrieval.postgres import PostgresIndex, tsquery_text


def test_a_query_becomes_quoted_words_only() -> None:
    assert tsquery_text("refund' | !x) & (y:*") == "'refund' | 'x' | 'y'"
    assert tsquery_text("?!") is None


def test_the_language_sets_stemming_and_an_unknown_one_is_a_user_error(pg_empty_url: str) -> None:
    with pytest.raises(UserError, match="'klingon' is no text search configuration"):
        PostgresIndex(pg_empty_url, language="klingon")
    german = PostgresIndex(pg_empty_url, language="german")
    try:
        docs = Collection("de", german)
        docs.add([Document(id="a", text="Die Rückerstattungen werden innerhalb von 14 Tagen gezahlt.")])
        assert [d.id for d in docs.search("Rückerstattung")] == ["a"]
    finally:
        german.close()


def test_two_indexes_opening_a_fresh_database_at_once_both_work(pg_empty_url: str) -> None:
    first, second = PostgresIndex(pg_empty_url), PostgresIndex(pg_empty_url)
    try:
        Collection("c", first).add([Document(id="a", text="shared tables")])
        assert [d.id for d in Collection("c", second).search("tables")] == ["a"]
    finally:
        first.close()
        second.close()


def test_a_server_that_is_not_there_is_a_retrieval_error() -> None:
    with pytest.raises(RetrievalError, match="cannot reach the document database"):
        PostgresIndex("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1", timeout_s=1.0)
