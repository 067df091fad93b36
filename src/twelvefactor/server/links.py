"""Signed approval links: a person answers a pending request from an email or chat message, no account needed.

A link is ``{public_url}/a/{token}``; the token carries the thread id, the request id, an expiry and a
random nonce, HMAC-SHA256-signed with ``settings.secret``. ``GET`` shows a confirmation page and
changes nothing (mail and chat clients fetch links to preview them); only the page's ``POST`` applies
the answer, with ``link:<nonce>`` as the idempotency key, so a link works once. Expired, altered or
forged tokens get 403 and change nothing.

Links stay valid across restarts only if ``settings.secret`` is set (TWELVEFACTOR_SECRET); the default
is a random secret per process.
"""

from __future__ import annotations

import asyncio
import html
import json
import secrets
import time
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from twelvefactor.errors import (
    ConflictError,
    ForgedToken,
    LinkError,
    MalformedToken,
    NotWaitingError,
    ThreadNotFound,
    UserError,
)
from twelvefactor.events import HumanRequest, HumanResponse, ReconcileOutcome
from twelvefactor.server._state import runtime_of
from twelvefactor.server.settings import ServerSettings
from twelvefactor.server.signing import seal, unseal
from twelvefactor.store.base import idempotency_key
from twelvefactor.thread import Thread

if TYPE_CHECKING:
    from twelvefactor.server.runtime import Runtime

__all__ = ["LinkClaims", "LinkError", "approval_link", "base_url", "make_token", "read_token", "router"]

_DOMAIN = b"twelvefactor/approval-link/v1\x00"
_MAX_TOKEN = 2048
_MAX_FORM = 64 * 1024

router = APIRouter(include_in_schema=False)


class LinkClaims(BaseModel):
    """What a link token says: which request of which thread it answers, until when, and its nonce."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    thread_id: str = Field(alias="t")
    request_id: str = Field(alias="r")
    expires_at: int = Field(alias="e")
    nonce: str = Field(alias="n", min_length=8)

    @property
    def idempotency_key(self) -> str:
        return f"link:{self.nonce}"


def make_token(secret: str, thread_id: str, request_id: str, *, ttl_s: float, now: float | None = None) -> str:
    """A signed token for one answer to ``request_id`` of ``thread_id``, valid for ``ttl_s`` seconds."""
    if ttl_s <= 0:
        raise UserError(f"ttl_s {ttl_s!r} must be positive: a link must stay valid for some time")
    expires = int((time.time() if now is None else now) + ttl_s)
    return seal(secret, _DOMAIN, {"t": thread_id, "r": request_id, "e": expires, "n": secrets.token_urlsafe(12)})


def read_token(secret: str, token: str, *, now: float | None = None) -> LinkClaims:
    """The claims of a token this server signed and that has not expired; LinkError otherwise."""
    try:
        payload = unseal(secret, _DOMAIN, token, max_length=_MAX_TOKEN)
    except MalformedToken:
        raise LinkError("this is not an approval link token: copy the whole link from the message") from None
    except ForgedToken:
        raise LinkError("the link's signature does not match: it was altered, or signed by another server") from None
    try:
        claims = LinkClaims.model_validate_json(payload)
    except ValidationError:
        raise LinkError("the link's contents are unreadable although signed: ask for a new link") from None
    if (time.time() if now is None else now) >= claims.expires_at:
        raise LinkError("this approval link has expired: ask for a new one, or answer in the web UI")
    return claims


def base_url(settings: ServerSettings) -> str:
    """Where people reach this server: ``public_url``, else the address it binds."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"


def approval_link(
    settings: ServerSettings, thread_id: str, request_id: str, *, ttl_s: float | None = None, now: float | None = None
) -> str:
    """An expiring, single-use URL that answers ``request_id`` of ``thread_id`` (approve/deny, or an answer)."""
    ttl = settings.approval_link_ttl_s if ttl_s is None else ttl_s
    return f"{base_url(settings)}/a/{make_token(settings.secret, thread_id, request_id, ttl_s=ttl, now=now)}"


