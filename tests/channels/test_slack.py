"""The Slack channel against a local Slack: the message it posts, what hostile text becomes, Slack's errors."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from slackfake import BOT_TOKEN, SlackFake, slack_fake
from twelvefactor.channels import Answered, ChannelError, Notice, Receipt, SlackChannelConfig
from twelvefactor.channels.slack import SlackChannel
from twelvefactor.channels.slack_blocks import dialog, escape
from twelvefactor.channels.slack_verify import sign_slack, verify_slack
from twelvefactor.errors import SignatureError
from twelvefactor.server.testing import free_port

pytestmark = pytest.mark.anyio

HOSTILE = "Deploy? <!channel> <https://evil.example|click> & <@U0BOSS> > done"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def fake() -> Iterator[SlackFake]:
    with slack_fake() as running:
        yield running


def channel_for(fake: SlackFake, **overrides: Any) -> SlackChannel:
    values: dict[str, Any] = {"bot_token": BOT_TOKEN, "signing_secret": "s", "api_url": fake.api_url, "timeout_s": 2}
    return SlackChannel.from_config(SlackChannelConfig(**{**values, **overrides}))


def approval(**overrides: Any) -> Notice:
    values: dict[str, Any] = {
        "thread_id": "t1",
        "kind": "approval",
        "text": HOSTILE,
        "request_id": "call-1",
        "intent": "deploy_backend",
        "arguments": {"environment": "production", "tag": "v1 <!here> ```x```"},
        "to": "C0DEPLOYS",
        "reply_token": "signed.token.value",
        "thread_url": "https://agents.example.test/ui/threads/t1",
    }
    return Notice(**{**values, **overrides})


def texts(value: Any) -> list[str]:
    """Every text Slack would render or parse in a message body (block texts and the fallback)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "text" and isinstance(inner, str):
                found.append(inner)
            else:
                found.extend(texts(inner))
    elif isinstance(value, list):
        for inner in value:
            found.extend(texts(inner))
    return found


async def test_an_approval_posts_buttons_carrying_the_token_and_a_link_to_the_thread(fake: SlackFake) -> None:
    async with channel_for(fake) as slack:
        receipt = await slack.send(approval())
    body = fake.of("chat.postMessage")[-1]
    assert body["channel"] == "C0DEPLOYS" and body["text"] and body["unfurl_links"] is False
    assert receipt.ref is not None and re.fullmatch(r"C0DEPLOYS:\d+\.\d{6}", receipt.ref)  # Slack's channel:ts
    actions = next(block for block in body["blocks"] if block["type"] == "actions")
    buttons = {button["action_id"]: button for button in actions["elements"]}
    assert set(buttons) == {"tf_approve", "tf_deny"}
    assert buttons["tf_approve"]["style"] == "primary" and buttons["tf_deny"]["style"] == "danger"
    assert {button["value"] for button in buttons.values()} == {"signed.token.value"}
    call = next(block for block in body["blocks"] if block.get("block_id") == "tf_call")
    assert call["text"]["text"].startswith("`deploy_backend`\n```") and "production" in call["text"]["text"]
    context = next(block for block in body["blocks"] if block["type"] == "context")
    assert "<https://agents.example.test/ui/threads/t1|Open thread t1>" in context["elements"][0]["text"]


async def test_hostile_text_pings_nobody_and_links_nowhere(fake: SlackFake) -> None:
    async with channel_for(fake) as slack:
        await slack.send(approval())
    body = fake.of("chat.postMessage")[-1]
    question = next(block for block in body["blocks"] if block.get("block_id") == "tf_question")
    assert question["text"] == {"type": "plain_text", "text": HOSTILE, "emoji": False}  # shown as typed
    for text in texts(body) + [body["text"]]:
        if text == HOSTILE:
            continue  # plain_text: Slack parses no mentions or links in it
        # mrkdwn and the fallback: no '<' but our own thread link starts a Slack entity.
        assert "<!channel>" not in text and "<!here>" not in text and "<@U0BOSS>" not in text
        assert "<https://evil" not in text
    assert "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; &lt;@U0BOSS&gt; &gt; done" in body["text"]
    call = next(block for block in body["blocks"] if block.get("block_id") == "tf_call")
    assert "&lt;!here&gt;" in call["text"]["text"] and call["text"]["text"].count("```") == 2  # still one code block


async def test_questions_reconciles_and_notifications_get_their_own_controls(fake: SlackFake) -> None:
    async with channel_for(fake) as slack:
        await slack.send(approval(kind="input", intent=None, arguments=None))
        await slack.send(approval(kind="reconcile"))
        await slack.send(approval(kind="notify", request_id=None, reply_token=None, text="deploy <!channel> started"))
    question, reconcile, notify = fake.of("chat.postMessage")[-3:]

    def action_ids(body: dict[str, Any]) -> list[str]:
        return [e["action_id"] for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]]

    assert action_ids(question) == ["tf_answer"]
    assert action_ids(reconcile) == ["tf_done", "tf_retry", "tf_skip"]
    assert action_ids(notify) == [] and notify["text"] == "deploy &lt;!channel&gt; started"


