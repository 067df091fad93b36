"""The web UI where tokens are required: sign in with an API token, a signed session cookie, sign out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import client_for, sqlite_app, wait_for_status

pytestmark = pytest.mark.anyio

TOKEN = "tok-" + "a" * 32
SECRET = "s" * 32
PROD = {"agent": "deploybot", "message": "deploy the latest backend to production"}
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def app_for(tmp_path: Path, **settings: Any) -> Any:
    return sqlite_app(tmp_path, api_tokens=[TOKEN], secret=SECRET, **settings)


async def sign_in(client: httpx.AsyncClient, token: str = TOKEN, next_url: str = "/threads") -> httpx.Response:
    return await client.post("/sign-in", data={"token": token, "next": next_url})


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, f"no hidden field {name!r}"
    return found[1]


async def test_pages_send_a_signed_out_visitor_to_the_sign_in_page(tmp_path: Path) -> None:
    async with client_for(app_for(tmp_path)) as client:
        for url in ("/", "/threads", "/threads/t1", "/docs"):
            response = await client.get(url)
            assert response.status_code == 303, (url, response.status_code)
            assert response.headers["location"].startswith("/sign-in?next=")
        form = await client.get("/sign-in")
        assert form.status_code == 200 and 'name="token"' in form.text and 'type="password"' in form.text
        refused = await client.post("/threads", data=PROD)
        assert refused.status_code == 401
        assert (await client.get("/v1/threads", headers=BEARER)).json() == []


async def test_signing_in_with_a_token_sets_a_safe_session_cookie_and_the_ui_works(tmp_path: Path) -> None:
    async with client_for(app_for(tmp_path)) as client:
        response = await sign_in(client, next_url="/threads?status=waiting")
        assert response.status_code == 303 and response.headers["location"] == "/threads?status=waiting"
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Max-Age=" in cookie
        assert "Secure" not in cookie  # http://: a Secure cookie would never come back
        assert (await client.get("/threads")).status_code == 200
        launched = await client.post("/threads", data=PROD)
        assert launched.status_code == 303
        thread_id = launched.headers["location"].rsplit("/", 1)[1]
        thread = await wait_for_status(client, thread_id, "waiting")  # reads through the API with the cookie
        page = (await client.get(f"/threads/{thread_id}")).text
        form = {"request_id": hidden(page, "request_id"), "idempotency_key": hidden(page, "idempotency_key")}
        assert (
            await client.post(f"/threads/{thread_id}/respond", data={**form, "decision": "approve"})
        ).status_code == 303
        await wait_for_status(client, thread["id"], "done")
        # The session reads the API (the page's live stream needs it) but API writes still need a bearer token.
        assert (await client.post("/v1/threads", json=PROD)).status_code == 401
        assert (await client.get("/docs")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200


async def test_the_cookie_is_secure_behind_an_https_public_url(tmp_path: Path) -> None:
    app = app_for(tmp_path, public_url="https://agents.example.com", allowed_hosts=["127.0.0.1"])
    async with client_for(app) as client:
        response = await sign_in(client)
        assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]


async def test_a_wrong_token_is_refused_and_sets_no_cookie(tmp_path: Path) -> None:
    async with client_for(app_for(tmp_path)) as client:
        response = await sign_in(client, token="tok-" + "b" * 32)
        assert response.status_code == 401 and "not one of this server" in response.text
        assert "set-cookie" not in response.headers
        assert (await client.get("/threads")).status_code == 303


async def test_sign_in_refuses_cross_site_posts_and_foreign_redirects(tmp_path: Path) -> None:
    async with client_for(app_for(tmp_path)) as client:
        forged = await client.post("/sign-in", data={"token": TOKEN}, headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403 and "set-cookie" not in forged.headers
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "threads"):
            response = await sign_in(client, next_url=target)
            assert response.status_code == 303 and response.headers["location"] == "/threads", target


async def test_tampered_expired_and_revoked_sessions_are_refused(tmp_path: Path) -> None:
    async with client_for(app_for(tmp_path, session_ttl_s=60)) as client:
        await sign_in(client)
        value = client.cookies["twelvefactor_session"]
    async with client_for(app_for(tmp_path)) as client:
        client.cookies.set("twelvefactor_session", value)
        assert (await client.get("/threads")).status_code == 200  # same secret and token: still valid
        client.cookies.set("twelvefactor_session", value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1])
        assert (await client.get("/threads")).status_code == 303
    revoked = sqlite_app(tmp_path, api_tokens=["tok-" + "c" * 32], secret=SECRET)
    async with client_for(revoked) as client:
        client.cookies.set("twelvefactor_session", value)
        assert (await client.get("/threads")).status_code == 303  # its token was removed from the config
    from twelvefactor.server.session import make_session

    settings = app_for(tmp_path).state.runtime.settings
    expired = make_session(settings, TOKEN, now=0)
    async with client_for(app_for(tmp_path)) as client:
        client.cookies.set("twelvefactor_session", expired)
        assert (await client.get("/threads")).status_code == 303


async def test_sign_out_ends_the_session(tmp_path: Path) -> None:
    async with client_for(app_for(tmp_path)) as client:
        await sign_in(client)
        page = (await client.get("/threads")).text
        assert "Sign out" in page
        response = await client.post("/sign-out")
        assert response.status_code == 303 and response.headers["location"] == "/sign-in"
        assert "Max-Age=0" in response.headers["set-cookie"] or "expires=" in response.headers["set-cookie"].lower()
        assert (await client.get("/threads")).status_code == 303
        cross = await client.post("/sign-out", headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403


async def test_docs_and_the_openapi_document_need_auth_when_tokens_are_set(tmp_path: Path) -> None:
    async with client_for(app_for(tmp_path)) as client:
        assert (await client.get("/openapi.json")).status_code == 401
        assert (await client.get("/openapi.json", headers=BEARER)).status_code == 200
    (tmp_path / "open").mkdir()
    async with client_for(sqlite_app(tmp_path / "open")) as client:
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/docs")).status_code == 200
        assert (await client.get("/sign-in")).status_code == 303  # nothing to sign in to: go to the threads
