"""Email out over a real SMTP server (aiosmtpd on 127.0.0.1), and reading replies as people write them."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

from smtp_mailbox import Mailbox, mailbox
from twelvefactor.channels.base import ChannelError, Notice
from twelvefactor.channels.config import EmailChannelConfig
from twelvefactor.channels.email import EmailChannel
from twelvefactor.channels.mail_reply import parse_mail, read_answer, reply_tag, split_tag
from twelvefactor.errors import MailRejected, UserError
from twelvefactor.server.links import make_token, read_token
from twelvefactor.server.testing import free_port

pytestmark = pytest.mark.anyio
SECRET = "s" * 32


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def channel(port: int, **overrides: Any) -> EmailChannel:
    values: dict[str, Any] = {"sender": "Deploybot <bot@example.com>", "reply_to": "bot@example.com"}
    config = EmailChannelConfig(**{**values, "smtp_port": port, "timeout_s": 2.0, **overrides})
    return EmailChannel.from_config(config, secret=SECRET)


def approval(**overrides: Any) -> Notice:
    token = make_token(SECRET, "t-1", "call-1", ttl_s=3600)
    values: dict[str, Any] = {
        "thread_id": "t-1",
        "agent": "deploybot",
        "kind": "approval",
        "text": "Deploy v2 to production?",
        "request_id": "call-1",
        "intent": "deploy",
        "arguments": {"env": "production", "version": "2"},
        "to": "alice@example.com",
        "link": "http://127.0.0.1:8000/a/" + token,
        "reply_token": token,
    }
    return Notice(**{**values, **overrides})


async def send_one(box: Mailbox, notice: Notice) -> Any:
    chan = channel(box.port)
    receipt = await chan.send(notice)
    await chan.aclose()
    (received,) = box.wait_for(1)
    return receipt, received


async def test_an_approval_arrives_as_text_and_html_with_its_link_and_reply_headers() -> None:
    with mailbox() as box:
        notice = approval()
        receipt, received = await send_one(box, notice)
    message = received.message
    assert received.rcpt_tos == ["alice@example.com"]
    assert message["Message-ID"] == f"<tf.{notice.reply_token}@example.com>" == receipt.ref
    assert message["Reply-To"] == f"bot+{reply_tag(SECRET, notice.reply_token or '')}@example.com"
    assert len(str(message["Reply-To"]).partition("@")[0]) <= 64
    assert message["Auto-Submitted"] == "auto-generated" and message["X-Twelvefactor-Thread"] == "t-1"
    assert message["Subject"] == "Approval needed: deploy (deploybot)"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for part in (text, html):
        assert "Deploy v2 to production?" in part and notice.link in part
        assert "reply APPROVE, or DENY and a reason, on the first line" in part
        assert '"env": "production"' in part or "&#34;env&#34;: &#34;production&#34;" in part
    # The token in the Message-ID is the signed one: it names the thread and the request.
    claims = read_token(SECRET, str(message["Message-ID"])[4:].partition("@")[0])
    assert (claims.thread_id, claims.request_id) == ("t-1", "call-1")


async def test_hostile_text_is_escaped_and_cannot_add_headers() -> None:
    hostile = approval(
        text="<script>alert('x')</script>\r\nBcc: mallory@evil.example",
        agent="bot\r\nBcc: mallory@evil.example\r\nX-Evil: 1",
        intent="deploy\nCc: mallory@evil.example",
        arguments={"note": "</pre><img src=x onerror=alert(1)>"},
    )
    with mailbox() as box:
        _, received = await send_one(box, hostile)
    message = received.message
    assert received.rcpt_tos == ["alice@example.com"]  # nobody else got it
    assert message["Bcc"] is None and message["Cc"] is None and message["X-Evil"] is None
    assert "\n" not in str(message["Subject"]) and "Bcc" in str(message["Subject"])  # kept as text, on one line
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html and "&lt;img src=x" in html


async def test_an_address_with_a_line_break_or_two_recipients_is_refused_not_sent() -> None:
    with mailbox() as box:
        for to in ("alice@example.com\r\nBcc: mallory@evil.example", "alice@example.com, mallory@evil.example"):
            with pytest.raises(ChannelError, match="not one email address") as caught:
                await channel(box.port).send(approval(to=to))
            assert caught.value.retryable is False
        assert box.received == []


async def test_a_notification_has_no_answer_instructions_and_no_reply_address() -> None:
    notice = Notice(thread_id="t-2", agent="deploybot", kind="notify", text="Deploy started", to="team@example.com")
    with mailbox() as box:
        _, received = await send_one(box, notice)
    message = received.message
    assert message["Reply-To"] is None and not str(message["Message-ID"]).startswith("<tf.")
    assert message["Subject"] == "deploybot: Deploy started"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Deploy started" in text and "reply" not in text.lower()


async def test_smtp_down_is_a_retryable_channel_error() -> None:
    with pytest.raises(ChannelError, match="cannot reach the SMTP server") as caught:
        await channel(free_port()).send(approval())
    assert caught.value.retryable is True


@pytest.mark.parametrize(
    ("reply", "retryable"), [("550 5.1.1 no such user", False), ("451 4.3.0 try again later", True)]
)
async def test_a_refused_recipient_is_final_for_5xx_and_retryable_for_4xx(reply: str, retryable: bool) -> None:
    with mailbox() as box:
        box.refuse["alice@example.com"] = reply
        with pytest.raises(ChannelError, match="refused 'alice@example.com'") as caught:
            await channel(box.port).send(approval())
        assert caught.value.retryable is retryable
        assert box.received == []


def test_a_reply_address_too_long_for_the_tag_is_a_configuration_error() -> None:
    with pytest.raises(UserError, match="no room for the 17-character reply tag"):
        channel(25, reply_to="x" * 50 + "@example.com")


async def test_send_to_delivered_latency() -> None:
    """Median time from ``send()`` to the message received by the SMTP server (printed for the report)."""
    with mailbox() as box:
        chan = channel(box.port)
        latencies = []
        for count in range(1, 21):
            started = time.perf_counter()
            await chan.send(approval())
            latencies.append(box.wait_for(count)[-1].at - started)
    median_ms = statistics.median(latencies) * 1000
    print(f"email send -> received by aiosmtpd: median {median_ms:.1f} ms over {len(latencies)}")
    assert median_ms < 1000


# --- reading replies ---

ORIGINAL_ID = "<tf.TOKENPART.SIGPART@example.com>"


def reply(body: str, *, content_type: str = "text/plain", extra: str = "") -> bytes:
    return (
        "From: Alice <Alice@Example.com>\r\n"
        "To: bot+abc@example.com\r\n"
        "Subject: Re: Approval needed: deploy (deploybot)\r\n"
        "Message-ID: <reply-1@mail.example.com>\r\n"
        f"In-Reply-To: {ORIGINAL_ID}\r\n"
        f"References: <older@example.com> {ORIGINAL_ID}\r\n"
        f"{extra}"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: {content_type}; charset=utf-8\r\n"
        "\r\n" + body.replace("\n", "\r\n")
    ).encode()


GMAIL = """Approve

