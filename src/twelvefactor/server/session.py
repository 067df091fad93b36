"""Web UI sessions: a signed, expiring, HttpOnly cookie made from one of the server's API tokens.

Browsers cannot send bearer tokens on page loads and form posts, so a person signs in once with an API
token (``/sign-in``, server/signin.py) and gets a cookie signed with ``settings.secret``. The cookie
holds no token, only a keyed fingerprint of it, an expiry and a nonce: removing a token from the
configuration ends every session made from it, and changing the secret ends them all.

The cookie is ``HttpOnly`` and ``SameSite=Lax`` (``Secure`` behind an https public URL). Lax keeps it
off cross-site posts; the UI's forms are also checked to come from this site (``ui.same_origin``),
and the API accepts a session for reads only (GET/HEAD): writes through ``/v1`` still need a token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from twelvefactor.errors import ForgedToken, MalformedToken, SignInRequired
from twelvefactor.server.auth import bearer_scheme, require_api_token
from twelvefactor.server.settings import ServerSettings
from twelvefactor.server.signing import b64, seal, unseal

__all__ = [
    "COOKIE_NAME",
    "SignInRequired",
    "clear_session_cookie",
    "has_session",
    "make_session",
    "require_api_access",
    "require_signed_in",
    "session_valid",
    "set_session_cookie",
]

COOKIE_NAME = "twelvefactor_session"
_DOMAIN = b"twelvefactor/session/v1\x00"
_FINGERPRINT = b"twelvefactor/token-fingerprint/v1\x00"
_READS = frozenset({"GET", "HEAD"})


class _Claims(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    fingerprint: str = Field(alias="f")
    expires_at: int = Field(alias="e")
    nonce: str = Field(alias="n")


def _fingerprint(secret: str, token: str) -> str:
    return b64(hmac.new(secret.encode(), _FINGERPRINT + token.encode(), hashlib.sha256).digest()[:18])


def make_session(settings: ServerSettings, token: str, *, now: float | None = None) -> str:
    """A session cookie value for someone who proved they hold ``token``, valid for ``session_ttl_s``."""
    expires = int((time.time() if now is None else now) + settings.session_ttl_s)
    claims = {"f": _fingerprint(settings.secret, token), "e": expires, "n": secrets.token_urlsafe(12)}
    return seal(settings.secret, _DOMAIN, claims)


def session_valid(settings: ServerSettings, value: str | None, *, now: float | None = None) -> bool:
    """Whether ``value`` is an unexpired session signed here, made from a token still configured."""
    if not value or not settings.api_tokens:
        return False
    try:
        claims = _Claims.model_validate_json(unseal(settings.secret, _DOMAIN, value))
    except (MalformedToken, ForgedToken, ValidationError):
        return False
    if (time.time() if now is None else now) >= claims.expires_at:
        return False
    found = False
    for token in settings.api_tokens:  # every token, in constant time each: no early exit
        found |= hmac.compare_digest(claims.fingerprint.encode(), _fingerprint(settings.secret, token).encode())
    return found


def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.runtime.settings
    return settings


def has_session(request: Request) -> bool:
    """Whether the request carries a valid session cookie."""
    return session_valid(_settings(request), request.cookies.get(COOKIE_NAME))


async def require_signed_in(request: Request) -> None:
    """Dependency of the UI's pages: a valid session whenever the server has API tokens."""
    if _settings(request).api_tokens and not has_session(request):
        query = request.url.query
        raise SignInRequired(request.url.path + (f"?{query}" if query else ""))


async def require_api_access(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> None:
    """Dependency of the API: a bearer token, or for reads (the UI's live stream) a valid session."""
    if credentials is None and request.method in _READS and has_session(request):
        return
    await require_api_token(request, credentials)


def _cookie_path(request: Request) -> str:
    return str(request.scope.get("root_path", "")) or "/"


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    settings = _settings(request)
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=int(settings.session_ttl_s),
        path=_cookie_path(request),
        secure=(settings.public_url or "").lower().startswith("https://"),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    settings = _settings(request)
    response.delete_cookie(
        COOKIE_NAME,
        path=_cookie_path(request),
        secure=(settings.public_url or "").lower().startswith("https://"),
        httponly=True,
        samesite="lax",
    )
