"""Schedules on Procrastinate: one periodic job a minute, deferred once however many workers defer it.

Skipped when the PostgreSQL server binaries or procrastinate are absent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

pytest.importorskip(
    "procrastinate", reason="procrastinate is not installed (pip install 'twelvefactor[procrastinate]')"
)

import psycopg  # noqa: E402
from procrastinate.periodic import PeriodicDeferrer  # noqa: E402

from twelvefactor import Agent, ScriptedModel  # noqa: E402
from twelvefactor.errors import ThreadNotFound  # noqa: E402
from twelvefactor.store import PostgresStore  # noqa: E402
from twelvefactor.triggers.schedules import Schedule  # noqa: E402
from twelvefactor.workers.procrastinate import SCHEDULES, ProcrastinateDispatcher, ProcrastinateWorker  # noqa: E402

pytestmark = pytest.mark.anyio

NIGHTLY = Schedule(name="nightly", cron="0 3 * * *", agent="bot", message="summarise", catch_up=False)
MINUTE = datetime(2026, 3, 30, 3, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def url(pg_empty_url: str) -> Iterator[str]:
    PostgresStore(pg_empty_url).close()
    yield pg_empty_url


def bot() -> Agent:
    return Agent("bot", model=ScriptedModel([{"intent": "done_for_now", "message": "summary"}] * 4))


async def test_three_workers_deferring_the_same_minute_start_the_run_once(url: str) -> None:
    with PostgresStore(url) as store:
        workers = [
            ProcrastinateWorker(
                url, store, {"bot": bot()}, poll_s=0.2, install_signal_handlers=False, schedules=[NIGHTLY]
            )
            for _ in range(3)
        ]
        running = ProcrastinateDispatcher(url, worker=workers[0])
        await running.start()
        try:
            # What each worker's periodic deferrer does at 03:00 (driven here rather than waiting for a minute).
            for worker in workers[1:]:
                async with worker.app.open_async():
                    (task,) = worker.app.periodic_registry.periodic_tasks.values()
                    await PeriodicDeferrer(worker.app.periodic_registry).defer_jobs([(task, int(MINUTE.timestamp()))])
            deadline = time.monotonic() + 15
            while True:
                try:
                    thread = store.load("sched-nightly-20260330T0300")
                    if thread.status == "done":
                        break
                except ThreadNotFound:
                    pass
                assert time.monotonic() < deadline, "the scheduled run did not start and finish"
                await asyncio.sleep(0.05)
        finally:
            await running.stop(timeout=5)
        assert [row.id for row in store.list()] == ["sched-nightly-20260330T0300"]
        assert thread.events[0].model_dump()["schedule"] == "nightly"
    with psycopg.connect(url) as conn:
        jobs = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s", (SCHEDULES,)).fetchone()
        defers = conn.execute("SELECT count(*) FROM procrastinate_periodic_defers").fetchone()
    assert defers == (1,)  # two deferrers, one defer recorded
    assert jobs is not None and jobs[0] <= 1  # finished jobs are deleted
