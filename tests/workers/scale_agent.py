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
    """What is wrong with a finished thread's events (empty: nothing), each ``lost: ...`` (a step missing, not
    done) or ``twice: ...`` (a step, result or model call recorded twice, or out of order)."""
    from collections import Counter

    from twelvefactor import Done, ModelCall, ToolCall, ToolResult

    calls = [e for e in events if isinstance(e, ToolCall)]
    numbers = [c.arguments.get("n") for c in calls]
    answers = Counter(e.call_id for e in events if isinstance(e, ToolResult))
    found: list[str] = []
    if set(numbers) != set(range(steps)):
        found.append(f"lost: calls n={numbers}")
    if numbers != sorted(set(numbers)) or len({c.call_id for c in calls}) != len(calls):
        found.append(f"twice: calls n={numbers}")
    for call in calls:
        if answers[call.call_id] != 1:
            what = "lost" if answers[call.call_id] == 0 else "twice"
            found.append(f"{what}: {answers[call.call_id]} results for step {call.arguments.get('n')}")
    done = [i for i, e in enumerate(events) if isinstance(e, Done)]
    if not done:
        found.append("lost: not done")
    elif len(done) > 1 or any(isinstance(e, ModelCall) for e in events[done[0] + 1 :]):
        found.append("twice: a model call after done (a second advancer's, re-based)")
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
