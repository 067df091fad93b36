"""Tokens signed with the server's secret: approval links and session cookies share this one scheme.

A token is ``<base64url JSON claims>.<base64url HMAC-SHA256>``; the MAC covers a per-use domain string
first, so a token made for one use (a link) is never accepted for another (a session).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping

from twelvefactor.errors import ForgedToken, MalformedToken

__all__ = ["seal", "unseal"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, domain: bytes, payload: str) -> bytes:
    return hmac.new(secret.encode(), domain + payload.encode(), hashlib.sha256).digest()


def seal(secret: str, domain: bytes, claims: Mapping[str, object]) -> str:
    """``claims`` as a signed token for the use named by ``domain``."""
    payload = b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{payload}.{b64(_mac(secret, domain, payload))}"


def unseal(secret: str, domain: bytes, token: str, *, max_length: int = 2048) -> bytes:
    """The claims' JSON bytes of a token signed for ``domain``; MalformedToken or ForgedToken otherwise."""
    payload, _, signature = token.partition(".")
    if not payload or not signature or len(token) > max_length:
        raise MalformedToken("not a signed token")
    # Compare the text, not the decoded bytes: base64 has several spellings of the same bytes, and a
    # token must have exactly one.
    if not hmac.compare_digest(signature.encode(), b64(_mac(secret, domain, payload)).encode()):
        raise ForgedToken("signature does not match")
    try:
        return unb64(payload)
    except ValueError:
        raise MalformedToken("unreadable payload") from None
