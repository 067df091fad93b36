"""Cron schedules as data: which agent starts, with what, when; and the pure arithmetic of fire times.

A schedule fires at the wall-clock times its cron expression names in its ``timezone``. Daylight saving
is read off the zone: a time the clocks skip (02:30 on a spring-forward night) fires at the first instant
after the gap; a time they repeat (02:30 on a fall-back night) fires once, at its first occurrence.

Each fire time has one thread id (:func:`run_id`), and :func:`fire` starts the run through
``start_thread`` under that id. That is the whole of "at most once": two processes, a restart or a
catch-up that fire the same run find the thread there and start nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# croniter ships no type hints (types-croniter is a separate package); the two calls used are typed below.
from croniter import croniter  # type: ignore[import-untyped]
from croniter.croniter import CroniterError  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from twelvefactor.errors import ThreadNotFound, UserError
from twelvefactor.events import CustomEvent, Event, UserMessage, outside_event
from twelvefactor.store.base import ThreadStore
from twelvefactor.thread import Thread
from twelvefactor.triggers.start import Submit, start_thread
from twelvefactor.workflows.runner import Runnable

__all__ = ["SCHEDULE_EVENT", "Schedule", "fire", "fire_due", "latest_due", "next_due", "run_id", "schedule_events"]

log = logging.getLogger("twelvefactor.schedules")

SCHEDULE_EVENT = "schedule"
"""The type of the event that opens every scheduled run: why the thread exists."""

# Fall-back nights repeat an hour; a minute-by-minute cron skips at most 60 repeated times in a row.
_MAX_SKIPS = 120
# Agent steps are recorded by the worker only: initial events may be messages or types of the user's own.


class Schedule(BaseModel):
    """Start a thread of ``agent`` at every time ``cron`` names, in ``timezone``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$",
        description="identifier (letters, digits, _ and -): part of each run's thread id",
    )
    cron: str = Field(description='five fields: minute hour day-of-month month day-of-week, e.g. "0 9 * * 1-5"')
    agent: str = Field(min_length=1, description="name of a served agent")
    message: str | None = Field(default=None, min_length=1, description="the first user message of each run")
    events: list[dict[str, Any]] = Field(
        default_factory=list, description="initial trigger events of each run, each with a `type`"
    )
    timezone: str = Field(default="UTC", description="IANA zone the cron times are read in, e.g. Europe/Paris")
    catch_up: bool = Field(default=True, description="on start, run once the latest run missed while down")
    catch_up_window_s: float = Field(
        default=86400.0, gt=0, description="how old a missed run may be and still be caught up (or retried)"
    )

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, cron: str) -> str:
        fields = cron.split()
        if len(fields) != 5 or not croniter.is_valid(cron):
            raise ValueError(
                f"cron {cron!r} is not a 5-field cron expression (minute hour day-of-month month day-of-week),"
                ' e.g. "0 9 * * 1-5" for 09:00 on weekdays'
            )
        return " ".join(fields)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {name!r} is not an IANA time zone name, e.g. 'UTC' or 'Europe/Paris'") from None
        return name

    @field_validator("events")
    @classmethod
    def _trigger_events(cls, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for data in events:
            _initial_event(data)
        return events

    @model_validator(mode="after")
    def _something_to_start_with(self) -> Schedule:
        if self.message is None and not self.events:
            raise ValueError(f"schedule {self.name!r} starts threads with nothing: give a `message` or `events`")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _initial_event(data: dict[str, Any]) -> Event:
    try:
        return outside_event(data)
    except UserError as exc:  # a validation error of the schedule's, where pydantic reports it
        raise ValueError(f"a schedule event: {exc}") from None


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"{when.isoformat()} has no time zone: pass an aware datetime (e.g. datetime.now(UTC))")
    return when


