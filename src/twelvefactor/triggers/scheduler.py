"""The embedded scheduler: one asyncio task that starts each schedule's runs when they are due.

``tick(now)`` is the whole decision (plain and synchronous, so tests drive it with any clock): every
schedule whose next run is due fires it. The loop only calls ``tick`` and sleeps until the next due
time, never longer than ``max_sleep_s``, so a clock that jumps (NTP, a suspended laptop) is noticed.

Once per run, whatever happens. A run's thread id is fixed by its time (``schedules.run_id``), so a
second scheduler on the same store (another process, a restart) that fires it finds the thread and
starts nothing. A fire that fails (the database busy, an agent no longer served) is logged and tried
again ``retry_s`` later, for as long as the run is within ``catch_up_window_s``.

Downtime. On its first tick, a scheduler with ``catch_up`` fires the latest run missed while nothing
was running, if it is within the window (older ones are skipped: a daily report missed for a week
runs once, not seven times). The same holds after a clock jump while running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from twelvefactor.store.base import ThreadStore
from twelvefactor.thread import Thread
from twelvefactor.triggers.schedules import Schedule, fire, latest_due, next_due
from twelvefactor.triggers.start import Submit
from twelvefactor.workflows.runner import Runnable

__all__ = ["Clock", "Scheduler"]

log = logging.getLogger("twelvefactor.schedules")

Clock = Callable[[], datetime]
"""Now, as an aware datetime."""

_JUST_BEFORE = timedelta(microseconds=1)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """Fires ``schedules`` on ``store``: ``start()``/``stop()`` run the loop; ``tick(now)`` is one look."""

    def __init__(
        self,
        store: ThreadStore,
        submit: Submit,
        agents: Mapping[str, Runnable],
        schedules: Sequence[Schedule],
        *,
        clock: Clock = _utc_now,
        max_sleep_s: float = 30.0,
        retry_s: float = 5.0,
    ) -> None:
        names = [schedule.name for schedule in schedules]
        if len(set(names)) != len(names):
            raise ValueError(f"two schedules share a name ({sorted(names)}): their runs would share thread ids")
        self.store = store
        self.submit = submit
        self.agents = agents
        self.schedules = tuple(schedules)
        self.clock = clock
        self.max_sleep_s = max_sleep_s
        self.retry_s = retry_s
        self._due: dict[str, datetime] | None = None  # per schedule, the earliest run not yet fired
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    # --- the decision ---

    def tick(self, now: datetime) -> list[Thread]:
        """Fire every run due at ``now``; the threads this call started (a run already started elsewhere
        is not among them). Blocking (store I/O)."""
        due = self._due if self._due is not None else self._first_due(now)
        self._due = due
        started: list[Thread] = []
        self._failing = False
        for schedule in self.schedules:
            at = due[schedule.name]
            if at > now:
                continue
            if now - at > timedelta(seconds=schedule.catch_up_window_s):
                # Missed while the clock jumped or a fire kept failing: only the latest run may still go.
                latest = latest_due(schedule, now)
                if latest is None or now - latest > timedelta(seconds=schedule.catch_up_window_s):
                    log.warning("schedule %r: run due at %s skipped, older than catch_up_window_s", schedule.name, at)
                    due[schedule.name] = next_due(schedule, now)
                    continue
                at = latest
            try:
                thread, new = fire(self.store, self.submit, self.agents, schedule, at)
            except Exception:  # noqa: BLE001 - one failing schedule must not stop the others, nor the loop
                log.exception("schedule %r: could not start the run due at %s; retrying", schedule.name, at)
                self._failing = True
                continue
            if new:
                log.info("schedule %r: started thread %s (due %s)", schedule.name, thread.id, at.isoformat())
                started.append(thread)
            due[schedule.name] = next_due(schedule, max(at, now))
        return started

    def _first_due(self, now: datetime) -> dict[str, datetime]:
        due: dict[str, datetime] = {}
        for schedule in self.schedules:
            upcoming = next_due(schedule, now - _JUST_BEFORE)  # a run due exactly now is not "missed"
            missed = latest_due(schedule, now - _JUST_BEFORE) if schedule.catch_up else None
            window = timedelta(seconds=schedule.catch_up_window_s)
            due[schedule.name] = missed if missed is not None and now - missed <= window else upcoming
        return due

    def sleep_s(self, now: datetime) -> float:
        """How long the loop may sleep after a tick at ``now``."""
        if not self.schedules:
            return self.max_sleep_s
        if self._due is None:  # the first tick failed before it could look
            return self.retry_s
        until = min((at - now).total_seconds() for at in self._due.values())
        if self._failing:
            until = max(until, self.retry_s)
        return min(max(until, 0.0), self.max_sleep_s)

    # --- the loop ---

    async def start(self) -> None:
        """Start the loop (a no-op without schedules, or when running)."""
        if not self.schedules or self._task is not None:
            return
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="twelvefactor-scheduler")

    async def stop(self) -> None:
        """Stop the loop; a fire in flight finishes first (its thread is started whole or not at all)."""
        task, self._task = self._task, None
        if task is None:
            return
        assert self._wake is not None
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._wake.is_set():
            try:
                await asyncio.to_thread(self.tick, self.clock())
            except Exception:  # noqa: BLE001 - e.g. a clock that failed: keep the loop, look again later
                log.exception("scheduler tick failed")
                self._failing = True
            delay = self.sleep_s(self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
