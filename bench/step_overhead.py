"""Framework cost per agent step, with an instant scripted model (figures, not a timed test).

Workload (the same as bench/peers.py): a run of 10 tool calls, then done_for_now. Measured in memory
and with the SQLite store committing every step. Prints µs per step (p50, p95), total for N runs,
bytes stored per run, peak RSS and the time of `import twelvefactor` (in a fresh interpreter).

    python bench/step_overhead.py [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

STEPS = 10


def import_time_ms(repeats: int = 7) -> float:
    code = "import time; t = time.perf_counter(); import twelvefactor; print(time.perf_counter() - t)"
    samples = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(repeats)]
    return statistics.median(samples) * 1000


def workload() -> list[str]:
    outputs = [json.dumps({"intent": "add", "a": i, "b": i + 1}) for i in range(STEPS)]
    return [*outputs, json.dumps({"intent": "done_for_now", "message": "done"})]


class TimedModel:
    """A scripted model that also notes when each step starts (time between calls = one full step)."""

    name = "bench"

    def __init__(self, outputs: Sequence[str], marks: list[float]) -> None:
        self._outputs = list(outputs)
        self._i = 0
        self._marks = marks

    def complete(self, messages: Sequence[object]) -> object:
        from twelvefactor import ModelResponse

        self._marks.append(time.perf_counter())
        text = self._outputs[self._i]
        self._i += 1
        return ModelResponse(text=text, model="bench")


def measure(runs: int, store: object | None, effect: str = "read_only") -> tuple[list[float], float]:
    from twelvefactor import Agent, run, tool

    # A pure function: read_only, as its author would declare it. With effect="irreversible" (the default
    # of an undeclared tool) each call's start is committed before it runs: one more write per tool call.
    @tool(effect=effect)
    def add(a: int, b: int) -> int:
        """Add b to a."""
        return a + b

    outputs = workload()
    per_step: list[float] = []
    # One agent for all runs, as a server would hold it (its prompt compiles once).
    agent = Agent("bench", tools=[add])
    started = time.perf_counter()
    for _ in range(runs):
        marks: list[float] = []
        agent.model = TimedModel(outputs, marks)  # type: ignore[assignment]
        t0 = time.perf_counter()
        thread = run(agent, agent.new_thread("add numbers"), store=store)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        assert thread.status == "done", thread.status
        bounds = [t0, *marks[1:], t1]
        per_step.extend((b - a) * 1e6 for a, b in zip(bounds, bounds[1:], strict=False))
    return per_step, time.perf_counter() - started


def report(label: str, per_step: list[float], total: float, runs: int) -> None:
    cuts = statistics.quantiles(per_step, n=100)
    print(
        f"{label:<22} p50 {cuts[49]:8.1f} µs/step   p95 {cuts[94]:8.1f} µs/step   "
        f"mean {statistics.fmean(per_step):8.1f} µs/step   total {total * 1000:8.1f} ms for {runs} runs"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    print(f"import twelvefactor:   {import_time_ms():.1f} ms (median of 7 fresh interpreters)")
    from twelvefactor import SQLiteStore

    measure(10, None)  # warm caches (pydantic schemas, jinja template) before timing
    per_step, total = measure(args.runs, None)
    report("in memory", per_step, total, args.runs)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        store = SQLiteStore(path)
        measure(10, store)
        per_step, total = measure(args.runs, store)
        report("sqlite, commit/step", per_step, total, args.runs)
        rows = store.list(limit=1)
        stored = store.bytes_for(rows[0].id)
        store.close()
        size = sum(os.path.getsize(p) for p in Path(tmp).iterdir())
        per_run_file = size / (args.runs + 10) / 1024
        print(f"stored per run:        {stored} bytes of event rows ({per_run_file:.1f} KiB of file per run)")
        store = SQLiteStore(Path(tmp) / "irreversible.db")
        measure(10, store, "irreversible")
        per_step, total = measure(args.runs, store, "irreversible")
        report("sqlite, irreversible", per_step, total, args.runs)
        store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS:              {peak:.1f} MB")


if __name__ == "__main__":
    main()
