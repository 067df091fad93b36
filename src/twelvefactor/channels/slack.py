"""Slack over its Web API (httpx, Slack's documented wire format): requests as Block Kit messages.

``send`` posts the message (``chat.postMessage``) with Approve / Deny / Answer buttons whose value is the
notice's signed reply token; ``update`` rewrites it once answered (``chat.update``: no buttons, who and
when); ``open_dialog`` opens the reason / answer modal (``views.open``). The interactive and Events API
endpoints that receive the clicks live in ``server/slack``.

Slack answers most failures with HTTP 200 and ``{"ok": false, "error": "..."}``. Rate limits (HTTP 429
with ``Retry-After``), 5xx, timeouts and Slack's own transient errors are retryable ``ChannelError``;
a bad address or token is not (retrying cannot fix it), and its message says what to change.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

import httpx

from twelvefactor.channels.base import Answered, ChannelError, Notice, Receipt
from twelvefactor.channels.config import SlackChannelConfig
from twelvefactor.channels.slack_blocks import (
    DialogKind,
    answered_blocks,
    dialog,
    escape,
    fallback_text,
    request_blocks,
)

__all__ = ["SlackChannel", "split_ref"]

_RETRYABLE = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})
_HINTS = {
    "channel_not_found": "check the channel or user id in the contact step (the bot must see the channel)",
    "not_in_channel": "invite the app to the channel (/invite @your-app)",
    "is_archived": "the channel is archived: route the request elsewhere",
    "invalid_auth": "check bot_token (an xoxb- token of this workspace)",
    "not_authed": "set bot_token",
    "account_inactive": "the bot's token was deactivated: reinstall the app and update bot_token",
    "token_revoked": "the token was revoked: reinstall the app and update bot_token",
    "missing_scope": "add the chat:write scope to the app and reinstall it",
    "message_not_found": "the message was deleted from Slack",
    "cant_update_message": "only messages this bot posted can be updated",
    "expired_trigger_id": "the dialog must open within 3 s of the click: click again",
}


def split_ref(ref: str) -> tuple[str, str]:
    """``(channel, ts)`` of a Slack receipt ref ``"{channel}:{ts}"``."""
    channel, sep, ts = ref.partition(":")
    if not (sep and channel and ts):
        raise ChannelError(f"{ref!r} is not a Slack message reference ('CHANNEL:TS')", retryable=False)
    return channel, ts


class SlackChannel:
    """A Slack workspace reached with a bot token. Use as an async context manager, or call ``aclose``."""

    def __init__(
        self,
        *,
        bot_token: str,
        api_url: str = "https://slack.com/api",
        timeout_s: float = 10.0,
        name: str = "slack",
    ) -> None:
        self.name = name
        self.api_url = api_url.rstrip("/")
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            follow_redirects=False,
            headers={"authorization": f"Bearer {bot_token}", "user-agent": "twelvefactor-slack/1"},
        )

    @classmethod
    def from_config(cls, cfg: SlackChannelConfig) -> SlackChannel:
        return cls(bot_token=cfg.bot_token, api_url=cfg.api_url, timeout_s=cfg.timeout_s, name=cfg.name)

    async def __aenter__(self) -> SlackChannel:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- the Channel protocol ---

    async def send(self, notice: Notice) -> Receipt:
        """Post the request (or notification) to ``notice.to``; the receipt's ref is ``"{channel}:{ts}"``."""
        try:
            blocks = request_blocks(notice)
        except ValueError as exc:
            raise ChannelError(f"cannot build the Slack message: {exc}", retryable=False) from None
        body = {
            "channel": notice.to,
            "text": fallback_text(notice),
            "blocks": blocks,
            # A model's or person's URL must not be fetched and previewed in the channel.
            "unfurl_links": False,
            "unfurl_media": False,
        }
        answer = await self._call("chat.postMessage", body)
        channel, ts = answer.get("channel"), answer.get("ts")
        if not isinstance(channel, str) or not isinstance(ts, str):
            raise ChannelError("chat.postMessage answered ok without a channel and ts", retryable=False)
        return Receipt(ref=f"{channel}:{ts}")

    async def update(self, notice: Notice, receipt: Receipt, answered: Answered) -> None:
        """Rewrite the message ``receipt`` names: the question, no buttons, who answered and when."""
        if receipt.ref is None:
            return
        channel, ts = split_ref(receipt.ref)
        body = {
            "channel": channel,
            "ts": ts,
            "text": escape(f"Answered: {notice.text}"[:3000]),
            "blocks": answered_blocks(notice, answered),
        }
        await self._call("chat.update", body)

    # --- what the interactive endpoint needs ---

    async def open_dialog(self, trigger_id: str, kind: DialogKind, question: str, private_metadata: str) -> None:
        """Open the reason (``deny``) or answer dialog for the click that gave ``trigger_id`` (valid 3 s)."""
        try:
            view = dialog(kind, question, private_metadata)
        except ValueError as exc:
            raise ChannelError(f"cannot build the Slack dialog: {exc}", retryable=False) from None
        await self._call("views.open", {"trigger_id": trigger_id, "view": view})

    async def say_privately(self, channel: str, user: str, text: str) -> None:
        """An ephemeral message only ``user`` sees in ``channel`` (why their click changed nothing)."""
        await self._call("chat.postEphemeral", {"channel": channel, "user": user, "text": escape(text)})

    async def _call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.api_url}/{method}"
        try:
            response = await self._client.post(url, json=body)
        except httpx.TimeoutException:
            raise ChannelError(f"Slack {method} timed out", retryable=True) from None
        except httpx.TransportError as exc:
            raise ChannelError(f"Slack {method} could not be reached: {exc}", retryable=True) from None
        if response.status_code == 429:
            raise ChannelError(f"Slack {method} is rate limited", retryable=True, retry_after_s=_retry_after(response))
        if response.status_code >= 500:
            raise ChannelError(f"Slack {method} answered HTTP {response.status_code}", retryable=True)
        if response.status_code != 200:
            raise ChannelError(f"Slack {method} answered HTTP {response.status_code}", retryable=False)
        try:
            answer = response.json()
        except json.JSONDecodeError:
            raise ChannelError(f"Slack {method} answered something that is not JSON", retryable=True) from None
        if not isinstance(answer, dict):
            raise ChannelError(f"Slack {method} answered JSON that is not an object", retryable=True)
        if answer.get("ok") is True:
            return answer
        error = str(answer.get("error") or "unknown_error")
        if error in _RETRYABLE:
            raise ChannelError(f"Slack {method} failed: {error}", retryable=True, retry_after_s=_retry_after(response))
        hint = _HINTS.get(error)
        raise ChannelError(f"Slack {method} failed: {error}" + (f": {hint}" if hint else ""), retryable=False)


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after", "")
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None
