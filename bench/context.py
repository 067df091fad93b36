"""What the context window costs as a thread grows, with and without a budget (figures, not a timed test).

For threads of 10, 100, 1,000 and 10,000 events (model call, tool call, tool result per step; results of
~600 characters), it measures the framework's work before a model call (count the window by section,
apply the budget, render the messages) and the tokens the model would get:

- without a budget: the whole thread, every step;
- with ``ContextBudget(4_000, [ShortenToolResults(...), Summarize(...)])``: compaction recorded as
  events (the summariser is an instant function model, so only the framework's cost is measured).

Then retrieval latency on 10,000 documents (SQLite FTS5, BM25) and memory lookup latency, when those
packages are present (``bench/context_retrieval.py``, ``bench/context_memory.py``).

    python bench/context.py [--steps 30]
    python bench/plot.py context        # the same figures as PNG + HTML
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from twelvefactor import Agent, FunctionModel, Thread, tool
from twelvefactor.calls import BLOCKING, drive
from twelvefactor.compaction import ContextBudget, ShortenToolResults, Summarize
from twelvefactor.events import Event, ModelCall, ToolCall, ToolResult, UserMessage
from twelvefactor.thread import reduce

SIZES = (10, 100, 1_000, 10_000)
RESULT = "status: shipped; items: 2 x SKU-4411 at 19.99; note: the customer asked about the delivery date. " * 6


@tool(effect="read_only")
def lookup(order: int) -> str:
    """Look an order up."""
    return RESULT


def _step(index: int) -> tuple[Event, ...]:
    call_id = f"call_{index}"
    return (
        ModelCall(model="bench", raw=f'{{"intent": "lookup", "order": {index}}}', input_tokens=1, output_tokens=1),
        ToolCall(call_id=call_id, intent="lookup", arguments={"order": index}),
        ToolResult(call_id=call_id, intent="lookup", result=f"order {index}: {RESULT}"),
    )


def _thread(events: int) -> Thread:
    built: list[Event] = [UserMessage(content="Check every order and tell me which ones are late.")]
    index = 0
    while len(built) < events:
        built.extend(_step(index))
        index += 1
    return Thread.new(*built[:events])


def _agent(budget: ContextBudget | None) -> Agent:
    return Agent("orders", tools=[lookup], model=FunctionModel(lambda m: "{}", name="bench"), budget=budget)


def _before_call(agent: Agent, thread: Thread) -> tuple[Thread, int]:
    """What ``Agent.decide`` does before the model call: keep the budget (or just count), render."""
    if agent.budget is None:
        window = agent.window(thread)
    else:
        thread, maybe = drive(agent._keep_budget(thread, agent.model, BLOCKING, None))  # noqa: SLF001
        assert maybe is not None, "the budget could not be kept"
        window = maybe
    return thread, window.total


def measure(events: int, budget: ContextBudget | None, steps: int) -> dict[str, float]:
    agent = _agent(budget)
    thread = _thread(events)
    thread, _ = _before_call(agent, thread)  # the first call after loading: compacts what is already over
    times: list[float] = []
    tokens: list[int] = []
    next_index = events
    for _ in range(steps):
        for event in _step(next_index):
            thread = reduce(thread, event)
        next_index += 1
        started = time.perf_counter()
        thread, total = _before_call(agent, thread)
        times.append(time.perf_counter() - started)
        tokens.append(total)
    compactions = sum(1 for event in thread.events if event.type == "compaction")
    return {
        "p50_ms": statistics.median(times) * 1000,
        "p95_ms": sorted(times)[int(len(times) * 0.95) - 1] * 1000,
        "tokens": statistics.median(tokens),
        "compactions": compactions,
    }


def budget() -> ContextBudget:
    """The budget measured: 4,000 tokens, tool results shortened, then older steps summarised."""
    summariser = FunctionModel(lambda messages: "Orders 0 to N were looked up; all shipped.", name="summariser")
    return ContextBudget(
        max_tokens=4_000,
        compaction=[ShortenToolResults(keep_last=5, max_chars=200), Summarize(summariser, keep_last=12)],
    )


def _optional(name: str) -> Any | None:
    path = Path(__file__).with_name(f"{name}.py")
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="steps measured per thread size")
    args = parser.parse_args()
    kept_budget = budget()
    print(f"per step, before the model call ({args.steps} steps after a thread of N events):")
    print(
        f"{'events':>8}  {'no budget: p50 ms':>18} {'tokens':>8}   {'budget 4,000: p50 ms':>21}"
        f" {'tokens':>8} {'compactions':>12}"
    )
    for size in SIZES:
        plain = measure(size, None, args.steps)
        kept = measure(size, kept_budget, args.steps)
        print(
            f"{size:>8,}  {plain['p50_ms']:>18.3f} {plain['tokens']:>8,.0f}   {kept['p50_ms']:>21.3f}"
            f" {kept['tokens']:>8,.0f} {kept['compactions']:>12.0f}"
        )
    retrieval = _optional("context_retrieval")
    if retrieval is not None:
        figures = retrieval.measure(10_000)
        print("retrieval, 10,000 documents: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
    memory = _optional("context_memory")
    if memory is not None:
        figures = memory.measure(10_000)
        print("memory, 10,000 facts: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
