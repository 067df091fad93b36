"""kill -9 at random moments, inside tools too, then resume in a fresh process: an irreversible effect
never happens twice, an idempotent one is re-run with the same key, and every run ends done or asking."""

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

from twelvefactor.store import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]


def _child_script() -> str:
    """The child process of bench/crash.py (one script for the bench and this bounded test)."""
    spec = importlib.util.spec_from_file_location("crash_bench", ROOT / "bench" / "crash.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.CHILD)


def test_random_kills_never_repeat_an_irreversible_effect(tmp_path: Path) -> None:
    child = tmp_path / "child.py"
    child.write_text(_child_script())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rng = random.Random(20261203)
    runs, kills = 12, 0
    for n in range(runs):
        db, ledger = tmp_path / f"{n}.db", tmp_path / f"{n}.ledger"
        args = [sys.executable, str(child), str(db), str(ledger), f"t{n}"]
        process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.25, 0.75))  # start-up takes about 0.3 s, the run about 0.4 s
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
