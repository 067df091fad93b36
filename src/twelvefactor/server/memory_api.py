"""The memory's REST API (/v1/memory): list, add, edit and delete the facts agents keep across threads.

The facts live in the server's store (``memory_backend_for``), so what a person changes here is what the
agents recall at their next run. Same authentication as every /v1 route. Bodies are checked by their
schemas (the scope pattern and the non-blank text mean the same to JSON Schema and to Python) and again by
the backend, so what the document accepts, the server keeps.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from twelvefactor.errors import FactKeyTaken, FactNotFound
from twelvefactor.memory import MemoryBackend, StoredFact
from twelvefactor.memory.facts import MAX_FACT_CHARS, MAX_KEY_CHARS, MAX_OFFSET, MAX_PAGE, SCOPE_PATTERN
from twelvefactor.server._state import runtime_of
from twelvefactor.server.limits import check_texts
from twelvefactor.server.schemas import ErrorView
from twelvefactor.server.strict_json import StrictJSONRoute

__all__ = ["FactEdit", "FactRequest", "FactView", "memory_of", "router"]

router = APIRouter(prefix="/v1", tags=["memory"], route_class=StrictJSONRoute)

_SCOPE = f"^(?:{SCOPE_PATTERN})$"
# At least one character that is not white space to Python (str.split), to JSON Schema and to pydantic alike
# (as schemas.ToolResultRequest.error): a blank fact is refused by the schema, not only by the backend.
_NOT_BLANK = r"[^\s\x1c-\x1f\x85]"
_KEY = r"^[^\x00-\x1f\x7f]*$"
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorView, "description": "no fact with that id (never written, or deleted)"},
    409: {"model": ErrorView, "description": "another fact of the scope has that key"},
}


class FactView(BaseModel):
    """A fact as kept: ``key`` names what it is about (a write with the same scope and key replaces it);
    ``source_thread`` is the thread whose agent wrote it (null: code or a person)."""

    id: str
    scope: str
    text: str
    key: str | None
    created_at: str
    updated_at: str
    source_thread: str | None

    @classmethod
    def of(cls, fact: StoredFact) -> FactView:
        return cls(
            id=fact.id,
            scope=fact.scope,
            text=fact.text,
            key=fact.key,
            created_at=fact.created_at.isoformat(),
            updated_at=fact.updated_at.isoformat(),
            source_thread=fact.source_thread,
        )


class FactRequest(BaseModel):
    """A fact to keep. Idempotent: the scope's fact with the same ``key`` is replaced, and text the scope
    already holds (without a key) is not added twice; either way the answer is the fact as kept."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"scope": "user:alice", "text": "Alice prefers metric units", "key": "units"}]},
    )

    scope: str = Field(pattern=_SCOPE, description="'global' or 'kind:name', e.g. 'user:alice', 'tenant:acme'")
    text: str = Field(max_length=MAX_FACT_CHARS, pattern=_NOT_BLANK, description="the fact, one line")
    key: str | None = Field(
        default=None, max_length=MAX_KEY_CHARS, pattern=_KEY, description="what it is about, e.g. 'timezone'"
    )


class FactEdit(BaseModel):
    """What to change of a fact: its text, scope or key (a field left out or null is kept; ``key: ""`` removes
    the key)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"minProperties": 1, "examples": [{"text": "Alice prefers imperial units"}]},
    )

    text: str | None = Field(default=None, max_length=MAX_FACT_CHARS, pattern=_NOT_BLANK)
    scope: str | None = Field(default=None, pattern=_SCOPE)
    key: str | None = Field(default=None, max_length=MAX_KEY_CHARS, pattern=_KEY)

    @model_validator(mode="after")
    def _something_to_change(self) -> FactEdit:
        if not self.model_fields_set:
            raise ValueError("give at least one of `text`, `scope`, `key`")
        return self


def memory_of(request: Request) -> MemoryBackend:
    """The server's memory backend (its store's), or 404 where the store keeps none."""
    backend = runtime_of(request).memory
    if backend is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this server's store keeps no memory")
    return backend


@router.get("/memory", response_model=list[FactView])
async def list_facts(
    request: Request,
    scope: Annotated[str | None, Query(pattern=_SCOPE, description="only this scope's facts")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[FactView]:
    """Facts, newest first (last written first), of one scope or all."""
    backend = memory_of(request)
    facts = await asyncio.to_thread(backend.facts, None if scope is None else [scope], limit=limit, offset=offset)
    return [FactView.of(fact) for fact in facts]


@router.post("/memory", status_code=status.HTTP_201_CREATED, response_model=FactView)
async def add_fact(body: FactRequest, request: Request) -> FactView:
    """Keep a fact; agents whose threads read its scope see it from their next run."""
    backend = memory_of(request)
    check_texts(runtime_of(request).settings.max_text_chars, "text", body.text)
    fact = await asyncio.to_thread(backend.put, body.scope, body.text, key=body.key)
    return FactView.of(fact)


@router.get("/memory/{fact_id}", response_model=FactView, responses={404: _ERRORS[404]})
async def get_fact(fact_id: str, request: Request) -> FactView:
    """One fact."""
    backend = memory_of(request)
    return FactView.of(await _found(asyncio.to_thread(backend.get, fact_id)))


@router.patch("/memory/{fact_id}", response_model=FactView, responses=_ERRORS)
async def edit_fact(fact_id: str, body: FactEdit, request: Request) -> FactView:
    """Change a fact's text, scope or key. 409 (and nothing changes) if its scope has another fact with that key."""
    backend = memory_of(request)
    check_texts(runtime_of(request).settings.max_text_chars, "text", body.text)
    try:
        fact = await _found(asyncio.to_thread(backend.edit, fact_id, text=body.text, scope=body.scope, key=body.key))
    except FactKeyTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return FactView.of(fact)


@router.delete(
    "/memory/{fact_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={404: _ERRORS[404]},
)
async def delete_fact(fact_id: str, request: Request) -> Response:
    """Delete a fact for good; agents stop seeing it from their next recall (threads keep what they saw)."""
    backend = memory_of(request)
    if not await asyncio.to_thread(backend.delete, fact_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(FactNotFound(fact_id)))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _found(pending: Any) -> StoredFact:
    try:
        fact: StoredFact = await pending
    except FactNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return fact
