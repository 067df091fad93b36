"""Answering by email end to end: a request mailed out through a real SMTP server, a reply mailed back to
the server's own SMTP listener (or posted by an inbound-parse webhook) resumes the thread; forged,
repeated and unreadable mail changes nothing."""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import pytest

from smtp_mailbox import Mailbox, Received, mailbox
from twelvefactor.channels.base import Notice
from twelvefactor.channels.config import EmailChannelConfig
from twelvefactor.channels.email import EmailChannel
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.auth import generate_secret, signed_headers
from twelvefactor.server.email_in import start_smtp_server
from twelvefactor.server.links import make_token

from .conftest import client_for, deploybot, free_port, wait_for_status

pytestmark = pytest.mark.anyio
INBOUND = generate_secret()


@dataclass
class Setup:
    client: httpx.AsyncClient
    box: Mailbox  # where our outbound mail lands
    inbound_port: int  # the server's own SMTP listener
    settings: ServerSettings
    channel: EmailChannel


@asynccontextmanager
async def email_service(tmp_path: Path) -> AsyncIterator[Setup]:
    with mailbox() as box:
        config = EmailChannelConfig(
            sender="Deploybot <bot@example.com>",
            reply_to="bot@example.com",
            smtp_port=box.port,
            allowed_senders=["alice@example.com", "@ops.example.com"],
            inbound={"Deploys@example.com": "deploybot"},
        )
        settings = ServerSettings(
            database=str(tmp_path / "service.db"), channels=[config], inbound_webhook_secret=INBOUND
        )
        app = create_app([deploybot()], settings=settings)
        async with client_for(app) as client:
            port = free_port()
            controller = start_smtp_server(app.state.runtime, "127.0.0.1", port)
            try:
                yield Setup(client, box, port, settings, EmailChannel.from_config(config, secret=settings.secret))
            finally:
                controller.stop()


async def request_by_email(setup: Setup) -> tuple[str, dict[str, Any], Received]:
    """Launch a deploy that waits for approval and mail the request out (what the outbox will do)."""
    response = await setup.client.post("/v1/threads", json={"agent": "deploybot", "message": "deploy to production"})
    thread_id = response.json()["id"]
    waiting = await wait_for_status(setup.client, thread_id, "waiting")
    pending = waiting["pending_request"]
    token = make_token(setup.settings.secret, thread_id, pending["call_id"], ttl_s=3600)
    notice = Notice(
        thread_id=thread_id,
        agent="deploybot",
        kind="approval",
        text=pending["question"],
        request_id=pending["call_id"],
        intent=pending["intent"],
        arguments=pending["arguments"],
        to="alice@example.com",
        link=f"http://127.0.0.1/a/{token}",
        reply_token=token,
    )
    before = len(setup.box.received)
    await setup.channel.send(notice)
    sent = setup.box.wait_for(before + 1)[-1]
    return thread_id, waiting, sent


def reply_to(
    sent: Received, body: str, *, sender: str = "Alice <alice@example.com>", msg_id: str = "r1"
) -> EmailMessage:
    original = sent.message
    answer = EmailMessage()
    answer["From"] = sender
    answer["To"] = str(original["Reply-To"])
    answer["Subject"] = f"Re: {original['Subject']}"
    answer["Message-ID"] = f"<{msg_id}@mail.example.com>"
    answer["In-Reply-To"] = str(original["Message-ID"])
    answer["References"] = str(original["Message-ID"])
    answer.set_content(
        f"{body}\n\nOn Thu, Dec 3, 2026 at 3:26 PM Deploybot <bot@example.com> wrote:\n> {original['Subject']}\n"
    )
    return answer


async def mail(setup: Setup, message: EmailMessage | bytes, *, to: str = "bot@example.com") -> tuple[int, str]:
    """Mail ``message`` to the server's SMTP listener; its reply code and text."""
    try:
        if isinstance(message, bytes):
            errors, text = await aiosmtplib.send(
                message, sender="alice@example.com", recipients=[to], hostname="127.0.0.1", port=setup.inbound_port
            )
        else:
            errors, text = await aiosmtplib.send(message, hostname="127.0.0.1", port=setup.inbound_port)
    except aiosmtplib.SMTPResponseException as exc:
        return exc.code, exc.message
    return 250, text


