"""Owned context window (factor 3): how a thread's events become the text the model reads.

A ContextFormat renders each visible event to a block and joins them. Three formats ship:
``XmlFormat`` (default: one ``<event_type>`` block per event with a compact YAML-like body),
``JsonFormat`` (one JSON object per line) and ``ChatFormat`` (chat messages). Every format takes
per-event-type overrides (``renderers={"tool_result": fn}``; ``fn`` returns the body, or None to hide
the event) and a redaction hook applied to every rendered block. All rendering is pure: the same events
give the same text.

Every format escapes what it interpolates, overrides' bodies included, so no event can close its own
block or forge another: XML text is escaped (``<`` ``>`` ``&``) and tag names are event types, which
are identifiers (see ``EVENT_TYPE_PATTERN``); JSON lines are ``json.dumps`` output, one per event; the
YAML-like bodies quote keys and line breaks that could start a line; a user message merged into a chat
turn with other blocks becomes a ``<user_message>`` block like them.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, Generic, TypeVar, cast

from twelvefactor import _yamlish
from twelvefactor.events import (
    EVENT_TYPE_PATTERN,
    Compaction,
    CustomEvent,
    Done,
    Error,
    Event,
    HumanRequest,
    HumanResponse,
    Replacement,
    Retrieved,
    ToolCall,
    ToolResult,
    UserMessage,
)
from twelvefactor.messages import Message, Role
from twelvefactor.tokens import estimate_tokens as estimate_tokens  # re-exported: it lived here first

Renderer = Callable[[Event], "str | None"]
Redactor = Callable[[str], str]

_CACHE_LIMIT = 20_000

K = TypeVar("K")
V = TypeVar("V")
MISSING: Any = object()


class IdentityCache(Generic[K, V]):
    """Values worked out from immutable objects (events, replacements), kept while the object lives.

    Keyed by identity, each entry holds a weak reference and leaves with its object, so finished threads
    do not pin memory; the identity check guards against a recycled ``id()``. At ``limit`` entries the
    cache starts over (what is still needed is worked out again).
    """

    def __init__(self, limit: int = _CACHE_LIMIT) -> None:
        self._entries: dict[int, tuple[weakref.ref[Any], V]] = {}
        self._limit = limit

    def get(self, obj: K) -> V:
        """The value kept for ``obj``, or ``MISSING``."""
        cached = self._entries.get(id(obj))
        if cached is not None and cached[0]() is obj:
            return cached[1]
        return cast(V, MISSING)

    def put(self, obj: K, value: V) -> V:
        entries, key = self._entries, id(obj)
        if len(entries) >= self._limit:
            entries.clear()
        entries[key] = (weakref.ref(obj, lambda _, key=key: entries.pop(key, None)), value)  # type: ignore[misc]
        return value

    def clear(self) -> None:
        self._entries.clear()


def visible_events(events: Sequence[Event], *, hide_resolved_errors: bool = True) -> list[Event]:
    """The events a model should see: provenance records dropped, and errors already recovered from.

    An error is resolved once any later non-error event exists; a failed tool call goes with its error.
    Trailing errors stay, so the model sees what it must fix. (Compactions are not applied here: see
    ``shown_items`` for the window as rendered.)
    """
    shown = [Shown(event, index, index) for index, event in enumerate(events) if event.shown_in_context]
    return [item.event for item in _without_resolved_errors(shown, hide_resolved_errors)]


@dataclass(frozen=True, slots=True)
class Shown:
    """One block of a window: the event at ``index``, or what a compaction shows in place of events
    ``index``..``last`` (``replacement``; for a run of events ``event`` is a ``summary`` placeholder)."""

    event: Event
    index: int
    last: int
    replacement: Replacement | None = None


S = TypeVar("S")


class GrowingFold(Generic[S]):
    """A value folded over a thread's events, kept for the last few threads asked about.

    Threads only grow, so an answer is extended with the new events alone instead of reading every event
    again: a step costs the same on a thread of 10 or 10,000 events. ``step`` returns the new value and
    must not change the one it is given in place.
    """

    def __init__(self, initial: S, step: Callable[[S, Event], S]) -> None:
        self._initial = initial
        self._step = step
        self._known: list[tuple[Sequence[Event], S]] = []

    def __call__(self, events: Sequence[Event]) -> S:
        value, start = self._initial, 0
        for before, known in reversed(self._known):
            if extends(events, before):
                value, start = known, len(before)
                break
        for index in range(start, len(events)):
            value = self._step(value, events[index])
        self._known[:] = [*self._known[-3:], (events, value)]  # a step may look at a trial thread in between
        return value


def _replace(active: dict[int, Replacement], event: Event) -> dict[int, Replacement]:
    if event.type != "compaction":
        return active
    active = dict(active)
    for replacement in cast(Compaction, event).replacements:
        if replacement.last > replacement.first:
            for first in [first for first in active if replacement.first <= first <= replacement.last]:
                del active[first]
        active[replacement.first] = replacement
    return active


active_replacements: GrowingFold[dict[int, Replacement]] = GrowingFold({}, _replace)
"""What the thread's compactions replace, by first index: later ones win, a run swallows what it covers."""


