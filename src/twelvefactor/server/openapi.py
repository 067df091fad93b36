"""The published OpenAPI document, made to match what the server really does.

FastAPI describes routes one by one; some truths are the app's, not a route's: every request can get
400 (a Host that is not served, a malformed header) and 503 (the database cannot be written), every
body can get 413, 422 bodies are :class:`ErrorView` (see :func:`validation_error`), and bearer auth
applies only when tokens are configured. :func:`install` post-processes the document once per app.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from twelvefactor.server.schemas import ErrorView, FieldError

__all__ = ["http_error", "install", "validation_error"]

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorView"}}}}
_COMMON = {
    "400": "the Host header is not one this server answers to, or a header (e.g. Last-Event-ID) is malformed",
    "503": "the database cannot be written right now (GET /healthz says why)",
}
_EXAMPLES: dict[str, dict[str, Any]] = {
    "ResponseRequest": {"request_id": "call_1", "approved": True, "idempotency_key": "approve-call_1"},
    "ForkRequest": {"at": 1, "run": False},
    "ToolResultRequest": {"call_id": "call_2", "result": {"name": "Ada Lovelace", "plan": "pro"}},
}
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


def install(app: FastAPI, *, tokens: bool, agents: Iterable[str]) -> None:
    """Make ``app.openapi()`` return the corrected document (computed once, then cached)."""
    served = list(agents)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(FastAPI.openapi(app), tokens=tokens, agents=served)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe(generated: dict[str, Any], *, tokens: bool, agents: list[str]) -> dict[str, Any]:
    document = copy.deepcopy(generated)
    for item in document.get("paths", {}).values():
        for method, op in item.items():
            if method in _METHODS:
                _complete(op, tokens=tokens)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in _VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    if not tokens:
        components.pop("securitySchemes", None)
    launch = schemas.get("LaunchRequest", {})
    if agents and "agent" in launch.get("properties", {}):
        launch["properties"]["agent"]["enum"] = agents
        launch["examples"] = [{"agent": agents[0], "message": "hello"}]
    for name, example in _EXAMPLES.items():
        if name in schemas:
            schemas[name]["examples"] = [example]
    return document


def _complete(op: dict[str, Any], *, tokens: bool) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    for code, description in _COMMON.items():
        responses.setdefault(code, {"description": description, **copy.deepcopy(_ERROR)})
    if "422" in responses:
        responses["422"] = {
            "description": responses["422"].get("description") or "the request does not validate",
            **copy.deepcopy(_ERROR),
        }
    if "requestBody" in op:
        responses.setdefault("413", {"description": "the body is over max_body_bytes", **copy.deepcopy(_ERROR)})
    if op.get("security"):
        if tokens:
            responses.setdefault(
                "401", {"description": "no bearer token, or not one of this server's", **copy.deepcopy(_ERROR)}
            )
        else:
            del op["security"]  # a server without tokens asks for none


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 in the :class:`ErrorView` shape: a one-line summary, then each field at fault."""
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(error) for error in exc.errors()]
    summary = "; ".join(f"{'.'.join(str(part) for part in e.loc)}: {e.msg}" for e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    view = ErrorView(detail=f"invalid request: {summary}{more}", errors=errors)
    return JSONResponse(view.model_dump(mode="json"), status_code=422)


def _field_error(error: Any) -> FieldError:
    message = str(error.get("msg", "invalid"))
    reason = (error.get("ctx") or {}).get("error")
    if reason and str(reason) not in message:
        message = f"{message}: {reason}"
    loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
    return FieldError(loc=loc, msg=message, type=str(error.get("type", "invalid")))


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's HTTPException answer, except that a 405 on an API path lists all its methods in ``Allow``.

    Starlette names only the methods of the first route whose path matched, so a path served by two
    routes (``GET`` and ``POST /v1/threads``) would advertise one. The published document knows them all.
    """
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != 405:
        return await http_exception_handler(request, exc)
    headers = dict(exc.headers or {})
    documented = _methods_of(request.app.openapi(), request.url.path)
    if documented:
        headers["Allow"] = ", ".join(sorted(documented))
    return JSONResponse({"detail": exc.detail}, status_code=405, headers=headers)


def _methods_of(document: dict[str, Any], path: str) -> set[str]:
    methods: set[str] = set()
    for template, item in document.get("paths", {}).items():
        pattern = re.sub(r"\\{[^}/]+\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods.update(method.upper() for method in item if method in _METHODS)
    return methods
