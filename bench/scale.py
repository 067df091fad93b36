"""Worker processes on PostgreSQL: steps/s with 1, 2 and 4 `twelvefactor worker` processes, and kill -9.

Workload: N threads (default 200) x 5 steps of tests/workers/scale_agent.py: a step is one model call that
sleeps ``--model-s`` (0.2 s, async: no OS thread held) and then a fast idempotent tool; a sixth call says
done. The bench process creates the threads in the store and enqueues them (``ProcrastinateDispatcher``,
what ``serve --queue procrastinate`` does); the workers are real ``twelvefactor worker`` processes with
their defaults (``--concurrency 100``, heartbeat 1 s, a dead worker's jobs put back after 5 s, polling 1 s).

Figures per worker count:

  wall          first enqueue to the last thread's done event
  steps/s       N x 5 / wall (model decisions + tool runs count as one step); ratio vs 1 worker
  enqueue p50/p99   enqueue to the thread's first model call (queueing behind busy workers included)

With ``--kill``, two workers, and the first is killed with SIGKILL mid-run. Figures: recovery per thread the
killed worker was on (its last model call there before the kill to the thread's next one anywhere; p50 /
max), kill to the last of those, all done after the kill, and every thread checked event by event (each
step once, in order, exactly 5, no call id twice): lost and duplicated must be 0.

A throwaway PostgreSQL (tests/pgserver.py) with fsync and synchronous_commit on, unless ``--url`` names a
database whose tables the bench may empty; the settings in force are printed.

    python bench/scale.py [--threads 200] [--model-s 0.2] [--workers 1 2 4] [--kill] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AGENT = ROOT / "tests" / "workers" / "scale_agent.py"
for _folder in (ROOT / "tests", ROOT / "tests" / "workers"):
    sys.path.insert(0, str(_folder))

from scale_agent import problems, read_log, recovery  # noqa: E402

from pgserver import PostgresServer, empty_tables, find_binaries  # noqa: E402
from twelvefactor import Done, Thread, UserMessage  # noqa: E402
from twelvefactor.store import PostgresStore  # noqa: E402
from twelvefactor.workers.procrastinate import ProcrastinateDispatcher, ensure_schema  # noqa: E402

STEPS = 5
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on", "max_connections": "300"}


@contextlib.contextmanager
def databases(url: str | None) -> Iterator[tuple[object, str]]:
    """(a function giving an empty database's URL per run, a description of the server)."""
    if url is not None:

        def emptied() -> str:
            with contextlib.suppress(Exception):
                empty_tables(url)
            return url

        yield emptied, url.rsplit("@", 1)[-1]
        return
    binaries = find_binaries()
    if binaries is None:
        raise SystemExit("no PostgreSQL server binaries (initdb, pg_ctl): install postgresql, or pass --url")
    server = PostgresServer(binaries, DURABLE).start()
    try:
        yield (lambda: server.url(server.fresh_database())), f"a throwaway PostgreSQL on 127.0.0.1:{server.port}"
    finally:
        server.stop()


def settings(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        shown = []
        for name in ("server_version", "fsync", "synchronous_commit", "full_page_writes", "max_connections"):
            row = conn.execute(f"SHOW {name}").fetchone()
            shown.append(f"{name}={row[0] if row else '?'}")
    return ", ".join(shown)


def spawn(url: str, log: Path, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from twelvefactor.cli import main; main()", "worker", str(AGENT), "--db", url]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path]),
        "SCALE_AGENT_LOG": str(log),
        "SCALE_AGENT_MODEL_S": str(args.model_s),
        "SCALE_AGENT_STEPS": str(STEPS),
    }
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=open(str(log) + ".err", "ab"))  # noqa: SIM115


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for proc in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in workers:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_for_workers(url: str, count: int, seconds: float = 60) -> None:
    import psycopg

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(psycopg.Error), psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
            if row and row[0] >= count:
                return
        time.sleep(0.1)
    raise SystemExit(f"{count} workers did not start within {seconds} s")


async def enqueue(url: str, ids: list[str]) -> dict[str, float]:
    dispatcher = ProcrastinateDispatcher(url)
    await dispatcher.start()
    submitted: dict[str, float] = {}
    try:
        for thread_id in ids:
            submitted[thread_id] = time.time()
            dispatcher.submit(thread_id)
        await dispatcher.idle()
    finally:
        await dispatcher.stop()
    return submitted


def wait_until_done(log: Path, ids: list[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if log.exists() and {r["tag"] for r in read_log(str(log)) if r["n"] == STEPS} >= set(ids):
            return
        time.sleep(0.2)
    raise SystemExit(f"not every thread reached its last step within {seconds} s")


def check(store: PostgresStore, ids: list[str]) -> tuple[dict[str, Thread], int, int]:
    """The threads (waiting for their last commits), how many lost a step and how many ran one twice."""
    threads: dict[str, Thread] = {}
    lost = duplicated = 0
    for thread_id in ids:
        deadline = time.monotonic() + 30
        thread = store.load(thread_id)
        while thread.status not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.05)
            thread = store.load(thread_id)
        threads[thread_id] = thread
        found = problems(thread.events, STEPS)
        lost += any(p.startswith("lost") for p in found)
        duplicated += any(p.startswith("twice") for p in found)
    return threads, lost, duplicated


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def one_run(url: str, workers_n: int, args: argparse.Namespace, kill: bool) -> dict[str, float]:
    PostgresStore(url).close()
    ensure_schema(url)
    with tempfile.TemporaryDirectory(prefix="tf-scale-") as tmp:
        log = Path(tmp) / "calls.log"
        workers = [spawn(url, log, args) for _ in range(workers_n)]
        try:
            wait_for_workers(url, workers_n)
            ids = [f"s{i}" for i in range(args.threads)]
            with PostgresStore(url) as store:
                for thread_id in ids:
                    store.create(Thread.new(UserMessage(content=thread_id), agent="scale", id=thread_id))
                submitted = asyncio.run(enqueue(url, ids))
                killed_at = 0.0
                if kill:
                    victim = workers[0]
                    target = args.threads * (STEPS + 1) // (2 * workers_n) // 3  # a third of its share
                    while not log.exists() or sum(1 for r in read_log(str(log)) if r["pid"] == victim.pid) < target:
                        time.sleep(0.02)
                    victim.send_signal(signal.SIGKILL)
                    killed_at = time.time()
                    victim.wait(10)
                wait_until_done(log, ids, seconds=args.timeout_s)
                threads, lost, duplicated = check(store, ids)
        finally:
            stop(workers)
        runs = read_log(str(log))
    first = min(submitted.values())
    ends = [e.at.timestamp() for t in threads.values() for e in t.events[-1:] if isinstance(e, Done)]
    wall = max(ends) - first
    starts: dict[str, float] = {}
    for run in runs:
        starts[str(run["tag"])] = min(starts.get(str(run["tag"]), run["t"]), run["t"])
    waits = [starts[i] - submitted[i] for i in submitted if i in starts]
    figures = {
        "wall": wall,
        "steps_s": args.threads * STEPS / wall,
        "enq_p50": pct(waits, 0.5),
        "enq_p99": pct(waits, 0.99),
        "lost": lost,
        "dup": duplicated,
        "failed": sum(1 for t in threads.values() if t.status != "done"),
        "calls_extra": len(runs) - args.threads * (STEPS + 1),
    }
    if kill:
        gaps, takeovers = recovery(runs, workers[0].pid, killed_at)
        figures |= {
            "orphans": len(gaps),
            "gap_p50": statistics.median(gaps) if gaps else 0.0,
            "gap_max": max(gaps, default=0.0),
            "takeover_max": max(takeovers, default=0.0),
            "after_kill": max(ends) - killed_at,
            "killed_into": killed_at - first,
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=200)
    parser.add_argument("--model-s", type=float, default=0.2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--kill", action="store_true", help="also: kill -9 one of two workers mid-run")
    parser.add_argument("--url", help="a PostgreSQL database the bench may empty (default: a throwaway server)")
    parser.add_argument("--timeout-s", type=float, default=300)
    args = parser.parse_args()

    with databases(args.url) as (fresh, where):
        first_url = fresh()  # type: ignore[operator]
        print(f"PostgreSQL: {where}; {settings(first_url)}")
        print(
            f"{args.threads} threads x {STEPS} steps, model {args.model_s * 1000:.0f} ms (async), fast tool;"
            f" {os.cpu_count()} CPUs\n"
        )
        print(f"{'workers':>7} {'wall s':>7} {'steps/s':>8} {'vs 1':>5} {'enqueue p50/p99 s':>18}  lost dup failed")
        base = 0.0
        url = first_url
        for count in args.workers:
            f = one_run(url, count, args, kill=False)
            base = base or f["steps_s"]
            print(
                f"{count:>7} {f['wall']:>7.1f} {f['steps_s']:>8.0f} {f['steps_s'] / base:>5.2f}"
                f" {f['enq_p50']:>8.2f} / {f['enq_p99']:<7.2f}  {f['lost']:>4.0f} {f['dup']:>3.0f} {f['failed']:>6.0f}"
            )
            url = fresh()  # type: ignore[operator]
        if args.kill:
            f = one_run(url, 2, args, kill=True)
            print(
                f"\nkill -9 of 1 of 2 workers, {f['killed_into']:.1f} s into the run: {f['orphans']:.0f} threads of the"
                f" killed worker went on after p50 {f['gap_p50']:.2f} s / max {f['gap_max']:.2f} s (from their last"
                f" model call there); kill to the last of them {f['takeover_max']:.2f} s;"
                f" all done {f['after_kill']:.1f} s after the kill;"
                f" lost {f['lost']:.0f}, duplicated {f['dup']:.0f}, failed {f['failed']:.0f};"
                f" model calls made again {f['calls_extra']:.0f}; wall {f['wall']:.1f} s ({f['steps_s']:.0f} steps/s)"
            )


if __name__ == "__main__":
    main()
