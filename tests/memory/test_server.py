"""Memory over HTTP: the REST API (/v1/memory) and the web UI's Memory page, in-process (httpx + ASGI).

What a person keeps through the API is what an agent of the same server recalls in its next thread."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from server.conftest import client_for, wait_for_status
from twelvefactor import Agent, FunctionModel
from twelvefactor.memory import Memory
from twelvefactor.messages import Message
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.store import SQLiteStore, memory_backend_for

pytestmark = pytest.mark.anyio

TOKEN = "t" * 32
SAME_SITE = {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"}


def app_with_memory(tmp_path: Path, prompts: list[str] | None = None, **settings: Any) -> FastAPI:
    tmp_path.mkdir(exist_ok=True)
    store = SQLiteStore(tmp_path / "service.db")
    memory = Memory(memory_backend_for(store))

    def answer(messages: Sequence[Message]) -> dict[str, Any]:
        if prompts is not None:
            prompts.append(messages[0].content)
        return {"intent": "done_for_now", "message": "ok"}

    agent = Agent("assistant", tools=memory.tools(), memory=memory, model=FunctionModel(answer))
    config = ServerSettings(database=str(tmp_path / "service.db"), **settings)
    return create_app([agent], settings=config, store=store)


async def add(client: httpx.AsyncClient, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = await client.post("/v1/memory", json=body, **kwargs)
    assert response.status_code == 201, response.text
    fact: dict[str, Any] = response.json()
    return fact


# --- the REST API ---


async def test_a_fact_added_through_the_api_is_in_the_next_threads_prompt(tmp_path: Path) -> None:
    prompts: list[str] = []
    async with client_for(app_with_memory(tmp_path, prompts)) as client:
        fact = await add(client, {"scope": "user:alice", "text": "Alice prefers metric units", "key": "units"})
        assert fact["source_thread"] is None and fact["key"] == "units" and fact["id"].startswith("f_")
        launched = await client.post(
            "/v1/threads",
            json={
                "agent": "assistant",
                "message": "how far is Lyon?",
                "events": [{"type": "memory_scope", "scope": "user:alice"}],
            },
        )
        assert launched.status_code == 202, launched.text
        await wait_for_status(client, launched.json()["id"], "done")
        assert "Facts you remember from earlier threads:\n- Alice prefers metric units" in prompts[0]
        other = await client.post("/v1/threads", json={"agent": "assistant", "message": "hi"})
        await wait_for_status(client, other.json()["id"], "done")
        assert "Alice" not in prompts[1]  # a thread without alice's scope does not see her facts


async def test_list_get_edit_and_delete(tmp_path: Path) -> None:
    async with client_for(app_with_memory(tmp_path)) as client:
        tea = await add(client, {"scope": "user:alice", "text": "Alice likes tea"})
        assert await add(client, {"scope": "user:alice", "text": "Alice likes  tea"}) == tea  # idempotent
        await add(client, {"scope": "global", "text": "The office closes at 6pm", "key": "hours"})
        listed = (await client.get("/v1/memory")).json()
        assert [f["text"] for f in listed] == ["The office closes at 6pm", "Alice likes tea"]
        only = (await client.get("/v1/memory", params={"scope": "user:alice", "limit": 1})).json()
        assert only == [tea]
        assert (await client.get(f"/v1/memory/{tea['id']}")).json() == tea

        edited = await client.patch(f"/v1/memory/{tea['id']}", json={"text": "Alice likes green tea", "key": "drink"})
        assert edited.status_code == 200 and edited.json()["text"] == "Alice likes green tea"
        assert edited.json()["key"] == "drink" and edited.json()["created_at"] == tea["created_at"]
        moved = await client.patch(f"/v1/memory/{tea['id']}", json={"scope": "global", "key": "hours"})
        assert moved.status_code == 409 and "already has a fact with key 'hours'" in moved.json()["detail"]
        assert (await client.get(f"/v1/memory/{tea['id']}")).json() == edited.json()

        assert (await client.delete(f"/v1/memory/{tea['id']}")).status_code == 204
        gone = await client.delete(f"/v1/memory/{tea['id']}")
        assert gone.status_code == 404 and "no memory fact with id" in gone.json()["detail"]
        assert (await client.get(f"/v1/memory/{tea['id']}")).status_code == 404
        assert (await client.patch(f"/v1/memory/{tea['id']}", json={"text": "x"})).status_code == 404


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"text": "no scope"}, "body.scope: Field required"),
        ({"scope": "user:alice"}, "body.text: Field required"),
        ({"scope": "alice", "text": "x"}, "body.scope: String should match pattern"),
        ({"scope": "user:al ice", "text": "x"}, "body.scope: String should match pattern"),
        ({"scope": "user:alice", "text": " \n "}, "body.text: String should match pattern"),
        ({"scope": "user:alice", "text": "x" * 2001}, "body.text: String should have at most 2000 characters"),
        ({"scope": "user:alice", "text": "x", "key": "a\nb"}, "body.key: String should match pattern"),
        ({"scope": "user:alice", "text": "x", "id": "f_mine"}, "body.id: Extra inputs are not permitted"),
        ({"scope": "user:alice", "text": 3}, "body.text: Input should be a valid string"),
    ],
)
async def test_bad_bodies_get_422_naming_the_field(tmp_path: Path, body: dict[str, Any], where: str) -> None:
    async with client_for(app_with_memory(tmp_path)) as client:
        response = await client.post("/v1/memory", json=body)
        assert response.status_code == 422
        assert where in response.json()["detail"], response.json()
        assert (await client.get("/v1/memory")).json() == []


async def test_facts_outlive_a_restart_of_the_app(tmp_path: Path) -> None:
    app = app_with_memory(tmp_path)
    async with client_for(app) as client:
        fact = await add(client, {"scope": "global", "text": "kept across restarts"})
    async with client_for(app) as client:  # the lifespan closed the memory's connection; it opens again
        assert (await client.get("/v1/memory")).json() == [fact]
    async with client_for(app_with_memory(tmp_path)) as client:  # another process on the same file
        assert (await client.get("/v1/memory")).json() == [fact]


async def test_bad_edits_queries_and_json_are_refused(tmp_path: Path) -> None:
    async with client_for(app_with_memory(tmp_path)) as client:
        fact = await add(client, {"scope": "user:alice", "text": "Alice likes tea"})
        empty = await client.patch(f"/v1/memory/{fact['id']}", json={})
        assert empty.status_code == 422 and "give at least one of `text`, `scope`, `key`" in empty.json()["detail"]
        blank = await client.patch(f"/v1/memory/{fact['id']}", json={"text": "   "})
        assert blank.status_code == 422
        for params in ({"scope": "not a scope"}, {"limit": 0}, {"limit": 1001}, {"offset": -1}, {"offset": 2**80}):
            assert (await client.get("/v1/memory", params=params)).status_code == 422, params
        broken = await client.post(
            "/v1/memory", content=b'{"scope": "global", "text": ', headers={"content-type": "application/json"}
        )
        assert broken.status_code == 422 and "JSON" in broken.json()["detail"]
        surrogate = await client.post(
            "/v1/memory",
            content=b'{"scope": "global", "text": "\\ud83d"}',
            headers={"content-type": "application/json"},
        )
        assert surrogate.status_code == 422
        assert (await client.get(f"/v1/memory/{fact['id']}")).json() == fact


async def test_the_api_needs_a_token_where_tokens_are_set(tmp_path: Path) -> None:
    async with client_for(app_with_memory(tmp_path, api_tokens=[TOKEN])) as client:
        assert (await client.get("/v1/memory")).status_code == 401
        assert (await client.post("/v1/memory", json={"scope": "global", "text": "x"})).status_code == 401
        api = {"Authorization": f"Bearer {TOKEN}"}
        fact = await add(client, {"scope": "global", "text": "x"}, headers=api)
        assert (await client.patch(f"/v1/memory/{fact['id']}", json={"text": "y"})).status_code == 401
        assert (await client.delete(f"/v1/memory/{fact['id']}")).status_code == 401
        wrong = {"Authorization": "Bearer " + "u" * 32}
        assert (await client.get("/v1/memory", headers=wrong)).status_code == 401
        assert [f["text"] for f in (await client.get("/v1/memory", headers=api)).json()] == ["x"]


async def test_the_document_describes_the_memory_routes_with_examples(tmp_path: Path) -> None:
    async with client_for(app_with_memory(tmp_path)) as client:
        document = (await client.get("/openapi.json")).json()
    assert set(document["paths"]["/v1/memory"]) == {"get", "post"}
    assert set(document["paths"]["/v1/memory/{fact_id}"]) == {"get", "patch", "delete"}
    schemas = document["components"]["schemas"]
    assert schemas["FactRequest"]["examples"][0]["scope"] == "user:alice"
    assert schemas["FactEdit"]["minProperties"] == 1 and schemas["FactEdit"]["examples"]
    assert "409" in document["paths"]["/v1/memory/{fact_id}"]["patch"]["responses"]


# --- the web UI ---


async def test_the_memory_page_lists_facts_by_scope_and_its_forms_add_edit_and_delete(tmp_path: Path) -> None:
    async with client_for(app_with_memory(tmp_path)) as client:
        assert '<a href="/memory">Memory</a>' in (await client.get("/threads")).text  # in the site's nav
        added = await client.post(
            "/memory", data={"scope": "user:alice", "text": "Alice likes tea", "key": ""}, headers=SAME_SITE
        )
        assert added.status_code == 303 and added.headers["location"].startswith("/memory?scope=user%3Aalice#fact-f_")
        await add(client, {"scope": "global", "text": "The office closes at 6pm"})
        page = (await client.get("/memory")).text
        assert page.index('<h3 class="scope">global</h3>') < page.index('<h3 class="scope">user:alice</h3>')
        assert 'value="Alice likes tea"' in page and "user:alice (1)" in page
        (fact_id,) = re.findall(r'id="fact-(f_[0-9a-f]+)"', (await client.get("/memory?scope=user:alice")).text)

        edited = await client.post(
            f"/memory/{fact_id}/edit",
            data={"text": "Alice likes green tea", "key": "drink", "scope": "user:alice"},
            headers=SAME_SITE,
        )
        assert edited.status_code == 303
        fact = (await client.get(f"/v1/memory/{fact_id}")).json()
        assert (fact["text"], fact["key"]) == ("Alice likes green tea", "drink")

        deleted = await client.post(f"/memory/{fact_id}/delete", data={"scope": "user:alice"}, headers=SAME_SITE)
        assert deleted.status_code == 303 and deleted.headers["location"] == "/memory?scope=user%3Aalice"
        assert (await client.get(f"/v1/memory/{fact_id}")).status_code == 404
        assert "No facts in user:alice yet." in (await client.get("/memory?scope=user:alice")).text


async def test_the_memory_page_reports_bad_input_and_escapes_what_facts_say(tmp_path: Path) -> None:
    async with client_for(app_with_memory(tmp_path)) as client:
        bad = await client.post("/memory", data={"scope": "alice", "text": "kept <b>typed</b>"}, headers=SAME_SITE)
        assert bad.status_code == 422 and "is not &#39;global&#39; or &#39;kind:name&#39;" in bad.text
        assert "kept &lt;b&gt;typed&lt;/b&gt;</textarea>" in bad.text  # what was typed stays, escaped
        evil = '<script>alert(1)</script>" onfocus="x'
        await add(client, {"scope": "user:alice", "text": evil, "key": "<i>k</i>"})
        page = (await client.get("/memory")).text
        assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;&#34; onfocus=&#34;x" in page
        assert "<i>k</i>" not in page
        far = await client.get("/memory", params={"page": 2**70})
        assert far.status_code == 422 and "a page of facts is 1 to 1000 long" in far.text
        unknown_scope = await client.get("/memory", params={"scope": "not a scope"})
        assert unknown_scope.status_code == 422 and "is not &#39;global&#39;" in unknown_scope.text
        missing = await client.post("/memory/f_nope/edit", data={"text": "x"}, headers=SAME_SITE)
        assert missing.status_code == 404 and "no memory fact with id" in missing.text


async def test_memory_forms_from_another_site_are_refused_and_the_page_needs_a_sign_in(tmp_path: Path) -> None:
    async with client_for(app_with_memory(tmp_path)) as client:
        fact = await add(client, {"scope": "global", "text": "keep me"})
        for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            assert (await client.post(f"/memory/{fact['id']}/delete", headers=headers)).status_code == 403
            added = await client.post("/memory", data={"scope": "global", "text": "evil"}, headers=headers)
            assert added.status_code == 403
        assert [f["text"] for f in (await client.get("/v1/memory")).json()] == ["keep me"]
    async with client_for(app_with_memory(tmp_path / "tokens", api_tokens=[TOKEN])) as client:
        page = await client.get("/memory")
        assert page.status_code == 303 and page.headers["location"].startswith("/sign-in?next=")
        assert (await client.post("/memory", data={"scope": "global", "text": "x"})).status_code == 401
