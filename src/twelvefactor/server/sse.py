"""Server-sent event frames that cannot be forged by the text they carry.

In ``text/event-stream`` a CR, an LF or a CRLF ends a field, and a blank line ends a frame. An event
type (or id) holding a line break would therefore let whoever chose it append fields or whole frames
(``event: done``) to the stream. :func:`frame` never writes a raw line break inside a field: ``data``
is split over several ``data:`` lines (which clients join back with ``\\n``), and an ``event`` or
``id`` that holds one is refused.
"""

from __future__ import annotations

import re

from twelvefactor.errors import SSEFieldError

__all__ = ["frame", "safe_event_name"]

_BREAK = re.compile(r"\r\n|\r|\n")


def safe_event_name(name: str) -> bool:
    """Whether ``name`` can be an ``event:`` field as it is (no CR, LF or NUL)."""
    return not any(char in name for char in "\r\n\x00")


def frame(*, data: str, event: str | None = None, id: str | None = None) -> str:
    """One SSE frame; raises :class:`SSEFieldError` for an ``event`` or ``id`` with a line break."""
    lines: list[str] = []
    for field, value in (("id", id), ("event", event)):
        if value is None:
            continue
        if not safe_event_name(value):
            raise SSEFieldError(f"SSE {field} {value[:40]!r} holds a line break or NUL: it would split the frame")
        lines.append(f"{field}: {value}")
    lines.extend(f"data: {line}" for line in _BREAK.split(data))
    return "\n".join(lines) + "\n\n"
