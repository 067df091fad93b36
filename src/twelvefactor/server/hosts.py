"""Host header validation: the defence against DNS rebinding.

A web page on ``evil.example`` can make its own name resolve to 127.0.0.1 and then talk to a loopback
server as a same-origin site: cookies and tokens are not needed when a server has none. The one thing
it cannot change is the ``Host`` header its requests carry, so the server answers only to names it
knows: loopback names (any port), the address it binds, the public URL's host and
``ServerSettings.allowed_hosts``. Everything else gets 400 before any route runs.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from twelvefactor.server.settings import ServerSettings, is_loopback

__all__ = ["LOOPBACK_NAMES", "HostCheck", "allowed_hosts", "split_host"]

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})
_ANY_HOST_PATHS = frozenset({"/healthz"})
_HOST = re.compile(r"^(?P<name>\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::(?P<port>[0-9]{1,5}))?$")


def split_host(value: str) -> tuple[str, str | None] | None:
    """``(name, port)`` of a Host header value, lower-cased; None when it is not a host[:port] at all."""
    found = _HOST.match(value.strip().lower())
    return None if found is None else (found["name"], found["port"])


def allowed_hosts(settings: ServerSettings) -> frozenset[str]:
    """The names (``name``: any port) and ``name:port`` pairs this server answers to."""
    names = set(LOOPBACK_NAMES)
    host = settings.host.lower()
    if host not in _WILDCARDS and not is_loopback(host):
        names.add(f"[{host}]" if ":" in host else host)
    if settings.public_url:
        netloc = urlsplit(settings.public_url).netloc.rpartition("@")[2]
        parsed = split_host(netloc)
        if parsed is not None:
            names.add(parsed[0])
    names.update(entry.strip().lower() for entry in settings.allowed_hosts)
    return frozenset(names)


class HostCheck:
    """ASGI middleware: 400 for a request whose Host header is not one of :func:`allowed_hosts`."""

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.allowed = allowed_hosts(settings)

    def accepts(self, value: str | None) -> bool:
        if "*" in self.allowed:
            return True
        parsed = None if value is None else split_host(value)
        if parsed is None:
            return False
        name, port = parsed
        return name in self.allowed or (port is not None and f"{name}:{port}" in self.allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
        # Orchestrators probe /healthz with the pod's IP as Host; it changes and reveals nothing.
        if self.accepts(host) or scope.get("path") in _ANY_HOST_PATHS:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        detail = (
            f"Host {host!r} is not served here (DNS rebinding protection): use 127.0.0.1 or localhost, or add"
            " the name to the allowed hosts (ServerSettings.allowed_hosts, TWELVEFACTOR_ALLOWED_HOSTS) or set"
            " the public URL (TWELVEFACTOR_PUBLIC_URL)"
        )
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
