"""A thread's model calls as charts: tokens in and out per call, and each call's latency.

Labels are the calls' event numbers (``#4``), the numbers the timeline shows; latency has one series per
model the calls reported (a thread may change model). A long thread shows its last :data:`MAX_CALLS`
calls (the note says so), so a page stays small.
"""

from __future__ import annotations

from collections.abc import Iterable

from twelvefactor.charts.model import Chart, Series
from twelvefactor.events import Event, ModelCall

MAX_CALLS = 200


def call_charts(events: Iterable[Event], *, limit: int = MAX_CALLS) -> list[Chart]:
    """Tokens (input, output) and latency (ms) per model call; no charts for a thread without calls."""
    calls = [(index, event) for index, event in enumerate(events) if isinstance(event, ModelCall)]
    if not calls:
        return []
    shown = calls[-limit:]
    note = f"the last {len(shown)} of {len(calls)} calls" if len(shown) < len(calls) else ""
    labels = tuple(f"#{index}" for index, _ in shown)

    def tokens(value: int | None) -> float | None:
        return None if value is None else float(value)

    return [
        Chart(
            title="Tokens per model call",
            labels=labels,
            series=(
                Series(name="input", values=tuple(tokens(call.input_tokens) for _, call in shown)),
                Series(name="output", values=tuple(tokens(call.output_tokens) for _, call in shown)),
            ),
            unit="tokens",
            note=note,
        ),
        Chart(
            title="Latency per model call",
            labels=labels,
            series=tuple(
                Series(name=model, values=tuple(call.latency_ms if call.model == model else None for _, call in shown))
                for model in dict.fromkeys(call.model for _, call in shown)
            ),
            kind="line" if len(shown) > 1 else "bar",
            unit="ms",
            note=note,
        ),
    ]
