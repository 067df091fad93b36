"""Workers on Procrastinate: threads advanced by jobs in the store's PostgreSQL database.

Skipped when the PostgreSQL server binaries or procrastinate are absent (the ``pg_server`` fixture
says which binaries it looked for).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "procrastinate", reason="procrastinate is not installed (pip install 'twelvefactor[procrastinate]')"
)

from twelvefactor import Agent, Done, Flow, ScriptedModel, Thread, ToolCall, ToolResult, UserMessage, workflow  # noqa: E402
from twelvefactor.server import ServerSettings, create_app  # noqa: E402
from twelvefactor.store import PostgresStore  # noqa: E402
from twelvefactor.store.base import ThreadStore  # noqa: E402
from twelvefactor.workers.procrastinate import (  # noqa: E402
    ProcrastinateDispatcher,
    ProcrastinateWorker,
    ensure_schema,
)
from twelvefactor.workflows.runner import Runnable  # noqa: E402

from .processes import launch, stop  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def url(pg_empty_url: str) -> Iterator[str]:
    """A database of its own (Procrastinate's tables beside the store's), migrated."""
    PostgresStore(pg_empty_url).close()
    yield pg_empty_url


async def until(store: ThreadStore, thread_id: str, status: str, seconds: float = 15.0) -> Thread:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        thread = store.load(thread_id)
        if thread.status == status:
            return thread
        await asyncio.sleep(0.02)
    raise AssertionError(f"thread {thread_id} is {store.load(thread_id).status}, not {status}")


@asynccontextmanager
async def queue(url: str, store: ThreadStore, agents: dict[str, Runnable]) -> AsyncIterator[ProcrastinateDispatcher]:
    worker = ProcrastinateWorker(
        url, store, agents, concurrency=4, heartbeat_s=0.2, stalled_s=1.0, poll_s=0.2, install_signal_handlers=False
    )
    dispatcher = ProcrastinateDispatcher(url, worker=worker)
    await dispatcher.start()
    try:
        yield dispatcher
    finally:
        await dispatcher.stop(timeout=5)


def test_the_schema_is_applied_once(url: str) -> None:
    assert ensure_schema(url) is True
    assert ensure_schema(url) is False


async def test_a_thread_submitted_to_the_queue_completes(url: str) -> None:
    bot = Agent("bot", model=ScriptedModel([{"intent": "done_for_now", "message": "hi"}]))
    with PostgresStore(url) as store:
        async with queue(url, store, {"bot": bot}) as dispatcher:
            store.create(Thread.new(UserMessage(content="hello"), agent="bot", id="t1"))
            dispatcher.submit("t1")
            dispatcher.submit("t1")  # a second submit while one job waits is a no-op
            done = await until(store, "t1", "done")
    assert done.events[-1].message == "hi"  # type: ignore[attr-defined]


async def test_the_server_enqueues_and_a_human_answer_finishes_the_thread(url: str) -> None:
    import httpx

    bot = Agent(
        "asker",
        model=ScriptedModel(
            [
                {"intent": "request_human_input", "question": "which numbers?"},
                {"intent": "done_for_now", "message": "42"},
            ]
        ),
    )
    settings = ServerSettings(database=url, queue="procrastinate", queue_worker=True, shutdown_grace_s=2)
    app = create_app([bot], settings=settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            response = await client.post("/v1/threads", json={"agent": "asker", "message": "add"})
            assert response.status_code == 202, response.text
            thread_id = response.json()["id"]
            body = await _status(client, thread_id, "waiting")
            request_id = body["pending_request"]["call_id"]
            answered = await client.post(
                f"/v1/threads/{thread_id}/responses", json={"request_id": request_id, "text": "12 and 30"}
            )
            assert answered.status_code in (200, 202), answered.text
            body = await _status(client, thread_id, "done")
    assert body["status"] == "done"


async def _status(client: Any, thread_id: str, status: str, seconds: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        body: dict[str, Any] = (await client.get(f"/v1/threads/{thread_id}")).json()
        if body["status"] == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"thread {thread_id} stayed {body['status']}, wanted {status}")
        await asyncio.sleep(0.02)


async def test_a_workflow_with_a_sub_agent_and_a_timer_completes(url: str) -> None:
    helper = Agent("helper", model=ScriptedModel([{"intent": "done_for_now", "message": "checked"}]))

    @workflow(agents=[helper])
    def pipeline(wf: Flow) -> str:
        answer = wf.agent(helper, "check the build")
        wf.sleep(0.5)
        return f"after: {answer}"

    with PostgresStore(url) as store:
        async with queue(url, store, {"pipeline": pipeline}) as dispatcher:
            thread = pipeline.new_thread("go")
            store.create(thread)
            started = time.monotonic()
            dispatcher.submit(thread.id)
            done = await until(store, thread.id, "done")
            took = time.monotonic() - started
    assert "checked" in str(done.events[-1].message)  # type: ignore[attr-defined]
    assert [e.intent for e in done.events if isinstance(e, ToolCall)].count("sleep") == 1
    assert took >= 0.5  # the timer was kept


# --- two worker processes, one killed with SIGKILL mid-run ---

WORKER = """
import sys
sys.path.insert(0, {server_tests!r})
from slow_agent import agent
from twelvefactor.workers.procrastinate import run_worker
run_worker({url!r}, {{"slow": agent}}, concurrency=4, heartbeat_s=0.3, stalled_s=1.5, scan_s=60, poll_s=0.2)
"""

THREADS = 20


def _spawn(url: str, log: Path) -> subprocess.Popen[bytes]:
    code = WORKER.format(server_tests=str(ROOT / "tests" / "server"), url=url)
    env = {**os.environ, "SLOW_AGENT_LOG": str(log), "SLOW_AGENT_SLEEP": "0.05", "PYTHONPATH": str(ROOT / "src")}
    with open(str(log) + ".err", "ab") as errors:  # the workers' warnings, to look at after a failure
        return subprocess.Popen([sys.executable, "-c", code], env=env, stderr=errors)


async def test_a_killed_worker_loses_and_duplicates_nothing(url: str, tmp_path: Path) -> None:
    log = tmp_path / "work.log"
    ensure_schema(url)
    workers = [_spawn(url, log), _spawn(url, log)]
    try:
        with PostgresStore(url) as store:
            ids = [f"k{i}" for i in range(THREADS)]
            await launch(url, store, ids, "slow")
            # Mid-run: wait until the first victim has done some work, then kill it.
            victim = workers[0]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if (
                    log.exists()
                    and sum(1 for line in log.read_text().splitlines() if f'"pid": {victim.pid}' in line) >= 3
                ):
                    break
                await asyncio.sleep(0.01)
            victim.send_signal(signal.SIGKILL)
            killed_at = time.time()
            victim.wait(5)
            for thread_id in ids:
                await until(store, thread_id, "done", seconds=30)
            all_done = time.time() - killed_at
            threads = [store.load(thread_id) for thread_id in ids]
    finally:
        stop(workers)

    for thread in threads:
        # Nothing lost, nothing twice: three calls and three results, n = 0, 1, 2, in order, then done.
        calls = [e for e in thread.events if isinstance(e, ToolCall)]
        results = [e for e in thread.events if isinstance(e, ToolResult)]
        assert [c.arguments.get("n") for c in calls] == [0, 1, 2], thread.id
        assert len(results) == 3, thread.id
        assert thread.version == len(thread.events)

    runs = [json.loads(line) for line in log.read_text().splitlines()]
    by_victim = {r["tag"] for r in runs if r["pid"] == victim.pid}
    orphans = {r["tag"] for r in runs if r["pid"] != victim.pid and r["start"] > killed_at} & by_victim
    picked_up = [
        min(r["start"] for r in runs if r["tag"] == tag and r["pid"] != victim.pid and r["start"] > killed_at)
        - killed_at
        for tag in orphans
    ]
    recovery = max(picked_up, default=0.0)
    print(
        f"\nkill -9 of 1 of 2 workers, {THREADS} threads x 3 steps: all done {all_done:.2f} s after the kill;"
        f" {len(orphans)} threads of the killed worker picked up by the other within {recovery:.2f} s;"
        f" tool runs {len(runs)} for {THREADS * 3} steps"
    )
    assert recovery < 10


async def test_a_worker_process_keeps_many_threads_waiting_on_the_model_at_once(url: str) -> None:
    """Jobs run on the worker's event loop: 60 threads are inside their model call at the same moment."""
    from twelvefactor import ModelResponse

    count = 60
    all_in = asyncio.Event()
    in_flight = 0

    class Gated:
        name = "gated"

        def complete(self, messages: object) -> ModelResponse:
            raise AssertionError("jobs await acomplete")

        async def acomplete(self, messages: object, **options: object) -> ModelResponse:
            nonlocal in_flight
            in_flight += 1
            if in_flight == count:
                all_in.set()
            await asyncio.wait_for(all_in.wait(), 20)
            return ModelResponse(text='{"intent": "done_for_now", "message": "ok"}', model="gated")

    store = PostgresStore(url)
    try:
        ids = [f"g{i}" for i in range(count)]
        for thread_id in ids:
            store.create(Thread.new(UserMessage(content="hi"), agent="gated", id=thread_id))
        worker = ProcrastinateWorker(
            url, store, {"gated": Agent("gated", model=Gated())}, poll_s=0.2, install_signal_handlers=False
        )
        dispatcher = ProcrastinateDispatcher(url, worker=worker)
        await dispatcher.start()
        try:
            for thread_id in ids:
                dispatcher.submit(thread_id)
            for thread_id in ids:
                await until(store, thread_id, "done", seconds=30)
        finally:
            await dispatcher.stop(timeout=5)
        assert all_in.is_set()
    finally:
        store.close()


