"""The API's own description: ``/openapi.json`` and the interactive ``/docs`` page.

Served by this router rather than FastAPI's built-in routes so that they sit behind the same sign-in
as the API when tokens are configured, and so that the docs page runs its inline script by a
per-response nonce instead of needing ``'unsafe-inline'``. Swagger UI's script and styles come from
this server (the ``fastapi-offline`` package ships them), so the page works without a network.
"""

from __future__ import annotations

import secrets
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles

__all__ = ["DOCS_ASSETS_PATH", "OPENAPI_PATH", "docs_assets", "openapi_router", "router"]

OPENAPI_PATH = "/openapi.json"
DOCS_ASSETS_PATH = "/docs-assets"


def docs_assets() -> StaticFiles:
    """Swagger UI's script, styles and icon, to mount at :data:`DOCS_ASSETS_PATH`."""
    return StaticFiles(directory=str(files("fastapi_offline") / "static"))


openapi_router = APIRouter(include_in_schema=False)  # for programs: a bearer token when tokens are set
router = APIRouter(include_in_schema=False)  # for people: the UI's sign-in when tokens are set


@openapi_router.get(OPENAPI_PATH)
async def openapi_document(request: Request) -> JSONResponse:
    document: dict[str, Any] = request.app.openapi()
    return JSONResponse(document)


@router.get("/docs")
async def docs_page(request: Request) -> HTMLResponse:
    root = str(request.scope.get("root_path", ""))
    assets = root + DOCS_ASSETS_PATH
    page = get_swagger_ui_html(
        openapi_url=root + OPENAPI_PATH,
        title=f"{request.app.title} - API docs",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
    )
    nonce = secrets.token_urlsafe(16)
    html = bytes(page.body).decode().replace("<script", f'<script nonce="{nonce}"')
    csp = (
        f"default-src 'none'; script-src 'nonce-{nonce}' 'self'; style-src 'self' 'unsafe-inline';"
        " img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": csp, "Cache-Control": "no-store"})
