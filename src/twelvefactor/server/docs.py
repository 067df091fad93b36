"""The API's own description: ``/openapi.json`` and the interactive ``/docs`` page.

Served by this router rather than FastAPI's built-in routes so that they sit behind the same sign-in
as the API when tokens are configured, and so that the docs page runs its inline script by a
per-response nonce instead of needing ``'unsafe-inline'``.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

__all__ = ["OPENAPI_PATH", "openapi_router", "router"]

OPENAPI_PATH = "/openapi.json"
_CDN = "https://cdn.jsdelivr.net"

openapi_router = APIRouter(include_in_schema=False)  # for programs: a bearer token when tokens are set
router = APIRouter(include_in_schema=False)  # for people: the UI's sign-in when tokens are set


@openapi_router.get(OPENAPI_PATH)
async def openapi_document(request: Request) -> JSONResponse:
    document: dict[str, Any] = request.app.openapi()
    return JSONResponse(document)


@router.get("/docs")
async def docs_page(request: Request) -> HTMLResponse:
    root = str(request.scope.get("root_path", ""))
    page = get_swagger_ui_html(openapi_url=root + OPENAPI_PATH, title=f"{request.app.title} - API docs")
    nonce = secrets.token_urlsafe(16)
    html = bytes(page.body).decode().replace("<script", f'<script nonce="{nonce}"')
    csp = (
        f"default-src 'none'; script-src 'nonce-{nonce}' {_CDN}; style-src 'self' 'unsafe-inline' {_CDN};"
        " img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; form-action 'self';"
        " base-uri 'none'; frame-ancestors 'none'"
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": csp, "Cache-Control": "no-store"})
