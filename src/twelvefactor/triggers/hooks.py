"""Inbound webhooks that start threads: a signed POST (a GitHub push, a CI result) becomes a new thread.

A :class:`WebhookTrigger` names the agent to start, the type of the event that carries the payload and
how deliveries are signed. The payload is never a template and never code: it becomes the data of one
event (``{"type": event_type, "payload": <the JSON>, "delivery_id": ...}``), and a fixed ``message``
(configuration, not payload) may follow it.

Redeliveries start nothing new: the thread id is the trigger's name and a key of the delivery
(:func:`trigger_thread_id`), and ``start_thread`` is idempotent on the id. The key is what the signature
covers. Standard Webhooks sign the ``webhook-id``, so it is the key; GitHub signs only the body
(``X-Hub-Signature-256``; ``X-GitHub-Delivery`` is not signed, and a redelivery sends the same body), so
the key is the body's SHA-256: a captured delivery sent again under a made-up id finds its first thread.

The HTTP side (``POST /v1/triggers/{name}``, Standard Webhooks verification) is ``server/triggers.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from twelvefactor.errors import SignatureError
from twelvefactor.events import EVENT_TYPES, CustomEvent, Event, UserMessage, check_event_type
from twelvefactor.store.base import ThreadStore
from twelvefactor.thread import Thread
from twelvefactor.triggers.start import Submit, start_thread
from twelvefactor.workflows.runner import Runnable

__all__ = [
    "GITHUB_MIN_SECRET_CHARS",
    "WebhookTrigger",
    "start_from_webhook",
    "trigger_events",
    "trigger_thread_id",
    "verify_github",
]

GITHUB_MIN_SECRET_CHARS = 16
# A delivery key kept as it is in the thread id when it is short and plain; hashed otherwise.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}", re.ASCII)
_GITHUB_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})", re.ASCII)


class WebhookTrigger(BaseModel):
    """``POST /v1/triggers/{name}``, signed with ``secret``, starts a thread of ``agent``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,47}$",
        description="identifier (letters, digits, _ and -, at most 48): the endpoint's last path segment",
    )
    agent: str = Field(min_length=1, description="name of a served agent")
    secret: str = Field(
        repr=False,
        description="standard: a whsec_<base64> secret; github: the secret set in the repository's webhook settings",
    )
    event_type: str = Field(description="type of the event that carries the payload, e.g. github.push")
    message: str | None = Field(
        default=None, min_length=1, description="a fixed first message after the payload (never filled from it)"
    )
    signature: Literal["standard", "github"] = Field(
        default="standard",
        description="standard: Standard Webhooks headers; github: X-Hub-Signature-256 and X-GitHub-Delivery",
    )

    @field_validator("event_type")
    @classmethod
    def _own_type(cls, event_type: str) -> str:
        check_event_type(event_type)
        if event_type in EVENT_TYPES:
            raise ValueError(
                f"event type {event_type!r} is recorded by the agent itself: name the trigger's own, e.g. 'github.push'"
            )
        return event_type

    @model_validator(mode="after")
    def _github_secret(self) -> WebhookTrigger:
        # Standard Webhooks secrets (whsec_) are checked where the server's signature code lives (settings).
        if self.signature == "github" and len(self.secret) < GITHUB_MIN_SECRET_CHARS:
            raise ValueError(
                f"trigger {self.name!r}: a GitHub webhook secret of {len(self.secret)} characters is guessable:"
                f" use at least {GITHUB_MIN_SECRET_CHARS} random characters, and set the same in GitHub"
            )
        return self


def verify_github(secret: str, headers: Mapping[str, str], body: bytes) -> str:
    """Check ``X-Hub-Signature-256`` (HMAC-SHA256 of the body, hex) in constant time; the delivery's key.

    Raises :class:`SignatureError` when the header is missing, malformed or does not match. ``headers``
    must look names up case-insensitively.
    """
    given = headers.get("x-hub-signature-256")
    if not given:
        raise SignatureError("missing X-Hub-Signature-256 header: set the webhook's secret in GitHub")
    match = _GITHUB_SIGNATURE.fullmatch(given.strip())
    if match is None:
        raise SignatureError("X-Hub-Signature-256 is not sha256=<64 hex digits>")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, bytes.fromhex(match.group(1))):
        raise SignatureError("X-Hub-Signature-256 does not match: the body was altered or signed with another secret")
    return "sha256-" + hashlib.sha256(body).hexdigest()


def trigger_thread_id(name: str, key: str) -> str:
    """The thread a delivery starts: the same for every redelivery of it."""
    if _PLAIN_KEY.fullmatch(key) is None:
        key = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"hook-{name}-{key}"


def trigger_events(trigger: WebhookTrigger, payload: dict[str, Any], delivery_id: str) -> list[Event]:
    """A started thread's first events: the payload as data, then the trigger's fixed message, if any."""
    events: list[Event] = [
        CustomEvent(type=trigger.event_type, trigger=trigger.name, delivery_id=delivery_id, payload=payload)
    ]
    if trigger.message is not None:
        events.append(UserMessage(content=trigger.message))
    return events


def start_from_webhook(
    store: ThreadStore,
    submit: Submit,
    agents: Mapping[str, Runnable],
    trigger: WebhookTrigger,
    payload: dict[str, Any],
    *,
    delivery_id: str,
    key: str,
) -> tuple[Thread, bool]:
    """Start the thread of a verified delivery; ``(thread, started)``, False for a redelivery.

    Blocking (store I/O): call it from a worker thread in async code.
    """
    events = trigger_events(trigger, payload, delivery_id)
    return start_thread(store, submit, agents, trigger.agent, events, thread_id=trigger_thread_id(trigger.name, key))
