"""Side effects under kill -9: irreversible effects never twice, idempotent ones re-run with their key.

Two sections, each of ``--runs`` runs on each store (``--store``), each run killed with SIGKILL at a
random moment (often inside a step or tool) and then resumed by fresh processes:

- agent: an agent (`run()`) whose six tool calls alternate between an irreversible `pay` and an
  idempotent `record`, each writing a ledger line mid-tool; one fresh process resumes the thread.
- workflow: the `release` workflow of examples/release (`run_workflow()`, with its `rollout`
  sub-agent): its steps sleep a little around their work so that kills land inside them; the child
  answers the production approval through `store.respond` when the workflow waits for it, as a
  person would. Fresh processes resume the thread until it is done or waits for a reconcile answer
  (at most 3). The deploys and the chat post write RELEASE_LEDGER lines with their idempotency key.

Prints, per section: runs, kills, irreversible effects executed twice (goal 0), idempotent re-runs
and whether each carried the same key as its first attempt (goal: all), runs that ended done or
waiting for a reconcile answer (goal: all; the workflow section says which, and at which step), and
events lost across the kill (goal 0: every event committed before the kill is in the final thread).

Stores: SQLite, a file per run; PostgreSQL, on the server TWELVEFACTOR_PG_URL names or else on a
throwaway one started like bench/store_speed.py's (tests/pgserver.py, fsync on), in a scratch schema of
the bench's own (dropped after) whose tables are emptied before each run, so that a run sees its own
threads only. The child processes open the store by its URL (``open_store``). PostgreSQL adds about
0.15 s to a child's start-up (psycopg, connecting) and a little to its run: its kill windows are later.

    python bench/crash.py [--runs 200] [--seed 1] [--section agent|workflow|both]
                          [--store sqlite|postgres|both]   (default both when PostgreSQL is available)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from twelvefactor.thread import Thread

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "release" / "agent.py"
RESUMES = 3  # fresh processes after the kill, at most, until a workflow run ends
STORES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
# When the kill comes (seconds after the child starts, uniform), by section and store: from about the
# first commit to about the end of the run (some runs end first, and are not killed). On SQLite, start-up
# takes about 0.3 s, then the agent's run about 0.4 s, the workflow's (seven steps and a sub-agent) about
# 0.4 s; PostgreSQL's start-up is about 0.15 s longer and its runs about 0.1 s.
WINDOWS: dict[tuple[str, str], tuple[float, float]] = {
    ("agent", "sqlite"): (0.25, 0.75),
    ("agent", "postgres"): (0.4, 1.0),
    ("workflow", "sqlite"): (0.2, 0.7),
    ("workflow", "postgres"): (0.35, 0.95),
}

CHILD = """
import sys, time
from twelvefactor import Agent, FunctionModel, Thread, ThreadNotFound, ToolContext, UserMessage, open_store, run, tool

url, ledger, thread_id = sys.argv[1], sys.argv[2], sys.argv[3]

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
with open_store(url) as store:
    try:
        thread = store.load(thread_id)
    except ThreadNotFound:
        thread = Thread.new(UserMessage(content="book them"), agent="ledger", id=thread_id)
    print(run(agent, thread, store=store).status)
"""

# Runs (or resumes) the release workflow on a SQLite file; RELEASE_LEDGER (env) is its deploy log.
WORKFLOW_CHILD = """
import functools, sys, time
from pathlib import Path
from twelvefactor import HumanResponse, ThreadNotFound, open_store, run_workflow
from twelvefactor._loader import _load_file

url, example, thread_id = sys.argv[1], sys.argv[2], sys.argv[3]
module = _load_file(Path(example))

def slow(fn):
    # The step's own work, with time around it: a kill often lands inside the step, before or after its effect.
    @functools.wraps(fn)
    def inside(*args, **kwargs):
        time.sleep(0.03)
        result = fn(*args, **kwargs)
        time.sleep(0.03)
        return result
    return inside

