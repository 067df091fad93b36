"""kill -9 at random moments, inside tools too, then resume in a fresh process: an irreversible effect
never happens twice, an idempotent one is re-run with the same key, and every run ends done or asking."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from twelvefactor.store import SQLiteStore

CHILD = '''
import sys, time
from twelvefactor import Agent, ScriptedModel, SQLiteStore, Thread, ToolContext, UserMessage, run, tool

db, ledger, thread_id = sys.argv[1], sys.argv[2], sys.argv[3]

def write(kind: str, ctx: ToolContext, amount: int) -> None:
    with open(ledger, "a") as out:  # the effect: a ledger line, written mid-tool
        time.sleep(0.01)
        out.write(f"{kind} {ctx.idempotency_key} {ctx.attempt} {amount}\\n")
        out.flush()
    time.sleep(0.01)

@tool(effect="irreversible")
def pay(amount: int, ctx: ToolContext) -> str:
    """Pay."""
    write("pay", ctx, amount)
    return "paid"

@tool(effect="idempotent")
def record(amount: int, ctx: ToolContext) -> str:
    """Record."""
    write("record", ctx, amount)
    return "recorded"

steps = [{"intent": "pay" if i % 2 else "record", "amount": i} for i in range(6)]
steps.append({"intent": "done_for_now", "message": "ok"})

def model(messages):
    context = messages[-1].content
    return steps[context.count("<tool_result>") + context.count("<error>")]

from twelvefactor import FunctionModel
agent = Agent("ledger", tools=[pay, record], model=FunctionModel(model), max_steps=50)
with SQLiteStore(db) as store:
    try:
        thread = store.load(thread_id)
    except KeyError:
        thread = Thread.new(UserMessage(content="book them"), agent="ledger", id=thread_id)
    thread = run(agent, thread, store=store)
    print(thread.status)
'''


def test_random_kills_never_repeat_an_irreversible_effect(tmp_path: Path) -> None:
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rng = random.Random(20261203)
    runs, kills = 12, 0
    for n in range(runs):
        db, ledger = tmp_path / f"{n}.db", tmp_path / f"{n}.ledger"
        args = [sys.executable, str(child), str(db), str(ledger), f"t{n}"]
        process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.15, 0.9))  # start-up is ~0.3 s: some kills land before, most inside the run
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.communicate(timeout=30)
        resumed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stderr
        with SQLiteStore(db) as store:
            thread = store.load(f"t{n}")
        assert resumed.stdout.strip() == thread.status
        assert thread.status in ("done", "waiting"), [e.type for e in thread.events]
        if thread.status == "waiting":
            assert thread.pending_request is not None and thread.pending_request.kind == "reconcile"
        lines = [line.split() for line in ledger.read_text().splitlines()] if ledger.exists() else []
        pays = Counter(key for kind, key, _, _ in lines if kind == "pay")
        assert max(pays.values(), default=1) == 1, lines  # never twice
        records: dict[str, list[int]] = {}
        for kind, key, attempt, _ in lines:
            if kind == "record":
                records.setdefault(key, []).append(int(attempt))
        for key, attempts in records.items():
            # Re-run under the same key, each run a new attempt (one killed before its line was written
            # leaves a gap: attempt 2 without 1).
            assert attempts == sorted(set(attempts)) and attempts[0] >= 1, (key, attempts)
    assert kills >= runs // 2
