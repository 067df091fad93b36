"""The server's retention policy: finished threads past their agent's period are deleted on a timer."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from twelvefactor import Done, HumanRequest, SQLiteStore, Thread, UserMessage
from twelvefactor.errors import ThreadNotFound
from twelvefactor.server import ServerSettings
from twelvefactor.server.retention import Retention, retention_rules
from twelvefactor.store.base import utcnow

from .conftest import client_for, sqlite_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make(store: SQLiteStore, agent: str, id: str, *, done: bool) -> None:
    store.create(Thread.new(UserMessage(content="hi"), agent=agent, id=id))
    last = Done(message="ok") if done else HumanRequest(call_id="call_1", kind="input", question="which?")
    store.append(id, last)


def test_a_rule_per_agent_and_a_default_for_the_other_served_agents() -> None:
    rules = retention_rules({"*": 30, "deploybot": 365, "ghost": 7}, ["deploybot", "calculator"])
    assert rules == [("calculator", 30), ("deploybot", 365), ("ghost", 7)]
    assert retention_rules({}, ["deploybot"]) == []


@pytest.mark.parametrize("days", [-1, float("nan"), float("inf")])
def test_a_retention_period_must_be_a_number_of_days(days: float) -> None:
    with pytest.raises(ValidationError):
        ServerSettings(retention_days={"deploybot": days})


def test_one_pass_deletes_only_finished_threads_past_their_agents_period(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    make(store, "deploybot", "old-done", done=True)
    make(store, "deploybot", "old-waiting", done=False)
    make(store, "calculator", "calc-done", done=True)
    settings = ServerSettings(database=str(tmp_path / "t.db"), retention_days={"deploybot": 1, "*": 30})
    retention = Retention(settings, store, ["deploybot", "calculator"])
    assert retention.run_once(now=utcnow() + timedelta(hours=12)) == 0  # not a day old yet
    assert retention.run_once(now=utcnow() + timedelta(days=2)) == 1
    with pytest.raises(ThreadNotFound):
        store.load("old-done")
    assert store.load("old-waiting").status == "waiting"  # never pruned while it waits for a person
    assert store.load("calc-done").status == "done"  # calculator keeps its threads 30 days
    assert retention.run_once(now=utcnow() + timedelta(days=31)) == 1
    store.close()


async def test_the_server_runs_the_policy_on_a_timer(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "service.db")
    make(store, "deploybot", "done-1", done=True)
    make(store, "deploybot", "waiting-1", done=False)
    store.close()
    app = sqlite_app(tmp_path, retention_days={"*": 0}, retention_interval_s=0.05)
    async with client_for(app) as client:
        for _ in range(200):
            if (await client.get("/v1/threads/done-1")).status_code == 404:
                break
            await asyncio.sleep(0.02)
        assert (await client.get("/v1/threads/done-1")).status_code == 404
        assert (await client.get("/v1/threads/waiting-1")).json()["status"] == "waiting"
