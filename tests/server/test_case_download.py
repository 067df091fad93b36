"""The thread page's "Download as eval case": the case `threads export --as-case` prints, behind the same sign-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from twelvefactor.evals import dataset_from

from .conftest import client_for, sqlite_app, wait_for_status

pytestmark = pytest.mark.anyio

TOKEN = "tok-" + "a" * 32
PROD = {"agent": "deploybot", "message": "deploy the latest backend to production"}


async def test_the_thread_page_links_a_case_download_that_is_a_valid_case(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        launched = (await client.post("/v1/threads", json=PROD)).json()
        await wait_for_status(client, launched["id"], "waiting")
        page = (await client.get(f"/threads/{launched['id']}")).text
        assert f'href="/threads/{launched["id"]}/case.json" download' in page
        response = await client.get(f"/threads/{launched['id']}/case.json")
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        assert response.headers["content-disposition"] == f'attachment; filename="case-{launched["id"]}.json"'
        [case] = dataset_from([response.json()]).cases
        assert case.input == PROD["message"] and case.source_thread == launched["id"]
        assert case.expect.status == "waiting" and [c.intent for c in case.expect.tool_calls][-1] == "deploy_backend"
        assert (await client.get("/threads/nope/case.json")).status_code == 404


async def test_on_a_server_with_api_tokens_the_download_needs_a_sign_in(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path, api_tokens=[TOKEN], secret="s" * 32)) as client:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        launched = (await client.post("/v1/threads", json=PROD, headers=bearer)).json()
        response = await client.get(f"/threads/{launched['id']}/case.json")
        assert response.status_code == 303 and response.headers["location"].startswith("/sign-in?next=")
        await client.post("/sign-in", data={"token": TOKEN, "next": "/threads"})
        assert (await client.get(f"/threads/{launched['id']}/case.json")).status_code == 200
