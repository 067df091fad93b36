"""What an eval run costs beyond the model: cases per second with an instant model, and with a model that
takes 50 ms (so concurrency shows), plus replay per decision (figures, not a timed test).

Workload: each case is a lookup, its result, then done_for_now (2 model calls), scored on status, one tool call
and the final message.

    python bench/eval_overhead.py [--cases 400]
    python bench/plot.py eval-overhead      # the same figures as PNG + HTML
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections.abc import Sequence
from typing import Any

from twelvefactor import Agent, FunctionModel, Message, run, tool
from twelvefactor.evals import dataset_from, replay_decisions, run_eval


@tool(effect="read_only")
def lookup(sku: str) -> int:
    """Stock of a product."""
    return 3


def step(messages: Sequence[Message]) -> dict[str, Any]:
    if "<tool_result>" in messages[-1].content:
        return {"intent": "done_for_now", "message": "3 in stock"}
    sku = re.search(r"SKU-\d+", messages[-1].content)
    return {"intent": "lookup", "sku": sku[0] if sku else "?"}


async def slow_step(messages: Sequence[Message]) -> dict[str, Any]:
    await asyncio.sleep(0.05)
    return step(messages)


def dataset(n: int) -> Any:
    expect = {"status": "done", "tool_calls": [{"intent": "lookup"}], "final_message": {"contains": "stock"}}
    return dataset_from([{"id": f"c{k}", "input": f"stock of SKU-{k}?", "expect": expect} for k in range(n)])


def measure(cases: int) -> list[tuple[str, int, int, float]]:
    """(model, concurrency, cases, seconds) for each configuration."""
    fast = Agent("stock", tools=[lookup], model=FunctionModel(step))
    slow = Agent("stock", tools=[lookup], model=FunctionModel(slow_step))
    figures = []
    for label, agent, n, concurrency in (
        ("instant model", fast, cases, 1),
        ("instant model", fast, cases, 8),
        ("50 ms model", slow, 40, 1),
        ("50 ms model", slow, 40, 8),
        ("50 ms model", slow, 40, 40),
    ):
        started = time.perf_counter()
        result = run_eval(agent, dataset(n), concurrency=concurrency)
        seconds = time.perf_counter() - started
        assert result.summary.passed == n
        figures.append((label, concurrency, n, seconds))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=400)
    args = parser.parse_args()
    for label, concurrency, n, seconds in measure(args.cases):
        print(f"{label:14} concurrency {concurrency:3}: {n} cases in {seconds:6.2f} s, {n / seconds:7.1f} cases/s,"
              f" {seconds / n * 1000:6.2f} ms per case")  # fmt: skip
    fast = Agent("stock", tools=[lookup], model=FunctionModel(step))
    thread = run(fast, fast.new_thread("stock of SKU-1?"))
    rounds = 200
    started = time.perf_counter()
    for _ in range(rounds):
        report = replay_decisions(fast, thread)
    seconds = time.perf_counter() - started
    per = seconds / (rounds * len(report.decisions)) * 1e6
    print(f"replay: {len(report.decisions)} decisions x {rounds} rounds, {per:.0f} µs per decision")


if __name__ == "__main__":
    main()
