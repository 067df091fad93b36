"""Bytes stored per model call over a 20-step thread (figures, not a timed test).

Workload: a calculator agent makes 19 tool calls, then finishes (20 model calls). Measured twice:
with an OpenAI-compatible provider (a real ``OpenAIModel`` whose exchange answers in-process, so each
ModelCall keeps the exact request body, as in production) and with a scripted test double (no body).
Prints the mean bytes of a ModelCall row (its JSON, as the SQLite store keeps it) and the whole
thread's bytes (``SQLiteStore.bytes_for``).

    python bench/context_bytes.py
"""

from __future__ import annotations

import json
import statistics
from typing import Any

STEPS = 20


def outputs() -> list[str]:
    steps = [json.dumps({"intent": "add", "a": i, "b": i + 1}) for i in range(STEPS - 1)]
    return [*steps, json.dumps({"intent": "done_for_now", "message": "done"})]


class Replies:
    """An exchange that answers each chat completion with the next scripted step."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = iter(texts)

    def __call__(self, request: Any) -> Any:
        from twelvefactor.models._http import WireResponse

        text = next(self.texts)
        body = {
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10},
        }
        return WireResponse(status=200, headers={}, body=body, text=json.dumps(body))


def measure(model: Any) -> tuple[float, int, int]:
    from twelvefactor import Agent, SQLiteStore, run, tool
    from twelvefactor.store.sqlite import dump_event

    @tool
    def add(a: float, b: float) -> float:
        """Add b to a."""
        return a + b

    agent = Agent("calc", tools=[add], model=model, max_steps=STEPS + 1)
    store = SQLiteStore(":memory:")
    thread = run(agent, agent.new_thread("add up the numbers, one step at a time"), store=store)
    calls = [dump_event(e) for e in thread.events if e.type == "model_call"]
    assert len(calls) == STEPS, len(calls)
    sizes = [len(row.encode()) for row in calls]
    return statistics.fmean(sizes), max(sizes), store.bytes_for(thread.id)


def main() -> None:
    from twelvefactor import ScriptedModel
    from twelvefactor.models.openai import OpenAIModel

    provider = OpenAIModel("gpt-4o-mini", api_key="none", exchange=Replies(outputs()))
    for label, model in (("openai provider", provider), ("scripted double", ScriptedModel(outputs()))):
        mean, largest, total = measure(model)
        print(
            f"{label:16} {STEPS} model calls: mean {mean:8.0f} bytes per ModelCall row (largest {largest}),"
            f" thread {total} bytes"
        )


if __name__ == "__main__":
    main()