def extends(events: Sequence[Event], before: Sequence[Event]) -> bool:
    """Whether ``events`` is ``before`` with events appended: threads only grow, so the same first event
    and the same event at ``before``'s end mean the same events up to there."""
    if len(events) < len(before):
        return False
    return not before or (events[0] is before[0] and events[len(before) - 1] is before[-1])


_last_shown: list[tuple[Sequence[Event], bool, list[Shown]]] = []


def shown_items(events: Sequence[Event], *, hide_resolved_errors: bool = True) -> list[Shown]:
    """The window's blocks in order: visible events, with every compaction's replacements in place.

    The last answer is kept (for the same events object), as a step asks twice: to count, to render.
    Treat the list as read-only.
    """
    last = _last_shown[0] if _last_shown else None
    if last is not None and last[0] is events and last[1] == hide_resolved_errors:
        return last[2]
    items = _shown_items(events, hide_resolved_errors)
    _last_shown[:] = [(events, hide_resolved_errors, items)]
    return items


def _shown_items(events: Sequence[Event], hide_resolved_errors: bool) -> list[Shown]:
    active = active_replacements(events)
    if not active:
        shown = [Shown(event, index, index) for index, event in enumerate(events) if event.shown_in_context]
        return _without_resolved_errors(shown, hide_resolved_errors)
    shown = []
    index, count = 0, len(events)
    while index < count:
        replacement = active.get(index)
        if replacement is None:
            event = events[index]
            if event.shown_in_context:
                shown.append(Shown(event, index, index))
            index += 1
            continue
        last = min(replacement.last, count - 1)
        if replacement.text is not None:
            event = events[index] if last == index else _summary_of(replacement)
            shown.append(Shown(event, index, last, replacement))
        index = last + 1
    return _without_resolved_errors(shown, hide_resolved_errors)


_summaries: IdentityCache[Replacement, Event] = IdentityCache()


def _summary_of(replacement: Replacement) -> Event:
    """The placeholder event of a run's replacement (one per replacement, so blocks cache by identity)."""
    event = _summaries.get(replacement)
    return _summaries.put(replacement, CustomEvent(type="summary")) if event is MISSING else event


def _without_resolved_errors(shown: list[Shown], hide: bool) -> list[Shown]:
    if not hide:
        return shown
    keep: list[Shown] = []
    hidden_calls: set[str] = set()
    progressed = False
    for item in reversed(shown):
        event = item.event
        if isinstance(event, Error) and item.replacement is None:
            if progressed:
                if event.call_id:
                    hidden_calls.add(event.call_id)
                continue
        elif isinstance(event, ToolCall) and event.call_id in hidden_calls:
            continue
        else:
            progressed = True
        keep.append(item)
    keep.reverse()
    return keep


def event_fields(event: Event) -> dict[str, Any]:
    """The JSON-ready fields a model needs: no type tag, timestamps, ids or empty values."""
    data = event.model_dump(mode="json", exclude_none=True, exclude={"type", "at", "call_id", "idempotency_key"})
    return {key: value for key, value in data.items() if value not in (False, [], {})}


