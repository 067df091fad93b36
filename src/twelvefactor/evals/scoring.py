"""Scoring a finished thread against a case's expectations: one :class:`Check` per expectation.

A check passes or fails with a reason a person can act on, and carries a score in 0..1 (1 or 0 for the
built-in checks; a custom scorer's own value). A case's score is the mean of its checks' scores; it passes
when every check passes.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from twelvefactor._loader import load_module_file
from twelvefactor.errors import DatasetError, UnknownAgentError
from twelvefactor.evals.dataset import Case, Expect, MessageCheck, ScorerRef, ToolExpectation
from twelvefactor.events import Done, ModelCall, ToolCall
from twelvefactor.thread import Thread

Scorer = Callable[[Thread, Case], Any]


class Score(BaseModel):
    """What a custom scorer may return: a value in 0..1 and why."""

    model_config = ConfigDict(frozen=True)

    value: float = Field(ge=0.0, le=1.0)
    reason: str = ""


class Check(BaseModel):
    """One expectation, scored: its name (``status``, ``tool_call add``, ``scorer mod:fn``...), whether it
    passed, its score and why."""

    model_config = ConfigDict(frozen=True)

    name: str
    passed: bool
    score: float
    reason: str = ""


class Usage(BaseModel):
    """What a thread's model calls cost: steps (model calls), tokens, dollars (None when a call is unpriced)
    and the time spent in the model."""

    model_config = ConfigDict(frozen=True)

    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    model_latency_ms: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def usage_of(thread: Thread) -> Usage:
    calls = [event for event in thread.events if isinstance(event, ModelCall)]
    costs = [call.cost_usd for call in calls if call.cost_usd is not None]
    return Usage(
        steps=len(calls),
        input_tokens=sum(call.input_tokens or 0 for call in calls),
        output_tokens=sum(call.output_tokens or 0 for call in calls),
        cost_usd=sum(costs) if calls and len(costs) == len(calls) else None,
        model_latency_ms=round(sum(call.latency_ms for call in calls), 3),
    )


def score_thread(thread: Thread, case: Case) -> list[Check]:
    """Every check ``case.expect`` asks for, on ``thread``."""
    expect = case.expect
    checks: list[Check] = []
    if expect.status is not None:
        ok = thread.status == expect.status
        checks.append(_check("status", ok, f"status is {thread.status}, expected {expect.status}"))
    checks.extend(_tool_call_checks(thread, expect))
    called = {event.intent for event in thread.events if isinstance(event, ToolCall)}
    for intent in expect.forbidden_intents:
        checks.append(_check(f"never {intent}", intent not in called, f"{intent} was called"))
    if expect.final_message is not None:
        checks.append(_message_check(thread, expect.final_message))
    checks.extend(_budget_checks(usage_of(thread), expect))
    for ref in expect.scorers:
        checks.append(_custom(ref, thread, case))
    return checks


def _check(name: str, passed: bool, failure: str, success: str = "") -> Check:
    return Check(name=name, passed=passed, score=1.0 if passed else 0.0, reason=success if passed else failure)


def _tool_call_checks(thread: Thread, expect: Expect) -> list[Check]:
    calls = [event for event in thread.events if isinstance(event, ToolCall)]
    used: set[int] = set()
    after = 0  # in order: the next expectation is looked for after the previous match
    checks = []
    for wanted in expect.tool_calls:
        start = after if expect.tool_calls_in_order else 0
        found = next(
            (k for k in range(start, len(calls)) if k not in used and _call_fits(calls[k], wanted)),
            None,
        )
        name = f"tool_call {wanted.intent}"
        if found is None:
            checks.append(_check(name, False, _missing_call(calls, wanted, expect.tool_calls_in_order)))
            continue
        used.add(found)
        after = found + 1
        checks.append(_check(name, True, "", f"call #{found + 1}"))
    return checks


def _call_fits(call: ToolCall, wanted: ToolExpectation) -> bool:
    return call.intent == wanted.intent and _subset(wanted.arguments, call.arguments)


def _subset(wanted: JsonValue, got: JsonValue) -> bool:
    """``wanted`` is found in ``got``: objects by their given keys (recursively), everything else equal."""
    if isinstance(wanted, Mapping):
        return isinstance(got, Mapping) and all(
            key in got and _subset(value, got[key]) for key, value in wanted.items()
        )
    if isinstance(wanted, bool) or isinstance(got, bool):  # JSON true is not 1
        return type(wanted) is type(got) and wanted == got
    return wanted == got


def _missing_call(calls: list[ToolCall], wanted: ToolExpectation, in_order: bool) -> str:
    same = [call for call in calls if call.intent == wanted.intent]
    order = " (in order)" if in_order else ""
    if not same:
        made = ", ".join(call.intent for call in calls) or "none"
        return f"no call to {wanted.intent}{order}; calls made: {made}"
    shown = "; ".join(_args(call.arguments) for call in same[:3])
    return f"no call to {wanted.intent} with {_args(wanted.arguments)}{order}; its calls had {shown}"


def _args(arguments: Mapping[str, JsonValue]) -> str:
    import json

    return json.dumps(arguments, ensure_ascii=False, sort_keys=True)


def _final_message(thread: Thread) -> str | None:
    return next((event.message for event in reversed(thread.events) if isinstance(event, Done)), None)


def _message_check(thread: Thread, check: MessageCheck) -> Check:
    message = _final_message(thread)
    if message is None:
        return _check("final message", False, f"the thread has no final message (it is {thread.status})")

    def fold(text: str) -> str:
        return text.casefold() if check.ignore_case else text

    problems = []
    if check.equals is not None and fold(message) != fold(check.equals):
        problems.append(f"is not {check.equals!r}")
    problems.extend(f"lacks {part!r}" for part in check.contains if fold(part) not in fold(message))
    problems.extend(f"has {part!r}" for part in check.not_contains if fold(part) in fold(message))
    if check.regex is not None and re.search(check.regex, message, re.IGNORECASE if check.ignore_case else 0) is None:
        problems.append(f"does not match /{check.regex}/")
    shown = message if len(message) <= 200 else message[:199] + "…"
    return _check("final message", not problems, f"final message {shown!r} {', '.join(problems)}")


def _budget_checks(usage: Usage, expect: Expect) -> list[Check]:
    checks = []
    if expect.max_steps is not None:
        ok = usage.steps <= expect.max_steps
        checks.append(_check("max steps", ok, f"{usage.steps} model steps, over {expect.max_steps}"))
    if expect.max_tokens is not None:
        ok = usage.tokens <= expect.max_tokens
        checks.append(_check("max tokens", ok, f"{usage.tokens} tokens, over {expect.max_tokens}"))
    if expect.max_cost_usd is not None:
        if usage.cost_usd is None:
            failure = "cost unknown: a model call has no price (set one with TWELVEFACTOR_PRICES)"
            checks.append(_check("max cost", False, failure) if usage.steps else _check("max cost", True, ""))
        else:
            ok = usage.cost_usd <= expect.max_cost_usd
            failure = f"${usage.cost_usd:.6f}, over ${expect.max_cost_usd:.6f}"
            checks.append(_check("max cost", ok, failure))
    return checks


def _custom(ref: ScorerRef, thread: Thread, case: Case) -> Check:
    name = f"scorer {ref.scorer}"
    try:
        scorer = load_scorer(ref.scorer)
        value, reason = _as_score(scorer(thread, case))
    except DatasetError as exc:
        return Check(name=name, passed=False, score=0.0, reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - the user's scorer failed: a failed check, not a crashed run
        return Check(name=name, passed=False, score=0.0, reason=f"the scorer raised {type(exc).__name__}: {exc}")
    passed = value >= ref.min
    if not reason and not passed:
        reason = f"score {value:.2f}, under {ref.min:.2f}"
    return Check(name=name, passed=passed, score=value, reason=reason)


def _as_score(result: Any) -> tuple[float, str]:
    """A scorer's return value as (value in 0..1, reason)."""
    reason = ""
    if isinstance(result, Score):
        return result.value, result.reason
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str):
        result, reason = result
    if isinstance(result, bool):
        return (1.0 if result else 0.0), reason
    if isinstance(result, int | float) and 0.0 <= float(result) <= 1.0:
        return float(result), reason
    raise DatasetError(f"a scorer returns a bool, a score in 0..1, a Score or (score, reason); got {result!r}")


_SCORERS: dict[str, Scorer] = {}


def load_scorer(ref: str) -> Scorer:
    """The function ``module:function`` or ``path/file.py:function`` names (DatasetError if it does not)."""
    cached = _SCORERS.get(ref)
    if cached is not None:
        return cached
    target, _, name = ref.rpartition(":")
    try:
        if target.endswith(".py"):
            module: Any = load_module_file(Path(target), what="scorer file")
        else:
            module = importlib.import_module(target)
    except UnknownAgentError as exc:
        raise DatasetError(f"scorer {ref!r}: {exc}") from exc
    except ImportError as exc:
        raise DatasetError(f"scorer {ref!r}: cannot import {target!r}: {exc}") from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise DatasetError(f"scorer {ref!r}: {target!r} has no function {name!r}")
    _SCORERS[ref] = function
    return function  # type: ignore[no-any-return]
