"""Slack end to end: a request posted to a local Slack, answered by signed clicks, dialogs and messages.

The message is posted with ``SlackChannel.send`` and a Notice built here (the outbox does that in the
service); everything after it goes through the real app: Slack's signed interactive and Events API posts.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from slackfake import BOT_TOKEN, SIGNING_SECRET, SlackFake, click, signed, slack_fake, submit
from twelvefactor import Agent, FunctionModel, Message
from twelvefactor.channels import Notice, SlackChannelConfig
from twelvefactor.channels.slack import SlackChannel
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.deliveries import Delivery
from twelvefactor.server.links import make_token

from .conftest import client_for, deploybot, wait_for_status

pytestmark = pytest.mark.anyio

SECRET = "links-secret-for-tests-0123456789"
CHANNEL = "C0DEPLOYS"


@pytest.fixture(scope="module")
def fake() -> Iterator[SlackFake]:
    with slack_fake() as running:
        yield running


def asker() -> Agent:
    """Asks one question, then finishes quoting the answer."""

    def model(messages: Sequence[Message]) -> dict[str, str]:
        context = messages[-1].content
        if "human_response" in context:
            return {"intent": "done_for_now", "message": "thanks: " + context.rsplit("human_response>", 2)[-2][:80]}
        return {"intent": "request_human_input", "question": "Which region?"}

    return Agent("asker", model=FunctionModel(model))


def app_for(tmp_path: Path, fake: SlackFake, *, slack: bool = True) -> FastAPI:
    channels = [
        SlackChannelConfig(
            bot_token=BOT_TOKEN,
            signing_secret=SIGNING_SECRET,
            api_url=fake.api_url,
            timeout_s=2,
            events_agent="deploybot",
        )
    ]
    settings = ServerSettings(database=str(tmp_path / "service.db"), secret=SECRET, channels=channels if slack else [])
    return create_app([deploybot(), asker()], settings=settings)


@asynccontextmanager
async def running(tmp_path: Path, fake: SlackFake) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app_for(tmp_path, fake)) as client:
        yield client


async def ask(client: httpx.AsyncClient, fake: SlackFake, *, agent: str = "deploybot") -> tuple[dict[str, Any], str]:
    """Launch a thread until it waits, post its request to Slack; the waiting thread and the message's ts."""
    message = "deploy the latest backend to production" if agent == "deploybot" else "set up the cluster"
    launched = await client.post("/v1/threads", json={"agent": agent, "message": message})
    thread = await wait_for_status(client, launched.json()["id"], "waiting")
    pending = thread["pending_request"]
    notice = Notice(
        thread_id=thread["id"],
        agent=agent,
        kind=pending["kind"],
        text=pending["question"],
        request_id=pending["call_id"],
        intent=pending.get("intent"),
        arguments=pending.get("arguments"),
        to=CHANNEL,
        reply_token=make_token(SECRET, thread["id"], pending["call_id"], ttl_s=3600),
    )
    async with SlackChannel(bot_token=BOT_TOKEN, api_url=fake.api_url) as slack:
        receipt = await slack.send(notice)
    assert receipt.ref is not None
    return thread, receipt.ref.split(":", 1)[1]


def token_of(fake: SlackFake, action_id: str = "tf_approve") -> str:
    """The value of button ``action_id`` of the last message posted."""
    blocks = fake.of("chat.postMessage")[-1]["blocks"]
    [value] = [e["value"] for b in blocks for e in b.get("elements", []) if e.get("action_id") == action_id]
    assert isinstance(value, str)
    return value


async def interactive(client: httpx.AsyncClient, body: bytes, **kwargs: Any) -> httpx.Response:
    return await client.post("/v1/slack/interactive", **signed(body, **kwargs))


async def unchanged(client: httpx.AsyncClient, thread: dict[str, Any]) -> None:
    now = (await client.get(f"/v1/threads/{thread['id']}")).json()
    assert now["status"] == "waiting" and now["version"] == thread["version"]


def responses(thread: dict[str, Any]) -> list[dict[str, Any]]:
    return [event for event in thread["events"] if event["type"] == "human_response"]