async def version_of(setup: Setup, thread_id: str) -> int:
    version: int = (await setup.client.get(f"/v1/threads/{thread_id}")).json()["version"]
    return version


async def test_a_reply_approves_and_the_same_mail_again_changes_nothing(tmp_path: Path) -> None:
    async with email_service(tmp_path) as setup:
        thread_id, _, sent = await request_by_email(setup)
        code, text = await mail(setup, reply_to(sent, "Approve"))
        assert code == 250 and "approved by alice@example.com" in text
        done = await wait_for_status(setup.client, thread_id, "done")
        (applied,) = [e for e in done["events"] if e["type"] == "human_response"]
        assert applied["approved"] is True and applied["responder"] == "alice@example.com"
        assert applied["idempotency_key"] == "email:r1@mail.example.com"

        code, text = await mail(setup, reply_to(sent, "Approve"))  # redelivered by a mail server
        assert code == 250 and "already applied" in text
        assert await version_of(setup, thread_id) == done["version"]


async def test_a_denial_carries_its_reason(tmp_path: Path) -> None:
    async with email_service(tmp_path) as setup:
        thread_id, _, sent = await request_by_email(setup)
        code, _ = await mail(setup, reply_to(sent, "no - wait until Monday", sender="bob@ops.example.com"))
        assert code == 250
        body = (await setup.client.get(f"/v1/threads/{thread_id}")).json()
        (applied,) = [e for e in body["events"] if e["type"] == "human_response"]
        assert (applied["approved"], applied["text"], applied["responder"]) == (
            False,
            "wait until Monday",
            "bob@ops.example.com",
        )


def forged_token(sent: Received, body: str) -> EmailMessage:
    message = reply_to(sent, body)
    original = str(message["In-Reply-To"])
    head, _, tail = original.partition(".")  # "<tf" . payload . signature@domain>
    payload, _, signature = tail.partition(".")
    altered = f"{head}.{payload[:-2]}xx.{signature}"
    message.replace_header("In-Reply-To", altered)
    message.replace_header("References", altered)
    return message


def wrong_tag(sent: Received, body: str) -> EmailMessage:
    message = reply_to(sent, body)
    message.replace_header("To", "bot+aaaaaaaaaaaaaaaa@example.com")
    return message


def without_headers(sent: Received, body: str) -> EmailMessage:
    message = reply_to(sent, body)
    del message["In-Reply-To"]
    del message["References"]
    return message


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (forged_token, "token does not check out"),
        (lambda sent, body: reply_to(sent, body, sender="mallory@evil.example"), "may not answer"),
        (wrong_tag, "tag does not belong"),
        (without_headers, "reply without the headers"),
        (lambda sent, body: reply_to(sent, "Sure, I guess?"), "not an answer"),
        (lambda sent, body: b"\x00\x01garbage that is no MIME\r\n\r\n\xff", "no valid From address"),
    ],
    ids=["forged-token", "wrong-sender", "wrong-tag", "lost-headers", "unreadable-answer", "garbage-mime"],
)
async def test_a_bad_reply_is_refused_with_550_and_changes_nothing(tmp_path: Path, make: Any, reason: str) -> None:
    async with email_service(tmp_path) as setup:
        thread_id, waiting, sent = await request_by_email(setup)
        code, text = await mail(setup, make(sent, "Approve"))
        assert code == 550 and reason in text
        after = (await setup.client.get(f"/v1/threads/{thread_id}")).json()
        assert after["status"] == "waiting" and after["version"] == waiting["version"]


