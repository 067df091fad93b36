"""The exact context each model call was sent, recorded small (factors 2 and 3: nothing hidden, ever).

Rendering is pure, but prompts, tools and formats change between deployments, so the context a call
was sent cannot be re-derived later: each ModelCall records it (``ModelCall.sent``). A context grows by
appending, so storing every call's full messages would grow with the square of the thread; instead each
message is recorded as an edit of the message at the same place in the previous ModelCall of the
thread (keep a prefix, insert text, keep a suffix), and holds only what is new. A call recorded
without it (older threads) resets the chain: the next call's messages are recorded in full.

A provider's request body holds the messages again. They are cut from the stored body (the places are
kept as JSON pointers in ``ModelCall.request_refs``) and put back by :func:`sent_request`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from typing import Any, cast

from twelvefactor.errors import UserError
from twelvefactor.events import Event, ModelCall, SentMessage
from twelvefactor.messages import Message
from twelvefactor.thread import Thread

__all__ = ["iter_sent", "record", "sent_messages", "sent_request", "strip_request"]

# Texts shorter than this stay in the request body: a pointer to them would cost about as much.
_MIN_REF = 64
_CHUNK = 4096


def record(messages: Sequence[Message], previous: Sequence[Message]) -> tuple[SentMessage, ...]:
    """``messages`` as edits of ``previous`` (the messages of the thread's previous model call)."""
    out: list[SentMessage] = []
    for i, message in enumerate(messages):
        if i >= len(previous):
            out.append(SentMessage(role=message.role, text=message.content))
            continue
        before, now = previous[i], message.content
        role = None if before.role == message.role else message.role
        old = before.content
        if old == now:
            out.append(SentMessage(role=role, keep=len(old)))
            continue
        keep, tail = _splice(old, now)
        out.append(SentMessage(role=role, keep=keep, text=now[keep : len(now) - tail], tail=tail))
    return tuple(out)


def apply(sent: Sequence[SentMessage], previous: Sequence[Message]) -> list[Message]:
    """The messages a record stands for, given the previous call's messages (the inverse of ``record``)."""
    out: list[Message] = []
    for i, edit in enumerate(sent):
        before = previous[i] if i < len(previous) else None
        role = edit.role or (before.role if before is not None else None)
        old = before.content if before is not None else ""
        if role is None or edit.keep + edit.tail > len(old):
            raise UserError(
                f"the recorded context is damaged at message {i}: it refers to text the previous call lacks;"
                " was an earlier model call edited or removed?"
            )
        content = old[: edit.keep] + edit.text + (old[len(old) - edit.tail :] if edit.tail else "")
        out.append(Message(role=role, content=content))
    return out


def iter_sent(
    events: Sequence[Event], *, start: int = 0, previous: Sequence[Message] = ()
) -> Iterator[tuple[int, ModelCall, list[Message] | None]]:
    """Every model call of the thread with the messages it was sent (None: not recorded), in one pass.

    ``start`` and ``previous`` resume a walk: the messages of the last model call before ``start``.
    """
    last = list(previous)
    for index in range(start, len(events)):
        event = events[index]
        if isinstance(event, ModelCall):
            last = apply(event.sent, last) if event.sent is not None else []
            yield index, event, (last if event.sent is not None else None)


# The last answer of sent_messages, by thread object (immutable): asking for the calls of a thread in
# order (`threads show --calls`) resumes from it, one pass in all instead of one pass per call.
_last: tuple[weakref.ref[Thread], int, tuple[Message, ...] | None] | None = None


def sent_messages(thread: Thread, index: int) -> list[Message] | None:
    """The exact messages the model call at event ``index`` of ``thread`` was sent (None: not recorded)."""
    global _last
    events = thread.events
    _call_at(thread, index)
    start, previous = 0, cast("Sequence[Message]", ())
    memo = _last
    if memo is not None and memo[0]() is thread and memo[1] <= index:
        if memo[1] == index:
            return None if memo[2] is None else list(memo[2])
        start, previous = memo[1] + 1, memo[2] or ()
    for at, _, messages in iter_sent(events, start=start, previous=previous):
        if at == index:
            _last = (weakref.ref(thread), index, None if messages is None else tuple(messages))
            return messages
    return None  # unreachable: the event at index is a model call


def sent_request(thread: Thread, index: int) -> dict[str, Any] | None:
    """The exact request body the model call at event ``index`` sent (None: none was recorded)."""
    call = _call_at(thread, index)
    if call.request is None:
        return None
    if not call.request_refs:
        return dict(call.request)
    messages = sent_messages(thread, index)
    if messages is None:
        raise UserError(f"model call {index} of thread {thread.id!r} refers to messages it did not record")
    return _restore(call.request, call.request_refs, messages)


def strip_request(body: dict[str, Any], messages: Sequence[Message]) -> tuple[dict[str, Any], dict[str, int]]:
    """The body with every string equal to a message's text emptied, and where they were (pointer: index)."""
    index: dict[str, int] = {}
    for i, message in enumerate(messages):
        if len(message.content) >= _MIN_REF:
            index.setdefault(message.content, i)
    refs: dict[str, int] = {}
    if not index:
        return body, refs

    def strip(value: Any, pointer: str) -> Any:
        if isinstance(value, str):
            found = index.get(value)
            if found is None:
                return value
            refs[pointer] = found
            return ""
        if isinstance(value, dict):
            return {key: strip(item, f"{pointer}/{_escape(key)}") for key, item in value.items()}
        if isinstance(value, list):
            return [strip(item, f"{pointer}/{n}") for n, item in enumerate(value)]
        return value

    stripped = strip(body, "")
    return (stripped, refs) if refs else (body, refs)


def _restore(body: dict[str, Any], refs: dict[str, int], messages: Sequence[Message]) -> dict[str, Any]:
    def put(value: Any, pointer: str) -> Any:
        if pointer in refs:
            return messages[refs[pointer]].content
        if isinstance(value, dict):
            return {key: put(item, f"{pointer}/{_escape(key)}") for key, item in value.items()}
        if isinstance(value, list):
            return [put(item, f"{pointer}/{n}") for n, item in enumerate(value)]
        return value

    restored: dict[str, Any] = put(body, "")
    return restored


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")  # RFC 6901


def _splice(old: str, now: str) -> tuple[int, int]:
    """(kept prefix, kept suffix) of ``old`` in ``now``, not overlapping: the rest of ``now`` is new."""
    # The usual step: new events inserted before the prompt's closing text. The short common suffix is
    # cheap to find, and then one comparison confirms that everything before it was kept.
    tail = _common_suffix(old, now, min(len(old), len(now)))
    head = len(old) - tail
    if head <= len(now) - tail and now.startswith(old[:head]):
        return head, tail
    keep = _common_prefix(old, now)
    return keep, _common_suffix(old, now, min(len(old), len(now)) - keep)


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i : i + _CHUNK] == b[i : i + _CHUNK]:  # compares in C, a chunk at a time
        i += _CHUNK
    if i >= n:
        return n
    lo, hi = i, min(i + _CHUNK, n)  # a[:lo] == b[:lo]; they differ somewhere before hi (or one ends)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[i:mid] == b[i:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    # Suffixes are short (the prompt's text after the context): gallop, then bisect.
    la, lb = len(a), len(b)
    good, probe = 0, 64
    while good < limit:
        size = min(probe, limit)
        if a[la - size :] != b[lb - size :]:
            break
        good, probe = size, probe * 2
    else:
        return good
    lo, hi = good, min(probe, limit) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[la - mid :] == b[lb - mid :]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _call_at(thread: Thread, index: int) -> ModelCall:
    events = thread.events
    if not 0 <= index < len(events):
        raise UserError(f"event index {index} is outside 0..{len(events) - 1} for thread {thread.id!r}")
    event = events[index]
    if not isinstance(event, ModelCall):
        raise UserError(f"event {index} of thread {thread.id!r} is a {event.type}, not a model_call")
    return event
