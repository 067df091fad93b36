"""Slack's requests to us: button clicks and dialogs (interactive), app mentions and direct messages (Events API).

Every request is checked first: Slack's v0 signature with the app's ``signing_secret`` and a timestamp
within ``tolerance_s`` (else 401), then the signature is remembered durably for the window, so the same
request posted again is a 409 (``DeliveryLog.remember``, shared by every process on the database).
Nothing unsigned, stale or replayed is read further.

Interactive. A button's value is the notice's signed reply token (``links.make_token``): Approve, Mark
done, Run again and Skip answer at once; Deny and Answer open a dialog whose submission carries the token
back in ``private_metadata``. The answer is applied with ``slack:<nonce>`` as its idempotency key, so a
double click answers once, and the message is rewritten to say who answered and when. A token that does
not verify, has expired, or names a request that is no longer pending changes nothing: the person is told
why (an ephemeral message, or an error under the dialog's text box), and Slack still gets a 200 so it
does not show its own error.

Events. ``url_verification`` echoes the challenge. An app mention, or a direct message, that replies in
the Slack thread of a question we posted answers that question; any other one starts a thread of
``events_agent`` whose id is derived from Slack's ``event_id``, so a redelivered event (Slack retries
until it gets a 2xx within 3 s) never starts a second thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any, Literal, assert_never
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.background import BackgroundTask

from twelvefactor.channels.base import Answered, ChannelError, Notice, Receipt
from twelvefactor.channels.config import SlackChannelConfig
from twelvefactor.channels.slack import SlackChannel
from twelvefactor.channels.slack_blocks import TEXT_BLOCK, DialogKind
from twelvefactor.channels.slack_verify import verify_slack
from twelvefactor.errors import (
    ConflictError,
    LinkError,
    SignatureError,
    TextTooLong,
    ThreadNotFound,
    UnknownAgentError,
    UserError,
)
from twelvefactor.events import HumanRequest, HumanResponse, ReconcileOutcome, UserMessage
from twelvefactor.server._state import runtime_of
from twelvefactor.server.limits import check_texts
from twelvefactor.server.links import LinkClaims, read_token
from twelvefactor.triggers.start import start_thread

if TYPE_CHECKING:
    from twelvefactor.server.runtime import Runtime

__all__ = ["router", "slack_config"]

log = logging.getLogger("twelvefactor.slack")
router = APIRouter(prefix="/v1/slack", tags=["slack"], include_in_schema=False)

_REPLAY_MARGIN_S = 60.0
_MAX_RESPONDER = 200
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
_EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CHALLENGE = {"WWW-Authenticate": 'slack-signature realm="twelvefactor"'}

Decision = Literal["approve", "deny", "answer", "done", "retry", "skip"]
_DECISION_OF: dict[str, Decision] = {
    "tf_approve": "approve",
    "tf_deny": "deny",
    "tf_answer": "answer",
    "tf_done": "done",
    "tf_retry": "retry",
    "tf_skip": "skip",
}
_KIND_OF: dict[Decision, str] = {
    "approve": "approval",
    "deny": "approval",
    "answer": "input",
    "done": "reconcile",
    "retry": "reconcile",
    "skip": "reconcile",
}


class _Where(BaseModel):
    """Where the clicked message is: ``private_metadata`` of a dialog (token, channel, message ts)."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(alias="k", max_length=2048)
    channel: str = Field(alias="c", max_length=64)
    ts: str = Field(alias="ts", max_length=64)


def slack_config(rt: Runtime) -> SlackChannelConfig:
    """The configured Slack channel (the first, should there be several); 404 when there is none."""
    for channel in rt.settings.channels:
        if isinstance(channel, SlackChannelConfig):
            return channel
    raise HTTPException(
        status.HTTP_404_NOT_FOUND,
        "Slack is not configured here: add a channel of type 'slack' (bot_token, signing_secret) to the"
        " server settings' channels",
    )


def _client(rt: Runtime, cfg: SlackChannelConfig) -> SlackChannel:
    """The runtime's channel for ``cfg`` (one HTTP client for the outbox and these endpoints; the server
    closes it when it stops)."""
    channel = rt.webhooks.channels.get(cfg.name)
    if not isinstance(channel, SlackChannel):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"channel {cfg.name!r} is replaced by a channel of your own here, not a Slack channel: Slack's"
            " requests cannot be answered",
        )
    return channel


