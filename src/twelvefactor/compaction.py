"""Context budgets and compaction policies, as data (factor 3).

An agent with a :class:`ContextBudget` counts its window before every model call. Over ``max_tokens``,
it runs the budget's policies in order until the window is back under ``target`` (a share of the
budget, so it does not compact again at the next step); each policy that changes something is
recorded as a :class:`~twelvefactor.events.Compaction` event (which events were replaced by what), so
the UI shows it and every replay renders the same window. Still over after every policy: the agent
records a ``budget`` error and asks a person, instead of sending a window the model cannot take.

Policies never split a tool call from its result, never touch the thread's opening (the task and
what was pre-fetched for it) and never touch the last ``keep_last`` blocks, where the pending request
and the latest results are. Ship your own: any object with a ``name`` and an ``async compact(view,
target, calls)`` that returns a Compaction (or None) is a policy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from twelvefactor.context import event_body
from twelvefactor.errors import ModelError, UserError
from twelvefactor.events import Compaction, ModelCall, Replacement, ToolCall, ToolResult
from twelvefactor.messages import Message
from twelvefactor.window import Window, count

if TYPE_CHECKING:
    from twelvefactor.calls import Calls

__all__ = [
    "CompactionPolicy",
    "ContextBudget",
    "DropOldEvents",
    "ShortenToolResults",
    "Summarize",
]


class CompactionPolicy(Protocol):
    """What a compaction policy is: a name, and a way to shrink a window toward ``target`` tokens."""

    name: str

    async def compact(self, view: Window, target: int, calls: Calls) -> Compaction | None: ...


@dataclass(frozen=True)
class ContextBudget:
    """At most ``max_tokens`` in a model call's window (prompt, memory, retrieval, history and schema).

    Over it, ``compaction`` policies run in order until the window is under ``target`` × ``max_tokens``.
    """

    max_tokens: int
    compaction: Sequence[CompactionPolicy] = ()
    target: float = 0.75

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise UserError(f"ContextBudget.max_tokens must be at least 1, got {self.max_tokens!r}")
        if not 0 < self.target <= 1:
            raise UserError(f"ContextBudget.target is a share of max_tokens in (0, 1], got {self.target!r}")

    @property
    def target_tokens(self) -> int:
        return int(self.max_tokens * self.target)


def _opening(view: Window) -> int:
    """How many blocks open the thread before its first model call (the task, pre-fetched documents)."""
    first_call = next((i for i, event in enumerate(view.events) if isinstance(event, ModelCall)), None)
    if first_call is None:
        return len(view.items)
    return sum(1 for item in view.items if item.last < first_call)


def _movable_end(view: Window, keep_last: int) -> int:
    """Blocks before this position may be compacted: the last ``keep_last`` are kept as they are."""
    return max(0, len(view.items) - keep_last)


def _whole_pairs(view: Window, start: int, end: int) -> int:
    """The largest ``cut <= end`` such that blocks ``start..cut-1`` hold every result of the calls in them."""
    open_calls: set[str] = set()
    best = start
    for position in range(start, end):
        event = view.items[position].event  # a shortened result is still its result
        if isinstance(event, ToolCall):
            open_calls.add(event.call_id)
        elif isinstance(event, ToolResult):
            open_calls.discard(event.call_id)
        if not open_calls:
            best = position + 1
    return best


@dataclass(frozen=True)
class ShortenToolResults:
    """Tool results older than the last ``keep_last`` are cut to ``max_chars``, with a pointer to the
    event that holds them in full. Oldest first, only as many as the target needs."""

    keep_last: int = 5
    max_chars: int = 400
    name: str = "shorten_tool_results"

    async def compact(self, view: Window, target: int, calls: Calls) -> Compaction | None:
        results = [i for i, item in enumerate(view.items) if isinstance(item.event, ToolResult)]
        movable = results[: max(0, len(results) - self.keep_last)]
        over = view.total - target
        replacements: list[Replacement] = []
        for position in movable:
            if over <= 0:
                break
            item = view.items[position]
            if item.replacement is not None:
                continue  # already shortened (or summarised): its pointer stays
            body = event_body(item.event)
            if len(body) <= self.max_chars:
                continue
            text = (
                f"{body[: self.max_chars]}\n[{len(body) - self.max_chars} more characters not shown;"
                f" the full result is event {item.index} of this thread]"
            )
            replacements.append(Replacement(first=item.index, last=item.index, text=text))
            over -= view.item_tokens[position] - count(view.counter, text)
        if not replacements:
            return None
        return Compaction(policy=self.name, replacements=tuple(replacements), tokens_before=0, tokens_after=0)


@dataclass(frozen=True)
class DropOldEvents:
    """The oldest blocks after the thread's opening, up to the last ``keep_last``, are replaced by one
    line saying which events are not shown: the blunt policy, for when nothing else was enough."""

    keep_last: int = 20
    name: str = "drop_old_events"

    async def compact(self, view: Window, target: int, calls: Calls) -> Compaction | None:
        start = _opening(view)
        end = _whole_pairs(view, start, _movable_end(view, self.keep_last))
        over = view.total - target
        cut = start
        while cut < end and over > 0:
            over -= view.item_tokens[cut]
            cut += 1
        cut = _whole_pairs(view, start, cut) if cut < end else end
        if cut <= start:
            return None
        first, last = view.items[start].index, view.items[cut - 1].last
        text = f"[events {first}-{last} are not shown: dropped to keep the context budget]"
        return Compaction(
            policy=self.name,
            replacements=(Replacement(first=first, last=last, text=text),),
            tokens_before=0,
            tokens_after=0,
        )


SUMMARY_INSTRUCTIONS = """\
Summarise the part of an agent's work history below for the agent itself, which will read your summary \
instead of these events. Keep every fact it may still need: names, ids, numbers, dates, decisions taken, \
what each tool returned that matters, what a person said, and what is still open. Leave out pleasantries \
and repetition. Write plain sentences, at most {max_words} words, and nothing else."""


@dataclass(frozen=True)
class Summarize:
    """The history between the thread's opening and the last ``keep_last`` blocks is replaced by a
    summary that ``model`` writes (any Model; a small, cheap one is the usual choice). An earlier
    summary in that span is summarised again with what followed it."""

    model: object
    keep_last: int = 10
    max_words: int = 200
    instructions: str = SUMMARY_INSTRUCTIONS
    name: str = "summarize"

    async def compact(self, view: Window, target: int, calls: Calls) -> Compaction | None:
        start = _opening(view)
        cut = _whole_pairs(view, start, _movable_end(view, self.keep_last))
        if cut - start < 2:
            return None  # nothing, or one block: a summary would not be shorter
        history = "\n\n".join(view.blocks[start:cut])
        messages = [
            Message(role="system", content=self.instructions.format(max_words=self.max_words)),
            Message(role="user", content=history),
        ]
        started = time.perf_counter()
        try:
            response = await calls.complete(self.model, messages, {})
        except ModelError:
            return None  # the next policy (or the budget error) takes over; the thread loses nothing
        summary = " ".join(response.text.split())[: self.max_words * 12]
        if not summary:
            return None
        first, last = view.items[start].index, view.items[cut - 1].last
        return Compaction(
            policy=self.name,
            replacements=(Replacement(first=first, last=last, text=summary),),
            tokens_before=0,
            tokens_after=0,
            model=response.model,
            input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
            cost_usd=response.cost_usd,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )
