"""A delivered channel message keeps its receipt: how a reply or a button press finds its request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from twelvefactor.server.deliveries import (
    Attempt,
    Delivery,
    DeliveryLog,
    MemoryDeliveryLog,
    PostgresDeliveryLog,
    SQLiteDeliveryLog,
)
from twelvefactor.store.postgres import PostgresStore


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeliveryLog]:
    if request.param == "memory":
        yield MemoryDeliveryLog()
    elif request.param == "sqlite":
        sqlite = SQLiteDeliveryLog(str(tmp_path / "service.db"))
        yield sqlite
        sqlite.close()
    else:
        with PostgresStore(request.getfixturevalue("pg_url")) as store:
            yield PostgresDeliveryLog(store)


def test_a_delivered_message_is_found_by_its_receipt_and_listed_with_it(log: DeliveryLog) -> None:
    now = time.time()
    pending = Delivery("msg_1", "t1", "human.request", 4, "channel:slack:C1", '{"to":"C1"}', created_at=now)
    other = Delivery("msg_2", "t2", "human.request", 2, "channel:slack:C1", '{"to":"C1"}', created_at=now)
    assert log.add(pending, owner="me", claimed_until=now + 60)
    assert log.add(other, owner="me", claimed_until=now + 60)
    assert log.find_receipt("C1:1700000000.000100") is None

    delivered = replace(pending, state="delivered", attempts=1, receipt="C1:1700000000.000100")
    attempt = Attempt("msg_1", "t1", "human.request", "channel:slack:C1", 1, now, 200, None, 12.0)
    log.record(attempt, delivered, claimed_until=now)

    found = log.find_receipt("C1:1700000000.000100")
    assert found is not None and (found.webhook_id, found.thread_id, found.anchor) == ("msg_1", "t1", 4)
    assert found.body == '{"to":"C1"}' and found.state == "delivered"
    ((listed, attempts),) = log.for_thread("t1")
    assert listed.receipt == "C1:1700000000.000100" and [a.status_code for a in attempts] == [200]
    ((unsent, _),) = log.for_thread("t2")
    assert unsent.receipt is None
    log.close()
