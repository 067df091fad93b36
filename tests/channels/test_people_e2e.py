"""Issue 11's promise, end to end with real parts: a production deploy's approval goes to Slack (a local fake
speaking Slack's Web API) and, unanswered past its deadline, by email to a second person (a real aiosmtpd
server); the person approves by clicking in Slack, or by replying to the email (mailed to the server's own
SMTP listener, `smtp_listen`). Everything is routed by configuration, through the outbox."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from server.conftest import client_for, deploybot, wait_for_status
from slackfake import BOT_TOKEN, SIGNING_SECRET, SlackFake, click, signed, slack_fake
from smtp_mailbox import Mailbox, mailbox
from twelvefactor.channels.config import ContactStep, EmailChannelConfig, Route, SlackChannelConfig
from twelvefactor.events import HumanContact
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.testing import free_port

pytestmark = pytest.mark.anyio
SECRET = "links-secret-for-tests-0123456789"
DEPLOYS = "C0DEPLOYS"


@pytest.fixture(scope="module")
def fake() -> Iterator[SlackFake]:
    with slack_fake() as running:
        yield running


def settings_for(tmp_path: Path, fake: SlackFake, box: Mailbox, inbound_port: int) -> ServerSettings:
    return ServerSettings(
        database=str(tmp_path / "service.db"),
        secret=SECRET,
        public_url="https://agents.example.com",
        smtp_listen=f"127.0.0.1:{inbound_port}",
        channels=[
            SlackChannelConfig(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=fake.api_url, timeout_s=2),
            EmailChannelConfig(
                smtp_host="127.0.0.1",
                smtp_port=box.port,
                start_tls=False,
                sender="Deploybot <bot@example.com>",
                reply_to="bot@example.com",
                allowed_senders=["bob@example.com"],
            ),
        ],
        contacts={
            "release": [
                ContactStep(channel="slack", to=DEPLOYS, wait_s=900),
                ContactStep(channel="email", to="bob@example.com"),
            ]
        },
        routes=[Route(contact="release", intent="deploy_backend")],
        webhook_backoff_s=0.05,
        escalation_sweep_s=3600.0,  # the tests sweep themselves, with their own clock
    )


async def launch(client: Any) -> str:
    response = await client.post("/v1/threads", json={"agent": "deploybot", "message": "deploy v1.4.1 to production"})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def posted(fake: SlackFake, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(fake.of("chat.postMessage")) < count:
        assert time.monotonic() < deadline, "no Slack message was posted"
        await _sleep()
    return fake.of("chat.postMessage")


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.005)


async def test_a_production_deploy_is_approved_by_a_click_in_slack(tmp_path: Path, fake: SlackFake) -> None:
    with mailbox() as box:
        app = create_app([deploybot()], settings=settings_for(tmp_path, fake, box, free_port()))
        latencies = []
        async with client_for(app) as client:
            for _ in range(5):
                before = len(fake.of("chat.postMessage"))
                thread_id = await launch(client)
                waiting = await wait_for_status(client, thread_id, "waiting")
                message = (await posted(fake, before + 1))[-1]
                # From the request event's time (wall clock) to the fake receiving the post (perf counter).
                [request] = [e for e in waiting["events"] if e["type"] == "human_request"]
                requested = datetime.fromisoformat(request["at"]).timestamp() - (time.time() - time.perf_counter())
                latencies.append(([c for c in fake.calls if c.method == "chat.postMessage"][-1].at - requested) * 1000)
                assert message["channel"] == DEPLOYS
                [token] = [
                    e["value"]
                    for b in message["blocks"]
                    for e in b.get("elements", [])
                    if e.get("action_id") == "tf_approve"
                ]
                await app.state.runtime.webhooks.idle()
                rows = (await client.get(f"/v1/threads/{thread_id}/deliveries")).json()
                [receipt] = [r["receipt"] for r in rows if r["event_type"] == "human.request"]
                channel, _, ts = receipt.partition(":")
                assert channel == DEPLOYS
                body = click("tf_approve", token, channel=DEPLOYS, ts=ts)
                answer = await client.post("/v1/slack/interactive", **signed(body))
                assert answer.status_code == 200 and answer.json()["applied"] == "approve", answer.text
                done = await wait_for_status(client, thread_id, "done")
                assert done["events"][-1]["message"] == "Deployed v1.4.1 to production."
                [response] = [e for e in done["events"] if e["type"] == "human_response"]
                assert response["approved"] is True and response["request_id"] == waiting["pending_request"]["call_id"]
            assert box.received == []  # nobody was mailed: Slack answered before the deadline
    print(
        f"\nrequest recorded -> Slack message received (outbox, local fake): median {statistics.median(latencies):.1f} ms"
    )


async def test_unanswered_in_slack_it_escalates_by_email_and_a_reply_approves(tmp_path: Path, fake: SlackFake) -> None:
    inbound = free_port()
    with mailbox() as box:
        app = create_app([deploybot()], settings=settings_for(tmp_path, fake, box, inbound))
        rt = app.state.runtime
        async with client_for(app) as client:
            before = len(fake.of("chat.postMessage"))
            thread_id = await launch(client)
            await wait_for_status(client, thread_id, "waiting")
            await posted(fake, before + 1)
            # Nobody clicks: 15 minutes later the sweep asks the next person in the chain, by email.
            later = time.time() + 901
            rt.contacts.clock = lambda: later
            escalated = time.perf_counter()
            assert await _in_thread(rt.contacts.sweep) == 1
            await rt.webhooks.idle()
            mailed_ms = (time.perf_counter() - escalated) * 1000
            (sent,) = box.received
            original = sent.message
            assert sent.rcpt_tos == ["bob@example.com"] and "deploy_backend" in original.get_body().get_content()
            thread = rt.store.load(thread_id)
            assert [(c.channel, c.escalated) for c in thread.events if isinstance(c, HumanContact)] == [
                ("slack", False),
                ("email", True),
            ]

            # A reply from someone who is not allowed changes nothing.
            code, _ = await _mail(inbound, _reply(original, "approve", sender="mallory@example.com", msg_id="m1"))
            assert code == 550
            assert (await client.get(f"/v1/threads/{thread_id}")).json()["status"] == "waiting"

            replied = time.perf_counter()
            code, text = await _mail(inbound, _reply(original, "Approve\n\nthanks", msg_id="r1"))
            assert code == 250, text
            done = await wait_for_status(client, thread_id, "done")
            resumed_ms = (time.perf_counter() - replied) * 1000
            [response] = [e for e in done["events"] if e["type"] == "human_response"]
            assert response["approved"] is True and response["responder"] == "bob@example.com"
            # The Slack message that asked first now says who answered, by email.
            updates = [u for u in fake.of("chat.update") if u["channel"] == DEPLOYS]
            deadline = time.monotonic() + 10
            while not any("bob@example.com" in str(u["blocks"]) for u in updates):
                assert time.monotonic() < deadline, "the Slack message was not updated"
                await _sleep()
                updates = [u for u in fake.of("chat.update") if u["channel"] == DEPLOYS]
    print(
        f"\nescalation -> email received (aiosmtpd): {mailed_ms:.1f} ms; reply mailed -> thread done: {resumed_ms:.1f} ms"
    )


def _reply(original: EmailMessage, body: str, *, sender: str = "Bob <bob@example.com>", msg_id: str) -> EmailMessage:
    answer = EmailMessage()
    answer["From"] = sender
    answer["To"] = str(original["Reply-To"])
    answer["Subject"] = f"Re: {original['Subject']}"
    answer["Message-ID"] = f"<{msg_id}@mail.example.com>"
    answer["In-Reply-To"] = str(original["Message-ID"])
    answer["References"] = str(original["Message-ID"])
    answer.set_content(f"{body}\n\nOn Thu, Dec 3, 2026 at 3:26 PM Deploybot <bot@example.com> wrote:\n> asked\n")
    return answer


async def _mail(port: int, message: EmailMessage) -> tuple[int, str]:
    try:
        await aiosmtplib.send(message, hostname="127.0.0.1", port=port, start_tls=False)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return exc.recipients[0].code, exc.recipients[0].message
    except aiosmtplib.SMTPDataError as exc:
        return exc.code, exc.message
    return 250, "ok"


async def _in_thread(fn: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn)


def test_the_example_config_serves_deploybot_with_its_channels_schedule_and_trigger(tmp_path: Path) -> None:
    from twelvefactor.server.config_file import load_config

    root = Path(__file__).resolve().parents[2]
    env = {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "signing",
        "SLACK_API_URL": "http://127.0.0.1:9/api",
        "SMTP_HOST": "127.0.0.1",
        "CI_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }
    values = load_config(root / "examples" / "deploybot" / "twelvefactor.toml", env)
    settings = ServerSettings.from_env(values, database=str(tmp_path / "t.db"), smtp_listen=None)
    app = create_app([deploybot()], settings=settings)
    rt = app.state.runtime
    assert sorted(rt.webhooks.channels) == ["email", "slack"]
    assert [s.to for s in settings.contacts["release"]] == ["#deploys", "release-manager@example.com"]
    assert settings.schedules[0].timezone == "Europe/Paris" and settings.triggers[0].name == "ci"


async def test_the_offline_people_demo_escalates_to_email_and_the_reply_approves() -> None:
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("people_demo", root / "examples" / "deploybot" / "people_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    said: list[str] = []
    thread = await module.demo(said.append)
    assert thread["status"] == "done" and thread["events"][-1]["message"] == "Deployed v1.4.1 to production."
    assert [line.split(" ", 1)[0] for line in said] == ["1.", "2.", "3.", "4.", "5.", "6.", "7."]
    assert "[Escalated]" in said[3] and "release-manager@example.com" in said[3]
