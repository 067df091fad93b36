"""What a running server holds: settings, agents, the (notifying) store, the worker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from twelvefactor.server.bus import Notifier, NotifyingStore
from twelvefactor.server.settings import ServerSettings
from twelvefactor.server.webhooks import Webhooks
from twelvefactor.store.base import ThreadStore
from twelvefactor.workers.inprocess import Worker
from twelvefactor.workflows.runner import Runnable, served


@dataclass
class Runtime:
    settings: ServerSettings
    agents: Mapping[str, Runnable]
    store: NotifyingStore
    notifier: Notifier
    worker: Worker
    webhooks: Webhooks
    stopping: bool = field(default=False)

    @classmethod
    def build(cls, settings: ServerSettings, agents: Mapping[str, Runnable], store: ThreadStore) -> Runtime:
        agents = served(agents)
        notifier = Notifier()
        notifying = NotifyingStore(store, notifier)
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
