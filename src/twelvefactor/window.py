"""The context window by section: prompt, memory, retrieval, history and schema (factor 3).

Everything the model reads is one of these sections, each with a token count, so a budget can be kept
and the context inspector can show where the tokens go. Memory comes from a :class:`MemorySource` the
agent is given (its facts enter the thread as a ``memory`` event, so the window is the same on replay);
retrieval is documents found by a pre-fetch hook (``retrieved`` events) or by a search tool
(``context_section = "retrieval"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from twelvefactor.events import Event, MemoryFact, MemoryRecalled
from twelvefactor.tokens import TokenCounter

SECTIONS = ("prompt", "memory", "retrieval", "history", "schema")
"""The sections of a window, in the order the inspector shows them."""


@runtime_checkable
class MemorySource(Protocol):
    """Where an agent's memory comes from: the facts a thread should see (scoped, most useful first)."""

    def recall_for(self, thread: object) -> Sequence[MemoryFact]: ...


def recalled_facts(events: Sequence[Event]) -> tuple[MemoryFact, ...]:
    """The facts of the thread's last ``memory`` event (none before the first)."""
    for event in reversed(events):
        if isinstance(event, MemoryRecalled):
            return event.facts
    return ()


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