On Thu, Dec 3, 2026 at 3:26 PM Deploybot <bot@example.com> wrote:
> Deploybot asks for your approval before it runs an action:
> Deploy v2 to production?
"""
GMAIL_WRAPPED = """DENY: too risky
before the freeze ends

On Thu, Dec 3, 2026 at 3:26 PM Deploybot <
bot@example.com> wrote:

> Deploy v2 to production?
"""
OUTLOOK = """no - wait until Monday

________________________________
From: Deploybot <bot@example.com>
Sent: Thursday, December 3, 2026 3:26 PM
To: Alice <alice@example.com>
Subject: Approval needed: deploy (deploybot)

Deploy v2 to production?
"""
OUTLOOK_CLASSIC = """yes

-----Original Message-----
From: Deploybot <bot@example.com>
Sent: Thursday, December 3, 2026 3:26 PM
Subject: Approval needed
"""
APPLE = """Yes, go ahead.

Sent from my iPhone

> On 3 Dec 2026, at 15:26, Deploybot <bot@example.com> wrote:
>
> Deploy v2 to production?
"""
FRENCH = """Refusé? non: DENY pas aujourd'hui

Le jeu. 3 déc. 2026 à 15:26, Deploybot <bot@example.com> a écrit :
> Deploy v2 to production?
"""
GMAIL_HTML = (
    '<div dir="ltr">LGTM<br></div><br><div class="gmail_quote"><div class="gmail_attr">On Thu, Dec 3, 2026'
    " Deploybot wrote:<br></div><blockquote>Deploy v2 to production?<br>approve</blockquote></div>"
    "<script>alert(1)</script>"
)


@pytest.mark.parametrize(
    ("body", "content_type", "approved", "reason"),
    [
        (GMAIL, "text/plain", True, None),
        (GMAIL_WRAPPED, "text/plain", False, "too risky\nbefore the freeze ends"),
        (OUTLOOK, "text/plain", False, "wait until Monday"),
        (OUTLOOK_CLASSIC, "text/plain", True, None),
        (APPLE, "text/plain", True, None),
        (GMAIL_HTML, "text/html", True, None),
    ],
    ids=["gmail", "gmail-wrapped-deny", "outlook-web", "outlook-classic", "apple-mail", "gmail-html-only"],
)
def test_replies_from_common_clients_are_read_without_their_quoted_history(
    body: str, content_type: str, approved: bool, reason: str | None
) -> None:
    mail = parse_mail(reply(body, content_type=content_type))
    assert mail.sender == "alice@example.com" and mail.token == "TOKENPART.SIGPART"
    assert mail.message_id == "reply-1@mail.example.com"
    assert "production" not in mail.text  # the quoted question is gone
    answer = read_answer("approval", mail.text)
    assert (answer.approved, answer.text) == (approved, reason)


def test_a_first_line_that_is_neither_approve_nor_deny_is_not_guessed() -> None:
    mail = parse_mail(reply(FRENCH))
    assert "Deploy v2" not in mail.text  # the French attribution line was recognised
    for text in (mail.text, "Not approved", "maybe later", "I think so?", "No problem, go ahead"):
        with pytest.raises(MailRejected, match="reply APPROVE, or DENY and a reason"):
            read_answer("approval", text)


def test_html_with_unclosed_tags_in_the_quote_still_yields_the_answer_after_it() -> None:
    body = "<blockquote><p>Deploy v2 to production?</blockquote><div>Deny<br>not during the freeze</div>"
    mail = parse_mail(reply(body, content_type="text/html"))
    assert read_answer("approval", mail.text).model_dump() == {
        "approved": False,
        "text": "not during the freeze",
        "outcome": None,
    }


def test_answers_to_questions_and_reconcile_requests() -> None:
    assert read_answer("input", "Use the blue-green strategy.\nThanks").text == "Use the blue-green strategy.\nThanks"
    assert read_answer("reconcile", "Done: deployed as #42").model_dump() == {
        "approved": None,
        "text": "deployed as #42",
        "outcome": "done",
    }
    assert read_answer("reconcile", "retry please").outcome == "retry"
    with pytest.raises(MailRejected, match="empty"):
        read_answer("input", "  \n ")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00\xff not a mail at all", "no valid From address"),
        (reply("Approve", extra="Auto-Submitted: auto-replied\r\n"), "automatic reply"),
        (reply("x" * 2000), "the limit is 1000"),
    ],
    ids=["garbage", "out-of-office", "too-large"],
)
def test_unusable_mail_is_rejected_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MailRejected, match=reason):
        parse_mail(raw, max_bytes=1000)


def test_reply_tags_are_signed_and_split_off_the_address() -> None:
    tag = reply_tag(SECRET, "a.b")
    assert len(tag) == 16 and tag != reply_tag("other" * 8, "a.b") and tag != reply_tag(SECRET, "a.c")
    assert split_tag(f"bot+{tag}@example.com") == ("bot@example.com", tag)
    assert split_tag("bot@example.com") == ("bot@example.com", None)
