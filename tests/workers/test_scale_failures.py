"""Worker processes at full size, failing: one SIGKILLed mid-run, PostgreSQL restarted under them.

Real processes (``run_worker``, what ``twelvefactor worker`` runs) on a real PostgreSQL, the agent of
``scale_agent.py`` (a fast tool, a model that answers by the thread's own events so any process can go
on with any thread). Every thread is checked event by event: each of its steps once, in order, then done.
bench/scale.py measures the same things with the shipped defaults and a slower model.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip(
    "procrastinate", reason="procrastinate is not installed (pip install 'twelvefactor[procrastinate]')"
)

from pgserver import PostgresServer  # noqa: E402
from twelvefactor.store import PostgresStore  # noqa: E402
from twelvefactor.workers.procrastinate import ensure_schema  # noqa: E402
from workers.processes import launch, stop  # noqa: E402
from workers.scale_agent import problems, read_log, recovery  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

STEPS = 5

# Tighter than the defaults (heartbeat 1 s, stalled after 5 s, poll 1 s) so the test is short; bench/scale.py
# reports recovery with the defaults.
WORKER = """
import sys
sys.path.insert(0, {here!r})
from scale_agent import agent
from twelvefactor.workers.procrastinate import run_worker
run_worker({url!r}, {{"scale": agent}}, heartbeat_s=0.3, stalled_s={stalled_s!r}, scan_s=60, poll_s=0.2)
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def url(pg_empty_url: str) -> Iterator[str]:
    PostgresStore(pg_empty_url).close()
    ensure_schema(pg_empty_url)
    yield pg_empty_url


def spawn(url: str, log: Path, model_s: float, name: str, stalled_s: float = 1.5) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SCALE_AGENT_LOG": str(log),
        "SCALE_AGENT_MODEL_S": str(model_s),
        "SCALE_AGENT_STEPS": str(STEPS),
        "PYTHONPATH": str(ROOT / "src"),
    }
    with open(log.with_name(f"{name}.err"), "ab") as errors:  # the workers' warnings, to look at after a failure
        return subprocess.Popen(
            [sys.executable, "-c", WORKER.format(here=str(HERE), url=url, stalled_s=stalled_s)], env=env, stderr=errors
        )


async def wait_for_calls(log: Path, count: int, pid: int | None = None, seconds: float = 30.0) -> None:
    """Until ``count`` model calls are logged (by ``pid`` if given)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if log.exists() and sum(1 for r in read_log(str(log)) if pid is None or r["pid"] == pid) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} model calls logged within {seconds} s")


async def wait_for_all(log: Path, ids: list[str], seconds: float) -> None:
    """Until every thread has asked its model for the last time (its done step)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        finished = {r["tag"] for r in read_log(str(log)) if r["n"] == STEPS}
        if finished >= set(ids):
            return
        await asyncio.sleep(0.1)
    missing = sorted(set(ids) - {r["tag"] for r in read_log(str(log)) if r["n"] == STEPS})
    raise AssertionError(f"{len(missing)} threads never reached their last step, e.g. {missing[:5]}")


def checked(store: PostgresStore, ids: list[str], seconds: float = 15.0) -> dict[str, list[str]]:
    """Every thread done (waiting up to ``seconds`` for the last commits), and what is wrong with each."""
    deadline = time.monotonic() + seconds
    found: dict[str, list[str]] = {}
    for thread_id in ids:
        thread = store.load(thread_id)
        while thread.status != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
            thread = store.load(thread_id)
        wrong = problems(thread.events, STEPS)
        if thread.version != len(thread.events):
            wrong.append("version is not the number of events")
        if wrong:
            found[thread_id] = [*wrong, thread.status, *(repr(e)[:300] for e in thread.events[-4:])]
    return found