async def test_a_stopping_worker_keeps_its_running_jobs_from_being_taken_over(url: str) -> None:
    """Procrastinate's worker stops its heartbeat when it shuts down, before its running jobs end: a job
    still waiting on its model then looked stalled to the other workers, and its thread ran twice."""
    from twelvefactor import ModelResponse

    started, release = asyncio.Event(), asyncio.Event()

    class Gated:
        name = "gated"

        def complete(self, messages: object) -> ModelResponse:
            raise AssertionError("jobs await acomplete")

        async def acomplete(self, messages: object, **options: object) -> ModelResponse:
            started.set()
            await asyncio.wait_for(release.wait(), 20)
            return ModelResponse(text='{"intent": "done_for_now", "message": "slow"}', model="gated")

    timings: dict[str, Any] = {"heartbeat_s": 0.2, "stalled_s": 1.0, "poll_s": 0.2, "install_signal_handlers": False}
    with PostgresStore(url) as store:
        store.create(Thread.new(UserMessage(content="hi"), agent="gated", id="long"))
        first = ProcrastinateWorker(url, store, {"gated": Agent("gated", model=Gated())}, **timings)
        other_model = ScriptedModel([{"intent": "done_for_now", "message": "twice"}])
        other = ProcrastinateWorker(url, store, {"gated": Agent("gated", model=other_model)}, **timings)
        dispatcher = ProcrastinateDispatcher(url, worker=first)
        await dispatcher.start()
        try:
            dispatcher.submit("long")
            await asyncio.wait_for(started.wait(), 15)
            other.start()
            stopping = asyncio.create_task(first.stop(timeout=10))  # waits for the job in flight
            await asyncio.sleep(2.5)  # well past stalled_s
            assert other.recovered == [], "a running job of a live worker was put back in the queue"
            release.set()
            await stopping
        finally:
            release.set()
            await dispatcher.stop(timeout=5)
            await other.stop(timeout=5)
        done = await until(store, "long", "done")
    assert [e.message for e in done.events if isinstance(e, Done)] == ["slow"]  # type: ignore[attr-defined]
