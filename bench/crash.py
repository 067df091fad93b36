"""Side effects under kill -9: irreversible effects never twice, idempotent ones re-run with their key.

Each run starts an agent (`run()` on a SQLite file) whose six tool calls alternate between an
irreversible `pay` and an idempotent `record`, each writing a ledger line mid-tool; the process is
killed with SIGKILL at a random moment (often inside a tool), then a fresh process resumes the
thread. Prints: runs, kills, irreversible effects executed twice (goal 0), idempotent re-runs and
whether each carried the same key as its first attempt (goal: all), runs that ended done or waiting
for a reconcile answer (goal: all), and events lost across the kill (goal 0).

    python bench/crash.py [--runs 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
from twelvefactor import Agent, FunctionModel, SQLiteStore, Thread, ThreadNotFound, ToolContext, UserMessage, run, tool

db, ledger, thread_id = sys.argv[1], sys.argv[2], sys.argv[3]

def write(kind, ctx, amount):
    time.sleep(0.03)
    with open(ledger, "a") as out:
        out.write(f"{kind} {ctx.idempotency_key} {ctx.attempt} {amount}\\n")
    time.sleep(0.03)

@tool(effect="irreversible")
def pay(amount: int, ctx: ToolContext) -> str:
    \"\"\"Pay.\"\"\"
    write("pay", ctx, amount)
    return "paid"

@tool(effect="idempotent")
def record(amount: int, ctx: ToolContext) -> str:
    \"\"\"Record.\"\"\"
    write("record", ctx, amount)
    return "recorded"

steps = [{"intent": "pay" if i % 2 else "record", "amount": i} for i in range(6)]
steps.append({"intent": "done_for_now", "message": "ok"})

def model(messages):
    context = messages[-1].content
    return steps[min(context.count("<tool_result>") + context.count("<error>"), len(steps) - 1)]

agent = Agent("ledger", tools=[pay, record], model=FunctionModel(model), max_steps=100)
with SQLiteStore(db) as store:
    try:
        thread = store.load(thread_id)
    except ThreadNotFound:
        thread = Thread.new(UserMessage(content="book them"), agent="ledger", id=thread_id)
    print(run(agent, thread, store=store).status)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])}

    from twelvefactor.store import SQLiteStore

    kills = twice = reruns = same_key = ended = lost = 0
    outcomes: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        child = Path(tmp) / "child.py"
        child.write_text(CHILD)
        started = time.perf_counter()
        for n in range(args.runs):
            db, ledger = Path(tmp) / f"{n}.db", Path(tmp) / f"{n}.ledger"
            command = [sys.executable, str(child), str(db), str(ledger), f"t{n}"]
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.25, 0.75))  # start-up takes about 0.3 s, the run about 0.4 s
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
            before = None
            if db.exists():
                with SQLiteStore(db) as store:
                    try:
                        before = store.load(f"t{n}")
                    except KeyError:
                        before = None
            resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
            with SQLiteStore(db) as store:
                after = store.load(f"t{n}")
            if before is not None and after.events[: before.version] != before.events:
                lost += 1
            waiting_reconcile = after.pending_request is not None and after.pending_request.kind == "reconcile"
            outcomes[f"{after.status}{' (reconcile)' if waiting_reconcile else ''}"] += 1
            ended += after.status == "done" or waiting_reconcile
            lines = [line.split() for line in ledger.read_text().splitlines()] if ledger.exists() else []
            pays = Counter(key for kind, key, _, _ in lines if kind == "pay")
            twice += sum(1 for count in pays.values() if count > 1)
            records: dict[str, list[str]] = {}
            for kind, key, attempt, _ in lines:
                if kind == "record":
                    records.setdefault(key, []).append(attempt)
            for attempts in records.values():
                if len(attempts) > 1:
                    reruns += 1
                    same_key += len(set(attempts)) == len(attempts)  # one key, a new attempt number each
            if resumed.returncode != 0:
                outcomes["resume crashed"] += 1
            print(f"\r{n + 1}/{args.runs} runs", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    seconds = time.perf_counter() - started
    print(f"runs: {args.runs}   kills: {kills}   ({seconds:.0f} s, SQLite)")
    print(f"irreversible effects executed twice: {twice}")
    print(f"idempotent re-runs: {reruns}, with the same key and a new attempt: {same_key}/{reruns}")
    print(f"runs ended done or waiting for a reconcile answer: {ended}/{args.runs}  {dict(outcomes)}")
    print(f"events lost across a kill: {lost}")


if __name__ == "__main__":
    main()