def event_body(event: Event) -> str:
    """The default compact body of an event (shared by the XML and chat formats)."""
    if isinstance(event, UserMessage):
        return event.content
    if isinstance(event, Done):
        return event.message
    if isinstance(event, ToolCall):
        return _yamlish.render({"intent": event.intent, **event.arguments})
    if isinstance(event, ToolResult):
        return _yamlish.render({"intent": event.intent, "result": event.result})
    if isinstance(event, Error):
        return f"{event.source} error: {event.message}"
    if isinstance(event, HumanResponse):
        return _response_body(event)
    if isinstance(event, HumanRequest):
        data: dict[str, Any] = {"kind": event.kind, "question": event.question}
        if event.intent:
            data["intent"] = event.intent
        return _yamlish.render(data)
    if isinstance(event, Retrieved):
        documents = [{"source": doc.source, "text": doc.text} for doc in event.documents]
        return _yamlish.render({"query": event.query, "documents": documents})
    if isinstance(event, CustomEvent):
        return _yamlish.render(event_fields(event))
    return _yamlish.render(event_fields(event))


def _response_body(event: HumanResponse) -> str:
    if event.approved is True:
        return "approved" + (f": {event.text}" if event.text else "")
    if event.approved is False:
        return "denied" + (f": {event.text}" if event.text else "")
    return event.text or ""


class ContextFormat:
    """Base of the formats: visibility, overrides, redaction and a per-event render cache."""

    separator = "\n\n"

    def __init__(
        self,
        *,
        renderers: Mapping[str, Renderer] | None = None,
        redact: Redactor | None = None,
        hide_resolved_errors: bool = True,
    ) -> None:
        self.renderers = dict(renderers or {})
        self.redact = redact
        self.hide_resolved_errors = hide_resolved_errors
        # Events are immutable, so a block rendered once is valid for the life of the event object: each
        # step re-renders only the new events.
        self._cache: IdentityCache[Event, str | None] = IdentityCache()
        self._replaced: IdentityCache[Replacement, str] = IdentityCache()

    def block(self, event: Event) -> str | None:
        """The rendered block of one event (None: hidden), with overrides and redaction applied."""
        cached = self._cache.get(event)
        if cached is not MISSING:
            return cached
        override = self.renderers.get(event.type)
        if override is not None:
            body = override(event)
            text = None if body is None else self.wrap_override(event, body)
        else:
            body = self.body(event)
            text = None if body is None else self.wrap(event, body)
        if text is not None and self.redact is not None:
            text = self.redact(text)
        return self._cache.put(event, text)

    def item_block(self, item: Shown) -> str | None:
        """The block of one window item: the event's own, or its replacement's text in the event's block."""
        replacement = item.replacement
        if replacement is None:
            return self.block(item.event)
        cached = self._replaced.get(replacement)
        if cached is not MISSING:
            return cached
        text = self.wrap_override(item.event, replacement.text or "")
        if self.redact is not None:
            text = self.redact(text)
        return self._replaced.put(replacement, text)

    def body(self, event: Event) -> str | None:
        return event_body(event)

    def wrap(self, event: Event, body: str) -> str:
        """The block for a body: where a format escapes what it interpolates."""
        return body

    def wrap_override(self, event: Event, body: str) -> str:
        """The block for the body a per-type renderer returned (untrusted text, like any body)."""
        return self.wrap(event, body)

    def render(self, events: Sequence[Event]) -> str:
        """The whole context as one string."""
        items = shown_items(events, hide_resolved_errors=self.hide_resolved_errors)
        blocks = (self.item_block(item) for item in items)
        return self.separator.join(block for block in blocks if block is not None)

    def messages(self, events: Sequence[Event]) -> list[Message] | None:
        """Chat formats return messages to append after the prompt's; text formats return None."""
        return None


class XmlFormat(ContextFormat):
    """``<tool_call>`` blocks with a YAML-like body; body text is XML-escaped so it cannot close a tag."""

    def wrap(self, event: Event, body: str) -> str:
        return xml_block(event.type, body)


def xml_block(tag: str, body: str) -> str:
    """``<tag>`` + the escaped body + ``</tag>``: the body cannot close the block or open another."""
    tag = tag if _TAG.fullmatch(tag) else _NOT_NAME.sub("_", tag)[:64] or "event"
    return f"<{tag}>\n{escape(body, quote=False)}\n</{tag}>"


