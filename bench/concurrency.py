"""A thousand threads in flight in one process: each waits on a 1 s model call (figures, not a timed test).

Workload: N threads (default 1000) x 5 steps. A step is one model call that sleeps ``--model-s`` (1 s)
without blocking the event loop, then the tool it asked for (``add``, a synchronous read_only tool: it
runs in the bounded tool pool); the fifth call answers done_for_now. Everything on the embedded
default: a SQLite store (WAL, synchronous=NORMAL), committed after every model reply and tool result.

Two ways in, one process each:

  worker   the service's in-process worker (what ``twelvefactor serve`` runs): the threads are
           created in the store, submitted, and the worker advances them (leases, heartbeats)
  arun     ``await arun(agent, thread, store=store)`` for every thread, gathered (a library user)

Figures: wall time from the first submit to the last thread done (ideal = 5 x model_s), the
framework's own time per step (from a model reply to the next model call of the same thread: parse,
commit, tool, commit, render; p50 / p99 over all steps), and peak RSS (with the RSS after imports, before
the run, beside it).

    python bench/concurrency.py [--threads 1000] [--model-s 1.0] [--mode worker|arun|both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STEPS = 5


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class SleepyModel:
    """Answers each thread's next step after ``delay`` seconds, awaiting (an async provider's shape)."""

    name = "sleepy"
    streams = False

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.started: dict[str, list[float]] = defaultdict(list)
        self.ended: dict[str, list[float]] = defaultdict(list)

    def complete(self, messages: Sequence[Any]) -> Any:
        raise RuntimeError("the bench measures the async face")

    async def acomplete(self, messages: Sequence[Any], **options: Any) -> Any:
        from twelvefactor import ModelResponse

        tag = messages[-1].content.rsplit("(thread ", 1)[1].rstrip(")")
        starts = self.started[tag]
        starts.append(time.perf_counter())
        await asyncio.sleep(self.delay)
        if len(starts) >= STEPS:
            text = json.dumps({"intent": "done_for_now", "message": f"{tag} done"})
        else:
            text = json.dumps({"intent": "add", "a": len(starts), "b": 1})
        self.ended[tag].append(time.perf_counter())
        return ModelResponse(text=text, model="sleepy")


def overheads(model: SleepyModel) -> list[float]:
    """Per step: from a model reply to the same thread's next model call (ms)."""
    out: list[float] = []
    for tag, starts in model.started.items():
        ends = model.ended[tag]
        out.extend((start - end) * 1000 for end, start in zip(ends, starts[1:], strict=False))
    return out


def build(delay: float) -> tuple[Any, SleepyModel]:
    from twelvefactor import Agent, tool
    from twelvefactor.prompts import DEFAULT_TEMPLATE, Prompt

    @tool(effect="read_only")
    def add(a: int, b: int) -> int:
        """Add b to a."""
        return a + b

    model = SleepyModel(delay)
    # The thread's tag rides in the prompt's last message, so the model knows which run it serves.
    prompt = Prompt(DEFAULT_TEMPLATE + "\n(thread {{ thread.id }})", name="bench.prompt")
    return Agent("bench", tools=[add], model=model, prompt=prompt), model


async def via_arun(threads: int, delay: float, db: Path) -> dict[str, Any]:
    from twelvefactor import SQLiteStore, arun

    agent, model = build(delay)
    store = SQLiteStore(db)
    before = current_rss_mb()
    cpu = time.process_time()
    started = time.perf_counter()
    results = await asyncio.gather(*(arun(agent, agent.new_thread(f"run {i}"), store=store) for i in range(threads)))
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    assert all(t.status == "done" for t in results), {t.status for t in results}
    assert all(len(model.started[t.id]) == STEPS for t in results)
    store.close()
    return {"wall_s": wall, "cpu_s": cpu, "overheads_ms": overheads(model), "rss_before_mb": before}


async def via_worker(threads: int, delay: float, db: Path) -> dict[str, Any]:
    from twelvefactor import SQLiteStore, Thread, UserMessage
    from twelvefactor.workers.inprocess import Worker

    agent, model = build(delay)
    store = SQLiteStore(db)
    ids = [f"w{i}" for i in range(threads)]
    for thread_id in ids:
        store.create(Thread.new(UserMessage(content="add"), agent="bench", id=thread_id))
    worker = Worker(store, {"bench": agent}, concurrency=threads)
    before = current_rss_mb()
    await worker.start(recover=False)
    cpu = time.process_time()
    started = time.perf_counter()
    for thread_id in ids:
        worker.submit(thread_id)
    await worker.idle()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    await worker.stop()
    statuses = {store.load(i).status for i in ids}
    assert statuses == {"done"}, statuses
    store.close()
    return {"wall_s": wall, "cpu_s": cpu, "overheads_ms": overheads(model), "rss_before_mb": before}


def one(mode: str, threads: int, delay: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        runner = via_worker if mode == "worker" else via_arun
        out = asyncio.run(runner(threads, delay, Path(tmp) / "bench.db"))
    out["peak_rss_mb"] = rss_mb()
    return out


def report(mode: str, threads: int, delay: float, out: dict[str, Any]) -> None:
    ideal = STEPS * delay
    cuts = statistics.quantiles(out["overheads_ms"], n=100)
    print(
        f"{mode:<7} {threads} threads x {STEPS} steps, model {delay:g} s/call: wall {out['wall_s']:.2f} s"
        f" (ideal {ideal:.1f} s, +{(out['wall_s'] / ideal - 1) * 100:.0f}%)\n"
        f"        framework per step: p50 {cuts[49]:.2f} ms, p99 {cuts[98]:.2f} ms"
        f" (n={len(out['overheads_ms'])}; queueing behind the other threads' steps included)\n"
        f"        CPU time {out['cpu_s']:.2f} s in all: {out['cpu_s'] / (threads * STEPS) * 1000:.2f} ms per step\n"
        f"        RSS after imports {out['rss_before_mb']:.0f} MB, peak {out['peak_rss_mb']:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--model-s", type=float, default=1.0)
    parser.add_argument("--mode", choices=("worker", "arun", "both"), default="both")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child process: print JSON
    args = parser.parse_args()
    if args.one:
        out = one(args.mode, args.threads, args.model_s)
        print(json.dumps(out))
        return
    modes = ("worker", "arun") if args.mode == "both" else (args.mode,)
    for mode in modes:
        # Each mode in a fresh interpreter: peak RSS is the process's own.
        cmd = [sys.executable, __file__, "--one", "--mode", mode, "--threads", str(args.threads)]
        cmd += ["--model-s", str(args.model_s)]
        out = json.loads(subprocess.check_output(cmd, text=True).strip().splitlines()[-1])
        report(mode, args.threads, args.model_s, out)


if __name__ == "__main__":
    main()
