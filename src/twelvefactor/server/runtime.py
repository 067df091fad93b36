"""What a running server holds: settings, agents, the (notifying) store, the dispatcher of thread advances."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from twelvefactor.agent import Agent
from twelvefactor.calls import EventLoopCalls
from twelvefactor.channels.base import Channel
from twelvefactor.errors import UserError
from twelvefactor.memory import MemoryBackend
from twelvefactor.server.bus import Notifier, NotifyingStore
from twelvefactor.server.changefeed import ChangeFeed
from twelvefactor.server.contacts import Contacts, check_contacts
from twelvefactor.server.deltas import Deltas
from twelvefactor.server.settings import ServerSettings
from twelvefactor.server.webhooks import Webhooks
from twelvefactor.store.base import ThreadStore
from twelvefactor.store.facts import memory_backend_for
from twelvefactor.store.postgres import PostgresStore
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
    contacts: Contacts
    deltas: Deltas
    feed: ChangeFeed | None = None  # PostgreSQL: other processes' writes reach the notifier
    memory: MemoryBackend | None = None  # the facts agents keep across threads, in the store's database
    stopping: bool = field(default=False)

    @classmethod
    def build(
        cls,
        settings: ServerSettings,
        agents: Mapping[str, Runnable],
        store: ThreadStore,
        *,
        channels: Mapping[str, Channel] | None = None,
    ) -> Runtime:
        agents = served(agents)
        people = {**build_channels(settings), **(channels or {})}
        check_contacts(settings, people, _tool_contacts(agents))
        notifier = Notifier()
        notifying = NotifyingStore(store, notifier)
        # Model replies as they stream, for live views; only the in-process worker's are seen here.
        deltas = Deltas(notifier)
        notifier.listeners.append(deltas.written)
        worker: Dispatcher
        if settings.queue == "procrastinate":
            from twelvefactor.workers.procrastinate import ProcrastinateDispatcher, ProcrastinateWorker

            in_process = None
            if settings.queue_worker:
                in_process = ProcrastinateWorker(
                    settings.database,
                    notifying,
                    agents,
                    concurrency=settings.max_in_flight,
                    calls=EventLoopCalls(limits=settings.model_limits, tool_threads=settings.workers),
                    shutdown_grace_s=settings.shutdown_grace_s,
                    install_signal_handlers=False,  # the server's own handlers stop it
                )
            worker = ProcrastinateDispatcher(settings.database, worker=in_process)
        else:
            calls = EventLoopCalls(limits=settings.model_limits, tool_threads=settings.workers)
            worker = Worker(
                notifying,
                agents,
                concurrency=settings.max_in_flight,
                calls=calls,
                on_delta=deltas.add,
                lease_s=settings.lease_s,
            )
        webhooks = Webhooks.for_store(settings, store, channels=people)
        if webhooks.endpoints:
            notifier.listeners.append(webhooks.listener)
        contacts = Contacts(settings, notifying, webhooks)
        if contacts.enabled:
            notifier.listeners.append(contacts.listener)
        feed = None
        if isinstance(store, PostgresStore):
            feed = ChangeFeed(store, notifier)
            notifier.listeners.append(feed.saw)
        return cls(
            settings=settings,
            agents=dict(agents),
            store=notifying,
            notifier=notifier,
            worker=worker,
            webhooks=webhooks,
            contacts=contacts,
            deltas=deltas,
            feed=feed,
            memory=_memory_of(store),
        )


def _memory_of(store: ThreadStore) -> MemoryBackend | None:
    """The memory in the store's own database; None for a store of your own kind (the memory pages say so)."""
    try:
        return memory_backend_for(store)
    except UserError:
        return None


def build_channels(settings: ServerSettings) -> dict[str, Channel]:
    """The channels ``settings.channels`` configures, by name."""
    from twelvefactor.channels.config import SlackChannelConfig
    from twelvefactor.channels.slack import SlackChannel

    built: dict[str, Channel] = {}
    for config in settings.channels:
        if isinstance(config, SlackChannelConfig):
            built[config.name] = SlackChannel.from_config(config)
            continue
        try:
            from twelvefactor.channels.email import EmailChannel
        except ImportError as exc:  # the email extra is not installed
            raise UserError(
                f"channel {config.name!r} sends email, which needs aiosmtplib: pip install 'twelvefactor[email]'"
            ) from exc
        built[config.name] = EmailChannel.from_config(config, secret=settings.secret)
    return built


def _tool_contacts(agents: Mapping[str, Runnable]) -> dict[str, str | None]:
    return {
        f"tool {intent!r} of agent {name!r}": tool.contact
        for name, agent in agents.items()
        if isinstance(agent, Agent)
        for intent, tool in agent.toolset.by_intent.items()
    }