# --- the confirmation page ---

Outcome = Literal["invalid", "missing", "used", "answered", "bad"]
_OUTCOMES: dict[Outcome, tuple[int, str]] = {
    "invalid": (403, "This link cannot be used"),
    "missing": (404, "No such thread"),
    "used": (409, "This link was already used"),
    "answered": (409, "Nothing to answer any more"),
    "bad": (422, "That answer does not fit"),
}


@router.get("/a/{token}", response_class=HTMLResponse)
async def show_link(token: str, request: Request) -> HTMLResponse:
    """The confirmation page. Read-only: link previewers fetch this."""
    rt = runtime_of(request)
    checked = await _check(rt, token)
    if isinstance(checked, HTMLResponse):
        return checked
    claims, request_event = checked
    return _page("Your answer is needed", _form(claims.thread_id, request_event), 200)


@router.post("/a/{token}", response_class=HTMLResponse)
async def use_link(token: str, request: Request) -> HTMLResponse:
    """Apply the answer posted from the confirmation page, once."""
    rt = runtime_of(request)
    checked = await _check(rt, token)
    if isinstance(checked, HTMLResponse):
        return checked
    claims, pending = checked
    body = await request.body()
    if len(body) > _MAX_FORM:
        return _outcome("bad", "The form is too large.")
    form = {key: values[-1] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
    response = _response(claims, pending, form, rt.settings.max_text_chars)
    if isinstance(response, str):
        return _outcome("bad", response)
    try:
        thread = await asyncio.to_thread(rt.store.respond, claims.thread_id, response)
    except ConflictError as exc:  # answered meanwhile (NotWaitingError), or this link with another decision
        current = await asyncio.to_thread(rt.store.load, claims.thread_id)
        recorded = _recorded(current, claims.request_id)
        said = "none" if recorded is None else _verdict(recorded)
        kind: Outcome = "answered" if isinstance(exc, NotWaitingError) else "used"
        return _outcome(kind, f"The request was answered meanwhile (recorded: {said}); nothing was changed.")
    except UserError as exc:
        return _outcome("bad", str(exc))
    rt.worker.submit(claims.thread_id)
    # Concurrent posts of one link share its idempotency key: one is applied, the others are no-ops that
    # return the thread. Confirm only the answer the thread records, and only to the post that made it.
    recorded = _recorded(thread, claims.request_id)
    if recorded != response:
        said = "no answer" if recorded is None else _verdict(recorded)
        return _outcome("used", f"This link was already used; the answer recorded is: {said}. Nothing was changed.")
    verdict = _verdict(response)
    return _page(
        verdict,
        f"<p>{verdict}. Thread <code>{_e(thread.id)}</code> goes on; you can close this page.</p>",
        200,
    )


def _recorded(thread: Thread, request_id: str) -> HumanResponse | None:
    """The answer the thread records for ``request_id`` (the last one, should there be several)."""
    for event in reversed(thread.events):
        if isinstance(event, HumanResponse) and event.request_id == request_id:
            return event
    return None


def _verdict(response: HumanResponse) -> str:
    return {True: "Approved", False: "Denied", None: "Answer sent"}[response.approved]


async def _check(rt: Runtime, token: str) -> tuple[LinkClaims, HumanRequest] | HTMLResponse:
    try:
        claims = read_token(rt.settings.secret, token)
    except LinkError as exc:
        return _outcome("invalid", str(exc))
    try:
        thread = await asyncio.to_thread(rt.store.load, claims.thread_id)
    except ThreadNotFound:
        return _outcome("missing", f"Thread {claims.thread_id!r} does not exist (any more).")
    if _used(thread, claims.idempotency_key):
        return _outcome("used", "This link was already used; each link answers once. Nothing was changed.")
    pending = thread.pending_request
    if pending is None or pending.call_id != claims.request_id:
        return _outcome("answered", f"Thread {thread.id!r} is {thread.status}: this request was already answered.")
    return claims, pending


def _used(thread: Thread, key: str) -> bool:
    return any(idempotency_key(event) == key for event in thread.events)


def _response(claims: LinkClaims, pending: HumanRequest, form: dict[str, str], limit: int) -> HumanResponse | str:
    decision = form.get("decision")
    text = (form.get("reason") or form.get("answer") or "").strip() or None
    approved: bool | None = None
    outcome: ReconcileOutcome | None = None
    if pending.kind == "approval":
        if decision not in ("approve", "deny"):
            return "Choose Approve or Deny."
        approved = decision == "approve"
        text = None if approved else text
    elif pending.kind == "reconcile":
        if decision not in ("done", "retry", "skip"):
            return "Choose Mark done, Run it again or Skip it."
        outcome = decision  # type: ignore[assignment]
        text = (form.get("result") or "").strip() or None if decision == "done" else None
    elif not text:
        return "Write an answer before sending."
    if text is not None and len(text) > limit:
        return f"The text is {len(text)} characters; the limit is {limit}. Shorten it."
    return HumanResponse(
        request_id=claims.request_id,
        approved=approved,
        outcome=outcome,
        text=text,
        responder="approval link",
        idempotency_key=claims.idempotency_key,
    )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _form(thread_id: str, pending: HumanRequest) -> str:
    details = ""
    if pending.intent:
        arguments = json.dumps(pending.arguments or {}, indent=2, ensure_ascii=False)
        details = f"<p>Action: <code>{_e(pending.intent)}</code></p><pre>{_e(arguments)}</pre>"
    head = (
        f'<p>Thread <code>{_e(thread_id)}</code> asks:</p><blockquote id="question">{_e(pending.question)}</blockquote>'
    )
    if pending.kind == "approval":
        controls = (
            '<label for="reason">Reason (if you deny)</label>'
            '<textarea id="reason" name="reason" rows="3"></textarea>'
            '<div class="buttons"><button type="submit" name="decision" value="approve">Approve</button>'
            '<button type="submit" name="decision" value="deny">Deny</button></div>'
        )
    elif pending.kind == "reconcile":
        controls = (
            '<label for="result">If it ran: its result (the agent sees it)</label>'
            '<textarea id="result" name="result" rows="2"></textarea>'
            '<div class="buttons"><button type="submit" name="decision" value="done">Mark done</button>'
            '<button type="submit" name="decision" value="retry">Run it again</button>'
            '<button type="submit" name="decision" value="skip">Skip it</button></div>'
        )
    else:
        controls = (
            '<label for="answer">Your answer</label>'
            '<textarea id="answer" name="answer" rows="4" required></textarea>'
            '<div class="buttons"><button type="submit" name="decision" value="answer">Send answer</button></div>'
        )
    return f'{head}{details}<form method="post" aria-describedby="question">{controls}</form>'


def _outcome(kind: Outcome, message: str) -> HTMLResponse:
    code, title = _OUTCOMES[kind]
    return _page(title, f"<p>{_e(message)}</p>", code)


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5}"
    "blockquote{border-left:4px solid #888;margin:1rem 0;padding:.5rem 1rem;white-space:pre-wrap}"
    "label{display:block;margin-top:1rem}textarea{width:100%}.buttons{margin-top:1rem;display:flex;gap:1rem}"
    "button{font-size:1rem;padding:.5rem 1.5rem}pre{background:#f4f4f4;padding:.5rem;overflow:auto}"
)


def _page(title: str, body: str, status_code: int) -> HTMLResponse:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{_e(title)} · twelvefactor</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{_e(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(
        document,
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",  # the token is in the URL
            "X-Robots-Tag": "noindex",
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none';"
                " frame-ancestors 'none'"
            ),
        },
    )
