"""Vectors (the retrieval-vector extra): WordLlama's wheel-shipped embeddings, your own embedder, and
hybrid search fusing BM25's ranking with the vectors' by reciprocal rank."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from twelvefactor import RetrievalError, UserError
from twelvefactor.events import RetrievedDocument
from twelvefactor.retrieval import Collection, Document, SQLiteIndex, fuse, wordllama_embedder

np = pytest.importorskip("numpy")
needs_wordllama = pytest.mark.skipif(
    importlib.util.find_spec("wordllama") is None, reason="the retrieval-vector extra (wordllama) is not installed"
)

HANDBOOK = [
    Document(id="refunds", text="Refunds are paid within 14 days of a return."),
    Document(id="shipping", text="Parcels ship from Rotterdam; delivery takes 3 days."),
    Document(id="warranty", text="The warranty covers defects for two years."),
    Document(id="holidays", text="Staff vacation requests go to the HR portal."),
]


def letters(texts: list[str]) -> list[list[float]]:
    """A toy embedder: how often each letter a-z occurs."""
    return [[float(text.lower().count(chr(c))) for c in range(97, 123)] for text in texts]


@pytest.fixture(scope="module")
def embed() -> Any:
    if importlib.util.find_spec("wordllama") is None:
        pytest.skip("the retrieval-vector extra (wordllama) is not installed")
    return wordllama_embedder()


@needs_wordllama
def test_vectors_find_a_passage_that_shares_no_word_with_the_question(embed: Any) -> None:
    docs = Collection("h", SQLiteIndex(embed=embed))
    docs.add(HANDBOOK)
    assert docs.search("when do I get my money back", k=1, mode="keyword") == []
    [hit] = docs.search("when do I get my money back", k=1, mode="vector")
    assert hit.id == "refunds" and hit.score is not None and 0 < hit.score <= 1
    assert docs.search("time off for employees", k=1, mode="vector")[0].id == "holidays"


@needs_wordllama
def test_hybrid_is_the_default_and_ranks_what_both_sides_found_first(embed: Any) -> None:
    docs = Collection("h", SQLiteIndex(embed=embed))
    assert docs.mode == "hybrid"
    docs.add(HANDBOOK)
    found = docs.search("money back: refunds", k=4)
    assert found[0].id == "refunds"  # first for both BM25 and the vectors
    assert len(found) == 4  # the vectors rank what BM25 does not match at all


@needs_wordllama
def test_the_embedder_never_touches_the_network_or_wordllamas_own_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    embed = wordllama_embedder(dim=64)
    vectors = embed(["refund", "", "a longer sentence about parcels"])
    assert np.asarray(vectors).shape == (3, 64)
    assert not np.asarray(vectors)[1].any()  # no tokens, no direction
    assert "wordllama.wordllama" not in sys.modules  # its import would configure the root logger
    with pytest.raises(UserError, match="dim must be one of"):
        wordllama_embedder(dim=100)


def test_your_own_embedder_plugs_in() -> None:
    docs = Collection("h", SQLiteIndex(embed=letters), mode="vector")
    docs.add([Document(id="a", text="aaaa"), Document(id="z", text="zzzz zz")])
    assert [d.id for d in docs.search("zz top", k=1)] == ["z"]
    assert docs.search("!!!", k=1) == []  # a zero vector matches nothing


def test_an_embedder_that_changes_size_or_misbehaves_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    Collection("h", SQLiteIndex(path, embed=letters)).add([Document(id="a", text="abc")])
    cases = [
        (lambda texts: [[1.0, 2.0] for _ in texts], "2 dimensions, the collection holds 26"),
        (lambda texts: [[1.0] * 26], "1 vectors .* for 2 texts"),
        (lambda texts: [[float("nan")] * 26 for _ in texts], "non-finite"),
        (lambda texts: "not vectors", "not one vector per text"),
    ]
    for bad, message in cases:
        docs = Collection("h", SQLiteIndex(path, embed=bad))
        with pytest.raises(RetrievalError, match=message):
            docs.add([Document(id="b", text="bcd"), Document(id="c", text="cde")])
        assert docs.count() == 1


def test_another_processes_write_is_seen_by_the_next_vector_search(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    reader = Collection("h", SQLiteIndex(path, embed=letters), mode="vector")
    writer = Collection("h", SQLiteIndex(path, embed=letters), mode="vector")
    writer.add([Document(id="a", text="aaaa")])
    assert [d.id for d in reader.search("aaa")] == ["a"]  # the reader's matrix is now cached
    writer.add([Document(id="z", text="zzzz")])
    writer.delete("a")
    assert [d.id for d in reader.search("zzz")] == ["z"]


def test_reciprocal_rank_fusion() -> None:
    def docs(*ids: str) -> list[RetrievedDocument]:
        return [RetrievedDocument(id=i, source=i, text=i, score=1.0) for i in ids]

    fused = fuse([docs("a", "b", "c"), docs("b", "d")], k=3)
    assert [d.id for d in fused] == ["b", "a", "d"]  # b: 1/62 + 1/61, a: 1/61, d: 1/62, c: 1/63
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61, abs=1e-6)
    assert fuse([[], []], k=3) == []