async def _verified(request: Request, cfg: SlackChannelConfig) -> bytes:
    """The raw body of a Slack request that is signed, fresh and not seen before; 401 / 409 otherwise."""
    rt = runtime_of(request)
    body = await request.body()  # at most max_body_bytes: limits.BodyLimit stops reading past it
    now = time.time()
    try:
        signature, timestamp = verify_slack(
            cfg.signing_secret, request.headers, body, now=now, tolerance_s=cfg.tolerance_s
        )
    except SignatureError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers=_CHALLENGE) from None
    # Kept past the window (either side), after which the timestamp check refuses a replay anyway.
    fresh = await asyncio.to_thread(
        rt.webhooks.log.remember,
        f"slack:{signature}",
        expires_at=timestamp + cfg.tolerance_s + _REPLAY_MARGIN_S,
        now=now,
    )
    if not fresh:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "this Slack request was already received: a replay changes nothing"
        )
    return body


def _bad(message: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, message)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"Slack payload: {where} is missing or not an object")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(f"Slack payload: {where} is missing or not a string")
    return value


def _responder(user: dict[str, Any]) -> str:
    user_id = _string(user.get("id"), "user.id")
    name = user.get("username") or user.get("name")
    who = f"slack:{user_id} ({name})" if isinstance(name, str) and name else f"slack:{user_id}"
    return who[:_MAX_RESPONDER]


# --- interactive: clicks and dialogs ---


@router.post("/interactive")
async def interactive(request: Request) -> Response:
    """Button clicks (``block_actions``) and dialog submissions (``view_submission``), form-encoded."""
    rt = runtime_of(request)
    cfg = slack_config(rt)
    body = await _verified(request, cfg)
    form = parse_qs(body.decode("utf-8", "replace"))
    raw = form.get("payload", [""])[-1]
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError:
        raise _bad("Slack interactive request: the payload field is missing or not JSON") from None
    payload = _object(payload, "the payload")
    kind = payload.get("type")
    if kind == "block_actions":
        return await _clicked(rt, cfg, payload)
    if kind == "view_submission":
        return await _submitted(rt, cfg, payload)
    # Other interactions (a dialog closed, a shortcut) concern no request: acknowledged, nothing done.
    return JSONResponse({"ok": True, "ignored": f"interaction type {str(kind)[:40]!r} is not handled"})


async def _clicked(rt: Runtime, cfg: SlackChannelConfig, payload: dict[str, Any]) -> Response:
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions:
        raise _bad("Slack payload: actions is missing or empty")
    action = _object(actions[0], "actions[0]")
    decision = _DECISION_OF.get(str(action.get("action_id")))
    if decision is None:
        return JSONResponse({"ok": True, "ignored": "not one of our buttons"})
    user = _object(payload.get("user"), "user")
    responder = _responder(user)
    channel = _string(_object(payload.get("channel"), "channel").get("id"), "channel.id")
    ts = _string(_object(payload.get("message"), "message").get("ts"), "message.ts")
    token = _string(action.get("value"), "actions[0].value")
    slack = _client(rt, cfg)
    checked = await _pending(rt, token, decision)
    if isinstance(checked, str):
        return _refused(checked, BackgroundTask(_tell, slack, channel, user, checked))
    claims, pending = checked
    if decision in ("deny", "answer"):
        dialog: DialogKind = "deny" if decision == "deny" else "answer"
        where = json.dumps({"k": token, "c": channel, "ts": ts}, separators=(",", ":"))
        trigger = _string(payload.get("trigger_id"), "trigger_id")
        try:  # now, not after the response: a trigger_id is valid for 3 s
            await slack.open_dialog(trigger, dialog, pending.question, where)
        except ChannelError as exc:
            return _refused(f"The dialog could not be opened ({exc}). Click again.")
        return JSONResponse({"ok": True, "opened": dialog})
    response = _response(claims, decision, None, responder)
    said = await _apply(rt, claims, response)
    if said is not None:
        return _refused(said, BackgroundTask(_tell, slack, channel, user, said))
    return JSONResponse(
        {"ok": True, "applied": decision},
        background=BackgroundTask(_show_answer, slack, claims, pending, response, channel, ts),
    )


async def _submitted(rt: Runtime, cfg: SlackChannelConfig, payload: dict[str, Any]) -> Response:
    view = _object(payload.get("view"), "view")
    callback = view.get("callback_id")
    if callback not in ("tf_deny", "tf_answer"):
        return JSONResponse({"ok": True, "ignored": "not one of our dialogs"})
    decision: Decision = "deny" if callback == "tf_deny" else "answer"
    try:
        where = _Where.model_validate_json(_string(view.get("private_metadata"), "view.private_metadata"))
    except ValidationError:
        raise _bad("Slack payload: view.private_metadata is not what this server put there") from None
    text = _dialog_text(view)
    if decision == "answer" and not text:
        return _dialog_error("Write an answer before sending.")
    try:
        check_texts(rt.settings.max_text_chars, "text", text)
    except TextTooLong as exc:
        return _dialog_error(str(exc))
    checked = await _pending(rt, where.token, decision)
    if isinstance(checked, str):
        return _dialog_error(checked)
    claims, pending = checked
    response = _response(claims, decision, text, _responder(_object(payload.get("user"), "user")))
    said = await _apply(rt, claims, response)
    if said is not None:
        return _dialog_error(said)
    slack = _client(rt, cfg)
    # An empty 200 closes the dialog; the message is rewritten after the answer is sent.
    return Response(
        status_code=200,
        background=BackgroundTask(_show_answer, slack, claims, pending, response, where.channel, where.ts),
    )


