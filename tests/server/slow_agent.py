"""An agent for multi-process tests: each tool call takes a while and logs when it ran, and where."""

from __future__ import annotations

import json
import os
import time

from twelvefactor import Agent, tool

LOG = os.environ.get("SLOW_AGENT_LOG", "slow_agent.log")
SLEEP = float(os.environ.get("SLOW_AGENT_SLEEP", "0.05"))


@tool(effect="idempotent")  # a crash inside it re-runs it (the log shows each run)
def work(n: int, tag: str) -> int:
    """Do a slow piece of work."""
    started = time.time()
    time.sleep(SLEEP)
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps({"pid": os.getpid(), "tag": tag, "n": n, "start": started, "end": time.time()}) + "\n")
    return n


def script(tag: str) -> list[str]:
    return [json.dumps({"intent": "work", "n": i, "tag": tag}) for i in range(3)] + [
        json.dumps({"intent": "done_for_now", "message": "worked"})
    ]


class _ReplayingModel:
    """Answers by the number of model calls already in the thread, so any process can continue any thread."""

    name = "slow-script"

    def complete(self, messages: object) -> object:
        from twelvefactor import ModelResponse

        context = messages[-1].content  # type: ignore[index]
        tag = context.split("<user_message>\n", 1)[1].split("\n", 1)[0]
        done = context.count("<tool_result>")
        return ModelResponse(text=script(tag)[done], model=self.name)


agent = Agent("slow", tools=[work], model=_ReplayingModel())  # type: ignore[arg-type]
