"""A long-thread task you can rerun: does the agent still have the one early fact it needs at the end?

The agent reads log entries 1..N (one tool result each, ~450 characters); entry 3 says what the deploy
key is; the task is to tell the key at the end. Three set-ups of the same agent:

- ``budget``: a 4,000-token context budget, no compaction: the window outgrows it and the agent stops
  and asks a person (a budget error) instead of sending a window the model cannot take;
- ``compaction``: the budget with compaction (old results shortened, then old events dropped): it
  finishes, but the fact was compacted away, so the answer is wrong;
- ``compaction+memory``: the same, plus memory and a ``remember`` tool: the model keeps the fact when
  it reads it, the memory section shows it at every step, and the answer is right.

The model is a function model that answers correctly only if the key is in its window (so the
outcome measures the context, not a model), or with ``--local`` the local model (``local:smollm2``,
on a shorter log), reported as it comes out.

    python bench/context_quality.py [--entries 200] [--local]
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from twelvefactor import Agent, FunctionModel, Thread, run, tool
from twelvefactor.compaction import ContextBudget, DropOldEvents, ShortenToolResults
from twelvefactor.events import Error, MemoryFact
from twelvefactor.messages import Message
from twelvefactor.tools import Tool

KEY = "K-4471"
FACT_ENTRY = 3
FILLER = "service healthy; p95 latency 212 ms; 0 errors; queue depth 14; disk 61% used; next check in 60 s. " * 4
TASK = "Read the log entries 1 to {n} one by one with read_log, then tell me the deploy key."


def log_entry(n: int) -> str:
    if n == FACT_ENTRY:
        return f"entry {n}: the deploy key is {KEY}. {FILLER}"
    return f"entry {n}: {FILLER}"


@dataclass
class ListMemory:
    """Facts in a list: the smallest memory source (the memory package has the stored ones)."""

    facts: list[MemoryFact] = field(default_factory=list)

    def recall_for(self, thread: object) -> Sequence[MemoryFact]:
        return list(self.facts)

    def remember_tool(self) -> type[Tool]:
        memory = self

        @tool(effect="idempotent")
        def remember(text: str) -> str:
            """Keep a fact you will need later (it stays in your memory section)."""
            if all(fact.text != text for fact in memory.facts):
                memory.facts.append(MemoryFact(id=f"f{len(memory.facts) + 1}", scope="thread", text=text))
            return "remembered"

        remember.changes_memory = True
        return remember


def reader(entries: int, *, remembers: bool) -> FunctionModel:
    """Reads entry after entry; keeps the key when it reads it (if it can); answers with what its window shows."""

    def step(messages: list[Message]) -> dict[str, Any]:
        window = "\n".join(m.content for m in messages)
        last = messages[-1].content
        read = [int(n) for n in re.findall(r"entry (\d+):", last)]
        done = max(read, default=0)
        just_read = last.rsplit("<tool_result>", 1)[-1]
        if remembers and f"the deploy key is {KEY}" in just_read and f"- the deploy key is {KEY}" not in window:
            return {"intent": "remember", "text": f"the deploy key is {KEY}"}
        if done < entries:
            return {"intent": "read_log", "n": done + 1}
        found = re.search(r"the deploy key is (K-\d+)", window)
        return {
            "intent": "done_for_now",
            "message": f"The deploy key is {found.group(1)}." if found else "I do not know.",
        }

    return FunctionModel(step, name="function:reader")


@tool(effect="read_only")
def read_log(n: int) -> str:
    """Read log entry n."""
    return log_entry(n)


SETUPS = ("budget", "compaction", "compaction+memory")


def agent_for(setup: str, model: Any, entries: int, *, max_tokens: int = 4_000) -> Agent:
    compaction = [ShortenToolResults(keep_last=4, max_chars=80), DropOldEvents(keep_last=8)]
    memory = ListMemory() if setup == "compaction+memory" else None
    tools: list[type[Tool]] = [read_log]
    if memory is not None:
        tools.append(memory.remember_tool())
    return Agent(
        "reader",
        tools=tools,
        model=model,
        budget=ContextBudget(max_tokens=max_tokens, compaction=[] if setup == "budget" else compaction),
        memory=memory,
        max_steps=entries + 10,
    )


@dataclass
class Outcome:
    setup: str
    status: str
    answer: str
    correct: bool
    steps: int
    max_window: int
    compactions: int
    seconds: float


def attempt(setup: str, model: Any, entries: int, *, max_tokens: int = 4_000) -> Outcome:
    agent = agent_for(setup, model, entries, max_tokens=max_tokens)
    started = time.perf_counter()
    thread: Thread = run(agent, agent.new_thread(TASK.format(n=entries)))
    calls = [e for e in thread.events if e.type == "model_call"]
    done = thread.events[-1]
    answer = getattr(done, "message", "") if thread.status == "done" else ""
    if any(isinstance(e, Error) and e.source == "budget" and "context window" in e.message for e in thread.events):
        answer = "(stopped: over the context budget)"
    return Outcome(
        setup=setup,
        status=thread.status,
        answer=answer,
        correct=thread.status == "done" and KEY in answer,
        steps=len(calls),
        max_window=max((getattr(e, "estimated_input_tokens", 0) or 0) for e in calls) if calls else 0,
        compactions=sum(1 for e in thread.events if e.type == "compaction"),
        seconds=time.perf_counter() - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--local", action="store_true", help="also run the local model (local:smollm2)")
    parser.add_argument("--local-entries", type=int, default=12)
    args = parser.parse_args()
    print(
        f"{'model':<16} {'setup':<18} {'status':<8} {'correct':<8} {'steps':>5} {'max window':>10}"
        f" {'compactions':>11}  answer"
    )
    for setup in SETUPS:
        model = reader(args.entries, remembers=setup == "compaction+memory")
        _print("function", attempt(setup, model, args.entries))
    if args.local:
        from twelvefactor.models.local import LocalModel

        local = LocalModel("smollm2", n_ctx=4096)
        for setup in SETUPS:
            outcome = attempt(setup, local, args.local_entries, max_tokens=1_500)
            _print("local:smollm2", outcome)


def _print(model: str, o: Outcome) -> None:
    print(
        f"{model:<16} {o.setup:<18} {o.status:<8} {o.correct!s:<8} {o.steps:>5} {o.max_window:>10,} {o.compactions:>11}"
        f"  {o.answer[:60]}  ({o.seconds:.1f} s)"
    )


if __name__ == "__main__":
    main()
