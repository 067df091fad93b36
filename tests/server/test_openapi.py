"""The published API document tells the truth: error bodies, status codes and auth as the server has them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import client_for, sqlite_app

pytestmark = pytest.mark.anyio

TOKEN = "tok-" + "d" * 32
ERROR_REF = "#/components/schemas/ErrorView"


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in spec["paths"].items() for method, op in item.items()]


def error_ref(op: dict[str, Any], code: str) -> str | None:
    response = op["responses"].get(code)
    if response is None:
        return None
    ref: str = response["content"]["application/json"]["schema"]["$ref"]
    return ref


async def test_validation_errors_have_the_documented_error_shape(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        response = await client.post("/v1/threads", json={"agent": 5})
        assert response.status_code == 422
        body = response.json()
        assert isinstance(body["detail"], str) and "agent" in body["detail"]
        assert body["errors"][0]["loc"] == ["body", "agent"] and body["errors"][0]["type"]
        semantic = await client.post("/v1/threads", json={"agent": "nobody", "message": "hi"})
        assert semantic.status_code == 422 and isinstance(semantic.json()["detail"], str)


async def test_every_operation_documents_the_errors_it_can_return(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "errors" in schemas["ErrorView"]["properties"]
    for method, path, op in operations(spec):
        assert error_ref(op, "400") == ERROR_REF, (method, path)  # a Host that is not served, a bad header
        assert error_ref(op, "503") == ERROR_REF, (method, path)  # the database cannot be written
        if "requestBody" in op or "parameters" in op:
            assert error_ref(op, "422") == ERROR_REF, (method, path)
        if "requestBody" in op:
            assert error_ref(op, "413") == ERROR_REF, (method, path)
    assert schemas["LaunchRequest"]["properties"]["agent"]["enum"] == ["deploybot"]


# Authenticated by a webhook signature, not a bearer token: the resume webhook and the webhook triggers.
SIGNED = ("/v1/webhooks/resume", "/v1/triggers/", "/v1/email/inbound")


async def test_bearer_auth_is_declared_only_when_tokens_are_configured(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        open_spec = (await client.get("/openapi.json")).json()
    assert "securitySchemes" not in open_spec.get("components", {})
    assert all(
        "security" not in op and "401" not in op["responses"]
        for _, p, op in operations(open_spec)
        if not p.startswith(SIGNED)
    )
    (tmp_path / "t").mkdir()
    async with client_for(sqlite_app(tmp_path / "t", api_tokens=[TOKEN])) as client:
        spec = (await client.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})).json()
    assert "bearer" in spec["components"]["securitySchemes"]
    for method, path, op in operations(spec):
        if path.startswith(SIGNED):
            assert "security" not in op and error_ref(op, "401") == ERROR_REF
        else:
            assert op["security"] == [{"bearer": []}] and error_ref(op, "401") == ERROR_REF, (method, path)


async def test_what_the_schema_allows_is_what_the_server_accepts(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        spec = (await client.get("/openapi.json")).json()
        launch = spec["components"]["schemas"]["LaunchRequest"]
        assert {"required": ["message"]}.items() <= launch["anyOf"][0].items()
        nothing = await client.post("/v1/threads", json={"agent": "deploybot"})
        assert nothing.status_code == 422 and "message" in nothing.json()["detail"]
        body = spec["paths"]["/v1/threads/{thread_id}/events"]["post"]["requestBody"]["content"]["application/json"]
        custom = body["schema"]["oneOf"][1]["properties"]["type"]
        assert custom["pattern"] and "human_response" in custom["not"]["enum"]
        thread = (await client.post("/v1/threads", json={"agent": "deploybot", "message": "hi"})).json()
        for bad in ({"type": "page\nr"}, {"type": "pager alert"}, {"type": "pager", "at": "2001-01-01T00:00:00Z"}):
            refused = await client.post(f"/v1/threads/{thread['id']}/events", json=bad)
            assert refused.status_code == 422, (bad, refused.text)
        past = await client.post(f"/v1/threads/{thread['id']}/fork", json={"at": 10_000})
        assert past.status_code == 409 and "past the end" in past.json()["detail"]


async def test_405_lists_every_method_of_the_path(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        response = await client.request("OPTIONS", "/v1/threads")
        assert response.status_code == 405
        assert sorted(m.strip() for m in response.headers["allow"].split(",")) == ["GET", "POST"]
