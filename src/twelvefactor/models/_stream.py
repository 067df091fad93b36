"""Token streaming, what every model shares: a callback that cannot break the call, SSE framing, and the
reply text as it grows.

``on_delta(chunk)`` gets each piece of the reply text in order. In ``prompted`` mode the pieces are the
reply text itself, so they add up to ``ModelResponse.text``. In the structured modes the reply text is
made by twelvefactor from what the provider sent (the step inside ``{"next_step": ...}``, or a tool
call as ``{"intent": NAME, **arguments}``), so the pieces are that step written as it arrives: the
provider's own JSON of the step, re-rooted (the wrapper's prefix and closing brace dropped; a tool call
opened with ``{"intent": "NAME"`` and its arguments following). Their concatenation then parses, also
partially (``parse_partial``), to the same fields as the final text, and equals it whenever the provider
writes JSON as ``json.dumps`` does and no field was dropped (a strict-mode ``null``). Only the first
tool call is streamed. When the final text extends what was streamed, the rest is sent at the end; a
model or server that does not stream sends the whole text as one piece.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from twelvefactor.models.base import DeltaCallback, OutputMode

logger = logging.getLogger("twelvefactor.models")

__all__ = ["SSE", "DeltaCallback", "Deltas", "StepText", "is_event_stream"]


class Deltas:
    """Hands text to ``on_delta``; an exception in it is logged once and ends the streaming to it."""

    def __init__(self, on_delta: DeltaCallback | None, model_name: str) -> None:
        self._on_delta = on_delta
        self._model_name = model_name
        self.sent: list[str] = []

    @property
    def delivered(self) -> bool:
        return bool(self.sent)

    @property
    def text(self) -> str:
        return "".join(self.sent)

    def emit(self, chunk: str) -> None:
        if not chunk or self._on_delta is None:
            return
        self.sent.append(chunk)
        try:
            self._on_delta(chunk)
        except Exception:  # noqa: BLE001 - the caller's callback must not break the model call
            logger.exception("on_delta of a call to %r raised; streaming to it stopped", self._model_name)
            self._on_delta = None

    def finish(self, final: str) -> None:
        """Send what the final text adds to what was streamed (all of it when nothing was)."""
        streamed = self.text
        if final.startswith(streamed):
            self.emit(final[len(streamed) :])


_WRAPPER = re.compile(r'\s*\{\s*"next_step"\s*:\s*')
_TAIL = re.compile(r"[\s}]*\Z")


class StepText:
    """The reply text of one call as it grows, from the pieces the provider streams (see the module doc)."""

    def __init__(self, deltas: Deltas, mode: OutputMode, wire_names: Mapping[str, str]) -> None:
        self.deltas = deltas
        self.mode = mode
        self._wire_names = wire_names
        self._buffer = ""  # json_schema: text before the wrapper's prefix is known
        self._state: Literal["start", "body", "plain"] = "start"
        self._held = ""  # a closing tail that may be the wrapper's or the arguments' end
        self._call: int | None = None  # the tool call being streamed
        self._opened = False

    def text(self, chunk: str) -> None:
        """Reply text (prompted) or the step's JSON (json_schema through the content)."""
        if self.mode == "prompted":
            self.deltas.emit(chunk)
        elif self.mode == "json_schema":
            self.wrapped(chunk)

    def wrapped(self, chunk: str) -> None:
        """JSON of ``{"next_step": STEP}``, streamed as STEP."""
        if self._state == "plain":
            self.deltas.emit(chunk)
            return
        if self._state == "start":
            self._buffer += chunk
            found = _WRAPPER.match(self._buffer)
            if found is None:
                if len(self._buffer) > 64 or not _could_open(self._buffer):
                    self._state = "plain"  # not wrapped after all: the text is the step
                    self.deltas.emit(self._buffer)
                return
            self._state = "body"
            chunk = self._buffer[found.end() :]
        self._held_emit(chunk)

    def tool_call(self, index: int, name: str | None, arguments: str) -> None:
        """A piece of a native tool call; the first call is streamed as ``{"intent": NAME, **arguments}``."""
        if self.mode == "json_schema":
            self.wrapped(arguments)
            return
        if self.mode != "tools":
            return
        if self._call is None and name:
            self._call = index
            intent = self._wire_names.get(name, name)
            self.deltas.emit('{"intent": ' + json.dumps(intent))
        if self._call != index or not arguments:
            return
        if not self._opened:
            self._buffer += arguments
            body = self._buffer.lstrip()
            if not body:
                return
            if body.startswith("{"):
                body = body[1:].lstrip()
                if not body:
                    return
            self._opened = True
            self._buffer = ""
            if not body.startswith("}"):
                self.deltas.emit(", ")
            arguments = body
        self.deltas.emit(arguments)

    def end(self) -> None:
        """The stream is over: what was held back, less the wrapper's closing brace."""
        if self._state == "start" and self._buffer:
            self.deltas.emit(self._buffer)
        elif self._state == "body":
            held = self._held.rstrip()
            self.deltas.emit(held[:-1] if held.endswith("}") else held)
        if self.mode == "tools" and self._call is not None and not self._opened:
            self.deltas.emit("}")
        self._held = ""
        self._state = "start" if self._state == "body" else self._state

    def _held_emit(self, chunk: str) -> None:
        text = self._held + chunk
        tail = _TAIL.search(text)
        cut = tail.start() if tail is not None else len(text)
        self._held = text[cut:]
        self.deltas.emit(text[:cut])


def _could_open(text: str) -> bool:
    """Whether ``text`` may still grow into the wrapper's opening ``{"next_step":``."""
    squeezed = re.sub(r"\s+", "", text)
    return '{"next_step":'.startswith(squeezed[:13])


class SSE:
    """Server-sent events read line by line: ``event:`` names the next ``data:``, each data line is one event.

    Providers send each event's data on one line; dispatching it at once (not at the blank line) keeps a
    stream whose blank lines were lost (a recording) readable.
    """

    def __init__(self, on_event: Callable[[str, Any], None]) -> None:
        self._on_event = on_event
        self._event = "message"

    def line(self, line: str) -> None:
        line = line.rstrip("\r")
        if not line:
            self._event = "message"
        elif line.startswith("event:"):
            self._event = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].removeprefix(" ")
            try:
                value: Any = json.loads(data)
            except ValueError:
                value = data  # OpenAI's closing [DONE]
            self._on_event(self._event, value)
            self._event = "message"


def is_event_stream(headers: Mapping[str, str], body: Any, text: str) -> bool:
    """Whether a reply is a server-sent event stream (also one replayed from a cassette)."""
    if headers.get("content-type", "").startswith("text/event-stream"):
        return True
    return body is None and text.lstrip().startswith(("data:", "event:"))


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_index(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
