"""Model replies as they stream in, for live views in this process: in memory only, never stored.

The in-process worker hands every :class:`~twelvefactor.thread.Delta` (a chunk of a reply) to
:meth:`Deltas.add`, from the event loop or from a pool thread (a synchronous streaming model). The text
so far of each thread's call in flight is kept here and the thread's streaming waiters are woken. It is
dropped once a write shows the call recorded (its ``model_call`` event, or an ``error`` when the call
failed), or when no chunk has come for ``ttl_s`` (a call cancelled or lost); a reply longer than
``max_chars`` is kept only up to there. Replies streamed in another process (a queue's worker) are not
seen here: their steps still arrive as events.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_jsonable_python

from twelvefactor.errors import ParseError
from twelvefactor.parsing import parse_partial
from twelvefactor.server.bus import Notifier
from twelvefactor.thread import Delta, Thread

__all__ = ["DELTA_INTERVAL_S", "Deltas", "Writing", "calls_recorded", "delta_data"]

DELTA_INTERVAL_S = 0.1
"""At most one delta frame per stream this often: the latest text wins."""

_RECORDED = frozenset(("model_call", "error"))  # a call in flight at version V ends in one of these at >= V


@dataclass(frozen=True)
class Writing:
    """A model reply being written on a thread: the call's ``version`` (the index its ``model_call`` will
    have), the ``text`` so far and ``seq``, which grows with every chunk."""

    version: int
    text: str
    seq: int


class _Reply:
    __slots__ = ("chars", "chunks", "seq", "touched", "version")

    def __init__(self, version: int) -> None:
        self.version = version
        self.chunks: list[str] = []
        self.chars = 0
        self.seq = 0
        self.touched = time.monotonic()


class Deltas:
    """The text so far of each thread's streaming model call; thread-safe."""

    def __init__(self, notifier: Notifier, *, ttl_s: float = 60.0, max_chars: int = 200_000) -> None:
        self.notifier = notifier
        self.ttl_s = ttl_s
        self.max_chars = max_chars
        self._lock = threading.Lock()
        self._replies: dict[str, _Reply] = {}
        self._swept = time.monotonic()

    def add(self, delta: Delta) -> None:
        """A chunk of a reply (the worker's ``on_delta``): keep it, wake the thread's streams."""
        now = time.monotonic()
        with self._lock:
            reply = self._replies.get(delta.thread_id)
            if reply is None or reply.version < delta.version:
                reply = self._replies[delta.thread_id] = _Reply(delta.version)
            elif reply.version > delta.version:
                return  # a late chunk of a call that is over
            room = self.max_chars - reply.chars
            if room > 0 and delta.text:
                text = delta.text[:room]
                reply.chunks.append(text)
                reply.chars += len(text)
                reply.seq += 1
            reply.touched = now
            if now - self._swept > self.ttl_s / 4:
                self._sweep(now)
        self.notifier.notify_streamed(delta.thread_id)

    def written(self, thread: Thread) -> None:
        """A Notifier listener: a write that records the call in flight ends its reply here."""
        with self._lock:
            reply = self._replies.get(thread.id)
            if reply is not None and calls_recorded(thread, reply.version) > reply.version:
                del self._replies[thread.id]

    def get(self, thread_id: str) -> Writing | None:
        """The reply being written on ``thread_id``, if any (and it has any text)."""
        with self._lock:
            reply = self._replies.get(thread_id)
            if reply is None or not reply.seq:
                return None
            if time.monotonic() - reply.touched > self.ttl_s:
                del self._replies[thread_id]
                return None
            if len(reply.chunks) > 1:
                reply.chunks = ["".join(reply.chunks)]
            return Writing(reply.version, reply.chunks[0], reply.seq)

    def __len__(self) -> int:
        with self._lock:
            return len(self._replies)

    def _sweep(self, now: float) -> None:
        self._swept = now
        for thread_id in [key for key, reply in self._replies.items() if now - reply.touched > self.ttl_s]:
            del self._replies[thread_id]


def calls_recorded(thread: Thread, start: int = 0) -> int:
    """One past the last ``model_call`` or ``error`` event at ``start`` or after (else ``start``): a
    reply streamed for a call at a version below this is recorded (or failed), no longer being written."""
    for index in range(thread.version - 1, start - 1, -1):
        if thread.events[index].type in _RECORDED:
            return index + 1
    return start


def delta_data(writing: Writing, schema: Any | None) -> str:
    """The JSON of a ``delta`` frame: ``{"version", "text", "partial"}``, where ``partial`` is what
    ``parse_partial`` reads of the text against ``schema`` (``{"value", "missing", "complete"}``), or
    null when there is no schema or more text cannot make it an answer."""
    partial: dict[str, Any] | None = None
    if schema is not None:
        try:
            read = parse_partial(writing.text, schema)
        except ParseError:
            pass
        else:
            value = to_jsonable_python(read.value, fallback=str)
            partial = {"value": value, "missing": list(read.missing), "complete": read.complete}
    return json.dumps({"version": writing.version, "text": writing.text, "partial": partial}, ensure_ascii=False)
