"""Recovery after kill -9: how fast live processes take over the threads a dead server was running.

Starts server A and server B (separate processes, one SQLite file, `twelvefactor serve` with the
slow agent of tests/server/slow_agent.py: three tool calls of --sleep seconds per thread), launches
--threads threads on A, and kills A with SIGKILL while they are in flight. Then it watches the
database and prints:

  takeover         seconds from the kill until B holds the lease of every thread A held
  resume p50/max   seconds from the kill until each orphaned thread gets its next event
  all done         seconds from the kill until every thread is done
  events lost      events recorded before the kill that are missing afterwards (must be 0)
  dup results      tool calls with more than one result in their thread (must be 0)
  re-run calls     tool calls that completed twice (the slow tool logs when it ends)

With --restart, B is not running at the kill: A is restarted instead (the restart-alone path).

    python bench/recovery.py [--threads 50] [--sleep 0.5] [--lease-s 3] [--workers 16] [--restart]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from twelvefactor.server.testing import free_port
from twelvefactor.store import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
AGENT = ROOT / "tests" / "server" / "slow_agent.py"


def serve(db: Path, port: int, log: Path, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from twelvefactor.cli import main; main()", "serve", str(AGENT)]
    command += ["--db", str(db), "--port", str(port)]
    command += ["--workers", str(args.workers), "--lease-s", str(args.lease_s)]
    env = {**os.environ, "SLOW_AGENT_LOG": str(log), "SLOW_AGENT_SLEEP": str(args.sleep)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--sleep", type=float, default=0.5, help="seconds per tool call")
    parser.add_argument("--lease-s", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--restart", action="store_true", help="restart A instead of a live peer B")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db, log = Path(tmp) / "bench.db", Path(tmp) / "tools.log"
        a_port, b_port = free_port(), free_port()
        a = serve(db, a_port, log, args)
        b = None if args.restart else serve(db, b_port, log, args)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{a_port}", timeout=30) as client:
                ids = [
                    client.post("/v1/threads", json={"agent": "slow", "message": f"t{i}"}).json()["id"]
                    for i in range(args.threads)
                ]
            # Mid-flight: the first threads are in their tool calls, the rest queued with A's leases.
            time.sleep(args.sleep * 1.5 + args.lease_s / 4)
            store = SQLiteStore(db)
            held_by_a = [i for i in ids if (store.lease_of(i) or ("", 0))[0].startswith("worker-")]
            a.send_signal(signal.SIGKILL)
            killed_at = time.time()
            a.wait()
            before = {i: store.load(i) for i in ids}
            if b is None:
                b = serve(db, b_port, log, args)
            resumed: dict[str, float] = {}
            takeover = None
            done_at = None
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                now = time.time()
                threads = {i: store.load(i) for i in ids}
                for i, thread in threads.items():
                    if i not in resumed and thread.version > before[i].version:
                        resumed[i] = now - killed_at
                if takeover is None and all(
                    threads[i].status != "running" or _owner_pid(store, i) not in (None, a.pid) for i in held_by_a
                ):
                    takeover = now - killed_at
                if all(t.status == "done" for t in threads.values()):
                    done_at = now - killed_at
                    break
                time.sleep(0.05)
            after = {i: store.load(i) for i in ids}
            store.close()
        finally:
            for process in (a, b):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(30)

        lost = sum(
            sum(1 for x, y in zip(before[i].events, after[i].events, strict=False) if x != y)
            + max(0, before[i].version - after[i].version)
            for i in ids
        )
        dup = 0
        for thread in after.values():
            counts = Counter(getattr(e, "call_id", None) for e in thread.events if e.type == "tool_result")
            dup += sum(1 for n in counts.values() if n > 1)
        runs = Counter((r["tag"], r["n"]) for r in map(json.loads, log.read_text().splitlines()))
        rerun = sum(1 for n in runs.values() if n > 1)
        orphaned = [i for i in ids if before[i].status == "running"]
        waits = sorted(resumed[i] for i in orphaned if i in resumed)
        mode = "restart of A" if args.restart else "live peer B"
        print(f"recovery by {mode}: {args.threads} threads, tool calls of {args.sleep} s, lease {args.lease_s} s,")
        print(f"  {len(orphaned)} threads running at the kill, {len(held_by_a)} of them leased by A")
        print(f"  takeover (B holds every lease A held): {_s(takeover)}")
        if waits:
            print(
                f"  resume (next event of an orphaned thread): first {waits[0]:.2f} s,"
                f" p50 {statistics.median(waits):.2f} s, max {waits[-1]:.2f} s ({len(waits)}/{len(orphaned)} resumed)"
            )
        print(f"  all done: {_s(done_at)}")
        print(f"  events lost: {lost}   duplicated results: {dup}   tool calls completed twice: {rerun}")


def _owner_pid(store: SQLiteStore, thread_id: str) -> int | None:
    lease = store.lease_of(thread_id)
    if lease is None:
        return None
    parts = lease[0].split("-")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


def _s(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.2f} s"


if __name__ == "__main__":
    main()
