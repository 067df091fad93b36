"""Bounded storage: deleting a thread on request, and pruning finished threads past a retention period.

What the CLI (``twelvefactor threads delete | prune``) and the REST API (``DELETE /v1/threads/{id}``) call;
the store methods they use are :meth:`ThreadStore.delete` and :meth:`ThreadStore.prune`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from twelvefactor.errors import ConflictError, ThreadNotFound, UserError
from twelvefactor.events import Wait
from twelvefactor.store.base import FINISHED, ThreadStore, utcnow
from twelvefactor.thread import Status, Thread

__all__ = ["delete_thread", "prune_older_than"]


def delete_thread(store: ThreadStore, thread_id: str) -> None:
    """Delete a thread that is not running: ThreadNotFound if absent, ConflictError if it is running.

    A running thread is being (or about to be) advanced by a worker, which would go on writing to a
    thread that no longer exists: wait until it stops (waiting, done or failed). The check and the delete
    are two steps: a trigger landing in between can restart the thread, which is then deleted anyway.
    """
    thread = store.load(thread_id)
    if thread.status == "running":
        raise ConflictError(
            thread_id,
            message=f"thread {thread_id!r} is running: a worker is advancing it; delete it once it is waiting,"
            " done or failed",
        )
    waiting_parent = _parent_waiting_on(store, thread)
    if waiting_parent is not None:
        raise ConflictError(
            thread_id,
            message=f"thread {thread_id!r} is the sub-thread thread {waiting_parent!r} waits on: deleting it would"
            " leave that one waiting for ever; finish or delete the parent first",
        )
    if not store.delete(thread_id):
        raise ThreadNotFound(thread_id)


def _parent_waiting_on(store: ThreadStore, thread: Thread) -> str | None:
    """The id of the parent (a workflow, or an agent using this one as a tool) that waits on ``thread``."""
    if thread.parent_id is None or thread.forked_at is not None:
        return None
    try:
        parent = store.load(thread.parent_id)
    except ThreadNotFound:
        return None
    waiting = parent.waiting_on
    return parent.id if isinstance(waiting, Wait) and waiting.thread_id == thread.id else None


def prune_older_than(
    store: ThreadStore,
    days: float,
    *,
    agent: str | None = None,
    statuses: tuple[Status, ...] = FINISHED,
    batch: int = 1000,
    now: datetime | None = None,
) -> int:
    """Delete every finished thread not updated for ``days`` days, ``batch`` per transaction; how many."""
    if not days >= 0:  # also refuses NaN
        raise UserError(f"days must be 0 or more, got {days!r}")
    if batch < 1:
        raise UserError(f"batch must be 1 or more, got {batch!r}")
    cutoff = (utcnow() if now is None else now) - timedelta(days=days)
    total = 0
    while True:
        pruned = store.prune(older_than=cutoff, agent=agent, statuses=statuses, limit=batch)
        total += pruned
        if pruned < batch:
            return total
