"""Start a thread: the one path the API, schedules, inbound webhooks, email and Slack all take.

The id makes a start idempotent: starting the same id again (a retried request, a redelivered webhook, a
schedule fired by two processes) returns the thread that is there and submits nothing new, so a thread is
never started twice. Another agent's thread under that id is a ConflictError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from twelvefactor.errors import ConflictError, UnknownAgentError
from twelvefactor.events import Event
from twelvefactor.store.base import ThreadStore
from twelvefactor.thread import Thread
from twelvefactor.workflows.runner import Runnable

__all__ = ["Submit", "start_thread"]

Submit = Callable[[str], None]
"""Hands a thread id to whatever advances threads (the in-process worker, a queue); never blocks."""


def start_thread(
    store: ThreadStore,
    submit: Submit,
    agents: Mapping[str, Runnable],
    agent: str,
    events: Sequence[Event],
    *,
    thread_id: str | None = None,
) -> tuple[Thread, bool]:
    """Create a thread of ``agent`` with ``events`` and submit it; ``(thread, started)``.

    ``started`` is False when a thread of the same agent already had ``thread_id``: that thread is returned
    unchanged. Blocking (store I/O): call it from a worker thread in async code.
    """
    runnable = agents.get(agent)
    if runnable is None:
        raise UnknownAgentError(f"no agent named {agent!r} is served here; served: {', '.join(agents) or 'none'}")
    thread = Thread.new(*events, agent=runnable.name, id=thread_id)
    try:
        store.create(thread)
    except ConflictError:
        existing = store.load(thread.id)
        if existing.agent != runnable.name:
            raise
        return existing, False
    submit(thread.id)
    return thread, True