def _repeated(local: datetime, zone: ZoneInfo) -> bool:
    """Whether ``local`` is the second occurrence of a wall-clock time (the hour a fall-back night repeats)."""
    return local.astimezone(UTC).astimezone(zone).fold == 1


def next_due(schedule: Schedule, after: datetime) -> datetime:
    """The first fire time strictly after ``after`` (aware), in the schedule's zone."""
    zone = schedule.zone
    times = croniter(schedule.cron, _aware(after).astimezone(zone))
    for _ in range(_MAX_SKIPS):
        candidate: datetime = times.get_next(datetime)
        if not _repeated(candidate, zone):
            return candidate
    raise RuntimeError(f"schedule {schedule.name!r}: no fire time found after {after.isoformat()}")


def latest_due(schedule: Schedule, now: datetime) -> datetime | None:
    """The most recent fire time at or before ``now`` (aware); None if the expression never fired."""
    zone = schedule.zone
    # croniter's get_prev is strictly before its start: start a microsecond later to include ``now``.
    times = croniter(schedule.cron, _aware(now).astimezone(zone) + timedelta(microseconds=1))
    for _ in range(_MAX_SKIPS):
        try:
            candidate: datetime = times.get_prev(datetime)
        except CroniterError:
            return None
        if not _repeated(candidate, zone):
            return candidate
    return None


def run_id(schedule: Schedule, at: datetime) -> str:
    """The thread id of the run due at ``at``: the same in every process, so a run starts at most once."""
    return f"sched-{schedule.name}-{_aware(at).astimezone(UTC):%Y%m%dT%H%M}"


def schedule_events(schedule: Schedule, at: datetime) -> list[Event]:
    """A run's first events: why it exists (the schedule and its time), then the message and events."""
    local = _aware(at).astimezone(schedule.zone)
    events: list[Event] = [
        CustomEvent(type=SCHEDULE_EVENT, schedule=schedule.name, cron=schedule.cron, scheduled_for=local.isoformat())
    ]
    if schedule.message is not None:
        events.append(UserMessage(content=schedule.message))
    events.extend(_initial_event(data) for data in schedule.events)
    return events


def fire(
    store: ThreadStore,
    submit: Submit,
    agents: Mapping[str, Runnable],
    schedule: Schedule,
    at: datetime,
) -> tuple[Thread, bool]:
    """Start the run of ``schedule`` due at ``at``; ``(thread, started)``, False if it was already started.

    Blocking (store I/O): call it from a worker thread in async code.
    """
    return start_thread(
        store, submit, agents, schedule.agent, schedule_events(schedule, at), thread_id=run_id(schedule, at)
    )


def fire_due(
    store: ThreadStore,
    submit: Submit,
    agents: Mapping[str, Runnable],
    schedules: Sequence[Schedule],
    minute: datetime,
) -> list[Thread]:
    """One look at ``minute`` for a periodic job that runs once a minute (Procrastinate); the threads started.

    A schedule due at ``minute`` fires. One with ``catch_up`` also fires its latest earlier run within
    the window if that run's thread does not exist (missed while no worker ran, or a fire that failed).
    A schedule that fails is logged and left to the next minute's look; the others still fire.
    """
    started: list[Thread] = []
    for schedule in schedules:
        at = latest_due(schedule, minute)
        if at is None or minute - at > timedelta(seconds=schedule.catch_up_window_s):
            continue
        try:
            if at < minute:
                if not schedule.catch_up:
                    continue
                try:
                    store.load(run_id(schedule, at))
                    continue  # started already: a read, not a write, every minute
                except ThreadNotFound:
                    pass
            thread, new = fire(store, submit, agents, schedule, at)
        except Exception:  # noqa: BLE001 - one failing schedule must not stop the others
            log.exception("schedule %r: could not start the run due at %s; next minute tries again", schedule.name, at)
            continue
        if new:
            log.info("schedule %r: started thread %s (due %s)", schedule.name, thread.id, at.isoformat())
            started.append(thread)
    return started
