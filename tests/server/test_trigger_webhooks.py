"""Inbound webhooks that start threads (POST /v1/triggers/{name}), through a real app and its worker."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from twelvefactor import Agent, FunctionModel, tool
from twelvefactor.errors import UserError
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.auth import generate_secret, signed_headers
from twelvefactor.store import SQLiteStore
from twelvefactor.triggers.hooks import WebhookTrigger
from twelvefactor.triggers.schedules import Schedule

from .conftest import client_for, wait_for_status

pytestmark = pytest.mark.anyio

SECRET = generate_secret()
GITHUB_SECRET = "correct-horse-battery-staple"
PUSH = {"ref": "refs/heads/main", "after": "abc123", "repository": {"full_name": "acme/shop"}}


@tool
def ping() -> str:
    """Ping."""
    return "pong"


def deployer() -> Agent:
    """Answers with whether the payload reached its context window."""

    def decide(messages: object) -> dict[str, str]:
        return {"intent": "done_for_now", "message": "saw abc123" if "abc123" in str(messages) else "saw nothing"}

    return Agent("deployer", tools=[ping], model=FunctionModel(decide))


def settings(tmp_path: Path, **overrides: Any) -> ServerSettings:
    triggers = [
        WebhookTrigger(name="ci", agent="deployer", secret=SECRET, event_type="ci.finished", message="deploy it"),
        WebhookTrigger(
            name="github", agent="deployer", secret=GITHUB_SECRET, event_type="github.push", signature="github"
        ),
    ]
    return ServerSettings(database=str(tmp_path / "service.db"), triggers=triggers, **overrides)


def signed(body: bytes, msg_id: str | None = None, **kwargs: Any) -> dict[str, str]:
    return {
        "content-type": "application/json",
        **signed_headers(SECRET, msg_id or f"msg_{uuid.uuid4().hex}", body, **kwargs),
    }


def github(body: bytes, delivery: str) -> dict[str, str]:
    mac = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-hub-signature-256": f"sha256={mac}", "x-github-delivery": delivery}


async def thread_ids(client: httpx.AsyncClient) -> list[str]:
    return [row["id"] for row in (await client.get("/v1/threads")).json()]


async def test_a_signed_post_starts_a_thread_that_runs_and_a_redelivery_returns_it(tmp_path: Path) -> None:
    body = json.dumps(PUSH).encode()
    headers = signed(body, "msg_2af3")
    async with client_for(create_app([deployer()], settings=settings(tmp_path))) as client:
        first = await client.post("/v1/triggers/ci", content=body, headers=headers)
        assert first.status_code == 202, first.text
        thread_id = first.json()["id"]
        assert thread_id == "hook-ci-msg_2af3"
        event, message = first.json()["events"]
        assert event["type"] == "ci.finished"
        assert event["payload"] == PUSH and event["delivery_id"] == "msg_2af3" and event["trigger"] == "ci"
        assert message == {"type": "user_message", "content": "deploy it", "at": message["at"]}
        done = await wait_for_status(client, thread_id, "done")
        assert done["events"][-1]["message"] == "saw abc123"  # the payload reached the model as data
        again = await client.post("/v1/triggers/ci", content=body, headers=headers)
        assert again.status_code == 200, again.text
        assert again.json()["id"] == thread_id and again.json()["status"] == "done"
        assert await thread_ids(client) == [thread_id]


async def test_forged_stale_or_unsigned_posts_are_401_and_start_nothing(tmp_path: Path) -> None:
    body = json.dumps(PUSH).encode()
    other = generate_secret()
    cases = {
        "unsigned": {"content-type": "application/json"},
        "forged": {**signed(body), "webhook-signature": signed_headers(other, "msg_x", body)["webhook-signature"]},
        "altered": signed(json.dumps({**PUSH, "after": "evil"}).encode()),
        "stale": signed(body, timestamp=int(time.time()) - 3600),
        "github without signature": {"content-type": "application/json", "x-github-delivery": "d1"},
    }
    async with client_for(create_app([deployer()], settings=settings(tmp_path))) as client:
        for case, headers in cases.items():
            path = "/v1/triggers/github" if case.startswith("github") else "/v1/triggers/ci"
            response = await client.post(path, content=body, headers=headers)
            assert response.status_code == 401, (case, response.text)
            assert response.headers["www-authenticate"].startswith("webhook-signature")
        assert await thread_ids(client) == []


async def test_unknown_triggers_404_and_bodies_that_are_not_objects_422(tmp_path: Path) -> None:
    async with client_for(create_app([deployer()], settings=settings(tmp_path, max_text_chars=100))) as client:
        body = json.dumps(PUSH).encode()
        missing = await client.post("/v1/triggers/nope", content=body, headers=signed(body))
        assert missing.status_code == 404 and "no webhook trigger named 'nope'" in missing.json()["detail"]
        for bad, says in [(b"[1, 2]", "JSON array"), (b"{not json", "not valid JSON"), (b'"x"', "JSON string")]:
            response = await client.post("/v1/triggers/ci", content=bad, headers=signed(bad))
            assert response.status_code == 422, (bad, response.text)
            assert says in response.json()["detail"]
        long = json.dumps({"log": "x" * 200}).encode()
        too_long = await client.post("/v1/triggers/ci", content=long, headers=signed(long))
        assert too_long.status_code == 422 and "payload.log" in too_long.json()["detail"]
        assert await thread_ids(client) == []


async def test_a_body_over_the_limit_is_413_and_starts_nothing(tmp_path: Path) -> None:
    app = create_app([deployer()], settings=settings(tmp_path, max_body_bytes=1024))
    async with client_for(app) as client:
        big = json.dumps({"log": "x" * 4000}).encode()
        response = await client.post("/v1/triggers/ci", content=big, headers=signed(big))
        assert response.status_code == 413
        assert await thread_ids(client) == []


async def test_github_deliveries_are_verified_and_keyed_on_the_signed_body(tmp_path: Path) -> None:
    body = json.dumps(PUSH).encode()
    async with client_for(create_app([deployer()], settings=settings(tmp_path))) as client:
        first = await client.post("/v1/triggers/github", content=body, headers=github(body, "72d3162e"))
        assert first.status_code == 202, first.text
        event = first.json()["events"][0]
        assert event["type"] == "github.push" and event["payload"] == PUSH and event["delivery_id"] == "72d3162e"
        # GitHub's redelivery, and a captured body replayed under a made-up delivery id: the same thread.
        for delivery in ("72d3162e", "forged-id"):
            again = await client.post("/v1/triggers/github", content=body, headers=github(body, delivery))
            assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        wrong = {**github(body, "d2"), "x-hub-signature-256": "sha256=" + "0" * 64}
        assert (await client.post("/v1/triggers/github", content=body, headers=wrong)).status_code == 401
        await wait_for_status(client, first.json()["id"], "done")
        assert len(await thread_ids(client)) == 1


def test_triggers_and_schedules_of_agents_not_served_are_refused_at_startup(tmp_path: Path) -> None:
    bad_trigger = settings(tmp_path).model_copy(
        update={"triggers": [WebhookTrigger(name="x", agent="ghost", secret=SECRET, event_type="x.y")]}
    )
    with pytest.raises(UserError, match="trigger 'x' starts agent 'ghost', which is not served here"):
        create_app([deployer()], settings=bad_trigger)
    schedule = Schedule(name="weekly", cron="0 9 * * 1", agent="ghost", message="summary")
    with pytest.raises(UserError, match="schedule 'weekly' starts agent 'ghost'"):
        create_app([deployer()], settings=ServerSettings(database=str(tmp_path / "s.db"), schedules=[schedule]))


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"secret": "whsec_short"}, "not whsec_<base64>|holds"),
        ({"event_type": "tool_result"}, "recorded by the agent itself"),
        ({"event_type": "has space"}, "event type"),
        ({"signature": "github", "secret": "short"}, "guessable"),
    ],
)
def test_bad_trigger_settings_are_refused(fields: dict[str, Any], says: str) -> None:
    trigger = {"name": "ci", "agent": "deployer", "secret": SECRET, "event_type": "ci.finished", **fields}
    with pytest.raises((ValidationError, UserError), match=says):
        ServerSettings(triggers=[trigger])


def test_the_secret_is_not_in_the_repr() -> None:
    trigger = WebhookTrigger(name="ci", agent="deployer", secret=SECRET, event_type="ci.finished")
    assert SECRET not in repr(trigger)


async def test_webhook_to_thread_created_latency(tmp_path: Path) -> None:
    store_path = tmp_path / "service.db"
    app = create_app([deployer()], settings=settings(tmp_path))
    latencies: list[float] = []
    async with client_for(app) as client:
        for _ in range(20):
            body = json.dumps({**PUSH, "after": uuid.uuid4().hex}).encode()
            started = time.perf_counter()
            response = await client.post("/v1/triggers/ci", content=body, headers=signed(body))
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 202
    assert len(SQLiteStore(store_path).list()) == 20
    median_ms = statistics.median(latencies) * 1000
    print(f"webhook -> thread created (202): median {median_ms:.1f} ms, max {max(latencies) * 1000:.1f} ms over 20")
    assert median_ms < 1000


async def test_a_server_with_a_schedule_catches_up_its_latest_run_on_start(tmp_path: Path) -> None:
    every_minute = Schedule(name="every", cron="* * * * *", agent="deployer", message="tick")
    config = ServerSettings(database=str(tmp_path / "service.db"), schedules=[every_minute])
    async with client_for(create_app([deployer()], settings=config)) as client:
        deadline = time.monotonic() + 10
        while not (ids := await thread_ids(client)):
            assert time.monotonic() < deadline, "the scheduler started nothing"
            await asyncio.sleep(0.02)
        assert all(thread_id.startswith("sched-every-") for thread_id in ids)
        done = await wait_for_status(client, ids[0], "done")
        assert done["events"][0]["type"] == "schedule" and done["events"][0]["schedule"] == "every"
