"""The server on a PostgresStore: the same agent, API and webhooks as on SQLite, with the delivery log
(the outbox, its attempts, the inbound replay memory) in the same PostgreSQL database."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import psycopg
import pytest

from twelvefactor.server.deliveries import Delivery, PostgresDeliveryLog
from twelvefactor.store import PostgresStore

from .conftest import client_for, wait_for_status
from .test_webhooks import Receiver, app_for, deliveries, launch, runtime_of, signed

pytestmark = pytest.mark.anyio


async def test_an_agent_runs_on_postgres_and_its_webhooks_are_logged_there(tmp_path: Path, pg_url: str) -> None:
    async with Receiver().running() as receiver:
        app = app_for(tmp_path, receiver.url, database=pg_url)
        async with client_for(app) as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            assert isinstance(runtime_of(app).webhooks.log, PostgresDeliveryLog)
            thread_id = await launch(client, "deploy v1.4.1 to production")
            waiting = await wait_for_status(client, thread_id, "waiting")
            answer = {"thread_id": thread_id, "request_id": waiting["pending_request"]["call_id"], "approved": True}
            assert (await client.post("/v1/webhooks/resume", **signed(answer, msg_id="pg-1"))).status_code == 200
            # A replayed inbound delivery is remembered in the database: 409.
            assert (await client.post("/v1/webhooks/resume", **signed(answer, msg_id="pg-1"))).status_code == 409
            await wait_for_status(client, thread_id, "done")
            await receiver.wait_for(2)
            await runtime_of(app).webhooks.idle()
            rows = await deliveries(client, thread_id)
    assert [(row["event_type"], row["state"]) for row in rows] == [
        ("thread.waiting", "delivered"),
        ("thread.done", "delivered"),
    ]
    with PostgresStore(pg_url) as store:
        assert store.load(thread_id).status == "done"
        assert "webhooks_m001_deliveries" in [name for name, _ in store.applied_migrations()]


async def test_a_restart_resumes_pending_deliveries_from_postgres(tmp_path: Path, pg_url: str) -> None:
    async with Receiver(script=[500]).running() as receiver:
        app = app_for(tmp_path, receiver.url, database=pg_url, webhook_backoff_s=60)
        async with client_for(app) as client:
            thread_id = await launch(client, "deploy to production")
            await receiver.wait_for(1)
            await wait_for_status(client, thread_id, "waiting")
            for _ in range(200):
                (row,) = await deliveries(client, thread_id)
                if row["attempts"]:
                    break
                await asyncio.sleep(0.01)
        assert row["state"] == "pending"

        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE webhook_deliveries SET next_attempt_at = 0")
        again = app_for(tmp_path, receiver.url, database=pg_url)
        async with client_for(again) as client:
            second = (await receiver.wait_for(2))[1]
            await runtime_of(again).webhooks.idle()
            (row,) = await deliveries(client, thread_id)
    assert second.headers["webhook-id"] == row["webhook_id"] == receiver.requests[0].headers["webhook-id"]
    assert row["state"] == "delivered" and [a["status_code"] for a in row["attempts"]] == [500, 200]


def test_processes_sharing_the_database_claim_each_pending_delivery_once(pg_url: str) -> None:
    with PostgresStore(pg_url) as one, PostgresStore(pg_url) as two:
        logs = [PostgresDeliveryLog(one), PostgresDeliveryLog(two)]
        now = time.time()
        for n in range(40):
            delivery = Delivery(f"msg_{n}", f"t{n}", "thread.done", 3, "http://127.0.0.1:1/", "{}", created_at=now)
            # Claimed by a process that stopped: its claim ran out a while ago.
            assert logs[n % 2].add(delivery, owner="gone", claimed_until=now - 1)
        # The same message to the same endpoint, seen by the other process: one delivery.
        again = Delivery("msg_x", "t0", "thread.done", 3, "http://127.0.0.1:1/", "{}", created_at=now)
        assert not logs[1].add(again, owner="x", claimed_until=now)

        claimed: list[list[str]] = [[], [], [], []]
        barrier = threading.Barrier(4)

        def claim(i: int) -> None:
            barrier.wait()
            for _ in range(5):
                got = logs[i % 2].claim_due(f"proc-{i}", now=time.time(), hold_s=60)
                claimed[i] += [d.webhook_id for d in got]

        workers = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        everything = [webhook_id for ids in claimed for webhook_id in ids]
        assert sorted(everything) == sorted(f"msg_{n}" for n in range(40))  # each once, none lost

        # Inbound ids are remembered across processes; a forgotten one may come again.
        assert logs[0].remember("in-1", expires_at=now + 60, now=now)
        assert not logs[1].remember("in-1", expires_at=now + 60, now=now)
        logs[1].forget("in-1")
        assert logs[0].remember("in-1", expires_at=now + 60, now=now)
