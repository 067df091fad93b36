"""A channel that records what it is asked to send and update: for tests of routing and the outbox."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from twelvefactor.channels.base import Answered, ChannelError, Notice, Receipt


@dataclass
class RecordingChannel:
    name: str = "fake"
    sent: list[Notice] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    updated: list[tuple[Notice, Receipt, Answered]] = field(default_factory=list)
    failures: list[ChannelError] = field(default_factory=list)  # raised by the next sends, in order

    async def send(self, notice: Notice) -> Receipt:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(notice)
        self.sent_at.append(time.perf_counter())
        return Receipt(ref=f"{notice.to}:{len(self.sent)}")

    async def update(self, notice: Notice, receipt: Receipt, answered: Answered) -> None:
        self.updated.append((notice, receipt, answered))

    async def aclose(self) -> None:
        pass

    async def wait_sent(self, n: int, timeout: float = 10.0) -> list[Notice]:
        deadline = time.monotonic() + timeout
        while len(self.sent) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.sent)} message(s) sent, wanted {n}")
            await asyncio.sleep(0.01)
        return self.sent

    async def wait_updated(self, n: int, timeout: float = 10.0) -> list[tuple[Notice, Receipt, Answered]]:
        deadline = time.monotonic() + timeout
        while len(self.updated) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.updated)} message(s) updated, wanted {n}")
            await asyncio.sleep(0.01)
        return self.updated
