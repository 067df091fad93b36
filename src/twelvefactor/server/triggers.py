"""``POST /v1/triggers/{name}``: a signed inbound webhook starts a thread (``triggers/hooks.py`` says how).

Order of checks, so that bad input changes nothing: the trigger must exist (404), the signature must
verify (401: forged, stale or missing), the body must be a JSON object (422) of texts within
``max_text_chars`` (422; the body limit is 413 before any of this). Only then is a thread started: 202
with the new thread, or 200 with the thread a previous delivery of the same webhook started.

Authenticated by the signature, not by API tokens: the senders (GitHub, a CI system) hold a secret, not
a bearer token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Header, HTTPException, Request, Response, status

from twelvefactor.errors import SignatureError, UserError
from twelvefactor.server._state import runtime_of
from twelvefactor.server.auth import verify
from twelvefactor.server.limits import check_texts
from twelvefactor.server.schemas import ErrorView, ThreadView
from twelvefactor.server.settings import ServerSettings
from twelvefactor.server.webhooks import SIGNATURE_CHALLENGE
from twelvefactor.triggers.hooks import WebhookTrigger, start_from_webhook, verify_github
from twelvefactor.workflows.runner import Runnable

__all__ = ["check_served", "router"]

router = APIRouter(prefix="/v1", tags=["triggers"])

_JSON_KINDS: dict[type, str] = {
    type(None): "null",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
}


def check_served(settings: ServerSettings, agents: Mapping[str, Runnable]) -> None:
    """Refuse schedules and webhook triggers that start an agent this server does not serve."""
    served = ", ".join(agents) or "none"
    for kind, name, agent in [
        *(("schedule", schedule.name, schedule.agent) for schedule in settings.schedules),
        *(("trigger", trigger.name, trigger.agent) for trigger in settings.triggers),
    ]:
        if agent not in agents:
            raise UserError(f"{kind} {name!r} starts agent {agent!r}, which is not served here (served: {served})")


def _verified_key(trigger: WebhookTrigger, request: Request, body: bytes, tolerance_s: float) -> tuple[str, str]:
    """``(delivery id, idempotency key)`` of a delivery whose signature verifies; 401 otherwise."""
    try:
        if trigger.signature == "github":
            key = verify_github(trigger.secret, request.headers, body)
            return request.headers.get("x-github-delivery", "")[:200] or key, key
        msg_id, _ = verify(trigger.secret, request.headers, body, tolerance_s=tolerance_s)
        return msg_id, msg_id
    except SignatureError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers=SIGNATURE_CHALLENGE) from None


@router.post(
    "/triggers/{name}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ThreadView,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "description": "any JSON object"}}},
        }
    },
    responses={
        200: {"model": ThreadView, "description": "a redelivery: the thread its first delivery started"},
        401: {"model": ErrorView, "description": "forged (bad signature), stale, or unsigned"},
        404: {"model": ErrorView, "description": "no trigger of that name is configured"},
        413: {"model": ErrorView, "description": "body over max_body_bytes (default 1 MiB)"},
        422: {"model": ErrorView, "description": "the body is not a JSON object, or a text in it is too long"},
    },
)
async def trigger_webhook(
    name: str,
    request: Request,
    response: Response,
    webhook_id: Annotated[str | None, Header(description="Standard Webhooks: unique message id")] = None,
    webhook_timestamp: Annotated[str | None, Header(description="Standard Webhooks: seconds since the epoch")] = None,
    webhook_signature: Annotated[str | None, Header(description="Standard Webhooks: v1,<base64 HMAC-SHA256>")] = None,
    x_hub_signature_256: Annotated[
        str | None, Header(description="GitHub: sha256=<hex HMAC-SHA256 of the body>")
    ] = None,
    x_github_delivery: Annotated[str | None, Header(description="GitHub: the delivery's id")] = None,
) -> ThreadView:
    """Start a thread of the trigger's agent from a signed webhook; its JSON body becomes the first event's
    `payload` (authenticated by signature, not token). A redelivery returns the same thread."""
    rt = runtime_of(request)
    trigger = next((t for t in rt.settings.triggers if t.name == name), None)
    if trigger is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no webhook trigger named {name[:64]!r} is configured here")
    body = await request.body()  # at most max_body_bytes: limits.BodyLimit stops reading past it
    delivery_id, key = _verified_key(trigger, request, body, rt.settings.webhook_tolerance_s)
    payload = _json_object(body)
    check_texts(rt.settings.max_text_chars, "payload", payload)
    thread, started = await asyncio.to_thread(
        start_from_webhook,
        rt.store,
        rt.worker.submit,
        rt.agents,
        trigger,
        payload,
        delivery_id=delivery_id,
        key=key,
    )
    if not started:
        response.status_code = status.HTTP_200_OK
    return ThreadView.of(thread)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        # pydantic-core's parser: refuses lone surrogates, NaN and runaway nesting that json.loads lets through.
        value = pydantic_core.from_json(body)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"the body is a JSON {_JSON_KINDS.get(type(value), 'value')}: a trigger takes a JSON object",
        )
    return value