async def test_approve_in_slack_resumes_the_thread_and_says_who_and_when(tmp_path: Path, fake: SlackFake) -> None:
    async with running(tmp_path, fake) as client:
        resume_ms: list[float] = []
        done_ms: list[float] = []
        for _ in range(5):
            thread, ts = await ask(client, fake)
            token = token_of(fake)
            started = time.perf_counter()
            answer = await interactive(client, click("tf_approve", token, channel=CHANNEL, ts=ts))
            resume_ms.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200 and answer.json() == {"ok": True, "applied": "approve"}
            finished = await wait_for_status(client, thread["id"], "done")
            done_ms.append((time.perf_counter() - started) * 1000)
            assert finished["events"][-1]["message"] == "Deployed v1.4.2 to production."
            [response] = responses(finished)
            assert response["approved"] is True and response["responder"] == "slack:U0ALICE (alice)"
            update = fake.of("chat.update")[-1]
            assert (update["channel"], update["ts"]) == (CHANNEL, ts)
            assert all(block["type"] != "actions" for block in update["blocks"])
            line = next(b for b in update["blocks"] if b.get("block_id") == "tf_answered")["text"]["text"]
            assert line.startswith("✅ Approved by slack:U0ALICE (alice) at <!date^")
    print(
        f"\nsigned Approve post -> answer applied and thread submitted: median {statistics.median(resume_ms):.1f} ms;"
        f" -> thread done: median {statistics.median(done_ms):.1f} ms (n=5)"
    )


async def test_deny_opens_a_dialog_whose_reason_reaches_the_agent(tmp_path: Path, fake: SlackFake) -> None:
    async with running(tmp_path, fake) as client:
        thread, ts = await ask(client, fake)
        clicked = await interactive(client, click("tf_deny", token_of(fake, "tf_deny"), channel=CHANNEL, ts=ts))
        assert clicked.json() == {"ok": True, "opened": "deny"}
        opened = fake.of("views.open")[-1]
        assert opened["trigger_id"].startswith("trigger.") and opened["view"]["callback_id"] == "tf_deny"
        await unchanged(client, thread)  # opening the dialog answers nothing yet
        metadata = opened["view"]["private_metadata"]
        submitted = await interactive(client, submit("tf_deny", metadata, "  freeze <!channel> week  "))
        assert submitted.status_code == 200 and submitted.content == b""  # closes the dialog
        finished = await wait_for_status(client, thread["id"], "done")
        assert "freeze <!channel> week" in finished["events"][-1]["message"]
        [response] = responses(finished)
        assert response["approved"] is False and response["responder"] == "slack:U0BOB (bob)"
        line = next(b for b in fake.of("chat.update")[-1]["blocks"] if b.get("block_id") == "tf_answered")
        assert "Denied by slack:U0BOB (bob)" in line["text"]["text"]
        assert line["text"]["text"].endswith(": freeze &lt;!channel&gt; week")
        # The same dialog submitted again (a second token use) changes nothing and says so under the text box.
        again = await interactive(client, submit("tf_deny", metadata, "other"))
        assert again.json()["response_action"] == "errors" and "already answered" in again.json()["errors"]["tf_text"]


async def test_answer_dialog_answers_a_question(tmp_path: Path, fake: SlackFake) -> None:
    async with running(tmp_path, fake) as client:
        thread, ts = await ask(client, fake, agent="asker")
        clicked = await interactive(client, click("tf_answer", token_of(fake, "tf_answer"), channel=CHANNEL, ts=ts))
        assert clicked.json() == {"ok": True, "opened": "answer"}
        metadata = fake.of("views.open")[-1]["view"]["private_metadata"]
        empty = await interactive(client, submit("tf_answer", metadata, "   "))
        assert empty.json()["errors"]["tf_text"] == "Write an answer before sending."
        await unchanged(client, thread)
        assert (await interactive(client, submit("tf_answer", metadata, "eu-west-1"))).status_code == 200
        finished = await wait_for_status(client, thread["id"], "done")
        assert responses(finished)[0]["text"] == "eu-west-1"


