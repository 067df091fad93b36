"""Which channel and which person get which request: channels, contact chains and routes, as data.

A *contact chain* is a named list of steps (a channel, an address, and how long to wait for an answer
before the next step); a *route* picks the chain for a request by agent, intent and kind. A request may
name its chain itself (``HumanRequest.contact``, set from a tool's or agent's ``contact``, or by a
workflow step), which wins over the routes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ChannelConfig", "ContactStep", "EmailChannelConfig", "Route", "SlackChannelConfig"]

_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"


class EmailChannelConfig(BaseModel):
    """Email over SMTP: requests go out as HTML + text with signed links; replies answer them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["email"] = "email"
    name: str = Field(default="email", pattern=_NAME)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    use_tls: bool = Field(default=False, description="implicit TLS (port 465)")
    start_tls: bool | None = Field(default=None, description="STARTTLS; None: when the server offers it")
    timeout_s: float = Field(default=30.0, gt=0)
    sender: str = Field(description="From address, e.g. 'Deploybot <bot@example.com>'")
    reply_to: str | None = Field(
        default=None,
        description="address replies go to (a mailbox this server reads: its SMTP listener or inbound-parse"
        " webhook); a signed tag is added to its local part (bot+TAG@example.com). None: replies are not read",
    )
    allowed_senders: list[str] = Field(
        default_factory=list,
        description="when set, only replies from these addresses (or @domain) answer a request; others change nothing",
    )
    inbound: dict[str, str] = Field(
        default_factory=dict,
        description="address -> agent: mail to that address (not a reply) starts a thread of that agent",
    )


class SlackChannelConfig(BaseModel):
    """Slack: Block Kit messages with Approve / Deny / Answer; interactive and Events API endpoints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["slack"] = "slack"
    name: str = Field(default="slack", pattern=_NAME)
    bot_token: str = Field(repr=False, description="xoxb-... bot token (chat:write)")
    signing_secret: str = Field(repr=False, description="the app's signing secret: verifies Slack's requests")
    api_url: str = Field(default="https://slack.com/api", description="Web API base URL (a local fake in tests)")
    timeout_s: float = Field(default=10.0, gt=0)
    tolerance_s: float = Field(default=300.0, gt=0, description="requests timestamped further from now are refused")
    events_agent: str | None = Field(
        default=None, description="agent that app mentions and direct messages start threads of"
    )


ChannelConfig = Annotated[EmailChannelConfig | SlackChannelConfig, Field(discriminator="type")]


class ContactStep(BaseModel):
    """One step of a contact chain: send on ``channel`` to ``to``; after ``wait_s`` unanswered, the next step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str = Field(pattern=_NAME, description="a configured channel's name ('email', 'slack', ...)")
    to: str = Field(min_length=1, max_length=320, description="address on that channel: email, Slack channel/user")
    wait_s: float | None = Field(
        default=None, gt=0, description="how long to wait for an answer before the next step; None: no escalation"
    )


class Route(BaseModel):
    """Send requests that match (every field set must match; None matches anything) to chain ``contact``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contact: str = Field(pattern=_NAME)
    agent: str | None = None
    intent: str | None = None
    kind: Literal["approval", "input", "reconcile", "notify"] | None = None
