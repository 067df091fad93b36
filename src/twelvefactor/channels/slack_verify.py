"""Slack's request signature (v0), checked before anything in a Slack request is read.

Slack signs each request it sends with the app's signing secret: ``X-Slack-Signature`` is ``v0=`` and the
hex HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{raw body}``. A request whose timestamp is further than
``tolerance_s`` from now (either way) is refused, so a captured request cannot be replayed later; within
the window the caller rejects a signature it has already seen.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from twelvefactor.errors import SignatureError

__all__ = ["sign_slack", "verify_slack"]

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


def sign_slack(signing_secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Slack-Signature`` Slack sends with ``body`` at ``timestamp``."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def verify_slack(
    signing_secret: str, headers: Mapping[str, str], body: bytes, *, now: float, tolerance_s: float
) -> tuple[str, int]:
    """Check a Slack request; returns ``(signature, timestamp)`` (the signature names it, for replay checks).

    ``headers`` must look names up case-insensitively (Starlette's and httpx's headers do). Raises
    :class:`SignatureError` for a missing header, a timestamp outside the window, or a signature that
    does not match the body.
    """
    raw_ts = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not raw_ts or not signature:
        raise SignatureError(
            "missing X-Slack-Request-Timestamp or X-Slack-Signature header: only Slack's signed requests are accepted"
        )
    # ASCII digits of a plausible length only: int() accepts other scripts' digits and 4000-digit numbers.
    if not _TIMESTAMP.fullmatch(raw_ts):
        raise SignatureError(f"X-Slack-Request-Timestamp {raw_ts[:32]!r} is not whole seconds since the epoch")
    timestamp = int(raw_ts)
    skew = now - timestamp
    if abs(skew) > tolerance_s:
        when = "old" if skew > 0 else "in the future"
        raise SignatureError(
            f"X-Slack-Request-Timestamp {timestamp} is {abs(skew):.0f}s {when} (tolerance {tolerance_s:.0f}s):"
            " a replayed request, or this server's clock is wrong"
        )
    expected = sign_slack(signing_secret, timestamp, body)
    if not _SIGNATURE.fullmatch(signature) or not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureError(
            "X-Slack-Signature does not match: the body was altered, or the app's signing secret differs from"
            " the configured signing_secret"
        )
    return signature, timestamp
