"""Inbound email: a reply answers the request it replies to; a mail to an inbound address starts a thread.

Two ways in, one path (``apply_mail``):

* a local SMTP listener (``start_smtp_server``, aiosmtpd) that answers ``250`` when the mail was applied
  and ``550`` with the reason when it was refused, so the sender's mail server bounces it back to them;
* ``POST /v1/email/inbound``: an inbound-parse webhook whose body is the raw message (``message/rfc822``),
  signed like the resume webhook (Standard Webhooks, ``inbound_webhook_secret``): 401 forged or stale,
  409 a replayed ``webhook-id``, 413 too large, 422 a refused mail (with the reason).

A reply is trusted only through the signed token in its ``In-Reply-To`` / ``References`` (our
``Message-ID``), checked with the server's secret; when it was sent to a tagged reply address the tag
must be the one made for that token; when the channel restricts senders, the From address must be
allowed. The answer is applied with ``idempotency_key="email:{Message-ID}"``, so a redelivered mail is a
no-op. A mail to an inbound address (not a reply) starts one thread per Message-ID. Anything else, a
forged reply included, is ``MailRejected`` with the reason, and nothing changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterable
from email.utils import parseaddr
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from twelvefactor.channels.config import EmailChannelConfig
from twelvefactor.channels.mail_reply import InboundMail, parse_mail, read_answer, reply_tag, split_tag
from twelvefactor.errors import (
    ConflictError,
    LinkError,
    MailRejected,
    ThreadNotFound,
    TwelveFactorError,
    UserError,
)
from twelvefactor.events import HumanResponse, UserMessage
from twelvefactor.server._state import runtime_of
from twelvefactor.server.limits import check_texts
from twelvefactor.server.links import read_token
from twelvefactor.server.schemas import ErrorView
from twelvefactor.server.webhooks import read_signed
from twelvefactor.store.base import idempotency_key
from twelvefactor.triggers.start import Submit, start_thread

if TYPE_CHECKING:
    # aiosmtpd (the "email" extra) is imported only by start_smtp_server: the webhook needs none of it.
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, Envelope, Session

    from twelvefactor.server.runtime import Runtime

__all__ = ["MailHandler", "MailOutcome", "apply_mail", "router", "start_smtp_server"]

log = logging.getLogger(__name__)

_CLAIM_MARGIN_S = 60.0  # as the resume webhook: ids are kept a little past the tolerance window


class MailOutcome(BaseModel):
    """What an inbound mail did."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["answered", "started", "duplicate"] = Field(
        description="answered a request, started a thread, or changed nothing because it was already applied"
    )
    thread_id: str
    request_id: str | None = None
    detail: str


async def apply_mail(
    rt: Runtime, raw: bytes, *, recipients: Iterable[str] = (), submit: Submit | None = None
) -> MailOutcome:
    """Apply one inbound message; MailRejected (nothing changed) when it answers nothing and starts nothing.

    ``recipients``: the SMTP envelope's RCPT TO addresses, which count as much as the To header (Bcc,
    forwarding). ``submit``: how to hand a thread to the worker from this loop (default ``rt.worker.submit``).
    """
    mail = parse_mail(raw, max_bytes=rt.settings.max_body_bytes)
    to = list(dict.fromkeys([*mail.to, *(r.strip().lower() for r in recipients)]))
    submit = submit or rt.worker.submit
    channels = [c for c in rt.settings.channels if isinstance(c, EmailChannelConfig)]
    if not channels:
        raise MailRejected("no email channel is configured here: mail is not read")
    key = f"email:{mail.message_id or 'sha256:' + hashlib.sha256(raw).hexdigest()}"
    if mail.token is not None:
        return await _answer(rt, mail, to, channels, key, submit)
    for address in to:
        base, tag = split_tag(address)
        if tag is not None and any(_same(base, c.reply_to) for c in channels):
            raise MailRejected(
                "this is a reply without the headers of the message it answers (In-Reply-To, References):"
                " reply to the original message, or use its link"
            )
    for channel in channels:
        inbound = {address.strip().lower(): agent for address, agent in channel.inbound.items()}
        agent = next((inbound[address] for address in to if address in inbound), None)
        if agent is not None:
            _check_sender(channel, mail.sender)
            return await _start(rt, mail, agent, key, submit)
    raise MailRejected(
        "this mail is not a reply to a request and is not addressed to an inbound address: nothing to do"
    )


