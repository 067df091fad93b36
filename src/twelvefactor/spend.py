"""What a thread spends on models, and the hard budget that pauses it for a person (factor 8).

Every ``model_call`` records its tokens and cost (and a summarising compaction its own); ``spend(events)``
adds them up. With ``Agent(spend=SpendBudget(usd=..., tokens=...))`` a thread that has spent that much since
a person last spoke (a message or an answer) stops before its next model call and asks a person: the
answer gives it a fresh allowance, like the step budget. A call whose cost is unknown (a model the price
table does not know) counts its tokens, never zero dollars as if free: its cost is reported as unpriced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from twelvefactor.errors import UserError
from twelvefactor.events import Compaction, Event, HumanRequest, HumanResponse, ModelCall, UserMessage

__all__ = ["Spend", "SpendBudget", "allowed_today", "over_budget", "over_daily", "spend", "spend_since_person"]


@dataclass(frozen=True)
class Spend:
    """Tokens and US dollars spent on model calls; ``unpriced`` calls have tokens but no known cost."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    usd: float = 0.0
    unpriced: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            self.calls + other.calls,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            round(self.usd + other.usd, 8),
            self.unpriced + other.unpriced,
        )


def _of(event: Event) -> Spend | None:
    if isinstance(event, ModelCall):
        cost = event.cost_usd
        return Spend(
            1,
            event.input_tokens or 0,
            event.output_tokens or 0,
            event.cached_input_tokens or 0,
            cost or 0.0,
            int(cost is None),
        )
    if isinstance(event, Compaction) and event.model is not None:
        cost = event.cost_usd
        return Spend(1, event.input_tokens or 0, event.output_tokens or 0, 0, cost or 0.0, int(cost is None))
    return None


def spend(events: Iterable[Event]) -> Spend:
    """Everything ``events`` spent on models (agent calls and summarising compactions)."""
    total = Spend()
    for event in events:
        found = _of(event)
        if found is not None:
            total = total + found
    return total


PERSON_SPEAKS = (UserMessage, HumanResponse)
"""A person spoke: a message or an answer (what the step and spend budgets count from)."""


def spend_since_person(events: Sequence[Event]) -> Spend:
    """What was spent since a person last spoke (what a :class:`SpendBudget` counts)."""
    total = Spend()
    for event in reversed(events):
        if isinstance(event, PERSON_SPEAKS):
            break
        found = _of(event)
        if found is not None:
            total = total + found
    return total


DAILY = "the agent's daily budget"


@dataclass(frozen=True)
class SpendBudget:
    """At most ``usd`` dollars and/or ``tokens`` tokens (input + output) of model calls between a person's
    words; over either, the thread pauses for a person instead of calling the model again.

    ``usd_per_day`` caps the agent across all its threads per UTC day: ``spent_today(agent_name)`` says
    what it spent so far today (``twelvefactor.store.usage.spent_today(store)`` reads the store). Over it,
    each thread pauses before its next call; a person's answer lets that thread go on for the day.
    """

    usd: float | None = None
    tokens: int | None = None
    usd_per_day: float | None = None
    spent_today: Callable[[str], Spend] | None = None

    def __post_init__(self) -> None:
        if self.usd is None and self.tokens is None and self.usd_per_day is None:
            raise UserError("SpendBudget needs usd=..., tokens=... or usd_per_day=...")
        limits = (self.usd, self.tokens, self.usd_per_day)
        if any(limit is not None and limit <= 0 for limit in limits):
            raise UserError(
                f"SpendBudget limits must be positive, got usd={self.usd!r}, tokens={self.tokens!r},"
                f" usd_per_day={self.usd_per_day!r}"
            )
        if self.usd_per_day is not None and self.spent_today is None:
            raise UserError(
                "SpendBudget(usd_per_day=...) needs spent_today=... to read what the agent spent today, e.g."
                " twelvefactor.store.usage.spent_today(store)"
            )


def over_daily(budget: SpendBudget, agent: str, today: Spend) -> str | None:
    """Why the agent's spend today is over its daily cap, or None."""
    if budget.usd_per_day is None or today.usd < budget.usd_per_day:
        return None
    return f"agent {agent!r} spent ${today.usd:.4f} today (UTC), at {DAILY} of ${budget.usd_per_day:g}"


def allowed_today(events: Sequence[Event]) -> bool:
    """Whether a person let this thread go on past the daily cap today (answered that question today)."""
    today = datetime.now(UTC).date()
    answered: str | None = None
    for event in reversed(events):
        if answered is None and isinstance(event, HumanResponse):
            if event.at.astimezone(UTC).date() != today:
                return False
            answered = event.request_id
        elif answered is not None and isinstance(event, HumanRequest) and event.call_id == answered:
            return DAILY in event.question
    return False


def over_budget(budget: SpendBudget, spent: Spend) -> str | None:
    """Why ``spent`` is over ``budget`` (a sentence a person can act on), or None."""
    if budget.usd is not None and spent.usd >= budget.usd:
        unpriced = f" (and {spent.unpriced} calls of unknown cost)" if spent.unpriced else ""
        return (
            f"${spent.usd:.4f} spent on {spent.calls} model calls{unpriced}, at this thread's budget of ${budget.usd:g}"
        )
    if budget.tokens is not None and spent.tokens >= budget.tokens:
        return f"{spent.tokens} tokens spent on {spent.calls} model calls, at this thread's budget of {budget.tokens}"
    return None