def _dialog_text(view: dict[str, Any]) -> str | None:
    state = view.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    block = values.get(TEXT_BLOCK) if isinstance(values, dict) else None
    field = block.get(TEXT_BLOCK) if isinstance(block, dict) else None
    value = field.get("value") if isinstance(field, dict) else None
    return value.strip() or None if isinstance(value, str) else None


def _dialog_error(message: str) -> JSONResponse:
    """Shown under the dialog's text box; the dialog stays open and nothing changed."""
    return JSONResponse({"response_action": "errors", "errors": {TEXT_BLOCK: message[:150]}})


def _refused(message: str, tell: BackgroundTask | None = None) -> JSONResponse:
    # 200: Slack shows its own error icon for anything else; the person is told why by an ephemeral message.
    return JSONResponse({"ok": False, "detail": message}, background=tell)


async def _pending(rt: Runtime, token: str, decision: Decision) -> tuple[LinkClaims, HumanRequest] | str:
    """The claims of ``token`` and the request it answers, if that is still pending; else why not."""
    try:
        claims = read_token(rt.settings.secret, token)
    except LinkError as exc:
        return f"This button cannot be used: {exc}. Nothing was changed."
    try:
        thread = await asyncio.to_thread(rt.store.load, claims.thread_id)
    except ThreadNotFound:
        return f"Thread {claims.thread_id} does not exist (any more). Nothing was changed."
    pending = thread.pending_request
    if pending is None or pending.call_id != claims.request_id:
        recorded = _recorded(thread.events, claims.request_id)
        said = f" (recorded: {_verdict(recorded)})" if recorded is not None else ""
        return f"This request was already answered{said}; thread {thread.id} is {thread.status}. Nothing was changed."
    if pending.kind != _KIND_OF[decision]:
        return f"This button does not fit the request (it asks for {pending.kind}). Nothing was changed."
    return claims, pending


def _response(claims: LinkClaims, decision: Decision, text: str | None, responder: str) -> HumanResponse:
    approved: bool | None = None
    outcome: ReconcileOutcome | None = None
    match decision:
        case "approve" | "deny":
            approved = decision == "approve"
        case "done" | "retry" | "skip":
            outcome = decision
        case "answer":
            pass
        case _:
            assert_never(decision)
    return HumanResponse(
        request_id=claims.request_id,
        approved=approved,
        outcome=outcome,
        text=text,
        responder=responder,
        idempotency_key=f"slack:{claims.nonce}",
    )


async def _apply(rt: Runtime, claims: LinkClaims, response: HumanResponse) -> str | None:
    """Answer the request and wake the thread; None when applied, else why nothing changed."""
    try:
        thread = await asyncio.to_thread(rt.store.respond, claims.thread_id, response)
    except ThreadNotFound:
        return f"Thread {claims.thread_id} does not exist (any more). Nothing was changed."
    except ConflictError:  # answered meanwhile (NotWaitingError), the same token with another answer
        return "This request was answered meanwhile. Nothing was changed."
    except UserError as exc:
        return f"That answer does not fit: {exc}. Nothing was changed."
    rt.worker.submit(claims.thread_id)
    # A repeated key is a no-op that returns the thread: only the answer the thread records counts.
    recorded = _recorded(thread.events, claims.request_id)
    if recorded is not None and recorded != response:
        return f"This request was already answered ({_verdict(recorded)}). Nothing was changed."
    return None


def _recorded(events: Any, request_id: str) -> HumanResponse | None:
    for event in reversed(events):
        if isinstance(event, HumanResponse) and event.request_id == request_id:
            return event
    return None


def _verdict(response: HumanResponse) -> str:
    who = f" by {response.responder}" if response.responder else ""
    if response.approved is not None:
        return ("approved" if response.approved else "denied") + who
    if response.outcome is not None:
        return f"{response.outcome}{who}"
    return f"answered{who}"


async def _show_answer(
    slack: SlackChannel,
    claims: LinkClaims,
    pending: HumanRequest,
    response: HumanResponse,
    channel: str,
    ts: str,
) -> None:
    """Rewrite the message that asked: who answered and when (after Slack has its 200)."""
    notice = Notice.asking(pending, thread_id=claims.thread_id, to=channel)
    try:
        await slack.update(notice, Receipt(ref=f"{channel}:{ts}"), Answered.of(response))
    except ChannelError as exc:  # the answer is recorded; only the message still shows its buttons
        log.warning("could not update Slack message %s:%s after an answer: %s", channel, ts, exc)


