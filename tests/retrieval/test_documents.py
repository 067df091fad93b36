"""Passages: long texts split by paragraph, each passage pointing back at its place in the document."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from twelvefactor.retrieval import Document, chunk_text, passages_of


def test_paragraphs_are_packed_up_to_the_limit_and_never_split_when_they_fit() -> None:
    paragraphs = [f"paragraph {n} " + "word " * 30 for n in range(10)]  # ~170 chars each
    chunks = chunk_text("\n\n".join(paragraphs), max_chars=400)
    assert all(len(chunk) <= 400 for chunk in chunks)
    assert len(chunks) == 5  # two paragraphs fit a passage, three do not
    rebuilt = [p.strip() for chunk in chunks for p in chunk.split("\n\n")]
    assert rebuilt == [p.strip() for p in paragraphs]


def test_a_paragraph_longer_than_the_limit_is_cut_at_whitespace() -> None:
    text = " ".join(f"w{n:04d}" for n in range(400))  # one 2,399-char paragraph
    chunks = chunk_text(text, max_chars=500)
    assert all(len(chunk) <= 500 for chunk in chunks)
    assert " ".join(chunks).split() == text.split()  # no word lost or broken


def test_text_without_whitespace_is_cut_at_the_limit() -> None:
    chunks = chunk_text("x" * 1050, max_chars=500)
    assert [len(c) for c in chunks] == [500, 500, 50]


def test_blank_and_windows_line_endings() -> None:
    assert chunk_text("") == []
    assert chunk_text(" \n\n \n") == []
    assert chunk_text("a\r\n\r\nb", max_chars=100) == ["a\n\nb"]


def test_a_short_document_is_one_passage_with_its_own_id_and_source() -> None:
    [passage] = passages_of(Document(id="faq", source="docs/faq.md", text="  Short.  "))
    assert (passage.id, passage.document_id, passage.source, passage.text) == ("faq", "faq", "docs/faq.md", "Short.")


def test_a_long_document_has_numbered_passages_and_sources() -> None:
    text = "\n\n".join("para " * 50 for _ in range(4))
    passages = passages_of(Document(id="guide", source="docs/guide.md", text=text), max_chars=300)
    assert [p.id for p in passages] == ["guide#1", "guide#2", "guide#3", "guide#4"]
    assert [p.source for p in passages] == [f"docs/guide.md#{n}" for n in range(1, 5)]
    assert {p.document_id for p in passages} == {"guide"}


def test_the_source_defaults_to_the_id_and_an_id_is_required() -> None:
    assert Document(id="a.md", text="x").source == "a.md"
    with pytest.raises(ValidationError):
        Document(id="", text="x")
