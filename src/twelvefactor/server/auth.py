"""Who may call the service: bearer API tokens, and Standard Webhooks signatures.

* The REST API (``/v1``) takes ``Authorization: Bearer <token>`` whenever tokens are configured; a
  server bound beyond loopback refuses to start without them (``ServerSettings.check``). Apply
  :func:`require_api_token` as a router dependency (the web UI's router can use it the same way).
* Webhooks are authenticated by their signature instead (https://www.standardwebhooks.com):
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`` keyed
  with the decoded ``whsec_<base64>`` secret. :func:`sign` signs outbound deliveries,
  :func:`verify` checks inbound ones (signature and timestamp window; replays are the caller's job,
  since they need durable memory of the ids seen).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from twelvefactor.errors import AuthenticationError, SignatureError, UserError

__all__ = [
    "AuthenticationError",
    "SignatureError",
    "bearer_scheme",
    "decode_secret",
    "generate_secret",
    "require_api_token",
    "sign",
    "token_matches",
    "verify",
]

SECRET_PREFIX = "whsec_"
_TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)
MIN_SECRET_BYTES = 16


# --- bearer tokens ---

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API token (--api-token / TWELVEFACTOR_API_TOKENS). Required when tokens are configured.",
)


def token_matches(given: str, accepted: list[str]) -> bool:
    """Whether ``given`` is one of ``accepted``, in time independent of where (or whether) it matches.

    Comparing fixed-length digests keeps the token lengths out of the timing too.
    """
    digest = hashlib.sha256(given.encode()).digest()
    found = False
    for token in accepted:
        found |= hmac.compare_digest(digest, hashlib.sha256(token.encode()).digest())
    return found


async def require_api_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> None:
    """FastAPI dependency: a valid bearer token, when the server has tokens configured.

    Raises 401 with ``WWW-Authenticate: Bearer`` (RFC 6750) when the token is missing or wrong.
    """
    accepted: list[str] = request.app.state.runtime.settings.api_tokens
    if not accepted:
        return  # loopback-only server without tokens: settings.check() allowed it
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="authentication required: send `Authorization: Bearer <token>` with an API token",
            headers={"WWW-Authenticate": 'Bearer realm="twelvefactor"'},
        )
    if not token_matches(credentials.credentials, accepted):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="the bearer token is not one of this server's API tokens",
            headers={"WWW-Authenticate": 'Bearer realm="twelvefactor", error="invalid_token"'},
        )


# --- Standard Webhooks signatures ---


def generate_secret(nbytes: int = 32) -> str:
    """A fresh signing secret in the ``whsec_<base64>`` form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret (the prefix is optional, as in the reference libraries)."""
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        # Unpadded base64 is accepted, like the reference implementation does.
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise UserError(
            f"webhook secret {_masked(secret)!r} is not whsec_<base64>: generate one with"
            " `python -c 'import twelvefactor.server.auth as a; print(a.generate_secret())'`"
        ) from None
    if len(key) < MIN_SECRET_BYTES:
        raise UserError(
            f"webhook secret {_masked(secret)!r} holds {len(key)} bytes: use at least {MIN_SECRET_BYTES}"
            " random bytes (24 to 64 are recommended)"
        )
    return key


def _masked(secret: str) -> str:
    return secret[:10] + "…" if len(secret) > 10 else "…"


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one delivery: ``v1,<base64 HMAC-SHA256>``."""
    key = decode_secret(secret) if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secret: str | bytes, msg_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``, timestamped now unless told otherwise."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> tuple[str, int]:
    """Check a delivery's signature and timestamp; returns ``(webhook-id, timestamp)``.

    Raises :class:`SignatureError` when a header is missing, the timestamp is further than
    ``tolerance_s`` from now (either way), or no ``v1`` signature matches. ``headers`` must look
    names up case-insensitively (Starlette's and httpx's headers do).
    """
    msg_id = headers.get("webhook-id")
    raw_ts = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and raw_ts and signatures):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    # ASCII digits of a plausible length only: int() takes "٣" and 4000 digits (which then overflow a float).
    if not _TIMESTAMP.fullmatch(raw_ts):
        raise SignatureError(f"webhook-timestamp {raw_ts[:32]!r} is not whole seconds since the epoch")
    timestamp = int(raw_ts)
    skew = (time.time() if now is None else now) - timestamp
    if abs(skew) > tolerance_s:
        when = "old" if skew > 0 else "far in the future"
        raise SignatureError(
            f"webhook-timestamp {timestamp} is {abs(skew):.0f}s {when} (tolerance {tolerance_s:.0f}s):"
            " sign each delivery when it is sent, and check the sender's clock"
        )
    key = decode_secret(secret) if isinstance(secret, str) else secret
    expected = base64.b64decode(sign(key, msg_id, timestamp, body).removeprefix("v1,"))
    matched = False
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise SignatureError("no webhook-signature matches: the body was altered or signed with another secret")
    return msg_id, timestamp
