"""The retention policy, run by the server: finished threads past their agent's retention period are deleted.

``retention_days`` maps an agent's name to days; ``"*"`` is every agent served here that has no rule of its
own. Threads of agents no rule names (and of agents not served here) are kept. Every ``retention_interval_s``
the server prunes what is due (``prune_older_than``: done and failed threads not updated for that long, a
batch per transaction): several servers pruning at once delete each thread once, and a running or waiting
thread is never pruned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime

from twelvefactor.server.settings import ServerSettings
from twelvefactor.store.base import ThreadStore
from twelvefactor.store.retention import prune_older_than

log = logging.getLogger("twelvefactor.retention")

__all__ = ["Retention", "retention_rules"]


def retention_rules(policy: dict[str, float], served: Iterable[str]) -> list[tuple[str, float]]:
    """(agent, days) for each agent the policy reaches: its own rule, else ``"*"``'s if served here."""
    rules = {name: days for name, days in policy.items() if name != "*"}
    default = policy.get("*")
    if default is not None:
        for name in served:
            rules.setdefault(name, default)
    return sorted(rules.items())


class Retention:
    """Prunes on a timer while the server runs (``start``/``stop``); ``run_once`` is one pass."""

    def __init__(self, settings: ServerSettings, store: ThreadStore, served: Iterable[str]) -> None:
        self.rules = retention_rules(settings.retention_days, served)
        self.interval_s = settings.retention_interval_s
        self.store = store
        self.pruned = 0  # threads deleted by this process (health pages, tests)
        self._task: asyncio.Task[None] | None = None

    def run_once(self, now: datetime | None = None) -> int:
        """Prune every rule's due threads; how many were deleted."""
        total = 0
        for agent, days in self.rules:
            total += prune_older_than(self.store, days, agent=agent, now=now)
        self.pruned += total
        return total

    async def start(self) -> None:
        if self.rules:
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                pruned = await asyncio.to_thread(self.run_once)
                if pruned:
                    log.info("retention: deleted %d finished thread(s)", pruned)
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.warning("retention: pruning failed; trying again in %.0f s", self.interval_s, exc_info=True)
            await asyncio.sleep(self.interval_s)
