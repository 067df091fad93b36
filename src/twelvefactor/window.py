"""The context window by section: prompt, memory, retrieval, history and schema (factor 3).

Everything the model reads is one of these sections, each with a token count, so a budget can be kept
and the context inspector can show where the tokens go. Memory comes from a :class:`MemorySource` the
agent is given (its facts enter the thread as a ``memory`` event, so the window is the same on replay);
retrieval is documents found by a pre-fetch hook (``retrieved`` events) or by a search tool
(``context_section = "retrieval"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from twelvefactor.context import GrowingFold, Shown
from twelvefactor.events import Event, MemoryFact, MemoryRecalled
from twelvefactor.messages import Message
from twelvefactor.tokens import TokenCounter

SECTIONS = ("prompt", "memory", "retrieval", "history", "schema")
"""The sections of a window, in the order the inspector shows them."""


@runtime_checkable
class MemorySource(Protocol):
    """Where an agent's memory comes from: the facts a thread should see (scoped, most useful first)."""

    def recall_for(self, thread: object) -> Sequence[MemoryFact]: ...


def _recalled(facts: tuple[MemoryFact, ...], event: Event) -> tuple[MemoryFact, ...]:
    return event.facts if isinstance(event, MemoryRecalled) else facts


recalled_facts: GrowingFold[tuple[MemoryFact, ...]] = GrowingFold((), _recalled)
"""The facts of the thread's last ``memory`` event (none before the first)."""


def render_memory(
    facts: Sequence[MemoryFact], *, budget: int | None = None, counter: TokenCounter | None = None
) -> str:
    """The memory section's text: one ``- fact`` line each, in order, stopping before ``budget`` tokens."""
    lines: list[str] = []
    used = 0
    for fact in facts:
        line = "- " + " ".join(fact.text.split())  # one line per fact: a fact cannot forge a line of its own
        if budget is not None and counter is not None:
            cost = counter.count_tokens(line) + 1
            if used + cost > budget:
                break
            used += cost
        lines.append(line)
    return "\n".join(lines)


_COUNTED_LIMIT = 50_000
_counted: dict[tuple[int, str], int] = {}


def count(counter: TokenCounter, text: str) -> int:
    """``counter.count_tokens(text)``, remembered: a block is counted once, not at every step."""
    if not text:
        return 0
    key = (id(counter), text)
    tokens = _counted.get(key)
    if tokens is None:
        if len(_counted) >= _COUNTED_LIMIT:
            _counted.clear()
        tokens = _counted[key] = counter.count_tokens(text)
    return tokens


@dataclass
class Window:
    """One model call's window, by section: its messages, its history blocks and the tokens of each part.

    ``items``/``blocks``/``item_tokens`` are the history's blocks in order (``item_sections`` says which
    section each counts in: history or retrieval); ``sections`` holds the token count of every section
    (``SECTIONS``); ``fixed`` is what no compaction can shrink (prompt, memory, schema).
    """

    events: Sequence[Event]
    messages: list[Message]
    items: list[Shown]
    blocks: list[str]
    item_tokens: list[int]
    item_sections: list[str]
    sections: dict[str, int]
    memory: str
    counter: TokenCounter

    @property
    def total(self) -> int:
        return sum(self.sections.values())

    @property
    def fixed(self) -> int:
        return self.total - sum(self.item_tokens)


def section_of(event: Event, retrieval_intents: frozenset[str]) -> str:
    """Which section a history block counts in: retrieval (documents found, a search tool's call and
    result) or history."""
    if event.type == "retrieved":
        return "retrieval"
    intent = getattr(event, "intent", None)
    if intent is not None and intent in retrieval_intents and event.type in ("tool_call", "tool_result"):
        return "retrieval"
    return "history"
