"""The REST API in-process (httpx + ASGI) and against a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from twelvefactor import Done, MemoryStore, ModelCall, SQLiteStore, Thread, ToolCall, UserMessage
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.testing import live_server

from .conftest import calculator, client_for, deploybot, sqlite_app, wait_for_status

pytestmark = pytest.mark.anyio

PROD = {"agent": "deploybot", "message": "deploy the latest backend to production"}


async def launch_waiting(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/v1/threads", json=PROD)
    assert response.status_code == 202
    return await wait_for_status(client, response.json()["id"], "waiting")


async def test_launch_returns_at_once_and_the_thread_pauses_for_approval(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        response = await client.post("/v1/threads", json=PROD)
        assert response.status_code == 202
        launched = response.json()
        assert launched["status"] == "running" and launched["version"] == 1
        thread = await wait_for_status(client, launched["id"], "waiting")
        pending = thread["pending_request"]
        assert pending["kind"] == "approval" and pending["intent"] == "deploy_backend"
        assert pending["arguments"] == {"environment": "production", "tag": "v1.4.2"}
        assert [e["type"] for e in thread["events"]][-2:] == ["tool_call", "human_request"]


async def test_approving_resumes_the_thread_to_done(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch_waiting(client)
        request_id = thread["pending_request"]["call_id"]
        answer = {"request_id": request_id, "approved": True, "idempotency_key": "click-1"}
        response = await client.post(f"/v1/threads/{thread['id']}/responses", json=answer)
        assert response.status_code == 200
        done = await wait_for_status(client, thread["id"], "done")
        assert done["events"][-1]["message"] == "Deployed v1.4.2 to production."


async def test_a_denial_with_a_reason_reaches_the_agent(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch_waiting(client)
        answer = {"request_id": thread["pending_request"]["call_id"], "approved": False, "text": "freeze"}
        assert (await client.post(f"/v1/threads/{thread['id']}/responses", json=answer)).status_code == 200
        done = await wait_for_status(client, thread["id"], "done")
        assert done["events"][-1]["message"] == "Deploy cancelled by a human (freeze)."
        assert not any(e["type"] == "tool_result" and e["intent"] == "deploy_backend" for e in done["events"])


async def test_the_same_idempotency_key_is_applied_once(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch_waiting(client)
        answer = {"request_id": thread["pending_request"]["call_id"], "approved": True, "idempotency_key": "k"}
        first, second = await asyncio.gather(
            client.post(f"/v1/threads/{thread['id']}/responses", json=answer),
            client.post(f"/v1/threads/{thread['id']}/responses", json=answer),
        )
        assert first.status_code == second.status_code == 200
        done = await wait_for_status(client, thread["id"], "done")
        assert [e["type"] for e in done["events"]].count("human_response") == 1


async def test_answering_a_thread_that_is_not_waiting_or_another_request_is_409_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch_waiting(client)
        wrong = await client.post(
            f"/v1/threads/{thread['id']}/responses", json={"request_id": "call_999", "approved": True}
        )
        assert wrong.status_code == 409 and "'call_999' is not the pending request" in wrong.json()["detail"]
        assert (await client.get(f"/v1/threads/{thread['id']}")).json()["version"] == thread["version"]

        staging = await client.post("/v1/threads", json={"agent": "deploybot", "message": "deploy to staging"})
        done = await wait_for_status(client, staging.json()["id"], "done")
        late = await client.post(f"/v1/threads/{done['id']}/responses", json={"request_id": "call_1", "approved": True})
        assert late.status_code == 409 and "not waiting" in late.json()["detail"]
        assert (await client.get(f"/v1/threads/{done['id']}")).json()["version"] == done["version"]


async def test_list_filters_by_agent_and_status(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path, deploybot(), calculator())
    async with client_for(app) as client:
        waiting = await launch_waiting(client)
        calc = await client.post("/v1/threads", json={"agent": "calculator", "message": "what is 2 plus 2"})
        await wait_for_status(client, calc.json()["id"], "done")
        listed = (await client.get("/v1/threads", params={"status": "waiting"})).json()
        assert [row["id"] for row in listed] == [waiting["id"]]
        by_agent = (await client.get("/v1/threads", params={"agent": "calculator"})).json()
        assert [row["id"] for row in by_agent] == [calc.json()["id"]]
        assert len((await client.get("/v1/threads")).json()) == 2
        agents = (await client.get("/v1/agents")).json()
        assert {a["name"] for a in agents} == {"deploybot", "calculator"}


async def test_a_trigger_event_is_appended_and_forged_agent_events_are_refused(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch_waiting(client)
        appended = await client.post(
            f"/v1/threads/{thread['id']}/events", json={"type": "pager_alert", "severity": "high"}
        )
        assert appended.status_code == 202 and appended.json()["events"][-1]["severity"] == "high"
        assert appended.json()["status"] == "waiting"  # a trigger does not answer the request
        for forged in ({"type": "human_response", "request_id": "x", "approved": True}, {"type": "tool_result"}):
            refused = await client.post(f"/v1/threads/{thread['id']}/events", json=forged)
            assert refused.status_code == 422 and "cannot be appended" in refused.json()["detail"]
        bad = await client.post(f"/v1/threads/{thread['id']}/events", json={"type": "user_message"})
        assert bad.status_code == 422 and "content" in bad.json()["detail"]


async def test_fork_copies_the_first_n_events_and_runs_the_fork(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch_waiting(client)
        forked = await client.post(f"/v1/threads/{thread['id']}/fork", json={"at": 4})
        assert forked.status_code == 201
        child = forked.json()
        assert child["parent_id"] == thread["id"] and child["forked_at"] == 4
        assert child["events"] == thread["events"][:4]
        rerun = await wait_for_status(client, child["id"], "waiting")
        assert rerun["pending_request"]["intent"] == "deploy_backend"
        past = await client.post(f"/v1/threads/{thread['id']}/fork", json={"at": 999})
        assert past.status_code == 409


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/threads", {"agent": "deploybot"}),
        ("/v1/threads", {"agent": "nobody", "message": "hi"}),
        ("/v1/threads", {"message": "hi"}),
        ("/v1/threads", {"agent": "deploybot", "message": "hi", "surprise": 1}),
        ("/v1/threads", {"agent": "deploybot", "message": "hi", "thread_id": "has spaces"}),
    ],
)
async def test_bad_bodies_get_422_with_a_clear_message(tmp_path: Path, path: str, body: dict[str, Any]) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        response = await client.post(path, json=body)
        assert response.status_code == 422, response.text
        assert response.json()["detail"]
        assert (await client.get("/v1/threads")).json() == []


async def test_unknown_ids_are_404(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        for method, path in [
            ("GET", "/v1/threads/nope"),
            ("POST", "/v1/threads/nope/events"),
            ("POST", "/v1/threads/nope/fork"),
            ("GET", "/v1/threads/nope/stream"),
            ("DELETE", "/v1/threads/nope"),
        ]:
            body = {"type": "note"} if path.endswith("events") else {"at": 0} if path.endswith("fork") else None
            response = await client.request(method, path, json=body)
            assert response.status_code == 404, (path, response.text)
            assert "no thread with id 'nope'" in response.json()["detail"]


async def test_delete_removes_a_waiting_thread_for_good(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch_waiting(client)
        deleted = await client.delete(f"/v1/threads/{thread['id']}")
        assert deleted.status_code == 204 and deleted.content == b""
        assert (await client.get(f"/v1/threads/{thread['id']}")).status_code == 404
        assert (await client.get("/v1/threads")).json() == []
        again = await client.delete(f"/v1/threads/{thread['id']}")
        assert again.status_code == 404 and "no thread with id" in again.json()["detail"]
        # The id is free again: launching with it starts a new thread.
        relaunched = await client.post("/v1/threads", json={**PROD, "thread_id": thread["id"]})
        assert relaunched.status_code == 202 and relaunched.json()["version"] == 1


async def test_a_running_thread_cannot_be_deleted_under_its_worker() -> None:
    store = MemoryStore()
    app = create_app([deploybot()], store=store)
    running = store.create(Thread.new(UserMessage(content="deploy to staging"), agent="deploybot", id="busy"))
    # No lifespan, so no worker: the thread stays running while we ask.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        refused = await client.delete("/v1/threads/busy")
        assert refused.status_code == 409 and "is running" in refused.json()["detail"]
        assert store.load("busy") == running
        store.append("busy", Done(message="stopped"))
        assert (await client.delete("/v1/threads/busy")).status_code == 204
    assert store.list() == []


async def test_a_launch_retried_with_the_same_thread_id_creates_one_thread(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        body = {**PROD, "thread_id": "deploy-2026-11-25"}
        first = await client.post("/v1/threads", json=body)
        second = await client.post("/v1/threads", json=body)
        assert first.status_code == second.status_code == 202
        assert first.json()["id"] == second.json()["id"] == "deploy-2026-11-25"
        assert len((await client.get("/v1/threads")).json()) == 1


async def test_the_openapi_document_is_published() -> None:
    app = create_app([deploybot()], store=MemoryStore())
    async with client_for(app) as client:
        spec = (await client.get("/openapi.json")).json()
    for path in (
        "/v1/threads",
        "/v1/threads/{thread_id}",
        "/v1/threads/{thread_id}/responses",
        "/v1/threads/{thread_id}/events",
        "/v1/threads/{thread_id}/fork",
        "/v1/threads/{thread_id}/stream",
    ):
        assert path in spec["paths"], path


async def test_after_a_restart_threads_left_mid_run_resume_from_their_last_event(tmp_path: Path) -> None:
    db = tmp_path / "service.db"
    store = SQLiteStore(db)
    # What a killed server leaves behind: the model chose list_git_tags, the tool never ran.
    crashed = Thread.new(
        UserMessage(content="deploy the latest backend to staging"),
        ModelCall(model="deploybot-demo", raw='{"intent": "list_git_tags"}'),
        ToolCall(call_id="call_2", intent="list_git_tags"),
        agent="deploybot",
        id="left-mid-run",
    )
    store.create(crashed)
    store.close()
    app = create_app([deploybot()], settings=ServerSettings(database=str(db)))
    async with client_for(app) as client:
        done = await wait_for_status(client, "left-mid-run", "done")
    assert [e["type"] for e in done["events"][:4]] == ["user_message", "model_call", "tool_call", "tool_result"]
    assert done["events"][-1]["message"] == "Deployed v1.4.2 to staging."


def test_real_server_streams_events_over_sse_and_concurrent_approvals_apply_once(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)
    with live_server(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        launched = client.post("/v1/threads", json=PROD).json()
        seen: list[str] = []
        with client.stream("GET", f"/v1/threads/{launched['id']}/stream") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    seen.append(line.removeprefix("event: "))
                if seen and seen[-1] == "human_request":
                    break
        assert seen[0] == "user_message" and "tool_call" in seen

        thread = client.get(f"/v1/threads/{launched['id']}").json()
        request_id = thread["pending_request"]["call_id"]

        def approve(key: str) -> int:
            with httpx.Client(base_url=base, timeout=10) as own:
                body = {"request_id": request_id, "approved": True, "idempotency_key": key}
                return own.post(f"/v1/threads/{launched['id']}/responses", json=body).status_code

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2) as pool:
            codes = sorted(pool.map(approve, ["alice-click", "bob-click"]))
        assert codes == [200, 409]  # two different people: exactly one approval applied
        with client.stream("GET", f"/v1/threads/{launched['id']}/stream", params={"since": thread["version"]}) as s:
            for line in s.iter_lines():
                if line == "event: done":
                    break
        final = client.get(f"/v1/threads/{launched['id']}").json()
        assert [e["type"] for e in final["events"]].count("human_response") == 1
        assert final["status"] == "done"
        assert json.loads(json.dumps(final))["events"][-1]["type"] == "done"