# Event types are validated names; this guards against events built without validation (model_construct).
_TAG = re.compile(EVENT_TYPE_PATTERN)
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]|^[^A-Za-z_]")


def _json_line(value: dict[str, Any]) -> str:
    # json.dumps escapes every control character, so a line is exactly one object.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class JsonFormat(ContextFormat):
    """One compact JSON object per event, one per line; an override's body goes in its ``text`` field."""

    separator = "\n"

    def body(self, event: Event) -> str | None:
        return _json_line({"type": event.type, **event_fields(event)})

    def wrap_override(self, event: Event, body: str) -> str:
        return _json_line({"type": event.type, "text": body})


class ChatFormat(ContextFormat):
    """The thread as chat messages: the model's own steps as assistant turns, the rest as user turns.

    An agent puts the turns where its prompt prints ``{{ context }}`` (see ``place_turns``), so the
    thread reaches the model once, as turns; ``render`` (the text form) is what a text format would send.
    """

    def body(self, event: Event) -> str | None:
        if isinstance(event, ToolCall):
            return json.dumps({"intent": event.intent, **event.arguments}, ensure_ascii=False)
        if isinstance(event, Done):
            return json.dumps({"intent": "done_for_now", "message": event.message}, ensure_ascii=False)
        if isinstance(event, HumanRequest) and event.kind == "input" and not event.escalation:
            return json.dumps({"intent": "request_human_input", "question": event.question}, ensure_ascii=False)
        if isinstance(event, UserMessage):
            return event.content
        return event_body(event)

    def wrap(self, event: Event, body: str) -> str:
        if _is_model_step(event) or isinstance(event, UserMessage):
            return body  # a turn of its own: the model's JSON step, or the user's words as they wrote them
        return xml_block(event.type, body)

    def messages(self, events: Sequence[Event]) -> list[Message]:
        turns: list[tuple[Role, list[tuple[Event, str]]]] = []
        for item in shown_items(events, hide_resolved_errors=self.hide_resolved_errors):
            text = self.item_block(item)
            if text is None:
                continue
            event = item.event
            role: Role = "assistant" if _is_model_step(event) else "user"
            if turns and turns[-1][0] == role:
                turns[-1][1].append((event, text))  # providers reject two consecutive turns of one role: merge
            else:
                turns.append((role, [(event, text)]))
        return [Message(role=role, content=self._turn(blocks)) for role, blocks in turns]

    def _turn(self, blocks: list[tuple[Event, str]]) -> str:
        if len(blocks) == 1:
            return blocks[0][1]
        # Among other blocks, a user message's raw text could pose as one of them: it becomes a block too.
        return "\n\n".join(
            xml_block(event.type, text) if isinstance(event, UserMessage) else text for event, text in blocks
        )


def place_turns(messages: Sequence[Message], slot: str, turns: Sequence[Message]) -> list[Message]:
    """The prompt's messages with ``turns`` in place of ``slot`` (or after them all, without one).

    Text around the slot stays with its role, before and after the turns; where two neighbours then
    share a role they are merged (providers reject two turns of one role in a row).
    """
    out: list[Message] = []
    placed = False
    for message in messages:
        if slot not in message.content:
            out.append(message)
            continue
        before, _, after = message.content.partition(slot)
        parts = [Message(role=message.role, content=before.strip())] if before.strip() else []
        if not placed:
            parts.extend(turns)
            placed = True
        after = after.replace(slot, "").strip()
        if after:
            parts.append(Message(role=message.role, content=after))
        for part in parts:
            if out and out[-1].role == part.role:
                out[-1] = Message(role=part.role, content=f"{out[-1].content}\n\n{part.content}")
            else:
                out.append(part)
    if not placed:
        out.extend(turns)
    return out


def _is_model_step(event: Event) -> bool:
    if isinstance(event, ToolCall | Done):
        return True
    return isinstance(event, HumanRequest) and event.kind == "input" and not event.escalation


def redact_patterns(*patterns: str, replacement: str = "[REDACTED]") -> Redactor:
    """A redaction hook that replaces every match of the given regular expressions."""
    import re

    compiled = [re.compile(pattern) for pattern in patterns]

    def redact(text: str) -> str:
        for pattern in compiled:
            text = pattern.sub(replacement, text)
        return text

    return redact
