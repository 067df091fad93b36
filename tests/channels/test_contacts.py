"""Requests reach people on their channels: routed by configuration, escalated on deadlines (as events),
updated once answered, sent once however many processes look; notifications go out the same way."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

from channels.recording import RecordingChannel
from server.conftest import client_for, deploybot, wait_for_status
from twelvefactor import Agent, FunctionModel, ScriptedModel
from twelvefactor.channels.base import ChannelError
from twelvefactor.channels.config import ContactStep, Route
from twelvefactor.errors import UserError
from twelvefactor.events import HumanContact, HumanRequest
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.contacts import Contacts
from twelvefactor.server.links import read_token
from twelvefactor.server.webhooks import Webhooks
from twelvefactor.store import SQLiteStore
from twelvefactor.tools import Notify, Tool

pytestmark = pytest.mark.anyio
PUBLIC = "https://agents.example.com"


def settings_for(tmp_path: Path, **overrides: Any) -> ServerSettings:
    values: dict[str, Any] = {
        "database": str(tmp_path / "service.db"),
        "public_url": PUBLIC,
        "contacts": {
            "release": [
                ContactStep(channel="fake", to="#deploys", wait_s=600),
                ContactStep(channel="fake", to="boss@example.com"),
            ],
            "team": [ContactStep(channel="fake", to="#team")],
        },
        "routes": [Route(contact="release", kind="approval"), Route(contact="team", kind="notify")],
        "webhook_backoff_s": 0.05,
        "escalation_sweep_s": 3600.0,  # the tests sweep themselves, with their own clock
    }
    return ServerSettings(**{**values, **overrides})


async def launch(client: Any, message: str, agent: str = "deploybot") -> str:
    response = await client.post("/v1/threads", json={"agent": agent, "message": message})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_a_request_goes_to_its_chain_escalates_after_the_deadline_and_every_message_is_updated(
    tmp_path: Path,
) -> None:
    channel = RecordingChannel()
    settings = settings_for(tmp_path)
    app = create_app([deploybot()], settings=settings, channels={"fake": channel})
    rt = app.state.runtime
    async with client_for(app) as client:
        thread_id = await launch(client, "deploy v1.4.1 to production")
        waiting = await wait_for_status(client, thread_id, "waiting")
        (first,) = await channel.wait_sent(1)
        request_id = waiting["pending_request"]["call_id"]
        assert (first.thread_id, first.request_id, first.kind, first.to) == (
            thread_id,
            request_id,
            "approval",
            "#deploys",
        )
        assert first.intent == "deploy_backend" and first.arguments == {"environment": "production", "tag": "v1.4.1"}
        assert first.link is not None and first.link.startswith(f"{PUBLIC}/a/")
        assert first.reply_token is not None
        claims = read_token(settings.secret, first.reply_token)
        assert (claims.thread_id, claims.request_id) == (thread_id, request_id)
        assert first.thread_url == f"{PUBLIC}/threads/{thread_id}" and not first.escalated

        # Before the deadline nothing more happens, however often the sweep runs.
        start = time.time()
        rt.contacts.clock = lambda: start + 599
        assert rt.contacts.sweep() == 0
        # Past it, the next person in the chain is asked: an event on the thread says so.
        rt.contacts.clock = lambda: start + 601
        assert rt.contacts.sweep() == 1
        assert rt.contacts.sweep() == 0  # and only once
        (_, second) = await channel.wait_sent(2)
        assert (second.to, second.step, second.escalated, second.request_id) == (
            "boss@example.com",
            1,
            True,
            request_id,
        )
        thread = rt.store.load(thread_id)
        contacts = [e for e in thread.events if isinstance(e, HumanContact)]
        assert [(c.step, c.to, c.escalated) for c in contacts] == [
            (0, "#deploys", False),
            (1, "boss@example.com", True),
        ]
        assert thread.status == "waiting" and isinstance(thread.waiting_on, HumanRequest)
        # The last step has no deadline: nobody after it.
        rt.contacts.clock = lambda: start + 10_000
        assert rt.contacts.sweep() == 0

        answer = {"request_id": request_id, "approved": False, "text": "not on a Friday", "responder": "boss"}
        assert (await client.post(f"/v1/threads/{thread_id}/responses", json=answer)).status_code == 200
        updated = await channel.wait_updated(2)
        assert sorted(receipt.ref for _, receipt, _ in updated) == ["#deploys:1", "boss@example.com:2"]
        assert all(a.approved is False and a.text == "not on a Friday" and a.responder == "boss" for *_, a in updated)
        await wait_for_status(client, thread_id, "done")
        await rt.webhooks.idle()
        rows = (await client.get(f"/v1/threads/{thread_id}/deliveries")).json()
        assert sorted((r["event_type"], r["state"]) for r in rows) == [
            ("human.answered", "delivered"),
            ("human.answered", "delivered"),
            ("human.request", "delivered"),
            ("human.request", "delivered"),
        ]


async def test_a_failing_channel_is_retried_and_a_permanent_failure_is_recorded(tmp_path: Path) -> None:
    channel = RecordingChannel(failures=[ChannelError("Slack is down (HTTP 503)", retry_after_s=0.05)])
    app = create_app([deploybot()], settings=settings_for(tmp_path), channels={"fake": channel})
    async with client_for(app) as client:
        thread_id = await launch(client, "deploy v1.4.1 to production")
        await wait_for_status(client, thread_id, "waiting")
        await channel.wait_sent(1)
        await app.state.runtime.webhooks.idle()
        (row,) = (await client.get(f"/v1/threads/{thread_id}/deliveries")).json()
        assert row["state"] == "delivered" and row["url"].startswith("channel:fake")
        assert [a["error"] for a in row["attempts"]] == ["fake: Slack is down (HTTP 503)", None]

    gone = RecordingChannel(failures=[ChannelError("channel_not_found", retryable=False)])
    (tmp_path / "b").mkdir()
    app = create_app([deploybot()], settings=settings_for(tmp_path / "b"), channels={"fake": gone})
    async with client_for(app) as client:
        thread_id = await launch(client, "deploy v1.4.1 to production")
        await wait_for_status(client, thread_id, "waiting")
        await app.state.runtime.contacts.idle()
        await app.state.runtime.webhooks.idle()
        (row,) = (await client.get(f"/v1/threads/{thread_id}/deliveries")).json()
        assert row["state"] == "failed" and len(row["attempts"]) == 1 and gone.sent == []


async def test_two_processes_contact_each_person_once(tmp_path: Path) -> None:
    channel = RecordingChannel()
    settings = settings_for(tmp_path)
    app = create_app([deploybot()], settings=settings, channels={"fake": channel})
    async with client_for(app) as client:
        thread_id = await launch(client, "deploy v1.4.1 to production")
        await wait_for_status(client, thread_id, "waiting")
        await channel.wait_sent(1)
        # A second process on the same database sweeps the same waiting thread, before and after a deadline.
        with SQLiteStore(settings.database) as other_store:
            other_channel = RecordingChannel()
            outbox = Webhooks.for_store(settings, other_store, channels={"fake": other_channel})
            other = Contacts(settings, other_store, outbox)
            assert other.sweep() == 0
            mine = app.state.runtime.contacts
            later = time.time() + 601
            other.clock = mine.clock = lambda: later
            assert other.advance(thread_id) and mine.advance(thread_id) == []
            outbox.log.close()
        contacts = [e for e in app.state.runtime.store.load(thread_id).events if isinstance(e, HumanContact)]
        assert [c.step for c in contacts] == [0, 1]


class Announce(Tool):
    intent: Literal["notify"] = "notify"
    message: str
    contact: ClassVar[str | None] = "release"


async def test_the_notify_intent_tells_people_and_the_agent_goes_on(tmp_path: Path) -> None:
    channel = RecordingChannel()
    model = ScriptedModel(
        [
            {"intent": "notify", "message": "Deploy of v2 to production started <!channel>"},
            {"intent": "done_for_now", "message": "told the team"},
        ]
    )
    agent = Agent(name="herald", model=model, tools=[Notify])
    app = create_app([agent], settings=settings_for(tmp_path), channels={"fake": channel})
    async with client_for(app) as client:
        thread_id = await launch(client, "announce the deploy", agent="herald")
        done = await wait_for_status(client, thread_id, "done")
        (notice,) = await channel.wait_sent(1)
        assert (notice.kind, notice.to, notice.request_id) == ("notify", "#team", None)
        assert notice.text == "Deploy of v2 to production started <!channel>"
        assert [e["type"] for e in done["events"] if e["type"] == "notification"] == ["notification"]


def test_a_tool_naming_an_undefined_chain_or_a_chain_on_a_missing_channel_is_refused(tmp_path: Path) -> None:
    class Page(Tool):
        intent: Literal["page"] = "page"
        contact: ClassVar[str | None] = "nobody"

    agent = Agent(
        name="pager", model=FunctionModel(lambda *_: {"intent": "done_for_now", "message": "x"}), tools=[Page]
    )
    with pytest.raises(UserError, match="tool 'page' of agent 'pager' sends its requests to contact chain 'nobody'"):
        create_app([agent], settings=settings_for(tmp_path), channels={"fake": RecordingChannel()})
    with pytest.raises(UserError, match="contact chain 'release' sends on channel 'fake', which is not configured"):
        create_app([deploybot()], settings=settings_for(tmp_path))


async def test_a_workflow_notifies_then_asks_and_both_go_out_once(tmp_path: Path) -> None:
    from twelvefactor import Flow, workflow

    @workflow()
    def announce(wf: Flow, message: str) -> str:
        for n in range(3):  # many steps in one commit: the listener reads only what is new
            wf.step(lambda n=n: n, name=f"prepare_{n}")
        wf.notify(f"starting: {message}")
        return "yes" if wf.approve("Ship it?", contact="release") else "no"

    channel = RecordingChannel()
    app = create_app([announce], settings=settings_for(tmp_path), channels={"fake": channel})
    async with client_for(app) as client:
        thread_id = await launch(client, "v2", agent="announce")
        await wait_for_status(client, thread_id, "waiting")
        sent = await channel.wait_sent(2)
        (notify,) = [n for n in sent if n.kind == "notify"]
        (ask,) = [n for n in sent if n.kind == "approval"]
        assert (notify.kind, notify.to, notify.text) == ("notify", "#team", "starting: v2")
        assert (ask.kind, ask.to, ask.text) == ("approval", "#deploys", "Ship it?")
        assert app.state.runtime.contacts.sweep() == 0  # nothing is sent twice
        await app.state.runtime.webhooks.idle()
        assert len(channel.sent) == 2
