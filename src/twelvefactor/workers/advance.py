"""Advancing one thread, shared by every worker: the in-process pool and the Procrastinate task.

A worker decides *where* and *when* a thread is advanced (its queue, its lock or lease, its retries);
what advancing means is defined once, here: run an agent's loop or a workflow's steps while the thread
has work, queue a workflow's sub-threads and wake a stopped sub-thread's parent through ``submit``, and
say when a workflow sleeping on a durable timer is due. ``advance_on`` runs on the worker's event loop
(the in-process worker's task, or a Procrastinate job), through the calls of ``twelvefactor.calls``.
``submit`` must be safe to call from a worker thread (a workflow's code runs in one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from twelvefactor.calls import Calls
from twelvefactor.errors import CassetteError, ThreadNotFound, compact, is_transient
from twelvefactor.events import Error
from twelvefactor.loop import Stop, arun, next_action, sub_thread_wait
from twelvefactor.store.base import ThreadStore
from twelvefactor.thread import DeltaCallback, Thread
from twelvefactor.workflows.runner import Runnable, Workflow, has_work, run_workflow, wake_at

log = logging.getLogger("twelvefactor.worker")

MAX_BACKOFF_S = 30.0

Submit = Callable[[str], None]
ShouldStop = Callable[[], bool]


async def advance_on(
    calls: Calls,
    targets: Mapping[str, Runnable],
    store: ThreadStore,
    thread_id: str,
    *,
    submit: Submit,
    should_stop: ShouldStop,
    on_delta: DeltaCallback | None = None,
) -> float | None:
    """Advance the thread while it has work (and ``should_stop`` is false), making every outside call
    through ``calls``: on an event loop (``EventLoopCalls``) an agent's steps are awaited (``arun``) and a
    workflow's synchronous code runs in a thread of its pool.

    Returns the seconds until its durable timer is due when a workflow sleeps on one (0 if it is due
    now), else None: it is done, failed, waiting for something outside, or was asked to stop. A thread
    of an agent not in ``targets`` gets a fatal error event. Errors of the run propagate (see ``failed``).
    """
    while not should_stop():
        thread = await calls.store(store, store.load, thread_id)
        target = targets.get(thread.agent or "")
        if target is None:
            serving = ", ".join(targets) or "none"
            message = f"no agent named {thread.agent!r} is served here (serving: {serving})"
            await calls.store(store, record_failure, store, thread_id, message)
            return None
        if isinstance(target, Workflow):
            if not await calls.store(store, has_work, target, thread, store):
                return timer_delay(thread)
            after = await calls.call(_run_workflow, target, thread, store, should_stop, submit)
            if after.version == thread.version:
                return timer_delay(after)  # nothing moved: it waits for something outside
            continue
        if isinstance(next_action(target, thread), Stop) and sub_thread_wait(thread) is None:
            await calls.store(store, wake_parent, targets, store, thread, submit)
            return None
        after = await arun(
            target, thread, store=store, should_stop=should_stop, spawn=submit, on_delta=on_delta, calls=calls
        )
        if after.version == thread.version or isinstance(next_action(target, after), Stop):
            await calls.store(store, wake_parent, targets, store, after, submit)
            return None
    return None


def _run_workflow(
    target: Workflow, thread: Thread, store: ThreadStore, should_stop: ShouldStop, submit: Submit
) -> Thread:
    return run_workflow(target, thread, store=store, should_stop=should_stop, spawn=submit)


def wake_parent(targets: Mapping[str, Runnable], store: ThreadStore, thread: Thread, submit: Submit) -> None:
    """A sub-agent stopped (done, failed, waiting, or at its workflow's answer): its parent (a workflow, or
    an agent that used it as a tool) may go on."""
    if thread.parent_id is None or thread.forked_at is not None:
        return
    try:
        parent = store.load(thread.parent_id)
    except ThreadNotFound:
        return
    if parent.agent in targets:
        submit(parent.id)


def still_needs_work(targets: Mapping[str, Runnable], store: ThreadStore, thread_id: str) -> bool:
    """Whether the thread has work now (an agent that would not stop, a workflow with a step to run)."""
    try:
        thread = store.load(thread_id)
    except ThreadNotFound:
        return False
    target = targets.get(thread.agent or "")
    if isinstance(target, Workflow):
        return has_work(target, thread, store)
    return target is not None and not isinstance(next_action(target, thread), Stop)


def record_failure(store: ThreadStore, thread_id: str, message: str) -> None:
    """A fatal error event on the thread (status failed), if it is still running."""
    if store.load(thread_id).status == "running":
        store.append(thread_id, Error(source="agent", message=compact(message), fatal=True))


def failure_streak(streaks: dict[str, int], thread_id: str, exc: Exception) -> int:
    """Count ``exc`` in the thread's streak of consecutive transient failures and return it (``attempt`` of
    ``failed``); any other failure ends the streak and counts 0."""
    if is_transient(exc):
        streaks[thread_id] = count = streaks.get(thread_id, 0) + 1
        return count
    streaks.pop(thread_id, None)
    return 0


def failed(store: ThreadStore, thread_id: str, exc: Exception, *, attempt: int, retry_s: float) -> float | None:
    """What to do after ``exc`` advancing the thread: the delay before trying again, or None.

    A transient failure (``attempt``: consecutive ones, from 1) is retried with backoff; any other is
    recorded on the thread as a fatal error event. If even that fails, the whole thread is tried later.
    """
    if is_transient(exc):
        delay = min(MAX_BACKOFF_S, retry_s * float(2 ** min(attempt - 1, 16)))
        log.warning("thread %s: %s; retry %d in %.2f s", thread_id, exc, attempt, delay)
        return delay
    if not isinstance(exc, CassetteError):
        log.error("thread %s failed", thread_id, exc_info=exc)
    try:
        record_failure(store, thread_id, f"{type(exc).__name__}: {exc}")
    except Exception as again:  # noqa: BLE001 - cannot even record it: try the whole thread again later
        log.error("thread %s: recording the failure failed too (%s); retrying later", thread_id, again)
        return retry_s * 10
    return None


def running_threads(store: ThreadStore, targets: Mapping[str, Runnable]) -> list[str]:
    """Every running thread of an agent in ``targets``."""
    ids: list[str] = []
    offset = 0
    while True:
        page = store.list(status="running", limit=500, offset=offset)
        ids.extend(s.id for s in page if s.agent in targets)
        if len(page) < 500:
            return ids
        offset += 500


def waiting_workflows(store: ThreadStore, targets: Mapping[str, Runnable]) -> list[tuple[str, float]]:
    """Waiting workflow threads that have work (delay 0) or a timer (seconds until it is due).

    What survives a restart: a timer's due time and a finished sub-thread are read off the store.
    """
    found: list[tuple[str, float]] = []
    for name, target in targets.items():
        if not isinstance(target, Workflow):
            continue
        offset = 0
        while True:
            page = store.list(agent=name, status="waiting", limit=500, offset=offset)
            for row in page:
                thread = store.load(row.id)
                if has_work(target, thread, store):
                    found.append((row.id, 0.0))
                else:
                    delay = timer_delay(thread)
                    if delay is not None:
                        found.append((row.id, delay))
            if len(page) < 500:
                break
            offset += 500
    return found


def timer_delay(thread: Thread) -> float | None:
    """Seconds until the thread's durable timer is due (0 if it is), None if it waits on no timer."""
    when = wake_at(thread)
    if when is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