async def _tell(slack: SlackChannel, channel: str, user: dict[str, Any], message: str) -> None:
    """Tell the person who clicked, and only them, why nothing changed."""
    user_id = user.get("id")
    try:
        if isinstance(user_id, str):
            await slack.say_privately(channel, user_id, message)
    except ChannelError as exc:
        log.warning("could not tell Slack user %s why nothing changed: %s", user_id, exc)


# --- Events API: mentions and direct messages ---


@router.post("/events")
async def events(request: Request) -> Response:
    """Slack's Events API: the URL check, app mentions and direct messages."""
    rt = runtime_of(request)
    cfg = slack_config(rt)
    body = await _verified(request, cfg)
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _bad("Slack event: the body is not JSON") from None
    payload = _object(payload, "the body")
    kind = payload.get("type")
    if kind == "url_verification":
        return JSONResponse({"challenge": _string(payload.get("challenge"), "challenge")})
    if kind != "event_callback":
        return _ignored(f"event envelope {str(kind)[:40]!r} is not handled")
    event = _object(payload.get("event"), "event")
    event_id = _string(payload.get("event_id"), "event_id")
    if not _EVENT_ID.fullmatch(event_id):
        raise _bad("Slack event: event_id is not a Slack event id")
    etype = event.get("type")
    direct = etype == "message" and event.get("channel_type") == "im"
    # Our own and other bots' messages, edits and joins are not a person talking to the agent.
    if etype != "app_mention" and not direct:
        return _ignored(f"event type {str(etype)[:40]!r} is not handled")
    if event.get("bot_id") or event.get("subtype"):
        return _ignored("a bot's message or a message edit")
    text = _MENTION.sub("", _string(event.get("text"), "event.text")).strip()
    user_id = _string(event.get("user"), "event.user")
    if not text:
        return _ignored("the message has no text besides the mention")
    try:
        check_texts(rt.settings.max_text_chars, "text", text)
    except TextTooLong as exc:
        return _ignored(str(exc))  # 200: Slack would redeliver the same event forever
    thread_ts = event.get("thread_ts")
    channel = event.get("channel")
    if isinstance(thread_ts, str) and isinstance(channel, str):
        answered = await _answer_in_thread(rt, f"{channel}:{thread_ts}", text, f"slack:{user_id}", event_id)
        if answered is not None:
            return JSONResponse(answered)
    if cfg.events_agent is None:
        return _ignored("no events_agent is configured for Slack: mentions and direct messages start nothing")
    try:
        thread, started = await asyncio.to_thread(
            start_thread,
            rt.store,
            rt.worker.submit,
            rt.agents,
            cfg.events_agent,
            [UserMessage(content=text)],
            thread_id=f"slack-{event_id}",
        )
    except UnknownAgentError as exc:
        log.warning("Slack event %s not started: %s", event_id, exc)
        return _ignored(str(exc))
    return JSONResponse({"ok": True, "thread_id": thread.id, "started": started})


async def _answer_in_thread(rt: Runtime, ref: str, text: str, responder: str, event_id: str) -> dict[str, Any] | None:
    """Answer the question whose message ``ref`` names with ``text``; None when ``ref`` is not one of ours."""
    delivery = await asyncio.to_thread(rt.webhooks.log.find_receipt, ref)
    if delivery is None:
        return None
    try:
        notice = Notice.model_validate_json(delivery.body)
    except ValidationError:
        return None
    if notice.kind in ("approval", "reconcile"):
        # Text is no decision: a chatty reply must neither approve nor start an unrelated thread.
        return {"ok": True, "ignored": f"a reply in the Slack thread of a {notice.kind} request: use its buttons"}
    if notice.kind != "input" or notice.request_id is None:
        return None  # a reply to a notification is someone talking to the agent: a new thread
    response = HumanResponse(
        request_id=notice.request_id, text=text, responder=responder, idempotency_key=f"slack:{event_id}"
    )
    try:
        await asyncio.to_thread(rt.store.respond, notice.thread_id, response)
    except (ConflictError, ThreadNotFound, UserError) as exc:
        return {"ok": False, "thread_id": notice.thread_id, "detail": f"nothing changed: {exc}"}
    rt.worker.submit(notice.thread_id)
    return {"ok": True, "thread_id": notice.thread_id, "answered": notice.request_id}


def _ignored(reason: str) -> JSONResponse:
    # 200 all the same: any other status makes Slack redeliver the event.
    return JSONResponse({"ok": True, "ignored": reason})
