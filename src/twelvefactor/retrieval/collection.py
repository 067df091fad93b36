"""A named collection of documents, and the two ways its passages enter a thread.

``prefetch(collection)`` is a pre-fetch hook (factor 13): before the thread's first model call it
searches for the first user message and records one ``retrieved`` event, so the model starts with the
passages it will obviously need. ``collection.tool()`` is a search intent the model calls when it needs
more: a read-only tool whose result (passages with their sources and scores) the context inspector
counts as retrieval. Either way the documents are events in the thread, the same on every replay.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Literal, Protocol, get_args

from pydantic import Field

from twelvefactor.errors import UserError
from twelvefactor.events import Event, Retrieved, RetrievedDocument, UserMessage
from twelvefactor.retrieval.documents import DEFAULT_MAX_CHARS, Document, Passage, passages_of
from twelvefactor.thread import Thread
from twelvefactor.tools import Tool, tool

SearchMode = Literal["keyword", "vector", "hybrid"]
MAX_K = 50
_INTENT = re.compile(r"[a-z][a-z0-9_]{0,63}")


class Backend(Protocol):
    """Where a collection's passages live and how they are searched (SQLiteIndex, PostgresIndex)."""

    modes: tuple[SearchMode, ...]

    def replace(self, collection: str, documents: Sequence[Document], passages: Sequence[Passage]) -> None: ...
    def delete(self, collection: str, document_id: str) -> bool: ...
    def count(self, collection: str) -> int: ...
    def get(self, collection: str, document_id: str) -> Document | None: ...
    def search(self, collection: str, query: str, k: int, mode: SearchMode) -> list[RetrievedDocument]: ...
    def close(self) -> None: ...


class Collection:
    """Documents searchable by name: ``add``, ``delete``, ``search``; passages of at most ``max_chars``.

    ``mode`` is how ``search`` ranks by default: ``"hybrid"`` where the backend holds vectors, else
    ``"keyword"`` (BM25).
    """

    def __init__(
        self, name: str, backend: Backend, *, max_chars: int = DEFAULT_MAX_CHARS, mode: SearchMode | None = None
    ) -> None:
        if not name or len(name) > 200:
            raise UserError(f"a collection needs a name of 1 to 200 characters, got {name!r}")
        if max_chars < 100:
            raise UserError(f"max_chars {max_chars!r} is too small for a passage: use at least 100")
        self.name = name
        self.backend = backend
        self.max_chars = max_chars
        self.mode: SearchMode = mode or ("hybrid" if "hybrid" in backend.modes else "keyword")
        self._check_mode(self.mode)

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, {self.backend!r})"

    def add(self, documents: Iterable[Document]) -> int:
        """Index ``documents`` (one transaction), each replacing any earlier one with its id; returns
        how many passages they became."""
        batch = list(documents)
        ids = [document.id for document in batch]
        if len(set(ids)) != len(ids):
            raise UserError(f"documents with the same id in one add: {sorted({i for i in ids if ids.count(i) > 1})}")
        passages = [passage for document in batch for passage in passages_of(document, self.max_chars)]
        self.backend.replace(self.name, batch, passages)
        return len(passages)

    def delete(self, document_id: str) -> bool:
        """Remove a document and its passages; False if there was none with that id."""
        return self.backend.delete(self.name, document_id)

    def get(self, document_id: str) -> Document | None:
        """A document as indexed (its passages' text joined by blank lines), with its metadata."""
        return self.backend.get(self.name, document_id)

    def count(self) -> int:
        """How many documents the collection holds (not passages)."""
        return self.backend.count(self.name)

    def search(self, query: str, k: int = 5, *, mode: SearchMode | None = None) -> list[RetrievedDocument]:
        """The ``k`` passages that best match ``query``, best first, each with its source and score.

        ``query`` may be anything a person or model wrote: it is reduced to its words, never query syntax.
        """
        if not 1 <= k <= MAX_K:
            raise UserError(f"k must be between 1 and {MAX_K}, got {k!r}")
        mode = mode or self.mode
        self._check_mode(mode)
        return self.backend.search(self.name, query, k, mode)

    def retrieved(self, query: str, k: int = 5) -> Retrieved:
        """A search as the event a thread records."""
        return Retrieved(query=query, collection=self.name, documents=tuple(self.search(query, k)))

    def tool(self, name: str = "search_docs", description: str | None = None, k: int = 5) -> type[Tool]:
        """A read-only search intent over this collection: the model gives a query, the result is the
        ``k`` best passages with their sources and scores (counted as retrieval in the context inspector)."""
        if not _INTENT.fullmatch(name):
            raise UserError(
                f"tool name {name!r}: use lower-case letters, digits and underscores, starting with a letter"
            )
        collection = self

        def search(
            query: Annotated[str, Field(description="words to look for in the documents", max_length=2000)],
        ) -> list[dict[str, Any]]:
            return [{"source": doc.source, "score": doc.score, "text": doc.text} for doc in collection.search(query, k)]

        search.__doc__ = description or f"Search the {self.name} documents; results come with their sources."
        cls: type[Tool] = tool(search, name=name, effect="read_only")
        cls.context_section = "retrieval"
        return cls

    def _check_mode(self, mode: str) -> None:
        if mode not in get_args(SearchMode):
            raise UserError(f"search mode {mode!r} is not one of {', '.join(get_args(SearchMode))}")
        if mode not in self.backend.modes:
            raise UserError(
                f"collection {self.name!r} cannot search by {mode!r}: its backend holds no vectors"
                " (give SQLiteIndex an embed=)"
            )


def first_user_message(thread: Thread) -> str:
    """The text of the thread's first user message ('' if it has none)."""
    return next((event.content for event in thread.events if isinstance(event, UserMessage)), "")


def prefetch(
    collection: Collection, query: Callable[[Thread], str] = first_user_message, k: int = 5
) -> Callable[[Thread], Iterable[Event]]:
    """A pre-fetch hook for ``Agent(prefetch=[...])``: one ``retrieved`` event, the ``k`` passages that
    best match ``query(thread)`` (by default the first user message), before the first model call.
    Nothing is recorded when the query is empty."""
    if not 1 <= k <= MAX_K:
        raise UserError(f"k must be between 1 and {MAX_K}, got {k!r}")

    def hook(thread: Thread) -> list[Event]:
        text = query(thread)
        return [collection.retrieved(text, k)] if text.strip() else []

    hook.__name__ = f"prefetch_{collection.name}"
    return hook