async def _answer(
    rt: Runtime, mail: InboundMail, to: list[str], channels: list[EmailChannelConfig], key: str, submit: Submit
) -> MailOutcome:
    assert mail.token is not None
    try:
        claims = read_token(rt.settings.secret, mail.token)
    except LinkError as exc:
        raise MailRejected(f"the reply's token does not check out: {exc}") from None
    channel = _reply_channel(rt.settings.secret, mail.token, to, channels)
    _check_sender(channel, mail.sender)
    try:
        thread = await asyncio.to_thread(rt.store.load, claims.thread_id)
    except ThreadNotFound:
        raise MailRejected(f"thread {claims.thread_id!r} does not exist (any more): nothing to answer") from None
    if any(idempotency_key(event) == key for event in thread.events):
        return MailOutcome(
            action="duplicate",
            thread_id=thread.id,
            request_id=claims.request_id,
            detail="this mail was already applied; nothing changed",
        )
    pending = thread.pending_request
    if pending is None or pending.call_id != claims.request_id:
        raise MailRejected(
            f"thread {thread.id!r} is {thread.status}: the request this mail replies to was already answered;"
            " nothing changed"
        )
    answer = read_answer(pending.kind, mail.text)
    try:
        check_texts(rt.settings.max_text_chars, "the reply", answer.text)
    except UserError as exc:
        raise MailRejected(str(exc)) from None
    response = HumanResponse(
        request_id=claims.request_id,
        approved=answer.approved,
        text=answer.text,
        outcome=answer.outcome,
        responder=mail.sender,
        idempotency_key=key,
    )
    try:
        await asyncio.to_thread(rt.store.respond, claims.thread_id, response)
    except (ConflictError, ThreadNotFound, UserError) as exc:  # answered meanwhile, or the answer does not fit
        raise MailRejected(f"the reply was not applied: {exc}; nothing changed") from None
    submit(claims.thread_id)
    verdict = {True: "approved", False: "denied", None: "answered"}[answer.approved]
    return MailOutcome(
        action="answered",
        thread_id=claims.thread_id,
        request_id=claims.request_id,
        detail=f"{verdict} by {mail.sender}",
    )


def _reply_channel(secret: str, token: str, to: list[str], channels: list[EmailChannelConfig]) -> EmailChannelConfig:
    """The channel whose reply address the mail was sent to; a tag on it must be the token's."""
    for address in to:
        base, tag = split_tag(address)
        for channel in channels:
            if channel.reply_to is None or not _same(base, channel.reply_to):
                continue
            if tag is not None and tag != reply_tag(secret, token):
                raise MailRejected("the reply address's tag does not belong to the message replied to: nothing changed")
            return channel
    raise MailRejected("the reply was not sent to the reply address of an email channel here: nothing changed")


def _check_sender(channel: EmailChannelConfig, sender: str) -> None:
    if not channel.allowed_senders:
        return
    allowed = [entry.strip().lower() for entry in channel.allowed_senders]
    domain = "@" + sender.rpartition("@")[2]
    if sender not in allowed and domain not in allowed:
        raise MailRejected(f"{sender!r} may not answer or start threads on channel {channel.name!r}: nothing changed")


def _same(address: str, configured: str | None) -> bool:
    if configured is None:
        return False
    return address == parseaddr(configured)[1].strip().lower()


async def _start(rt: Runtime, mail: InboundMail, agent: str, key: str, submit: Submit) -> MailOutcome:
    if not (mail.subject or mail.text):
        raise MailRejected("the mail has no subject and no text: write what the agent should do")
    content = f"Email from {mail.sender}\nSubject: {mail.subject}\n\n{mail.text}".rstrip()
    try:
        check_texts(rt.settings.max_text_chars, "the mail", content)
    except UserError as exc:
        raise MailRejected(str(exc)) from None
    # One thread per Message-ID: a redelivered mail finds the thread it started.
    thread_id = "mail-" + hashlib.sha256(key.encode()).hexdigest()[:24]
    try:
        thread, started = await asyncio.to_thread(
            start_thread, rt.store, submit, rt.agents, agent, [UserMessage(content=content)], thread_id=thread_id
        )
    except (ConflictError, UserError) as exc:
        raise MailRejected(f"no thread was started: {exc}") from None
    if not started:
        return MailOutcome(action="duplicate", thread_id=thread.id, detail="this mail already started this thread")
    return MailOutcome(action="started", thread_id=thread.id, detail=f"started a thread of {agent!r}")


