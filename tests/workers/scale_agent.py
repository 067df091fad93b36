"""An agent for worker processes at scale (tests/workers/test_scale_failures.py, bench/scale.py).

Each thread makes ``SCALE_AGENT_STEPS`` calls of a fast tool (``step(n)``, n = 0, 1, ...) and then says it is
done. The model is async and sleeps ``SCALE_AGENT_MODEL_S`` seconds before answering; it answers by the
number of tool results already in the thread, so any worker process can continue any thread. Every model
call appends one line to ``SCALE_AGENT_LOG`` (the process, the thread's tag, the call's number, when it
started): which process advanced which thread, and when.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence

from twelvefactor import Agent, Message, ModelResponse, tool

LOG = os.environ.get("SCALE_AGENT_LOG", "scale_agent.log")
MODEL_S = float(os.environ.get("SCALE_AGENT_MODEL_S", "0"))
STEPS = int(os.environ.get("SCALE_AGENT_STEPS", "5"))


@tool(effect="idempotent")  # a worker killed inside it: the next one runs it again with the same key
def step(n: int, tag: str) -> int:
    """Do one quick piece of work."""
    return n


def answer(tag: str, done: int) -> str:
    if done < STEPS:
        return json.dumps({"intent": "step", "n": done, "tag": tag})
    return json.dumps({"intent": "done_for_now", "message": "stepped"})


class ReplayingModel:
    """Answers by the number of tool results in the context; logs each call's start."""

    name = "scale-script"

    def complete(self, messages: Sequence[Message]) -> ModelResponse:
        raise AssertionError("workers await acomplete")

    async def acomplete(self, messages: Sequence[Message], **options: object) -> ModelResponse:
        started = time.time()
        context = messages[-1].content
        tag = context.split("<user_message>\n", 1)[1].split("\n", 1)[0]
        done = context.count("<tool_result>")
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps({"pid": os.getpid(), "tag": tag, "n": done, "t": started}) + "\n")
        if MODEL_S:
            await asyncio.sleep(MODEL_S)
        return ModelResponse(text=answer(tag, done), model=self.name)


agent = Agent("scale", tools=[step], model=ReplayingModel())


# --- reading a run back: what the tests and bench/scale.py check and measure ---


def problems(events: Sequence[object], steps: int = STEPS) -> list[str]:
    """What is wrong with a finished thread's events: steps lost, run twice or out of order (empty: none)."""
    from twelvefactor import Done, ToolCall, ToolResult

    calls = [e for e in events if isinstance(e, ToolCall)]
    results = [e for e in events if isinstance(e, ToolResult)]
    found: list[str] = []
    if [c.arguments.get("n") for c in calls] != list(range(steps)):
        found.append(f"calls n={[c.arguments.get('n') for c in calls]}")
    if len({c.call_id for c in calls}) != len(calls):
        found.append("a call id twice")
    if [r.call_id for r in results] != [c.call_id for c in calls]:
        found.append(f"{len(results)} results for {len(calls)} calls, or out of order")
    if [r.result for r in results] != list(range(steps)):
        found.append(f"results {[r.result for r in results]}")
    if not events or not isinstance(events[-1], Done):
        found.append("not done")
    return found


def read_log(path: str) -> list[dict[str, float]]:
    with open(path, encoding="utf-8") as log:
        return [json.loads(line) for line in log]


def recovery(runs: Sequence[dict[str, float]], victim: int, killed_at: float) -> tuple[list[float], list[float]]:
    """For each thread the killed process was on (its last model call before the kill was the victim's, and
    the thread went on after): seconds from that call to the thread's next one, and from the kill to it."""
    by_tag: dict[object, list[dict[str, float]]] = {}
    for run in sorted(runs, key=lambda r: r["t"]):
        by_tag.setdefault(run["tag"], []).append(run)
    gaps: list[float] = []
    takeovers: list[float] = []
    for tag_runs in by_tag.values():
        before = [r for r in tag_runs if r["t"] <= killed_at]
        after = [r for r in tag_runs if r["t"] > killed_at]
        if before and after and before[-1]["pid"] == victim:
            gaps.append(after[0]["t"] - before[-1]["t"])
            takeovers.append(after[0]["t"] - killed_at)
    return gaps, takeovers
