"""Bounded input: request bodies are counted as they arrive, and long texts are refused by name.

:class:`BodyLimit` stops reading a body at ``max_body_bytes``: a declared ``Content-Length`` over the
cap is answered 413 before a byte is read, and a chunked (or lying) body is cut off the moment the
running count passes the cap, so no endpoint ever buffers more than the cap. The 413 carries
``Connection: close``, so the server stops reading what the client is still sending.

:func:`check_texts` caps each text field of a message, answer or event at ``max_text_chars``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twelvefactor.errors import TextTooLong

__all__ = ["BodyLimit", "BodyTooLarge", "TextTooLong", "check_texts"]


class BodyTooLarge(HTTPException):
    """A request body over ``max_body_bytes`` (an HTTPException, so FastAPI answers it as a JSON 413)."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        size_text = f"of {size} bytes" if size is not None else "that kept coming"
        super().__init__(
            413,
            f"request body {size_text} is over the {limit} bytes limit: send less, or raise max_body_bytes"
            " (TWELVEFACTOR_MAX_BODY_BYTES)",
            headers={"Connection": "close"},
        )


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, counted while it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _answer(send, BodyTooLarge(self.max_bytes, declared))
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:  # read outside a route (a middleware, a mounted app)
            if started:
                raise
            await _answer(send, exc)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return int(value) if value.isdigit() and len(value) < 19 else None
    return None


async def _answer(send: Send, exc: BodyTooLarge) -> None:
    body = json.dumps({"detail": exc.detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def check_texts(limit: int, what: str, value: Any) -> None:
    """Raise :class:`TextTooLong` if any string in ``value`` (nested lists/dicts included) is over ``limit``."""
    for where, text in _strings(what, value):
        if len(text) > limit:
            raise TextTooLong(
                f"{where} is {len(text)} characters: the limit is {limit} (max_text_chars,"
                " TWELVEFACTOR_MAX_TEXT_CHARS); send a shorter text or a reference to it"
            )


def _strings(where: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)]
    found: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            found += _strings(f"{where}.{key}", item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found += _strings(f"{where}[{index}]", item)
    return found
