"""Server configuration: one pydantic model, filled from CLI options or TWELVEFACTOR_* variables."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from twelvefactor.channels.config import ChannelConfig, ContactStep, Route
from twelvefactor.errors import UserError
from twelvefactor.server.auth import decode_secret
from twelvefactor.triggers.hooks import WebhookTrigger
from twelvefactor.triggers.schedules import Schedule

WebhookEventType = Literal["thread.waiting", "thread.done", "thread.failed"]
WEBHOOK_EVENT_TYPES: tuple[WebhookEventType, ...] = ("thread.waiting", "thread.done", "thread.failed")


class WebhookEndpoint(BaseModel):
    """Where outbound webhooks go: a URL and its Standard Webhooks secret (``whsec_<base64>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="http(s) URL that receives the signed POSTs")
    secret: str = Field(description="signing secret in the Standard Webhooks form whsec_<base64>", repr=False)
    events: tuple[WebhookEventType, ...] = Field(default=WEBHOOK_EVENT_TYPES, description="event types sent here")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook URL {url!r} must be an absolute http:// or https:// URL")
        return url

    @field_validator("secret")
    @classmethod
    def _whsec(cls, secret: str) -> str:
        decode_secret(secret)
        return secret


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    database: str = Field(default="twelvefactor.db", description="SQLite file path or store URL")
    api_tokens: list[str] = Field(default_factory=list, description="bearer tokens accepted by the API")
    secret: str = Field(
        default_factory=lambda: secrets.token_urlsafe(32),
        description="signs approval links; set it (TWELVEFACTOR_SECRET) so links survive a restart",
    )
    workers: int = Field(
        default=16,
        ge=1,
        le=256,
        description="threads for synchronous code (tools, models without acomplete, workflows) and, with"
        " queue=procrastinate, jobs run at once",
    )
    max_in_flight: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="threads the in-process worker advances at once; one waiting on its model holds no OS thread",
    )
    model_limits: dict[str, int] = Field(
        default_factory=dict,
        description="model calls in flight at once per model name or provider prefix, e.g. {openai = 50}",
    )
    lease_s: float = Field(
        default=3.0,
        gt=0,
        le=3600,
        description="how long a thread stays with a process that stopped renewing it (heartbeat every lease_s/4);"
        " after a crash another process takes the thread over within about this long",
    )
    queue: Literal["inprocess", "procrastinate"] = Field(
        default="inprocess",
        description="where thread advances go: this process's worker, or Procrastinate jobs in the PostgreSQL"
        " database (run `twelvefactor worker` processes, or set queue_worker)",
    )
    queue_worker: bool = Field(
        default=False, description="with queue procrastinate: also run a Procrastinate worker in this process"
    )
    shutdown_grace_s: float = Field(
        default=20.0, ge=0, description="on stop, steps in flight get this long before their model calls are cancelled"
    )
    stream_poll_s: float = Field(default=1.0, gt=0)
    public_url: str | None = Field(default=None, description="base URL used in links sent to people")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header names served besides loopback, the bind address and public_url's host"
        " (name or name:port; '*' turns the check off); others get 400 (DNS rebinding)",
    )

    # Input limits (server/limits.py): bodies are counted as they stream in; texts are checked per field.
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="largest request body in bytes; bigger ones get 413 (TWELVEFACTOR_MAX_BODY_BYTES)",
    )
    max_text_chars: int = Field(
        default=64 * 1024,
        ge=1,
        description="longest message, answer or event text, in characters; longer ones get 422"
        " (TWELVEFACTOR_MAX_TEXT_CHARS)",
    )

    # Outbound webhooks (server/webhooks.py): retried with exponential backoff and jitter.
    webhooks: list[WebhookEndpoint] = Field(default_factory=list, description="outbound webhook endpoints")
    webhook_max_attempts: int = Field(default=10, ge=1, le=100, description="attempts per delivery, first included")
    webhook_backoff_s: float = Field(default=5.0, gt=0, description="delay before the first retry; doubles each time")
    webhook_backoff_max_s: float = Field(default=900.0, gt=0, description="longest delay between two attempts")
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="per-attempt HTTP timeout")
    webhook_sweep_s: float = Field(
        default=30.0, gt=0, description="how often pending deliveries left by a stopped process are picked up"
    )
    # Inbound signed resume (POST /v1/webhooks/resume).
    inbound_webhook_secret: str | None = Field(
        default=None, repr=False, description="whsec_<base64> secret that inbound resume webhooks are signed with"
    )
    webhook_tolerance_s: float = Field(
        default=300.0, gt=0, description="inbound webhooks timestamped further than this from now are rejected"
    )
    # Web UI sign-in (server/session.py): a signed session cookie made from an API token.
    session_ttl_s: float = Field(
        default=12 * 3600.0, gt=0, description="how long a web UI sign-in lasts (TWELVEFACTOR_SESSION_TTL_S)"
    )
    # Signed approval links (GET/POST /a/{token}).
    approval_link_ttl_s: float = Field(default=86400.0, gt=0, description="how long an approval link stays valid")
    # Channels (channels/): who gets which request, on which channel, and who is asked next.
    channels: list[ChannelConfig] = Field(default_factory=list, description="email and Slack channels")
    contacts: dict[str, list[ContactStep]] = Field(
        default_factory=dict, description="contact chains by name: the steps a request escalates through"
    )
    routes: list[Route] = Field(
        default_factory=list, description="which chain a request goes to (first match), unless it names one"
    )
    smtp_listen: str | None = Field(
        default=None,
        pattern=r"^[^:\s]+:\d{1,5}$",
        description="HOST:PORT where this server receives mail (email replies, mail that starts threads) over SMTP;"
        " None: no listener (use the inbound-parse webhook)",
    )
    escalation_sweep_s: float = Field(
        default=5.0, gt=0, description="how often unanswered requests are checked against their deadlines"
    )
    # Bounded storage (server/retention.py).
    retention_days: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict,
        description="finished threads deleted once not updated for this many days, by agent name ('*': every"
        " served agent without a rule of its own); empty: kept for ever",
    )
    retention_interval_s: float = Field(default=3600.0, gt=0, description="how often the retention policy runs")
    # Triggers (triggers/): cron schedules and inbound webhooks that start threads.
    schedules: list[Schedule] = Field(
        default_factory=list, description="cron schedules that start threads (run by every server; once per run)"
    )
    triggers: list[WebhookTrigger] = Field(
        default_factory=list, description="signed inbound webhooks (POST /v1/triggers/{name}) that start threads"
    )

    @model_validator(mode="after")
    def _trigger_names_unique(self) -> ServerSettings:
        for kind, names in (
            ("schedules", [schedule.name for schedule in self.schedules]),
            ("triggers", [trigger.name for trigger in self.triggers]),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"two {kind} share a name ({sorted(names)}): give each its own `name`")
        for trigger in self.triggers:
            if trigger.signature == "standard":
                decode_secret(trigger.secret)
        return self

    @model_validator(mode="after")
    def _contacts_resolve(self) -> ServerSettings:
        names = [channel.name for channel in self.channels]
        if len(set(names)) != len(names):
            raise ValueError(f"two channels share a name ({sorted(names)}): give each its own `name`")
        # Whether each step's channel exists is checked by create_app, which also knows the channels given
        # in code (server.contacts.check_contacts).
        for chain, steps in self.contacts.items():
            if not steps:
                raise ValueError(f"contact chain {chain!r} has no steps")
        for route in self.routes:
            if route.contact not in self.contacts:
                raise ValueError(f"a route sends to contact chain {route.contact!r}, which is not defined")
        return self

    @field_validator("inbound_webhook_secret")
    @classmethod
    def _inbound_whsec(cls, secret: str | None) -> str | None:
        if secret is not None:
            decode_secret(secret)
        return secret

    @classmethod
    def from_env(cls, base: Mapping[str, object] | None = None, **overrides: object) -> ServerSettings:
        """Defaults, then ``base`` (a config file's settings), then TWELVEFACTOR_* environment variables, then
        explicit overrides (None: not given)."""
        env: dict[str, object] = {}
        for name in (
            "host",
            "port",
            "database",
            "secret",
            "workers",
            "max_in_flight",
            "public_url",
            "lease_s",
            "queue",
            "queue_worker",
            "shutdown_grace_s",
            "max_body_bytes",
            "max_text_chars",
            "session_ttl_s",
            "smtp_listen",
        ):
            value = os.environ.get(f"TWELVEFACTOR_{name.upper()}")
            if value:
                env[name] = value
        tokens = os.environ.get("TWELVEFACTOR_API_TOKENS")
        if tokens:
            env["api_tokens"] = [token.strip() for token in tokens.split(",") if token.strip()]
        hosts = os.environ.get("TWELVEFACTOR_ALLOWED_HOSTS")
        if hosts:
            env["allowed_hosts"] = [host.strip() for host in hosts.split(",") if host.strip()]
        inbound = os.environ.get("TWELVEFACTOR_INBOUND_WEBHOOK_SECRET")
        if inbound:
            env["inbound_webhook_secret"] = inbound
        url, secret = os.environ.get("TWELVEFACTOR_WEBHOOK_URL"), os.environ.get("TWELVEFACTOR_WEBHOOK_SECRET")
        if url:  # a secret alone may go with --webhook-url (see `twelvefactor serve`)
            if not secret:
                raise UserError("TWELVEFACTOR_WEBHOOK_URL is set without TWELVEFACTOR_WEBHOOK_SECRET: set both")
            env["webhooks"] = [{"url": url, "secret": secret}]
        return cls.model_validate({**(base or {}), **env, **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def check(self) -> None:
        """Refuse an unauthenticated API on a non-loopback address."""
        if not self.loopback and not self.api_tokens:
            raise UserError(
                f"refusing to serve on {self.host!r} without authentication: set API tokens"
                " (--api-token or TWELVEFACTOR_API_TOKENS) or bind to 127.0.0.1"
            )
        if any(not token.strip() for token in self.api_tokens):
            raise UserError("an empty API token was configured: remove it, or give a real token")
        if self.queue == "procrastinate" and not self.database.startswith(("postgresql://", "postgres://")):
            raise UserError(
                f"--queue procrastinate needs a PostgreSQL store (--db postgresql://...), not {self.database!r}"
            )
        if len(self.secret) < 16:
            raise UserError(
                f"the link-signing secret is {len(self.secret)} characters: use at least 16 random characters"
                " (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