# --- the SMTP listener ---


def _smtp_line(text: str) -> str:
    """A reason fit for an SMTP reply: one line of printable ASCII, not too long."""
    line = " ".join(text.split()).encode("ascii", "replace").decode("ascii")
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in line)[:400]


class MailHandler:
    """aiosmtpd handler: each message is applied while the sender waits; 250 applied, 550 refused (why)."""

    def __init__(self, rt: Runtime, submit: Submit) -> None:
        self.rt = rt
        self.submit = submit

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            outcome = await apply_mail(self.rt, raw, recipients=envelope.rcpt_tos, submit=self.submit)
        except MailRejected as exc:
            return f"550 5.7.1 {_smtp_line(str(exc))}"
        except TwelveFactorError as exc:  # the store is busy or down: the sender's server tries again later
            log.warning("inbound mail not applied: %s", exc)
            return f"451 4.3.0 {_smtp_line(str(exc))}"
        return f"250 OK {_smtp_line(outcome.action + ': ' + outcome.detail)}"


def start_smtp_server(rt: Runtime, host: str = "127.0.0.1", port: int = 8025) -> Controller:
    """Listen for mail on ``host:port`` (started; call ``.stop()``). Call it on the loop the worker runs on:
    aiosmtpd runs its own loop in a thread, and threads are handed back to this loop to be advanced."""
    from aiosmtpd.controller import Controller

    loop = asyncio.get_running_loop()

    def submit(thread_id: str) -> None:
        loop.call_soon_threadsafe(rt.worker.submit, thread_id)

    controller = Controller(
        MailHandler(rt, submit),
        hostname=host,
        port=port,
        data_size_limit=rt.settings.max_body_bytes,
        server_hostname="twelvefactor",
    )
    controller.start()
    return controller


# --- the inbound-parse webhook ---

router = APIRouter(prefix="/v1", tags=["email"])


@router.post(
    "/email/inbound",
    response_model=MailOutcome,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "the raw RFC 5322 message as received; the body is read as bytes whatever its"
            " Content-Type (message/rfc822, application/octet-stream)",
            # Declared as octet-stream, which OpenAPI tools can send; message/rfc822 is accepted the same.
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    responses={
        401: {"model": ErrorView, "description": "forged (bad signature) or stale (timestamp outside the window)"},
        404: {"model": ErrorView, "description": "inbound webhooks are not enabled"},
        409: {"model": ErrorView, "description": "a replayed webhook-id"},
        413: {"model": ErrorView, "description": "body over max_body_bytes (default 1 MiB)"},
        422: {"model": ErrorView, "description": "the mail was refused (the reason says why); nothing changed"},
    },
)
async def inbound_mail(
    request: Request,
    webhook_id: Annotated[str | None, Header(description="unique message id (replays are rejected)")] = None,
    webhook_timestamp: Annotated[str | None, Header(description="seconds since the epoch, when signed")] = None,
    webhook_signature: Annotated[str | None, Header(description="v1,<base64 HMAC-SHA256>")] = None,
) -> MailOutcome:
    """Apply one inbound email posted by a mail provider's inbound-parse webhook (the raw message)."""
    rt = runtime_of(request)
    body, msg_id, timestamp = await read_signed(request, webhook_id, webhook_timestamp, webhook_signature)
    tolerance = rt.settings.webhook_tolerance_s
    fresh = await asyncio.to_thread(
        rt.webhooks.log.remember, msg_id, expires_at=timestamp + tolerance + _CLAIM_MARGIN_S, now=time.time()
    )
    if not fresh:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"webhook-id {msg_id!r} was already received: a replay changes nothing"
        )
    try:
        return await apply_mail(rt, body)
    except MailRejected as exc:
        await asyncio.to_thread(rt.webhooks.log.forget, msg_id)  # nothing applied: a retry may be let through
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except TwelveFactorError:
        await asyncio.to_thread(rt.webhooks.log.forget, msg_id)
        raise