async def test_update_removes_the_buttons_and_says_who_answered_and_when(fake: SlackFake) -> None:
    at = datetime(2026, 12, 3, 15, 40, tzinfo=UTC)
    async with channel_for(fake) as slack:
        receipt = await slack.send(approval())
        await slack.update(
            approval(), receipt, Answered(approved=False, text="not <!channel> today", responder="bob", at=at)
        )
    body = fake.of("chat.update")[-1]
    assert f"{body['channel']}:{body['ts']}" == receipt.ref
    assert all(block["type"] != "actions" for block in body["blocks"])
    line = next(block for block in body["blocks"] if block.get("block_id") == "tf_answered")["text"]["text"]
    assert line.startswith("⛔ Denied by bob at <!date^1796312400^") and line.endswith(": not &lt;!channel&gt; today")


async def test_slacks_errors_are_retryable_or_not_as_retrying_can_help(fake: SlackFake) -> None:
    async with channel_for(fake) as slack:
        fake.fail("chat.postMessage", status=429, retry_after="7")
        with pytest.raises(ChannelError) as limited:
            await slack.send(approval())
        assert limited.value.retryable and limited.value.retry_after_s == 7.0
        fake.fail("chat.postMessage", status=503)
        with pytest.raises(ChannelError) as unavailable:
            await slack.send(approval())
        assert unavailable.value.retryable
        for error, hint in [("channel_not_found", "channel or user id"), ("not_in_channel", "/invite")]:
            fake.fail("chat.postMessage", error=error)
            with pytest.raises(ChannelError, match=error) as refused:
                await slack.send(approval())
            assert not refused.value.retryable and hint in str(refused.value)
    async with channel_for(fake, bot_token="xoxb-revoked") as wrong:
        with pytest.raises(ChannelError, match="invalid_auth: check bot_token") as bad_token:
            await wrong.send(approval())
    assert not bad_token.value.retryable


async def test_an_unreachable_slack_is_retryable() -> None:
    config = SlackChannelConfig(bot_token=BOT_TOKEN, signing_secret="s", api_url=f"http://127.0.0.1:{free_port()}/api")
    async with SlackChannel.from_config(config) as slack:
        with pytest.raises(ChannelError, match="could not be reached") as refused:
            await slack.send(approval())
    assert refused.value.retryable


async def test_a_receipt_that_is_not_a_slack_message_is_refused_clearly(fake: SlackFake) -> None:
    async with channel_for(fake) as slack:
        with pytest.raises(ChannelError, match="not a Slack message reference"):
            await slack.update(approval(), Receipt(ref="no-colon"), Answered(approved=True, at=datetime.now(UTC)))


def test_the_dialog_carries_its_metadata_and_a_text_box() -> None:
    view = dialog("deny", HOSTILE, '{"k":"tok"}')
    assert view["callback_id"] == "tf_deny" and view["private_metadata"] == '{"k":"tok"}'
    assert view["blocks"][1]["block_id"] == "tf_text" and view["blocks"][1]["optional"] is True
    assert dialog("answer", "?", "m")["blocks"][1]["optional"] is False
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"


async def test_send_latency_to_slack(fake: SlackFake, capsys: pytest.CaptureFixture[str]) -> None:
    latencies: list[float] = []
    async with channel_for(fake) as slack:
        for _ in range(20):
            started = time.perf_counter()
            await slack.send(approval())
            latencies.append((fake.calls[-1].at - started) * 1000)
    median = statistics.median(latencies)
    with capsys.disabled():
        print(f"\nsend() -> fake received chat.postMessage: median {median:.2f} ms, max {max(latencies):.2f} ms (n=20)")
    assert median < 500


def test_slack_signatures_are_checked_against_the_body_and_the_clock() -> None:
    body = b"payload=%7B%7D"
    headers = {"x-slack-request-timestamp": "1700000000", "x-slack-signature": sign_slack("secret", 1700000000, body)}
    assert verify_slack("secret", headers, body, now=1700000299, tolerance_s=300) == (
        headers["x-slack-signature"],
        1700000000,
    )
    for now, said in [(1700000301, "301s old"), (1699999699, "301s in the future")]:
        with pytest.raises(SignatureError, match=said):
            verify_slack("secret", headers, body, now=now, tolerance_s=300)
    with pytest.raises(SignatureError, match="does not match"):
        verify_slack("secret", headers, body + b"x", now=1700000000, tolerance_s=300)
    with pytest.raises(SignatureError, match="not whole seconds"):
        verify_slack("secret", {**headers, "x-slack-request-timestamp": "١٧٠٠"}, body, now=0, tolerance_s=300)
    with pytest.raises(SignatureError, match="missing"):
        verify_slack("secret", {}, body, now=0, tolerance_s=300)
