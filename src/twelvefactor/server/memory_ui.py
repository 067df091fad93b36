"""The web UI's Memory page: the facts agents keep, by scope, with forms to add, edit and delete them.

Plain forms (Post/Redirect/Get), checked to come from this site like every UI form, behind the same
sign-in; the facts are untrusted text (a model wrote many of them) and the template escapes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from twelvefactor.errors import FactNotFound, UserError
from twelvefactor.memory import MemoryBackend, StoredFact
from twelvefactor.server._state import runtime_of
from twelvefactor.server.limits import check_texts
from twelvefactor.server.session import require_signed_in
from twelvefactor.server.ui import FormRejected, read_form, render_page, see_other

__all__ = ["PAGE_SIZE", "router"]

PAGE_SIZE: Final = 200

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_signed_in)])


@router.get("/memory", response_class=HTMLResponse)
async def memory_page(request: Request, scope: str | None = None, page: int = 1) -> HTMLResponse:
    """Facts, newest first, grouped by scope; one scope's with ``scope``."""
    return await _page(request, scope=scope or None, page=page)


@router.post("/memory", response_model=None)
async def memory_add(request: Request) -> Response:
    """Add a fact from the form, then show its scope."""
    try:
        form = await read_form(request)
    except FormRejected as exc:
        return _refused(request, exc)
    backend = runtime_of(request).memory
    scope, text, key = form.get("scope", "").strip(), form.get("text", ""), form.get("key", "")
    try:
        if backend is None:
            raise UserError("this server's store keeps no memory")
        check_texts(runtime_of(request).settings.max_text_chars, "text", text)
        fact = await asyncio.to_thread(backend.put, scope, text, key=key or None)
    except UserError as exc:
        return await _page(request, scope=None, page=1, status_code=422, error=str(exc), form=form)
    return see_other(_url(request, {"scope": fact.scope}, fact.id))


@router.post("/memory/{fact_id}/edit", response_model=None)
async def memory_edit(fact_id: str, request: Request) -> Response:
    """Change a fact's text and key from its row's form (a blank key removes it)."""
    try:
        form = await read_form(request)
    except FormRejected as exc:
        return _refused(request, exc)
    shown = form.get("scope") or None
    backend = runtime_of(request).memory
    try:
        if backend is None:
            raise UserError("this server's store keeps no memory")
        check_texts(runtime_of(request).settings.max_text_chars, "text", form.get("text", ""))
        fact = await asyncio.to_thread(backend.edit, fact_id, text=form.get("text", ""), key=form.get("key", ""))
    except FactNotFound as exc:
        return await _page(request, scope=shown, page=1, status_code=404, error=str(exc))
    except UserError as exc:
        return await _page(request, scope=shown, page=1, status_code=422, error=str(exc))
    return see_other(_url(request, {"scope": shown}, fact.id))


@router.post("/memory/{fact_id}/delete", response_model=None)
async def memory_delete(fact_id: str, request: Request) -> Response:
    """Delete a fact (deleting one that is gone already changes nothing), then show the list again."""
    try:
        form = await read_form(request)
    except FormRejected as exc:
        return _refused(request, exc)
    backend = runtime_of(request).memory
    if backend is not None:
        await asyncio.to_thread(backend.delete, fact_id)
    return see_other(_url(request, {"scope": form.get("scope") or None}))


async def _page(
    request: Request,
    *,
    scope: str | None,
    page: int,
    status_code: int = 200,
    error: str | None = None,
    form: Mapping[str, str] | None = None,
) -> HTMLResponse:
    backend = runtime_of(request).memory
    page = max(page, 1)
    facts: list[StoredFact] = []
    scopes: dict[str, int] = {}
    if backend is not None:
        try:
            facts, scopes = await asyncio.to_thread(_read, backend, scope, page)
        except UserError as exc:  # a scope in the query that is no scope
            error, scope, status_code = error or str(exc), None, 422
            facts, scopes = await asyncio.to_thread(_read, backend, None, 1)
    groups: dict[str, list[StoredFact]] = {}
    for fact in facts[:PAGE_SIZE]:
        groups.setdefault(fact.scope, []).append(fact)
    return render_page(
        request,
        "memory.html",
        status_code,
        available=backend is not None,
        groups=dict(sorted(groups.items())),
        scopes=scopes,
        scope=scope,
        page=page,
        more=len(facts) > PAGE_SIZE,
        error=error,
        form=dict(form or {}),
    )


def _read(backend: MemoryBackend, scope: str | None, page: int) -> tuple[list[StoredFact], dict[str, int]]:
    facts = backend.facts(None if scope is None else [scope], limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return facts, backend.scopes()


def _url(request: Request, query: Mapping[str, str | None], anchor: str | None = None) -> str:
    path = str(request.scope.get("root_path", "")) + str(request.app.url_path_for("memory_page"))
    pairs = {k: v for k, v in query.items() if v}
    return path + (f"?{urlencode(pairs)}" if pairs else "") + (f"#fact-{anchor}" if anchor else "")


def _refused(request: Request, exc: FormRejected) -> HTMLResponse:
    return render_page(request, "error.html", exc.status_code, title="Form refused", message=exc.message)
