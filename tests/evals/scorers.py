"""Custom scorers the scoring tests name as ``tests.evals.scorers:NAME`` (each a form a scorer may return)."""

from __future__ import annotations

from twelvefactor import Done, Thread
from twelvefactor.evals import Case, Score


def _message(thread: Thread) -> str:
    return next((e.message for e in reversed(thread.events) if isinstance(e, Done)), "")


def polite(thread: Thread, case: Case) -> bool:
    return "please" in _message(thread).lower() or "thank" in _message(thread).lower()


def brevity(thread: Thread, case: Case) -> float:
    return max(0.0, 1.0 - len(_message(thread)) / 100)


def with_reason(thread: Thread, case: Case) -> tuple[float, str]:
    return 0.25, f"case {case.id} says little"


def as_score(thread: Thread, case: Case) -> Score:
    return Score(value=0.9, reason="close enough")


def broken(thread: Thread, case: Case) -> bool:
    raise RuntimeError("the scorer's own bug")


def out_of_range(thread: Thread, case: Case) -> float:
    return 3.0