async def test_a_reply_to_an_answered_request_is_refused(tmp_path: Path) -> None:
    async with email_service(tmp_path) as setup:
        thread_id, _, sent = await request_by_email(setup)
        assert (await mail(setup, reply_to(sent, "Deny: not today", msg_id="first")))[0] == 250
        settled = await wait_for_status(setup.client, thread_id, "done", "failed", "waiting")
        version = settled["version"]
        code, text = await mail(setup, reply_to(sent, "Approve", msg_id="second"))
        assert code == 550 and "already answered" in text
        assert await version_of(setup, thread_id) == version


async def test_mail_to_an_inbound_address_starts_one_thread_even_when_redelivered(tmp_path: Path) -> None:
    async with email_service(tmp_path) as setup:
        message = EmailMessage()
        message["From"] = "alice@example.com"
        message["To"] = "deploys@example.com"
        message["Subject"] = "Ship v3 to staging"
        message["Message-ID"] = "<start-1@mail.example.com>"
        message.set_content("Please deploy v3 to staging.\n\n-- \nAlice, SRE")
        code, text = await mail(setup, message)
        assert code == 250 and "started a thread of 'deploybot'" in text
        again_code, again = await mail(setup, message)
        assert again_code == 250 and "already started" in again
        threads = (await setup.client.get("/v1/threads")).json()
        items = threads["items"] if isinstance(threads, dict) else threads
        assert len(items) == 1
        first = items[0]["id"]
        body = (await setup.client.get(f"/v1/threads/{first}")).json()
        content = body["events"][0]["content"]
        assert "Ship v3 to staging" in content and "Please deploy v3" in content and "Alice, SRE" not in content

        message.replace_header("From", "mallory@evil.example")
        message.replace_header("Message-ID", "<start-2@evil.example>")
        code, text = await mail(setup, message)
        assert code == 550 and "may not answer or start threads" in text


async def test_the_inbound_parse_webhook_is_signed_replay_safe_and_explains_refusals(tmp_path: Path) -> None:
    async with email_service(tmp_path) as setup:
        thread_id, waiting, sent = await request_by_email(setup)
        raw = bytes(reply_to(sent, "DENY: too risky"))
        headers = {**signed_headers(INBOUND, "msg_mail_1", raw), "content-type": "message/rfc822"}

        unsigned = await setup.client.post("/v1/email/inbound", content=raw, headers={"content-type": "message/rfc822"})
        assert unsigned.status_code == 401
        forged = await setup.client.post(
            "/v1/email/inbound", content=raw, headers={**headers, "webhook-signature": "v1,AAAA"}
        )
        assert forged.status_code == 401
        assert await version_of(setup, thread_id) == waiting["version"]

        applied = await setup.client.post("/v1/email/inbound", content=raw, headers=headers)
        assert applied.status_code == 200, applied.text
        assert applied.json()["action"] == "answered" and applied.json()["detail"] == "denied by alice@example.com"
        replay = await setup.client.post("/v1/email/inbound", content=raw, headers=headers)
        assert replay.status_code == 409 and "already received" in replay.json()["detail"]

        garbage = b"not a mail"
        refused = await setup.client.post(
            "/v1/email/inbound",
            content=garbage,
            headers={**signed_headers(INBOUND, "msg_mail_2", garbage), "content-type": "message/rfc822"},
        )
        assert refused.status_code == 422 and "no valid From address" in refused.json()["detail"]


async def test_reply_to_resumed_latency(tmp_path: Path) -> None:
    """Time from mailing a reply to the thread holding the answer (printed for the report)."""
    async with email_service(tmp_path) as setup:
        latencies = []
        for count in range(5):
            thread_id, _, sent = await request_by_email(setup)
            started = time.perf_counter()
            code, _ = await mail(setup, reply_to(sent, "yes", msg_id=f"lat{count}"))
            assert code == 250
            await wait_for_status(setup.client, thread_id, "done", "running")
            latencies.append(time.perf_counter() - started)
    median_ms = statistics.median(latencies) * 1000
    print(f"email reply mailed -> thread resumed: median {median_ms:.1f} ms over {len(latencies)}")
    assert median_ms < 2000
