"""kill -9 at random moments, inside tools and workflow steps too, then resume in fresh processes: an
irreversible effect never happens twice, an idempotent one is re-run with the same key, every run ends
done or asking, and nothing committed before the kill is lost. On SQLite (a file per run) and on
PostgreSQL (the session's server and database, emptied before each run; fewer runs, to keep it short)."""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from twelvefactor.events import Done, ToolStarted

ROOT = Path(__file__).resolve().parents[1]
RUNS = {"sqlite": 12, "postgres": 8}  # per test


def _bench() -> ModuleType:
    """bench/crash.py: its child scripts and its workflow run (one of each for the bench and these bounded tests)."""
    name = "crash_bench"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "crash.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # registered first: its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """bench/crash.py's RunStores: a SQLite file per run, or the session's PostgreSQL database emptied before
    each run (skipped, saying why, without the PostgreSQL binaries)."""
    bench = _bench()
    if request.param == "sqlite":
        return bench.SQLiteRuns(tmp_path)
    server = request.getfixturevalue("pg_server")
    return bench.PostgresRuns(server.url(request.getfixturevalue("pg_database")))


def test_random_kills_never_repeat_an_irreversible_effect(tmp_path: Path, stores: Any) -> None:
    bench = _bench()
    child = bench.agent_child(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rng = random.Random(20261203)
    low, high = bench.WINDOWS["agent", stores.name]
    runs, kills = RUNS[stores.name], 0
    for n in range(runs):
        url, ledger, thread_id = stores.fresh(f"agent{n}"), tmp_path / f"{n}.ledger", f"t{n}"
        args = [sys.executable, str(child), url, str(ledger), thread_id]
        process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(low, high))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.communicate(timeout=30)
        before = bench.stored_threads(url)
        assert set(before) <= {thread_id}  # this run's thread only
        resumed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stderr
        after = bench.stored_threads(url)
        assert set(after) == {thread_id}
        thread = after[thread_id]
        if thread_id in before:  # nothing committed before the kill is lost
            assert thread.events[: before[thread_id].version] == before[thread_id].events
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


def test_random_kills_in_a_workflow_never_repeat_an_irreversible_effect(tmp_path: Path, stores: Any) -> None:
    """The release workflow (examples/release) with its sub-agent and a person's approval, killed at random."""
    bench = _bench()
    child = bench.workflow_child(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rng = random.Random(20261203)
    low, high = bench.WINDOWS["workflow", stores.name]
    runs, kills = RUNS[stores.name], 0
    for n in range(runs):
        run = bench.crash_workflow(child, tmp_path, stores, n, rng.uniform(low, high), env)
        kills += run.killed
        for resumed in run.resumes:
            assert resumed.returncode == 0, resumed.stderr
        thread, key = run.thread, f"w{n}:step_{{}}"
        assert thread.status in ("done", "waiting"), [e.type for e in thread.events]
        effects = Counter((entry["effect"], entry["key"]) for entry in run.ledger)
        assert max(effects.values(), default=1) == 1, run.ledger  # never twice
        if thread.status == "done":
            assert isinstance(thread.events[-1], Done) and thread.events[-1].message == "released v1.4.2 to production"
            assert set(effects) == {("deploy", key.format(4)), ("deploy", key.format(6)), ("post", key.format(7))}
        else:  # only the post has no reconcile hook: after a kill inside it, a person is asked
            pending = thread.pending_request
            assert pending is not None and pending.kind == "reconcile", [e.type for e in thread.events]
            assert pending.call_id.startswith("step_7:reconcile:") and pending.intent == "post_summary"
        starts = [e for e in thread.events if isinstance(e, ToolStarted) and e.intent == "run_tests"]
        # Re-run after a kill inside it: the same key, a new attempt each time.
        assert [(e.attempt, e.call_key) for e in starts] == [(i, key.format(2)) for i in range(1, len(starts) + 1)]
        # Only this run's threads (the parent's and its sub-agent's) are in the store.
        assert all(t == f"w{n}" or t.startswith(f"w{n}-") for t in run.after), list(run.after)
        for thread_id, before in run.before.items():  # the parent and the sub-agent's thread
            assert run.after[thread_id].events[: before.version] == before.events, thread_id
    assert kills >= runs // 2
