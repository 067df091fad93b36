"""Cron schedules: fire times across DST, at most once per run across schedulers, catch-up after downtime."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from twelvefactor import Agent, FunctionModel, SQLiteStore, tool
from twelvefactor.triggers.scheduler import Scheduler
from twelvefactor.triggers.schedules import Schedule, fire, fire_due, latest_due, next_due, run_id

PARIS = ZoneInfo("Europe/Paris")


@tool
def ping() -> str:
    """Ping."""
    return "pong"


def reporter() -> Agent:
    return Agent(
        "reporter", tools=[ping], model=FunctionModel(lambda messages: {"intent": "done_for_now", "message": "ok"})
    )


AGENTS = {"reporter": reporter()}


def weekly(**overrides: object) -> Schedule:
    fields: dict[str, object] = {"name": "standup", "cron": "0 9 * * 1-5", "agent": "reporter", "message": "report"}
    return Schedule.model_validate({**fields, **overrides})


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


# --- fire times ---


def test_weekdays_at_nine_skip_the_weekend() -> None:
    schedule = weekly(timezone="Europe/Paris")
    friday = paris(2026, 3, 27, 9, 0)
    assert next_due(schedule, friday) == paris(2026, 3, 30, 9, 0)  # Monday, not Saturday
    assert latest_due(schedule, paris(2026, 3, 29, 12, 0)) == friday  # on Sunday, the last run was Friday's
    assert latest_due(schedule, friday) == friday  # a run due exactly now is the latest


def test_nine_in_paris_stays_nine_across_the_spring_change() -> None:
    schedule = weekly(cron="0 9 * * *", timezone="Europe/Paris")
    before = next_due(schedule, paris(2026, 3, 28, 12, 0))  # Sunday 29 March, clocks go forward at 02:00
    after = next_due(schedule, before)
    assert before.astimezone(UTC) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert after.astimezone(UTC) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert latest_due(schedule, paris(2026, 3, 29, 8, 59)).astimezone(UTC) == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)


def test_a_skipped_time_fires_after_the_gap_and_a_repeated_time_fires_once() -> None:
    schedule = weekly(cron="30 2 * * *", timezone="Europe/Paris")
    spring = next_due(schedule, paris(2026, 3, 29, 0, 0))  # 02:30 does not exist that night
    assert spring.astimezone(UTC) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST, right after the gap
    first = next_due(schedule, paris(2026, 10, 25, 0, 0))  # 02:30 happens twice that night
    assert first.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert next_due(schedule, first).astimezone(UTC) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # next day
    # From inside the repeated hour, the latest run is the first 02:30, not the second.
    inside = datetime(2026, 10, 25, 1, 45, tzinfo=UTC)
    assert latest_due(schedule, inside) == first


def test_run_ids_are_the_utc_minute_whatever_the_zone() -> None:
    schedule = weekly(timezone="Europe/Paris")
    assert run_id(schedule, paris(2026, 3, 30, 9, 0)) == "sched-standup-20260330T0700"
    assert run_id(schedule, datetime(2026, 3, 30, 7, 0, tzinfo=UTC)) == "sched-standup-20260330T0700"


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("cron", "0 9 * *", "not a 5-field cron expression"),
        ("cron", "61 9 * * *", "not a 5-field cron expression"),
        ("cron", "0 0 9 * * 1-5", "not a 5-field cron expression"),
        ("timezone", "Europe/Parsi", "not an IANA time zone name"),
        ("timezone", "../etc/passwd", "not an IANA time zone name"),
        ("name", "no spaces", "should match pattern"),
        ("events", [{"type": "tool_result", "call_id": "x"}], "recorded by the agent itself"),
        ("events", [{"type": "alert", "at": "2020-01-01T00:00:00Z"}], "leave it out"),
    ],
)
def test_bad_schedules_are_refused_with_what_to_fix(field: str, value: object, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        weekly(**{field: value})


def test_a_schedule_with_nothing_to_start_with_is_refused() -> None:
    with pytest.raises(ValidationError, match="give a `message` or `events`"):
        weekly(message=None)


def test_a_run_says_why_it_exists(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    schedule = weekly(timezone="Europe/Paris", events=[{"type": "release_window", "week": 14}])
    thread, started = fire(store, lambda _: None, AGENTS, schedule, paris(2026, 3, 30, 9, 0))
    assert started and thread.agent == "reporter"
    trigger, message, extra = store.load(thread.id).events
    assert trigger.type == "schedule"
    assert trigger.model_dump()["schedule"] == "standup"
    assert trigger.model_dump()["scheduled_for"] == "2026-03-30T09:00:00+02:00"
    assert message.model_dump()["content"] == "report"
    assert extra.model_dump()["week"] == 14


# --- the scheduler, with a controlled clock ---


def test_a_tick_fires_once_at_the_due_time_and_a_racing_scheduler_starts_nothing(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    submitted: list[str] = []
    due = paris(2026, 3, 30, 9, 0)
    one = Scheduler(SQLiteStore(db), submitted.append, AGENTS, [weekly(timezone="Europe/Paris", catch_up=False)])
    other = Scheduler(SQLiteStore(db), submitted.append, AGENTS, [weekly(timezone="Europe/Paris", catch_up=False)])
    assert one.tick(due - timedelta(seconds=1)) == []
    assert other.tick(due - timedelta(seconds=1)) == []
    (thread,) = one.tick(due)
    assert thread.id == "sched-standup-20260330T0700"
    assert one.tick(due + timedelta(seconds=5)) == []  # not again
    assert other.tick(due + timedelta(seconds=1)) == []  # another process: the thread is there
    assert submitted == [thread.id]
    assert [row.id for row in SQLiteStore(db).list()] == [thread.id]
    assert one.sleep_s(due + timedelta(seconds=5)) == 30.0  # the next run is Tuesday: bounded sleep


def test_after_downtime_only_the_latest_missed_run_runs_once(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    hourly = weekly(cron="0 * * * *", timezone="UTC")
    back = datetime(2026, 3, 30, 12, 20, tzinfo=UTC)  # down since before 09:00: 09, 10, 11 and 12 were missed
    (thread,) = Scheduler(SQLiteStore(db), lambda _: None, AGENTS, [hourly]).tick(back)
    assert thread.id == "sched-standup-20260330T1200"
    # Restarted again a minute later: the catch-up run is there, nothing new.
    assert Scheduler(SQLiteStore(db), lambda _: None, AGENTS, [hourly]).tick(back + timedelta(minutes=1)) == []
    assert len(SQLiteStore(db).list()) == 1


def test_no_catch_up_outside_the_window_or_when_turned_off(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    back = datetime(2026, 3, 30, 12, 20, tzinfo=UTC)
    too_old = weekly(cron="0 9 * * *", catch_up_window_s=3600)  # missed 09:00, 3h20 ago
    off = weekly(name="off", cron="0 12 * * *", catch_up=False)  # missed 12:00, 20 min ago
    scheduler = Scheduler(store, lambda _: None, AGENTS, [too_old, off])
    assert scheduler.tick(back) == []
    assert store.list() == []
    (thread,) = scheduler.tick(datetime(2026, 3, 31, 9, 0, tzinfo=UTC))  # the next run still happens
    assert thread.id == "sched-standup-20260331T0900"


def test_a_failing_fire_is_retried_at_the_next_tick(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    due = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    agents: dict[str, Agent] = {}  # the agent is not served (yet)
    scheduler = Scheduler(store, lambda _: None, agents, [weekly()], retry_s=2.0)
    assert scheduler.tick(due) == []
    assert scheduler.sleep_s(due) == 2.0  # looks again soon, not at the next run
    agents.update(AGENTS)
    (thread,) = scheduler.tick(due + timedelta(seconds=2))
    assert thread.id == "sched-standup-20260330T0900"


@pytest.mark.anyio
async def test_the_loop_fires_a_run_when_it_is_due(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    due = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    origin = time.monotonic()

    def clock() -> datetime:  # half a second before 09:00 when the loop starts, then real time passes
        return due - timedelta(seconds=0.5) + timedelta(seconds=time.monotonic() - origin)

    created: list[datetime] = []
    scheduler = Scheduler(store, lambda _: created.append(clock()), AGENTS, [weekly(catch_up=False)], clock=clock)
    await scheduler.start()
    try:
        deadline = time.monotonic() + 5
        while not created and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await scheduler.stop()
    (at,) = created
    delay = (at - due).total_seconds()
    print(f"scheduled run started {delay * 1000:.1f} ms after its due time")
    assert 0 <= delay < 1.0
    assert [row.id for row in store.list()] == ["sched-standup-20260330T0900"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_per_minute_look_fires_due_runs_and_catches_up_missed_ones_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    daily = weekly(name="daily", cron="0 9 * * *", timezone="Europe/Paris")
    off = weekly(name="off", cron="0 8 * * *", timezone="Europe/Paris", catch_up=False)
    nine = paris(2026, 3, 30, 9, 0)
    assert [t.id for t in fire_due(store, lambda _: None, AGENTS, [daily, off], nine)] == ["sched-daily-20260330T0700"]
    assert fire_due(store, lambda _: None, AGENTS, [daily, off], nine + timedelta(minutes=1)) == []
    # No worker ran at 09:00 the next day: the first look after it starts that run, once; 08:00 is not caught up.
    later = paris(2026, 3, 31, 11, 17)
    assert [t.id for t in fire_due(store, lambda _: None, AGENTS, [daily, off], later)] == ["sched-daily-20260331T0700"]
    assert fire_due(store, lambda _: None, AGENTS, [daily, off], later + timedelta(minutes=1)) == []
    assert len(store.list()) == 2