async def test_forged_stale_replayed_or_malformed_posts_change_nothing(tmp_path: Path, fake: SlackFake) -> None:
    async with running(tmp_path, fake) as client:
        thread, ts = await ask(client, fake)
        body = click("tf_approve", token_of(fake), channel=CHANNEL, ts=ts)
        now = int(time.time())
        unsigned = await client.post(
            "/v1/slack/interactive", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert unsigned.status_code == 401 and "missing X-Slack-Request-Timestamp" in unsigned.json()["detail"]
        wrong = await interactive(client, body, secret="another-apps-secret")
        assert wrong.status_code == 401 and "does not match" in wrong.json()["detail"]
        for skew, said in [(-400, "old"), (400, "in the future")]:
            stale = await interactive(client, body, ts=now + skew)
            assert stale.status_code == 401 and said in stale.json()["detail"]
        malformed = await interactive(client, b"payload=%7Bnot+json")
        assert malformed.status_code == 400 and "not JSON" in malformed.json()["detail"]
        forged_token = token_of(fake)[:-4] + "AAAA"
        forged = await interactive(client, click("tf_approve", forged_token, channel=CHANNEL, ts=ts))
        assert forged.status_code == 200 and forged.json()["ok"] is False
        assert "signature does not match" in forged.json()["detail"]
        told = fake.of("chat.postEphemeral")[-1]
        assert told["user"] == "U0ALICE" and "Nothing was changed" in told["text"]
        other_thread = make_token("another-server", thread["id"], thread["pending_request"]["call_id"], ttl_s=60)
        assert (await interactive(client, click("tf_approve", other_thread, channel=CHANNEL, ts=ts))).json()[
            "ok"
        ] is False
        expired = make_token(SECRET, thread["id"], thread["pending_request"]["call_id"], ttl_s=1, now=now - 10)
        late = await interactive(client, click("tf_approve", expired, channel=CHANNEL, ts=ts))
        assert "expired" in late.json()["detail"]
        await unchanged(client, thread)
        # A genuine click, then that very request replayed, then a click after the request was answered.
        signed_once = signed(body)
        assert (await client.post("/v1/slack/interactive", **signed_once)).json()["ok"] is True
        replayed = await client.post("/v1/slack/interactive", **signed_once)
        assert replayed.status_code == 409 and "replay" in replayed.json()["detail"]
        finished = await wait_for_status(client, thread["id"], "done")
        after = await interactive(client, click("tf_deny", token_of(fake), channel=CHANNEL, ts=ts, user="U0EVE"))
        assert (
            after.json()["ok"] is False
            and "already answered (recorded: approved by slack:U0ALICE" in after.json()["detail"]
        )
        assert fake.of("chat.postEphemeral")[-1]["user"] == "U0EVE"
        assert (await client.get(f"/v1/threads/{thread['id']}")).json()["version"] == finished["version"]


async def test_a_reply_under_an_approval_decides_nothing_and_starts_nothing(tmp_path: Path, fake: SlackFake) -> None:
    app = app_for(tmp_path, fake)
    async with client_for(app) as client:
        thread, ts = await ask(client, fake)
        pending = thread["pending_request"]
        notice = Notice(thread_id=thread["id"], kind="approval", text="?", request_id=pending["call_id"], to=CHANNEL)
        delivery = Delivery(
            webhook_id="dlv_2",
            thread_id=thread["id"],
            event_type="human.request",
            anchor=1,
            url="slack:C0DEPLOYS",
            body=notice.model_dump_json(),
            created_at=time.time(),
            receipt=f"{CHANNEL}:{ts}",
        )
        app.state.runtime.webhooks.log.add(delivery, owner="test", claimed_until=0)
        reply = await events(client, event("Ev0CHAT", channel=CHANNEL, thread_ts=ts, text="<@U0BOT> approve!"))
        assert "use its buttons" in reply.json()["ignored"]
        await unchanged(client, thread)
        assert (await client.get("/v1/threads/slack-Ev0CHAT")).status_code == 404


async def test_without_a_slack_channel_the_endpoints_say_so(tmp_path: Path, fake: SlackFake) -> None:
    async with client_for(app_for(tmp_path, fake, slack=False)) as client:
        response = await client.post("/v1/slack/events", **signed(b"{}"))
    assert response.status_code == 404 and "channel of type 'slack'" in response.json()["detail"]


def event(event_id: str, **fields: Any) -> bytes:
    inner = {"type": "app_mention", "user": "U0ALICE", "text": "<@U0BOT> deploy to staging", "ts": "1.000001"}
    return json.dumps(
        {"type": "event_callback", "team_id": "T0TEAM", "event_id": event_id, "event": {**inner, **fields}}
    ).encode()


async def events(client: httpx.AsyncClient, body: bytes, retry: int | None = None, **kwargs: Any) -> httpx.Response:
    request = signed(body, content_type="application/json", **kwargs)
    if retry is not None:
        request["headers"] = {
            **request["headers"],
            "x-slack-retry-num": str(retry),
            "x-slack-retry-reason": "http_timeout",
        }
    return await client.post("/v1/slack/events", **request)


async def test_url_verification_echoes_the_challenge(tmp_path: Path, fake: SlackFake) -> None:
    async with running(tmp_path, fake) as client:
        body = json.dumps({"type": "url_verification", "token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV"}).encode()
        response = await events(client, body)
        assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV"}
        assert (await client.post("/v1/slack/events", content=body)).status_code == 401
        malformed = await events(client, b'{"type": "event_callback", ')
        assert malformed.status_code == 400 and "not JSON" in malformed.json()["detail"]
        no_event = await events(client, json.dumps({"type": "event_callback", "event_id": "Ev1"}).encode())
        assert no_event.status_code == 400 and "event is missing" in no_event.json()["detail"]


async def test_a_mention_starts_one_thread_even_when_slack_redelivers_it(tmp_path: Path, fake: SlackFake) -> None:
    async with running(tmp_path, fake) as client:
        first = await events(client, event("Ev0MENTION1"))
        assert first.json() == {"ok": True, "thread_id": "slack-Ev0MENTION1", "started": True}
        # Slack signs a redelivery anew (a later timestamp); the event_id is what stays the same.
        again = await events(client, event("Ev0MENTION1"), retry=1, ts=int(time.time()) + 1)
        assert again.json() == {"ok": True, "thread_id": "slack-Ev0MENTION1", "started": False}
        thread = await wait_for_status(client, "slack-Ev0MENTION1", "done")
        assert thread["events"][0]["content"] == "deploy to staging"  # the mention stripped
        assert thread["events"][-1]["message"] == "Deployed v1.4.2 to staging."
        ignored = await events(client, event("Ev0BOT", type="message", channel_type="im", bot_id="B0"))
        assert "bot" in ignored.json()["ignored"]
        listed = (await client.get("/v1/threads")).json()
        ids = [row["id"] for row in (listed if isinstance(listed, list) else listed["threads"])]
        assert ids.count("slack-Ev0MENTION1") == 1 and "slack-Ev0BOT" not in ids


async def test_a_reply_in_the_slack_thread_of_a_question_answers_it(tmp_path: Path, fake: SlackFake) -> None:
    app = app_for(tmp_path, fake)
    async with client_for(app) as client:
        thread, ts = await ask(client, fake, agent="asker")
        notice = Notice(
            thread_id=thread["id"],
            kind="input",
            text="Which region?",
            request_id=thread["pending_request"]["call_id"],
            to=CHANNEL,
        )
        # What the outbox records when it delivers the question: the Notice, and Slack's receipt of it.
        delivery = Delivery(
            webhook_id="dlv_1",
            thread_id=thread["id"],
            event_type="human.request",
            anchor=1,
            url="slack:C0DEPLOYS",
            body=notice.model_dump_json(),
            created_at=time.time(),
            state="delivered",
            receipt=f"{CHANNEL}:{ts}",
        )
        app.state.runtime.webhooks.log.add(delivery, owner="test", claimed_until=0)
        reply = event("Ev0REPLY", type="message", channel_type="im", channel=CHANNEL, thread_ts=ts, text="us-east-2")
        answered = await events(client, reply)
        assert answered.json() == {"ok": True, "thread_id": thread["id"], "answered": notice.request_id}
        finished = await wait_for_status(client, thread["id"], "done")
        assert responses(finished)[0]["text"] == "us-east-2" and responses(finished)[0]["responder"] == "slack:U0ALICE"
        late = await events(client, event("Ev0REPLY2", channel=CHANNEL, thread_ts=ts, text="<@U0BOT> eu"))
        assert late.json()["ok"] is False and "nothing changed" in late.json()["detail"]
        assert (await client.get(f"/v1/threads/{thread['id']}")).json()["version"] == finished["version"]
