"""Memory on SQLite with many facts: what a run's recall (``recall_for``) and the model's ``recall`` cost.

Workload: ``n_facts`` facts in a SQLiteStore's file (one write each, through ``Memory.remember``): 10% global,
10% for the agent, 80% spread over 100 users; each fact is 8 words drawn from 500. A thread of one user reads
its user's, the agent's and the global scope (at most 50 facts, the default). ``recall`` searches those scopes
for 3 words. Prints the milliseconds per call (p50, p99) and per write.

    python bench/context_memory.py [--facts 10000] [--calls 300]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

USERS = 100
WORDS = [f"w{n:03d}" for n in range(500)]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _timed(fn: Callable[[], object], calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def measure(n_facts: int = 10_000, calls: int = 300) -> dict[str, float]:
    """p50/p99 ms of ``recall_for`` and of ``recall(query)`` on SQLite holding ``n_facts`` facts."""
    from twelvefactor import Thread, UserMessage
    from twelvefactor.memory import Memory, memory_scope
    from twelvefactor.store import SQLiteStore, memory_backend_for

    rng = random.Random(12)
    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "bench.db") as store:
        memory = Memory(memory_backend_for(store))
        started = time.perf_counter()
        for n in range(n_facts):
            roll = n % 10
            scope = "global" if roll == 0 else "agent:bench" if roll == 1 else f"user:u{rng.randrange(USERS)}"
            memory.remember(" ".join(rng.choices(WORDS, k=8)) + f" #{n}", scope=scope)
        write_ms = (time.perf_counter() - started) * 1000 / max(n_facts, 1)
        thread = Thread.new(UserMessage(content="hi"), memory_scope("user:u7"), agent="bench")
        scopes = memory.scopes_for(thread)
        recall_for = _timed(lambda: memory.recall_for(thread), calls)
        queries = [" ".join(rng.choices(WORDS, k=3)) for _ in range(calls)]
        found: list[int] = []
        recall = _timed(lambda: found.append(len(memory.recall(queries[len(found)], scopes=scopes))), calls)
        recalled = len(memory.recall_for(thread))
    recall_for_p50, recall_for_p99 = _percentiles(recall_for)
    recall_p50, recall_p99 = _percentiles(recall)
    return {
        "facts": float(n_facts),
        "recall_for_p50_ms": recall_for_p50,
        "recall_for_p99_ms": recall_for_p99,
        "recall_for_facts": float(recalled),
        "recall_p50_ms": recall_p50,
        "recall_p99_ms": recall_p99,
        "recall_mean_hits": statistics.fmean(found) if found else 0.0,
        "write_ms_per_fact": write_ms,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--facts", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    figures = measure(args.facts, args.calls)
    print(f"memory on SQLite, {args.facts} facts, {args.calls} calls each (python {sys.version.split()[0]})")
    for name, value in figures.items():
        print(f"  {name:22} {value:10.3f}")


if __name__ == "__main__":
    main()
