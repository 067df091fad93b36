"""Documents and the passages they are searched as.

A long text is split into passages (``chunk_text``): paragraphs (separated by a blank line) are packed
together up to ``max_chars``; a paragraph longer than that is cut at the last whitespace before the
limit (or at the limit, in a text without any). A document of one passage keeps its id and source; a
document of several has passages ``ID#1``, ``ID#2``... whose sources are ``SOURCE#1``, ``SOURCE#2``...,
so every search result points back at the place it came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

DEFAULT_MAX_CHARS = 1500
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


class Document(BaseModel):
    """A text to index: its ``id`` (adding the same id again replaces it), where it came from (``source``:
    a path, URL or title; the id when left out) and any ``metadata`` to keep with it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    text: str
    source: str = ""
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _source_defaults_to_id(self) -> Document:
        if not self.source:
            object.__setattr__(self, "source", self.id)
        return self


class Passage(BaseModel):
    """One searchable piece of a document: what a backend stores and a search returns."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    document_id: str
    source: str
    text: str


def chunk_text(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """``text`` as passages of at most ``max_chars`` characters, paragraphs kept whole where they fit."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars!r}")
    chunks: list[str] = []
    current = ""
    for paragraph in _paragraphs(text):
        for piece in _cut(paragraph, max_chars):
            if current and len(current) + 2 + len(piece) <= max_chars:
                current += "\n\n" + piece
                continue
            if current:
                chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return chunks


def passages_of(document: Document, max_chars: int = DEFAULT_MAX_CHARS) -> list[Passage]:
    """The passages ``document`` is searched as (see the module docstring for their ids and sources)."""
    chunks = chunk_text(document.text, max_chars)
    if len(chunks) <= 1:
        return [Passage(id=document.id, document_id=document.id, source=document.source, text=document.text.strip())]
    return [
        Passage(id=f"{document.id}#{n}", document_id=document.id, source=f"{document.source}#{n}", text=chunk)
        for n, chunk in enumerate(chunks, start=1)
    ]


def _paragraphs(text: str) -> Iterator[str]:
    for paragraph in _BLANK_LINE.split(text.replace("\r\n", "\n")):
        paragraph = paragraph.strip()
        if paragraph:
            yield paragraph


def _cut(paragraph: str, max_chars: int) -> Iterator[str]:
    while len(paragraph) > max_chars:
        cut = max(paragraph.rfind(" ", 0, max_chars + 1), paragraph.rfind("\n", 0, max_chars + 1))
        cut = cut if cut > 0 else max_chars
        yield paragraph[:cut].rstrip()
        paragraph = paragraph[cut:].lstrip()
    if paragraph:
        yield paragraph
