"""The web UI's inbox in-process (httpx + ASGI): every pending request across threads, where it was sent
and how each message fared, filters, answering in place, live refresh, escaping and the ``next`` field."""

from __future__ import annotations

import asyncio
import html
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from channels.recording import RecordingChannel
from twelvefactor import Agent, HumanRequest, ScriptedModel, Thread, UserMessage, Wait
from twelvefactor.channels.base import ChannelError
from twelvefactor.channels.config import ContactStep, Route
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.ui import safe_next

from .conftest import client_for, deploybot, wait_for_status

pytestmark = pytest.mark.anyio

EVIL = "<script>alert('x')</script>"
PROD = {"agent": "deploybot", "message": "deploy v1.4.1 to production"}
ASK = {"agent": "asker", "message": "which region?"}


def asker() -> Agent:
    model = ScriptedModel(
        [
            {"intent": "request_human_input", "question": f"Which region {EVIL}?"},
            {"intent": "done_for_now", "message": "thanks"},
        ]
    )
    return Agent("asker", model=model)


def inbox_app(tmp_path: Path) -> tuple[FastAPI, RecordingChannel, RecordingChannel]:
    """deploybot's approvals go to #deploys (fake), then to the boss by "mail", whose delivery fails for
    good; asker's questions go to #help (fake)."""
    fake = RecordingChannel()
    mail = RecordingChannel(name="mail", failures=[ChannelError("mailbox <unavailable>", retryable=False)])
    settings = ServerSettings(
        database=str(tmp_path / "service.db"),
        public_url="https://agents.example.com",
        contacts={
            "release": [
                ContactStep(channel="fake", to="#deploys", wait_s=600),
                ContactStep(channel="mail", to="boss@example.com"),
            ],
            "desk": [ContactStep(channel="fake", to="#help")],
        },
        routes=[Route(contact="release", kind="approval"), Route(contact="desk", kind="input")],
        webhook_backoff_s=0.05,
        escalation_sweep_s=3600.0,  # the tests sweep themselves, with their own clock
    )
    app = create_app([deploybot(), asker()], settings=settings, channels={"fake": fake, "mail": mail})
    return app, fake, mail


