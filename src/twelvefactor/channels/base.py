"""What every channel shares: the notice it sends, the receipt it returns, the answer it reports.

A channel is a plain object with ``name``, ``send`` and ``update``. The server's outbox (``server/outbox``)
calls ``send`` for each person a request is routed to, retries a ``ChannelError(retryable=True)`` with
backoff, keeps the ``Receipt`` (the channel's own id of the message) and, once the request is answered,
calls ``update`` so that the message says who answered and when. Everything in a ``Notice`` that came
from a model or a person (``text``, ``arguments``) is untrusted: a channel escapes it for its medium.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, JsonValue

from twelvefactor.errors import ChannelError
from twelvefactor.events import HumanRequest, HumanResponse

__all__ = ["Answered", "Channel", "ChannelError", "Notice", "NoticeKind", "Receipt"]

NoticeKind = Literal["approval", "input", "reconcile", "notify"]


class Notice(BaseModel):
    """One message to one person on one channel: a human request (``request_id`` set) or a notification."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    thread_id: str
    agent: str | None = None
    kind: NoticeKind
    text: str  # the question, or the notification's message (untrusted: escape it)
    request_id: str | None = None  # None for a notification: nothing to answer
    intent: str | None = None  # for approvals: the tool call waiting for the decision
    arguments: dict[str, JsonValue] | None = None
    to: str  # the channel's address of the person or group: an email address, a Slack channel or user id
    step: int = 0  # place in the escalation chain (0: first contact)
    escalated: bool = False  # sent because earlier contacts did not answer in time
    link: str | None = None  # signed single-use URL of the confirmation page (answers once)
    reply_token: str | None = None  # signed token an answer on this channel carries back (links.read_token)
    thread_url: str | None = None  # the thread in the web UI

    @classmethod
    def asking(
        cls,
        request: HumanRequest,
        *,
        thread_id: str,
        to: str,
        agent: str | None = None,
        step: int = 0,
        escalated: bool = False,
        link: str | None = None,
        reply_token: str | None = None,
        thread_url: str | None = None,
    ) -> Notice:
        """The notice that asks ``request`` of ``to``."""
        return cls(
            thread_id=thread_id,
            agent=agent,
            kind=request.kind,
            text=request.question,
            request_id=request.call_id,
            intent=request.intent,
            arguments=request.arguments,
            to=to,
            step=step,
            escalated=escalated,
            link=link,
            reply_token=reply_token,
            thread_url=thread_url,
        )


class Receipt(BaseModel):
    """What a channel reports after sending: its own id of the message (an email Message-ID, a Slack
    ``channel:ts``), so the message can be updated and a reply matched to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ref: str | None = None


class Answered(BaseModel):
    """How a request was answered, for updating the messages that asked it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    approved: bool | None = None
    text: str | None = None
    outcome: str | None = None
    responder: str | None = None
    at: datetime

    @classmethod
    def of(cls, response: HumanResponse) -> Answered:
        """How ``response`` answered its request."""
        return cls(
            approved=response.approved,
            text=response.text,
            outcome=response.outcome,
            responder=response.responder,
            at=response.at,
        )


class Channel(Protocol):
    """A way to reach people. ``send`` raises ChannelError when it could not deliver."""

    name: str

    async def send(self, notice: Notice) -> Receipt: ...

    async def update(self, notice: Notice, receipt: Receipt, answered: Answered) -> None:
        """Mark a sent request as answered (a no-op for channels whose messages cannot change, like email)."""
        ...

    async def aclose(self) -> None: ...
