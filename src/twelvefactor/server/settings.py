"""Server configuration: one pydantic model, filled from CLI options or TWELVEFACTOR_* variables."""

from __future__ import annotations

import ipaddress
import os
import secrets

from pydantic import BaseModel, Field

from twelvefactor.errors import UserError


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    database: str = Field(default="twelvefactor.db", description="SQLite file path or store URL")
    api_tokens: list[str] = Field(default_factory=list, description="bearer tokens accepted by the API")
    secret: str = Field(
        default_factory=lambda: secrets.token_urlsafe(32),
        description="signs approval links; set it (TWELVEFACTOR_SECRET) so links survive a restart",
    )
    workers: int = Field(default=4, ge=1, le=256)
    lease_s: float = Field(default=60.0, gt=0)
    stream_poll_s: float = Field(default=1.0, gt=0)
    public_url: str | None = Field(default=None, description="base URL used in links sent to people")

    @classmethod
    def from_env(cls, **overrides: object) -> ServerSettings:
        """Defaults, then TWELVEFACTOR_* environment variables, then explicit overrides."""
        env: dict[str, object] = {}
        for name in ("host", "port", "database", "secret", "workers", "public_url"):
            value = os.environ.get(f"TWELVEFACTOR_{name.upper()}")
            if value:
                env[name] = value
        tokens = os.environ.get("TWELVEFACTOR_API_TOKENS")
        if tokens:
            env["api_tokens"] = [token.strip() for token in tokens.split(",") if token.strip()]
        return cls.model_validate({**env, **{k: v for k, v in overrides.items() if v is not None}})

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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