async def launch(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/threads", json=body)
    assert response.status_code == 202, response.text
    return await wait_for_status(client, response.json()["id"], "waiting")


async def two_waiting(app: FastAPI, client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """A production deploy escalated to the boss (whose mail failed) and a question, both sent out."""
    rt = app.state.runtime
    deploy = await launch(client, PROD)
    question = await launch(client, ASK)
    await rt.contacts.idle()
    start = time.time()
    rt.contacts.clock = lambda: start + 601  # past #deploys' deadline: the boss is asked next
    assert await asyncio.to_thread(rt.contacts.sweep) == 1
    await rt.contacts.idle()
    await rt.webhooks.idle()
    return deploy, question


def item(page: str, thread_id: str) -> str:
    """The HTML of the inbox entry for ``thread_id``."""
    start = page.index(f'<li id="req-{thread_id}"')
    end = page.find('<li id="req-', start + 1)
    return page[start : end if end != -1 else len(page)]


def field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, f"no hidden field {name!r}"
    return html.unescape(found[1])


async def test_the_inbox_lists_every_pending_request_with_where_it_went_and_how_each_message_fared(
    tmp_path: Path,
) -> None:
    app, _, _ = inbox_app(tmp_path)
    async with client_for(app) as client:
        deploy, question = await two_waiting(app, client)
        response = await client.get("/inbox")
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
        page = response.text
        assert '<a href="/inbox">Inbox</a>' in page  # the nav link
        assert "2 pending requests" in page and "at most 200 waiting threads are read per page" in page
        # Newest first: the question was asked after the deploy.
        assert page.index(f'id="req-{question["id"]}"') < page.index(f'id="req-{deploy["id"]}"')

        approval = item(page, deploy["id"])
        assert '<span class="tag">Approval</span>' in approval and "<strong>deploybot</strong>" in approval
        assert f'href="/threads/{deploy["id"]}"' in approval and "waiting <time" in approval
        assert "<code>deploy_backend</code>" in approval and "&#34;production&#34;" in approval  # tool + arguments
        # Where it was sent: #deploys (delivered), then, escalated, the boss, whose mail failed for good.
        assert re.search(r"<code>#deploys</code>\s*<span class=\"hint\">step 1 of release ·", approval)
        assert re.search(
            r"<code>boss@example.com</code>\s*<span class=\"hint\">step 2 of release · escalated", approval
        )
        assert approval.count("✓ delivered") == 1
        assert "✕ failed after 1 attempt: mail: mailbox &lt;unavailable&gt;" in approval
        assert 'value="approve"' in approval and 'name="next" value="/inbox"' in approval

        asked = item(page, question["id"])
        assert '<span class="tag">Question</span>' in asked and "<strong>asker</strong>" in asked
        assert "<code>#help</code>" in asked and "✓ delivered" in asked and "escalated" not in asked
        assert 'name="answer"' in asked
        # The hostile question is text.
        assert "<script>alert" not in page and "Which region &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;?" in page


async def test_the_inbox_filters_by_agent_channel_and_person_and_unknown_values_show_nothing(
    tmp_path: Path,
) -> None:
    app, _, _ = inbox_app(tmp_path)
    async with client_for(app) as client:
        deploy, question = await two_waiting(app, client)

        async def shown(**params: str) -> set[str]:
            response = await client.get("/inbox", params=params)
            assert response.status_code == 200, response.text
            return {t["id"] for t in (deploy, question) if f'id="req-{t["id"]}"' in response.text}

        assert await shown() == {deploy["id"], question["id"]}
        assert await shown(agent="deploybot") == {deploy["id"]}
        assert await shown(agent="asker") == {question["id"]}
        assert await shown(channel="mail") == {deploy["id"]}
        assert await shown(channel="fake") == {deploy["id"], question["id"]}
        assert await shown(person="#help") == {question["id"]}
        assert await shown(person="boss@example.com", channel="mail", agent="deploybot") == {deploy["id"]}
        assert await shown(person="#help", agent="deploybot") == set()
        for unknown in ({"agent": "nobody"}, {"channel": EVIL}, {"person": "x@y"}, {"page": "7"}):
            assert await shown(**unknown) == set()
        page = (await client.get("/inbox", params={"channel": EVIL})).text
        assert "No pending requests match these filters." in page and "<script>alert" not in page
        assert '<option value="mail">mail</option>' in (await client.get("/inbox")).text  # choices from what was sent
        assert (await client.get("/inbox", params={"page": "x"})).status_code == 422  # a malformed page number


async def test_answering_in_place_resumes_the_thread_and_goes_back_to_the_filtered_inbox(tmp_path: Path) -> None:
    app, _, _ = inbox_app(tmp_path)
    async with client_for(app) as client:
        deploy, question = await two_waiting(app, client)
        page = (await client.get("/inbox", params={"agent": "deploybot", "channel": "mail"})).text
        approval = item(page, deploy["id"])
        form = {name: field(approval, name) for name in ("request_id", "idempotency_key", "next")}
        assert form["next"] == "/inbox?agent=deploybot&channel=mail"
        response = await client.post(f"/threads/{deploy['id']}/respond", data={**form, "decision": "approve"})
        assert response.status_code == 303 and response.headers["location"] == "/inbox?agent=deploybot&channel=mail"
        done = await wait_for_status(client, deploy["id"], "done")
        assert done["events"][-1]["message"] == "Deployed v1.4.1 to production."
        after = (await client.get(response.headers["location"])).text
        assert f'id="req-{deploy["id"]}"' not in after and "No pending requests match these filters." in after

        # A question answered from the unfiltered inbox.
        asked = item((await client.get("/inbox")).text, question["id"])
        form = {name: field(asked, name) for name in ("request_id", "idempotency_key", "next")}
        data = {**form, "decision": "answer", "answer": "eu-west-1"}
        response = await client.post(f"/threads/{question['id']}/respond", data=data)
        assert response.status_code == 303 and response.headers["location"] == "/inbox"
        await wait_for_status(client, question["id"], "done")
        assert "No pending requests." in (await client.get("/inbox")).text


async def test_a_request_answered_elsewhere_leaves_the_live_list(tmp_path: Path) -> None:
    app, _, _ = inbox_app(tmp_path)
    async with client_for(app) as client:
        deploy, question = await two_waiting(app, client)
        page = (await client.get("/inbox", params={"agent": "deploybot"})).text
        assert '<div id="live" data-live="/inbox-list?agent=deploybot" data-poll="' in page
        assert '<script src="/static/live.js" defer></script>' in page
        fragment = await client.get("/inbox-list")
        assert (
            fragment.status_code == 200
            and "<html" not in fragment.text
            and 'id="inbox-list" data-part' in fragment.text
        )
        assert f'id="req-{deploy["id"]}"' in fragment.text
        # The answer form is keyed by its request, so the live script keeps what a person types in it.
        assert f'<div id="form-{deploy["id"]}" data-key="{deploy["pending_request"]["call_id"]}">' in fragment.text

        answer = {"request_id": deploy["pending_request"]["call_id"], "approved": False, "responder": "slack"}
        assert (await client.post(f"/v1/threads/{deploy['id']}/responses", json=answer)).status_code == 200
        fragment = await client.get("/inbox-list")
        assert f'id="req-{deploy["id"]}"' not in fragment.text and f'id="req-{question["id"]}"' in fragment.text


async def test_next_only_leads_back_to_the_inbox(tmp_path: Path) -> None:
    app, _, _ = inbox_app(tmp_path)
    request = Request({"type": "http", "app": app, "root_path": "", "path": "/", "headers": [], "query_string": b""})
    for hostile in (
        "https://evil.example/inbox",
        "//evil.example/inbox",
        "/\\evil.example/inbox",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/inbox\r\nLocation: https://evil.example",
        "inbox",
        "/threads/x",
        "/static/../inbox",
        "/inbox#x",
        "",
        None,
    ):
        assert safe_next(request, hostile) is None, hostile
    assert safe_next(request, "/inbox") == "/inbox"
    assert safe_next(request, "/inbox?agent=deploybot&person=%23help") == "/inbox?agent=deploybot&person=%23help"

    async with client_for(app) as client:
        deploy = await launch(client, PROD)
        page = (await client.get("/inbox")).text
        form = {name: field(item(page, deploy["id"]), name) for name in ("request_id", "idempotency_key")}
        data = {**form, "decision": "approve", "next": "https://evil.example/inbox"}
        response = await client.post(f"/threads/{deploy['id']}/respond", data=data)
        # Answered, and shown the thread as without a `next`.
        assert response.status_code == 303 and response.headers["location"] == f"/threads/{deploy['id']}"
        await wait_for_status(client, deploy["id"], "done")


async def test_a_sub_threads_request_is_in_the_inbox_and_a_workflow_waiting_on_it_is_not(tmp_path: Path) -> None:
    app, _, _ = inbox_app(tmp_path)
    store = app.state.runtime.store
    parent = Thread.new(UserMessage(content="release v2"), agent="release")
    parent = parent.model_copy(
        update={"events": (*parent.events, Wait(call_id="step_1", thread_id="child1")), "version": 2}
    )
    events = (
        UserMessage(content="check the changelog"),
        HumanRequest(call_id="q1", kind="input", question="Is the changelog final?"),
    )
    child = Thread(id="child1", agent="asker", events=events, version=2, parent_id=parent.id)
    await asyncio.to_thread(store.create, parent)
    await asyncio.to_thread(store.create, child)
    async with client_for(app) as client:
        # Written straight to the store (as another process would): the sweep still routes it, once.
        await asyncio.to_thread(app.state.runtime.contacts.sweep)
        await app.state.runtime.webhooks.idle()
        page = (await client.get("/inbox")).text
        assert "1 pending request " in page and f'id="req-{parent.id}"' not in page
        sub = item(page, "child1")
        assert "Is the changelog final?" in sub and f'sub-thread of <a href="/threads/{parent.id}">' in sub
        assert "#help" in sub and "Not sent on any channel" not in sub