for name in ("merged_prs", "run_tests", "deploy", "post_summary"):
    setattr(module, name, slow(getattr(module, name)))  # the workflow looks them up when it runs

release = module.release
with open_store(url) as store:
    try:
        thread = store.load(thread_id)
    except ThreadNotFound:
        thread = release.new_thread("release the latest", id=thread_id)
    while True:
        thread = run_workflow(release, thread, store=store)
        pending = thread.pending_request
        if pending is None or pending.kind != "approval":
            break
        # A person approves production, the way the API and the web UI record it.
        thread = store.respond(thread_id, HumanResponse(request_id=pending.call_id, approved=True, responder="ops"))
    print(thread.status, pending.kind if pending is not None else "-")
"""


def child_env() -> dict[str, str]:
    """The environment of a child process: this checkout's sources first, then what this process imports."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])}


def kill_at(command: list[str], delay: float, env: Mapping[str, str]) -> bool:
    """Start ``command``, SIGKILL it after ``delay`` seconds unless it ended; True if it was killed."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True


# --- the stores ---


class RunStores(Protocol):
    """Where the runs of one store keep their threads: an empty store per run."""

    name: str  # a key of STORES

    def fresh(self, run: str) -> str:
        """The URL of a store that holds no thread, for the run named ``run`` (its only user)."""
        ...


@dataclass
class SQLiteRuns:
    """A new SQLite file per run, in ``directory``."""

    directory: Path
    name: str = "sqlite"

    def fresh(self, run: str) -> str:
        return f"sqlite:///{self.directory.resolve() / run}.db"


@dataclass
class PostgresRuns:
    """One PostgreSQL database (or schema: the URL's search_path) for all the runs, its tables emptied
    before each one. The URL must name a database or schema that the bench may empty."""

    url: str
    name: str = "postgres"

    def fresh(self, run: str) -> str:
        _tests_on_path()
        from pgserver import empty_tables

        empty_tables(self.url)  # no-op before the first run has created the tables
        return self.url


def _tests_on_path() -> None:
    """tests/ and bench/ on sys.path: pgserver (the tests' throwaway PostgreSQL) and store_speed."""
    for folder in (ROOT / "tests", ROOT / "bench"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def postgres_missing() -> str | None:
    """Why the PostgreSQL runs cannot happen here, or None when they can."""
    if importlib.util.find_spec("psycopg") is None or importlib.util.find_spec("psycopg_pool") is None:
        return "psycopg and psycopg-pool are not installed (pip install 'twelvefactor[postgres]')"
    if os.environ.get("TWELVEFACTOR_PG_URL"):
        return None
    _tests_on_path()
    from pgserver import NOT_FOUND, find_binaries

    return NOT_FOUND if find_binaries() is None else None


@contextlib.contextmanager
def postgres_runs() -> Iterator[PostgresRuns]:
    """PostgresRuns on a scratch schema (dropped after) of TWELVEFACTOR_PG_URL's database, or of a throwaway
    server's (stopped after): bench/store_speed.py's server and schema."""
    _tests_on_path()
    from store_speed import postgres_url, scratch_schema

    with postgres_url() as url:
        if url is None:
            raise RuntimeError(postgres_missing() or "no PostgreSQL")
        with scratch_schema(url, f"tf_crash_{os.getpid()}") as scratch:
            yield PostgresRuns(scratch)


def stored_threads(url: str) -> dict[str, Thread]:
    """Every thread the store holds (none if a SQLite file is not there yet: it is not created)."""
    from twelvefactor.store import open_store

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return {}
    with open_store(url) as store:
        return {summary.id: store.load(summary.id) for summary in store.list(limit=1000)}


def lost_events(before: Mapping[str, Thread], after: Mapping[str, Thread]) -> int:
    """Events stored ``before`` that are not at their place in the thread ``after``."""
    lost = 0
    for thread_id, old in before.items():
        new = after.get(thread_id)
        events = new.events if new is not None else ()
        lost += sum(1 for i, event in enumerate(old.events) if i >= len(events) or events[i] != event)
    return lost


def reconcile_pending(thread: Thread) -> bool:
    pending = thread.pending_request
    return thread.status == "waiting" and pending is not None and pending.kind == "reconcile"


@dataclass
class Figures:
    """One section's results, printed by ``report``."""

    section: str
    store: str  # a key of STORES
    runs: int = 0
    kills: int = 0
    twice: int = 0
    reruns: int = 0
    same_key: int = 0
    ended: int = 0
    lost: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def report(self) -> str:
        lines = [
            f"[{self.section} on {STORES[self.store]}] runs: {self.runs}   kills: {self.kills}"
            f"   ({self.seconds:.0f} s)",
            f"irreversible effects executed twice: {self.twice}",
            f"idempotent re-runs: {self.reruns}, with the same key and a new attempt: {self.same_key}/{self.reruns}",
            f"runs ended done or waiting for a reconcile answer: {self.ended}/{self.runs}  {dict(self.outcomes)}",
            f"events lost across a kill: {self.lost}",
            *self.notes,
        ]
        return "\n".join(lines)


# --- the agent ---


def agent_child(directory: Path) -> Path:
    child = directory / "agent_child.py"
    child.write_text(CHILD)
    return child


def agent_killed_in(killed: bool, before: Mapping[str, Thread], thread_id: str) -> str:
    """Where the kill landed, as far as the stored thread tells."""
    from twelvefactor.events import ToolStarted

    if not killed:
        return "not killed"
    thread = before.get(thread_id)
    if thread is None:
        return "before the first commit"
    last = thread.events[-1]
    return f"inside {last.intent}" if isinstance(last, ToolStarted) else "between steps"


def agent_section(
    runs: int, rng: random.Random, tmp: Path, stores: RunStores, progress: Callable[[int], None]
) -> Figures:
    figures = Figures("agent", stores.name, runs=runs)
    env = child_env()
    child = agent_child(tmp)
    low, high = WINDOWS["agent", stores.name]
    landed: Counter[str] = Counter()
    started = time.perf_counter()
    for n in range(runs):
        url, ledger, thread_id = stores.fresh(f"agent{n}"), tmp / f"agent{n}.ledger", f"t{n}"
        command = [sys.executable, str(child), url, str(ledger), thread_id]
        killed = kill_at(command, rng.uniform(low, high), env)
        figures.kills += killed
        before = stored_threads(url)
        landed.update([agent_killed_in(killed, before, thread_id)])
        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        after = stored_threads(url)[thread_id]
        figures.lost += lost_events(before, {after.id: after})
        waiting_reconcile = reconcile_pending(after)
        figures.outcomes[f"{after.status}{' (reconcile)' if waiting_reconcile else ''}"] += 1
        figures.ended += after.status == "done" or waiting_reconcile
        lines = [line.split() for line in ledger.read_text().splitlines()] if ledger.exists() else []
        pays = Counter(key for kind, key, _, _ in lines if kind == "pay")
        figures.twice += sum(1 for count in pays.values() if count > 1)
        records: dict[str, list[str]] = {}
        for kind, key, attempt, _ in lines:
            if kind == "record":
                records.setdefault(key, []).append(attempt)
        for attempts in records.values():
            if len(attempts) > 1:
                figures.reruns += 1
                figures.same_key += len(set(attempts)) == len(attempts)  # one key, a new attempt number each
        if resumed.returncode != 0:
            figures.outcomes["resume crashed"] += 1
        progress(n)
    figures.seconds = time.perf_counter() - started
    figures.notes = [f"where the kills landed: {dict(landed.most_common())}"]
    return figures


# --- the workflow ---


@dataclass
class WorkflowRun:
    """One killed and resumed run of the release workflow: the threads right after the kill and at the end."""

    thread_id: str
    killed: bool
    before: dict[str, Thread]
    after: dict[str, Thread]
    ledger: list[dict[str, str]]
    resumes: list[subprocess.CompletedProcess[str]]

    @property
    def thread(self) -> Thread:
        return self.after[self.thread_id]

    @property
    def ended(self) -> bool:
        return self.thread.status == "done" or reconcile_pending(self.thread)

    def effects(self, kind: str) -> Counter[str]:
        """How many times each idempotency key was written to the ledger by ``kind`` ("deploy", "post")."""
        return Counter(entry["key"] for entry in self.ledger if entry.get("effect") == kind)

    def starts(self, intent: str) -> dict[str, list[tuple[int, str]]]:
        """The (attempt, call_key) of each ``tool_started`` of the step ``intent``, by step."""
        from twelvefactor.events import ToolStarted

        found: dict[str, list[tuple[int, str]]] = {}
        for event in self.thread.events:
            if isinstance(event, ToolStarted) and event.intent == intent:
                found.setdefault(event.call_id, []).append((event.attempt, event.call_key))
        return found

    def killed_in(self) -> str | None:
        """Where the kill landed, as far as the stored thread tells (None if the process was not killed)."""
        from twelvefactor.events import HumanRequest, ToolCall, ToolStarted

        if not self.killed:
            return None
        thread = self.before.get(self.thread_id)
        if thread is None:
            return "before the first commit"
        last = thread.events[-1]
        if isinstance(last, ToolStarted):
            return f"inside {last.intent}"
        if isinstance(last, ToolCall) and f"{self.thread_id}-{last.call_id.replace('_', '')}" in self.before:
            return "in the sub-agent"
        if isinstance(last, HumanRequest):
            return "at the approval"
        return "between steps"

    def waiting_at(self) -> str | None:
        """``step_7 post_summary`` when the run waits for a reconcile answer about that step."""
        pending = self.thread.pending_request
        if not reconcile_pending(self.thread) or pending is None:
            return None
        return f"{pending.call_id.split(':', 1)[0]} {pending.intent}"


def workflow_child(directory: Path) -> Path:
    child = directory / "workflow_child.py"
    child.write_text(WORKFLOW_CHILD)
    return child


def crash_workflow(
    child: Path,
    directory: Path,
    stores: RunStores,
    n: int,
    delay: float,
    env: Mapping[str, str],
    *,
    resumes: int = RESUMES,
) -> WorkflowRun:
    """Run the release workflow as thread ``w{n}`` in a fresh store of ``stores``, SIGKILL it after ``delay``
    seconds, then resume it with fresh processes until it is done or waits for a reconcile answer (at most
    ``resumes`` of them). The ledger is a file in ``directory``."""
    url, ledger, thread_id = stores.fresh(f"w{n}"), directory / f"w{n}.ledger", f"w{n}"
    command = [sys.executable, str(child), url, str(EXAMPLE), thread_id]
    env = {**env, "RELEASE_LEDGER": str(ledger)}
    killed = kill_at(command, delay, env)
    before = after = stored_threads(url)
    done: list[subprocess.CompletedProcess[str]] = []
    while len(done) < resumes and not (thread_id in after and _settled(after[thread_id])):
        done.append(subprocess.run(command, env=env, capture_output=True, text=True, timeout=120))
        after = stored_threads(url)
    lines = ledger.read_text().splitlines() if ledger.exists() else []
    return WorkflowRun(thread_id, killed, before, after, [json.loads(line) for line in lines], done)


def _settled(thread: Thread) -> bool:
    return thread.status in ("done", "failed") or reconcile_pending(thread)


def workflow_section(
    runs: int, rng: random.Random, tmp: Path, stores: RunStores, progress: Callable[[int], None]
) -> Figures:
    figures = Figures("workflow", stores.name, runs=runs)
    env = child_env()
    child = workflow_child(tmp)
    low, high = WINDOWS["workflow", stores.name]
    started = time.perf_counter()
    waiting: list[str] = []
    hook: Counter[str] = Counter()
    landed: Counter[str] = Counter()
    complete = done = 0
    for n in range(runs):
        run = crash_workflow(child, tmp, stores, n, rng.uniform(low, high), env)
        figures.kills += run.killed
        landed.update([run.killed_in() or "not killed"])
        figures.lost += lost_events(run.before, run.after)
        deploys, posts = run.effects("deploy"), run.effects("post")
        figures.twice += sum(1 for count in (*deploys.values(), *posts.values()) if count > 1)
        for starts in run.starts("run_tests").values():
            first_key = starts[0][1]
            for number, (attempt, key) in enumerate(starts[1:], start=2):
                figures.reruns += 1
                figures.same_key += key == first_key and attempt == number
        at = run.waiting_at()
        if at is not None:
            waiting.append(f"{run.thread_id} at {at}")
        figures.outcomes[f"{run.thread.status}{f' (reconcile at {at})' if at else ''}"] += 1
        figures.ended += run.ended
        if run.thread.status == "done":
            done += 1
            complete += len(deploys) == 2 and len(posts) == 1 and max((*deploys.values(), *posts.values())) == 1
        hook.update(_hook_verdicts(run.thread))
        crashed = sum(1 for resumed in run.resumes if resumed.returncode != 0)
        if crashed:
            figures.outcomes["resume crashed"] += crashed
        progress(n)
    figures.seconds = time.perf_counter() - started
    figures.notes = [
        f"where the kills landed: {dict(landed.most_common())}",
        f"runs done with their two deploys and one post each in the ledger exactly once: {complete}/{done}",
        f"deploys interrupted by a kill, settled by the reconcile hook: {hook['done']} had happened (not re-run),"
        f" {hook['retry']} had not (run once)",
        f"waiting for a reconcile answer: {', '.join(waiting) if waiting else 'none'}",
    ]
    return figures


def _hook_verdicts(thread: Thread) -> Counter[str]:
    from twelvefactor.events import ToolReconciled

    return Counter(e.outcome for e in thread.events if isinstance(e, ToolReconciled) and e.decided_by == "hook")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="runs per section and store (default 200)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--section", choices=["agent", "workflow", "both"], default="both")
    parser.add_argument(
        "--store",
        choices=["sqlite", "postgres", "both"],
        help="default: both when PostgreSQL is available (TWELVEFACTOR_PG_URL, or initdb and pg_ctl), else sqlite",
    )
    args = parser.parse_args()
    missing = postgres_missing() if args.store != "sqlite" else None
    if args.store is None:
        args.store = "sqlite" if missing else "both"
        if missing:
            print(f"note: SQLite only; PostgreSQL is not available here: {missing}", flush=True)
    elif missing:
        parser.error(f"--store {args.store}: {missing}")
    sections = {"agent": agent_section, "workflow": workflow_section}
    chosen = list(sections) if args.section == "both" else [args.section]
    store_names = list(STORES) if args.store == "both" else [args.store]
    reports = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as cleanup:
        folders = {store: Path(tmp) / store for store in store_names}  # each store's runs write their own ledgers
        for folder in folders.values():
            folder.mkdir()
        stores: dict[str, RunStores] = {}
        if "sqlite" in store_names:
            stores["sqlite"] = SQLiteRuns(folders["sqlite"])
        if "postgres" in store_names:
            stores["postgres"] = cleanup.enter_context(postgres_runs())
        for name in chosen:
            for store in store_names:

                def progress(n: int, label: str = f"{name} on {STORES[store]}") -> None:
                    print(f"\r{label}: {n + 1}/{args.runs} runs", end="", file=sys.stderr, flush=True)

                # The same draws on each store, each in its own window; SQLite's kill moments are those the
                # bench had before it ran on PostgreSQL.
                rng = random.Random(f"{args.seed}:{name}" if name != "agent" else args.seed)
                reports.append(sections[name](args.runs, rng, folders[store], stores[store], progress).report())
                print(file=sys.stderr)
    print("\n\n".join(reports))


if __name__ == "__main__":
    main()
