"""What a running server holds: settings, agents, the (notifying) store, the dispatcher of thread advances."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from twelvefactor.server.bus import Notifier, NotifyingStore
from twelvefactor.server.settings import ServerSettings
from twelvefactor.server.webhooks import Webhooks
from twelvefactor.store.base import ThreadStore
from twelvefactor.workers.inprocess import Worker
from twelvefactor.workflows.runner import Runnable, served


class Dispatcher(Protocol):
    """Where the server sends threads to be advanced: the in-process ``Worker`` (default) or a queue
    (``ProcrastinateDispatcher``: jobs that worker processes run). ``submit`` never blocks."""

    def submit(self, thread_id: str) -> None: ...

    async def start(self, *, recover: bool = True) -> None: ...

    async def stop(self, timeout: float = 30.0) -> None: ...

    async def idle(self) -> None: ...


@dataclass
class Runtime:
    settings: ServerSettings
    agents: Mapping[str, Runnable]
    store: NotifyingStore
    notifier: Notifier
    worker: Dispatcher
    webhooks: Webhooks
    stopping: bool = field(default=False)

    @classmethod
    def build(cls, settings: ServerSettings, agents: Mapping[str, Runnable], store: ThreadStore) -> Runtime:
        agents = served(agents)
        notifier = Notifier()
        notifying = NotifyingStore(store, notifier)
        worker: Dispatcher
        if settings.queue == "procrastinate":
            from twelvefactor.workers.procrastinate import ProcrastinateDispatcher, ProcrastinateWorker

            in_process = None
            if settings.queue_worker:
                in_process = ProcrastinateWorker(
                    settings.database,
                    notifying,
                    agents,
                    concurrency=settings.workers,
                    shutdown_grace_s=settings.shutdown_grace_s,
                    install_signal_handlers=False,  # the server's own handlers stop it
                )
            worker = ProcrastinateDispatcher(settings.database, worker=in_process)
        else:
            worker = Worker(notifying, agents, concurrency=settings.workers, lease_s=settings.lease_s)
        webhooks = Webhooks.for_store(settings, store)
        if webhooks.enabled:
            notifier.listeners.append(webhooks.listener)
        return cls(
            settings=settings,
            agents=dict(agents),
            store=notifying,
            notifier=notifier,
            worker=worker,
            webhooks=webhooks,
        )
