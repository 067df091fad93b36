"""A model that streams its replies in chunks, with pauses and gates the test controls.

Each reply is a list of parts; each part is sent in ``chunk``-character pieces ``pause`` seconds apart,
and after part ``i`` the model waits for ``gates[i]`` (a ``threading.Event``) when there is one, so a
test can look at what was shown so far before letting the reply go on (or end).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from twelvefactor import Agent, ModelResponse


def done(message: str, *, cut: int | None = None) -> list[str]:
    """A ``done_for_now`` reply, in two parts cut ``cut`` characters into the message (else one part)."""
    text = json.dumps({"intent": "done_for_now", "message": message})
    if cut is None:
        return [text]
    at = text.index(message) + cut
    return [text[:at], text[at:]]


class StreamingModel:
    streams = True

    def __init__(
        self,
        replies: Sequence[Sequence[str]],
        *,
        chunk: int = 4,
        pause: float = 0.01,
        gates: Sequence[threading.Event] = (),
        name: str = "streaming-test",
    ) -> None:
        self.replies = [list(reply) for reply in replies]
        self.chunk = chunk
        self.pause = pause
        self.gates = list(gates)
        self.name = name
        self.calls = 0
        self._lock = threading.Lock()

    def _next(self) -> list[str]:
        with self._lock:
            reply = self.replies[min(self.calls, len(self.replies) - 1)]
            self.calls += 1
            return reply

    def _pieces(self, part: str) -> list[str]:
        return [part[i : i + self.chunk] for i in range(0, len(part), self.chunk)]

    async def acomplete(
        self, messages: object, *, on_delta: Callable[[str], None] | None = None, output: Any = None
    ) -> ModelResponse:
        reply = self._next()
        for i, part in enumerate(reply):
            for piece in self._pieces(part):
                if on_delta is not None:
                    on_delta(piece)
                await asyncio.sleep(self.pause)
            if i < len(self.gates):
                while not self.gates[i].is_set():
                    await asyncio.sleep(0.01)
        return ModelResponse(text="".join(reply), model=self.name)

    def complete(
        self, messages: object, *, on_delta: Callable[[str], None] | None = None, output: Any = None
    ) -> ModelResponse:
        reply = self._next()
        for i, part in enumerate(reply):
            for piece in self._pieces(part):
                if on_delta is not None:
                    on_delta(piece)
                time.sleep(self.pause)
            if i < len(self.gates):
                self.gates[i].wait(10)
        return ModelResponse(text="".join(reply), model=self.name)


class SyncStreamingModel(StreamingModel):
    """The same model without ``acomplete``: the worker runs it in a pool thread, chunks come from there."""

    acomplete = None  # type: ignore[assignment]


def writer(model: StreamingModel, name: str = "writer") -> Agent:
    """An agent with no tools of its own: its one step is the model's ``done_for_now``."""
    return Agent(name, model=model)  # type: ignore[arg-type]