async def test_two_workers_200_threads_one_killed_mid_run_lose_and_duplicate_nothing(url: str, tmp_path: Path) -> None:
    threads = 200
    log = tmp_path / "calls.log"
    workers = [spawn(url, log, 0.05, "w0"), spawn(url, log, 0.05, "w1")]
    victim = workers[0]
    try:
        with PostgresStore(url) as store:
            started = time.time()
            ids = [f"s{i}" for i in range(threads)]
            await launch(url, store, ids, "scale")
            # Early in the run, while many of the victim's threads are between steps.
            await wait_for_calls(log, threads * (STEPS + 1) // 8, pid=victim.pid, seconds=40)
            victim.send_signal(signal.SIGKILL)
            killed_at = time.time()
            victim.wait(5)
            await wait_for_all(log, ids, seconds=60)
            wrong = checked(store, ids)
            all_done = time.time() - killed_at
    finally:
        stop(workers)

    runs = read_log(str(log))
    gaps, takeovers = recovery(runs, victim.pid, killed_at)
    print(
        f"\nkill -9 of 1 of 2 workers, {threads} threads x {STEPS} steps (model 50 ms; heartbeat 0.3 s,"
        f" stalled after 1.5 s): killed {killed_at - started:.1f} s into the run, all done {all_done:.1f} s"
        f" after; {len(gaps)} threads of the killed worker went on after"
        f" p50 {statistics.median(gaps) if gaps else 0:.2f} s / max {max(gaps, default=0):.2f} s"
        f" (kill to next step: max {max(takeovers, default=0):.2f} s); model calls {len(runs)}"
        f" for {threads * (STEPS + 1)} decisions"
    )
    assert not wrong, f"{len(wrong)} threads lost or repeated steps: {dict(list(wrong.items())[:5])}"
    assert gaps, "the kill landed after the victim's last thread: nothing to recover"
    assert max(takeovers) < 15  # stalled_s + a check + a poll, on a loaded machine


async def test_postgresql_restarted_under_two_workers_loses_and_duplicates_nothing(
    url: str, pg_server: PostgresServer, tmp_path: Path
) -> None:
    threads = 100
    log = tmp_path / "calls.log"
    # Stalled after 5 s, the default: an outage plus the pools' reconnecting must stay under it, or the jobs
    # of live workers look stalled (see the report in docs/deploy.md).
    workers = [spawn(url, log, 0.01, "w0", stalled_s=5.0), spawn(url, log, 0.01, "w1", stalled_s=5.0)]
    try:
        with PostgresStore(url) as store:
            ids = [f"s{i}" for i in range(threads)]
            await launch(url, store, ids, "scale")
            await wait_for_calls(log, threads * (STEPS + 1) // 3, seconds=40)
            restarted_at = time.time()
            # `pg_ctl restart -m fast`, held down for a second: longer than a heartbeat, so every worker's
            # heartbeat and job fetching fail (Procrastinate's worker stops on either).
            pg_server.pg_ctl("stop", "-m", "fast")
            await asyncio.sleep(1.0)
            pg_server.pg_ctl("start")
            back_at = time.time()
            if back_at - restarted_at > 10:
                print(pg_server.log.read_text(errors="replace")[-5000:])
            await wait_for_all(log, ids, seconds=60)
            wrong = checked(store, ids)
            all_done = time.time() - restarted_at
            running = [proc.poll() is None for proc in workers]
    finally:
        stop(workers)
    exits = [proc.returncode for proc in workers]

    runs = read_log(str(log))
    after = [r["t"] for r in runs if r["t"] > back_at]
    print(
        f"\nPostgreSQL stopped (-m fast) and started again under 2 workers, {threads} threads x {STEPS} steps: down"
        f" {back_at - restarted_at:.1f} s, first model call {min(after, default=back_at) - back_at:.2f} s after it"
        f" was back, all done {all_done:.1f} s after the restart began"
    )
    lost = {tid: found for tid, found in wrong.items() if any(p.startswith("lost") for p in found)}
    assert not lost, f"{len(lost)} threads lost steps: {dict(list(lost.items())[:5])}"
    # Both workers lived through it (a worker used to exit, or stop taking jobs, when the database went away)
    # and stopped cleanly on our SIGTERM.
    errors = [(tmp_path / f"w{i}.err").read_text()[-4000:] for i in (0, 1)]
    assert running == [True, True] and exits == [0, 0], (running, exits, errors)
    assert not wrong, f"{len(wrong)} threads with a step, result or model call twice: {dict(list(wrong.items())[:3])}"
