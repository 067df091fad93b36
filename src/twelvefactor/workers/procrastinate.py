"""Workers on Procrastinate: threads advanced by jobs in the PostgreSQL database the store lives in.

The scale-out path (N web processes, M worker processes, one PostgreSQL): the web side *enqueues* a
thread advance (``ProcrastinateDispatcher.submit``) and ``twelvefactor worker`` processes
(``run_worker``) run them. What advancing means is ``workers/advance.py``, the in-process worker's.

Jobs. One task, ``twelvefactor.advance_thread(thread_id)``, deferred with ``lock=thread_id`` (Procrastinate
never runs two jobs of one lock at once: one thread's steps never run in two places; the store's version
check is the second guard) and ``queueing_lock=thread_id`` (at most one such job waits per thread; a
submit while one waits is a no-op, and one while a job runs queues the next look, like the in-process
worker's ``_again``). A workflow's sub-threads are deferred as their own jobs, a stopped sub-thread
defers its parent, and a workflow sleeping on a durable timer gets a ``twelvefactor.wake_thread`` job
scheduled for when it is due (``schedule_in``). That one has no lock on purpose: a waiting job of a
lock holds back every later job of that lock, due or not, so a timer an hour away would block an
answer given meanwhile; when it runs it just defers the (locked) advance.

Crashes. Each worker process sends a heartbeat (``heartbeat_s``); every worker looks for jobs left
``doing`` by a process whose heartbeat is older than ``stalled_s`` and puts them back to ``todo``
(``retry_job``): a SIGKILLed worker's threads are running again within about ``stalled_s`` plus one
check and one poll (``poll_s``: jobs put back send no NOTIFY).
A slow scan (``scan_s``) also defers every running thread and every due or soon-due workflow of the
served agents, for what no job covers (an enqueue lost with the web process that made it).

The database going away (a PostgreSQL restart) ends Procrastinate's worker (a failed fetch or heartbeat),
not the process: it is started again. Its jobs still running keep their heartbeat (``_keep_alive``), and
after an outage nothing is put back, nor the worker started again (which prunes stale workers), until the
database has answered for ``stalled_s``: during one, every live worker's heartbeat goes stale too.

The schema is Procrastinate's own tables and functions, in the store's database, applied once under an
advisory lock when the first process starts (``ensure_schema``). procrastinate and psycopg are imported
only when this module is: the embedded default never needs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from procrastinate import App, JobContext, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued, ConnectorException
from procrastinate.jobs import Job, Status

from twelvefactor._backoff import backoff_s
from twelvefactor.calls import EventLoopCalls
from twelvefactor.errors import ModelCancelled, ThreadNotFound
from twelvefactor.store.base import ThreadStore
from twelvefactor.triggers.schedules import Schedule, fire_due
from twelvefactor.workers.advance import (
    advance_on,
    failed,
    failure_streak,
    running_threads,
    still_needs_work,
    waiting_workflows,
)
from twelvefactor.workflows.runner import Runnable, served

log = logging.getLogger("twelvefactor.worker")

T = TypeVar("T")

QUEUE = "twelvefactor"
ADVANCE = "twelvefactor.advance_thread"
WAKE = "twelvefactor.wake_thread"
SCHEDULES = "twelvefactor.fire_schedules"

# After Procrastinate's worker ended on its own (the database went away), wait this long before starting it
# again, doubling up to the maximum while it keeps ending at once.
_RESTART_S = 0.5
_MAX_RESTART_S = 5.0

# An arbitrary constant: the advisory lock key under which the schema is checked and applied.
_SCHEMA_LOCK = 0x7446_5072_6F63  # "tFProc"

__all__ = ["ProcrastinateDispatcher", "ProcrastinateWorker", "ensure_schema", "make_app", "run_worker"]


def ensure_schema(url: str) -> bool:
    """Apply Procrastinate's schema to the database at ``url`` unless it is there; True if applied now.

    Idempotent and safe when several processes start at once (an advisory lock serialises them).
    """
    import psycopg
    from procrastinate.schema import SchemaManager

    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
        if row is not None and row[0]:
            return False
        conn.execute(SchemaManager.get_schema())
        return True


def make_app(url: str, *, max_size: int = 10) -> App:
    """A Procrastinate app on the database at ``url`` (not yet opened)."""
    return App(connector=PsycopgConnector(conninfo=url, min_size=1, max_size=max_size))


def _advance_options(thread_id: str) -> dict[str, Any]:
    return {"lock": thread_id, "queueing_lock": thread_id, "queue": QUEUE}


def defer_advance(app: App, thread_id: str) -> None:
    """Queue a look at the thread (sync; from a worker thread); a no-op when one already waits."""
    with contextlib.suppress(AlreadyEnqueued):
        app.configure_task(ADVANCE, **_advance_options(thread_id)).defer(thread_id=thread_id)


async def defer_advance_async(app: App, thread_id: str) -> None:
    with contextlib.suppress(AlreadyEnqueued):
        await app.configure_task(ADVANCE, **_advance_options(thread_id)).defer_async(thread_id=thread_id)


async def defer_wake_async(app: App, thread_id: str, delay_s: float) -> None:
    if delay_s <= 0:
        await defer_advance_async(app, thread_id)
        return
    await app.configure_task(WAKE, queue=QUEUE, schedule_in={"seconds": delay_s}).defer_async(thread_id=thread_id)


class _Deferrals:
    """Advances deferred as tasks of the running loop, so a submit never waits on the database.

    ``add`` is called on the loop. An enqueue that fails is logged: a worker's scan defers the thread later.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self._pending: set[asyncio.Task[None]] = set()

    def add(self, thread_id: str) -> None:
        task = asyncio.create_task(self._defer(thread_id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def idle(self) -> None:
        """Wait until every advance added so far is enqueued (or its failure logged)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _defer(self, thread_id: str) -> None:
        try:
            await defer_advance_async(self.app, thread_id)
        except Exception:  # noqa: BLE001 - the workers' scan finds the thread later
            log.warning("enqueueing thread %s failed; a worker's scan will pick it up", thread_id, exc_info=True)


class ProcrastinateWorker:
    """Runs jobs of ``twelvefactor.advance_thread`` for ``agents`` (agents and workflows) on ``store``.

    ``run`` is the whole worker (a process's foreground, or a task beside a server); ``stop`` ends it
    gracefully: jobs in flight finish their step, and their threads are deferred again if unfinished.
    """

    def __init__(
        self,
        url: str,
        store: ThreadStore,
        agents: Mapping[str, Runnable],
        *,
        concurrency: int = 100,
        calls: EventLoopCalls | None = None,
        heartbeat_s: float = 1.0,
        stalled_s: float = 5.0,
        scan_s: float = 30.0,
        poll_s: float = 1.0,
        retry_s: float = 0.2,
        shutdown_grace_s: float = 20.0,
        install_signal_handlers: bool = True,
        name: str | None = None,
        schedules: Sequence[Schedule] = (),
    ) -> None:
        self.url = url
        self.schedules = tuple(schedules)
        self.store = store
        self.targets: dict[str, Runnable] = served(agents)
        self.concurrency = concurrency
        self.heartbeat_s = heartbeat_s
        self.stalled_s = stalled_s
        self.scan_s = scan_s
        self.poll_s = poll_s
        self.retry_s = retry_s
        self.shutdown_grace_s = shutdown_grace_s
        self.install_signal_handlers = install_signal_handlers
        self.name = name
        self.calls = calls or EventLoopCalls()
        # Jobs hold a connection only while Procrastinate fetches or finishes them, not while they run.
        self.app = make_app(url, max_size=min(concurrency, 16) + 4)
        self._failures: dict[str, int] = {}  # touched on the event loop only
        self._running_on: Counter[int] = Counter()  # Procrastinate worker id -> its jobs running here
        self._up_since: float | None = float("-inf")  # loop time since the database answers; None: it does not
        self._deferrals = _Deferrals(self.app)
        self._stopping = threading.Event()
        self._main: asyncio.Task[None] | None = None
        self.recovered: list[int] = []  # ids of stalled jobs this worker put back (tests, logs)
        self._register()

    def _register(self) -> None:
        # Async tasks: a job runs on the worker's event loop (``advance_on``), so a thread waiting on its
        # model holds no OS thread and ``concurrency`` can be in the hundreds.
        @self.app.task(name=ADVANCE, queue=QUEUE, pass_context=True)
        async def advance_thread(context: JobContext, thread_id: str) -> None:
            worker_id = context.job.worker_id
            if worker_id is not None:
                self._running_on[worker_id] += 1
            try:
                await self._advance(thread_id, should_abort=context.should_abort)
            finally:
                if worker_id is not None:
                    self._running_on[worker_id] -= 1
                    if not self._running_on[worker_id]:
                        del self._running_on[worker_id]

        @self.app.task(name=WAKE, queue=QUEUE)
        async def wake_thread(thread_id: str) -> None:
            await defer_advance_async(self.app, thread_id)

        if self.schedules:
            # One job a minute for all schedules, deferred once across every worker (Procrastinate records
            # each periodic defer). The cron times are read in each schedule's own zone by fire_due, which
            # Procrastinate's UTC-only cron could not do; a run's thread id keeps it to one start anyway.
            @self.app.periodic(cron="* * * * *", periodic_id=SCHEDULES)
            @self.app.task(name=SCHEDULES, queue=QUEUE, queueing_lock=SCHEDULES)
            def fire_schedules(timestamp: int) -> None:
                minute = datetime.fromtimestamp(timestamp, UTC)
                fire_due(self.store, lambda other: defer_advance(self.app, other), self.targets, self.schedules, minute)

    # --- one job (a task on the worker's event loop) ---

    async def _advance(self, thread_id: str, *, should_abort: Any) -> None:
        loop = asyncio.get_running_loop()

        def should_stop() -> bool:
            return self._stopping.is_set() or bool(should_abort())

        def submit(other: str) -> None:
            # Called on the loop (an agent's sub-thread) or from a pool thread (a workflow's code).
            loop.call_soon_threadsafe(self._deferrals.add, other)

        try:
            delay = await advance_on(
                self.calls, self.targets, self.store, thread_id, submit=submit, should_stop=should_stop
            )
            self._failures.pop(thread_id, None)
        except ThreadNotFound:
            return
        except ModelCancelled:
            log.info("thread %s: model call cancelled; left resumable as recorded", thread_id)
            delay = None
        except Exception as exc:  # noqa: BLE001 - recorded on the thread, or retried
            count = failure_streak(self._failures, thread_id, exc)
            delay = await self._in_store(failed, self.store, thread_id, exc, attempt=count, retry_s=self.retry_s)
        if (
            delay is None
            and should_stop()
            and await self._in_store(still_needs_work, self.targets, self.store, thread_id)
        ):
            delay = 0.0  # stopped mid-thread: the next worker goes on
        if delay is not None:
            await defer_wake_async(self.app, thread_id, delay)

    async def _in_store(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self.calls.store(self.store, fn, *args, **kwargs)

    # --- the worker ---

    async def run(self) -> None:
        """Open the app (schema applied if missing), run the worker until stopped, close."""
        await asyncio.to_thread(ensure_schema, self.url)
        async with self.app.open_async():
            side = [
                asyncio.create_task(self._recover_stalled(), name="recover-stalled"),
                asyncio.create_task(self._scan(), name="scan"),
                asyncio.create_task(self._keep_alive(), name="keep-alive"),
            ]
            try:
                await self._run_jobs()
            finally:
                self._stopping.set()
                for task in side:
                    task.cancel()
                await asyncio.gather(*side, return_exceptions=True)

    async def _run_jobs(self) -> None:
        """Procrastinate's worker until stopped, started again whenever it ends on its own.

        It ends when the database goes away (a failed fetch raises, a failed heartbeat stops it): a restart
        of PostgreSQL must not end the process. Jobs it left ``doing`` are put back by ``_recover_stalled``.
        The signals are ours, not Procrastinate's, to tell a requested stop from an ended run.
        """
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        signalled = False

        def on_signal() -> None:
            nonlocal signalled
            signalled = True
            self._stopping.set()
            if current is not None:
                current.cancel()  # Procrastinate's worker shuts down gracefully on cancellation

        handled = (signal.SIGINT, signal.SIGTERM)
        if self.install_signal_handlers and threading.current_thread() is threading.main_thread():
            for number in handled:
                loop.add_signal_handler(number, on_signal)
        restarts = 0  # in a row: reset by a run that lasted
        try:
            while not self._stopping.is_set():
                started = loop.time()
                try:
                    await self.app.run_worker_async(
                        queues=[QUEUE],
                        name=self.name or "twelvefactor",
                        concurrency=self.concurrency,
                        update_heartbeat_interval=self.heartbeat_s,
                        stalled_worker_timeout=self.stalled_s,
                        # New jobs arrive by LISTEN/NOTIFY; a job put back by a recovery (no NOTIFY) by polling.
                        fetch_job_polling_interval=self.poll_s,
                        shutdown_graceful_timeout=self.shutdown_grace_s,
                        delete_jobs="successful",
                        install_signal_handlers=False,
                    )
                except ConnectorException:
                    log.warning("the worker lost the database", exc_info=True)
                if self._stopping.is_set():
                    break
                self._up_since = None  # most likely unreachable: _recover_stalled says when it answers again
                restarts = 0 if loop.time() - started > 10 * _MAX_RESTART_S else restarts + 1
                pause = backoff_s(restarts, initial_s=_RESTART_S, max_s=_MAX_RESTART_S)
                log.warning("the worker stopped on its own (database unreachable?); starting it again in %.1f s", pause)
                await asyncio.sleep(pause)
                # On start it deletes the workers whose heartbeat is stale, and with them which jobs they
                # run: wait until live workers have had time to send theirs again.
                while not self._steady() and not self._stopping.is_set():
                    await asyncio.sleep(min(self.heartbeat_s, _RESTART_S))
        except asyncio.CancelledError:
            if not signalled:
                raise
        finally:
            if self.install_signal_handlers and threading.current_thread() is threading.main_thread():
                for number in handled:
                    loop.remove_signal_handler(number)

    def start(self) -> asyncio.Task[None]:
        """``run`` as a task of the running loop (beside a server)."""
        self._main = asyncio.create_task(self.run(), name="procrastinate-worker")
        return self._main

    async def stop(self, timeout: float | None = None) -> None:
        """Stop taking jobs; jobs in flight stop after their step (within ``timeout``), then close."""
        self._stopping.set()
        if self._main is None:
            return
        self._main.cancel()  # Procrastinate's worker shuts down gracefully on cancellation
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._main), timeout=(timeout or self.shutdown_grace_s) + 5)

    async def _keep_alive(self) -> None:
        """Keep the heartbeat of every Procrastinate worker with jobs still running here.

        Procrastinate's worker stops its heartbeat as soon as it shuts down (stopped, or the database
        went away), then waits for its running jobs: a job waiting on a slow model would look stalled to
        the other workers, and its thread would be advanced twice at once.
        """
        while True:
            await asyncio.sleep(self.heartbeat_s)
            for worker_id in list(self._running_on):
                try:
                    await self.app.job_manager.update_heartbeat(worker_id)
                except Exception:  # noqa: BLE001 - the database is away; the next round tries again
                    log.debug("heartbeat of worker %s failed", worker_id, exc_info=True)

    def _steady(self) -> bool:
        """Whether the database has been reachable for ``stalled_s``: long enough for every live worker's
        heartbeat to be fresh again after an outage (during one, every heartbeat goes stale)."""
        up_since = self._up_since
        return up_since is not None and asyncio.get_running_loop().time() - up_since >= self.stalled_s

    async def _recover_stalled(self) -> None:
        """Put jobs left ``doing`` by a dead worker (no heartbeat for ``stalled_s``) back in the queue.

        Not until the database has been back for ``stalled_s`` after an outage: a job still running in a
        live worker looks stalled until that worker's heartbeat gets through again.
        """
        interval = max(0.1, min(self.heartbeat_s, self.stalled_s / 4))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            asked = loop.time()
            try:
                stalled = await self.app.job_manager.get_stalled_jobs(
                    queue=QUEUE, seconds_since_heartbeat=self.stalled_s
                )
            except Exception:  # noqa: BLE001 - the next round tries again
                self._up_since = None
                log.warning("looking for stalled jobs failed", exc_info=True)
                continue
            now = loop.time()
            # An outage may also show only as a slow answer: the query waited in the pool for a connection.
            if self._up_since is None or now - asked > self.heartbeat_s:
                self._up_since = now
            if not self._steady():
                continue
            try:
                for job in stalled:
                    if await self._recover(job):
                        assert job.id is not None
                        self.recovered.append(job.id)
                        log.warning("job %s (%s) of a dead worker put back in the queue", job.id, job.call_string)
            except Exception:  # noqa: BLE001 - the next round tries again
                log.warning("looking for stalled jobs failed", exc_info=True)

    async def _recover(self, job: Job) -> bool:
        """Put a stalled job back to ``todo``; False if another worker got there first.

        A look at its thread may already be queued (a submit or a scan since the crash): the queueing
        lock then refuses a second waiting job, so the stalled one is closed as failed instead and the
        waiting one (which its lock held back until now) does the work.
        """
        manager = self.app.job_manager
        try:
            await manager.retry_job(job)
            return True
        except Exception:  # noqa: BLE001 - not doing any more, or its thread's queueing lock is taken
            log.debug("retrying stalled job %s failed", job.id, exc_info=True)
        try:
            await manager.finish_job(job, status=Status.FAILED, delete_job=False)
        except Exception:  # noqa: BLE001 - another worker recovered it first
            log.debug("closing stalled job %s failed", job.id, exc_info=True)
            return False
        thread_id = job.task_kwargs.get("thread_id")
        if isinstance(thread_id, str):
            await defer_advance_async(self.app, thread_id)
        return True

    async def _scan(self) -> None:
        """Defer every running thread and due workflow of the served agents (first at start)."""
        while True:
            try:
                for thread_id in await asyncio.to_thread(running_threads, self.store, self.targets):
                    await defer_advance_async(self.app, thread_id)
                for thread_id, delay in await asyncio.to_thread(waiting_workflows, self.store, self.targets):
                    if delay < self.scan_s:
                        await defer_wake_async(self.app, thread_id, delay)
            except Exception:  # noqa: BLE001 - the next scan tries again
                log.warning("scanning for running threads failed", exc_info=True)
            await asyncio.sleep(self.scan_s)


class ProcrastinateDispatcher:
    """What a server submits thread advances to when the queue is Procrastinate: ``submit`` enqueues a job.

    With ``worker`` (a ``ProcrastinateWorker``), jobs are also run in this process (small deployments).
    ``submit`` is called on the event loop (API routes) or from any thread; the enqueue itself is a task,
    awaited by ``stop``. An enqueue that fails is logged; the workers' scan defers the thread later.
    """

    def __init__(self, url: str, *, worker: ProcrastinateWorker | None = None) -> None:
        self.url = url
        self.worker = worker
        self.app = make_app(url, max_size=4)  # its own pool: enqueues never wait behind jobs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deferrals = _Deferrals(self.app)
        self._opened = False

    async def start(self, *, recover: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(ensure_schema, self.url)
        await self.app.open_async()
        self._opened = True
        if self.worker is not None:
            self.worker.start()

    def submit(self, thread_id: str) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deferrals.add(thread_id)
        else:
            loop.call_soon_threadsafe(self._deferrals.add, thread_id)

    def submit_threadsafe(self, thread_id: str) -> None:
        self.submit(thread_id)

    async def idle(self) -> None:
        """Wait until every submit so far is enqueued."""
        await self._deferrals.idle()

    async def stop(self, timeout: float = 30.0) -> None:
        await self.idle()
        if self.worker is not None:
            await self.worker.stop(timeout)
        if self._opened:
            await self.app.close_async()
            self._opened = False


def run_worker(
    url: str,
    agents: Mapping[str, Runnable],
    *,
    concurrency: int = 100,
    heartbeat_s: float = 1.0,
    stalled_s: float = 5.0,
    scan_s: float = 30.0,
    poll_s: float = 1.0,
    shutdown_grace_s: float = 20.0,
    schedules: Sequence[Schedule] = (),
    calls: EventLoopCalls | None = None,
) -> None:
    """A worker process's foreground (``twelvefactor worker``): runs until SIGINT/SIGTERM.

    ``calls`` sets the per-model limits and thread pools (``EventLoopCalls``) of every job in the process.
    """
    from twelvefactor.store.postgres import PostgresStore

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    calls = calls or EventLoopCalls()
    store = PostgresStore(url, max_size=calls.store_threads + 2)  # store calls run in that pool
    try:
        worker = ProcrastinateWorker(
            url,
            store,
            agents,
            concurrency=concurrency,
            heartbeat_s=heartbeat_s,
            stalled_s=stalled_s,
            scan_s=scan_s,
            poll_s=poll_s,
            shutdown_grace_s=shutdown_grace_s,
            schedules=schedules,
            calls=calls,
        )
        asyncio.run(worker.run())
    finally:
        store.close()
