"""kill -9 a server in the middle of its threads: a live peer on the same database takes them over
within seconds, and nothing recorded is lost or answered twice."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

import httpx

from twelvefactor import SQLiteStore
from twelvefactor.server.testing import free_port

from .test_processes import start_server, stop, wait_healthy


def test_a_live_peer_takes_over_the_threads_of_a_killed_server(tmp_path: Path) -> None:
    db, log = tmp_path / "shared.db", tmp_path / "steps.log"
    a_port, b_port = free_port(), free_port()
    a = start_server(db, a_port, log, sleep=0.4, workers=3, lease_s=1.0)
    b = start_server(db, b_port, log, sleep=0.4, workers=3, lease_s=1.0)
    try:
        wait_healthy(a_port, a)
        wait_healthy(b_port, b)
        with httpx.Client(base_url=f"http://127.0.0.1:{a_port}", timeout=30) as client:
            ids = [
                client.post("/v1/threads", json={"agent": "slow", "message": f"t{i}"}).json()["id"] for i in range(6)
            ]
        time.sleep(0.9)  # mid-flight: tool calls running, the rest queued under A's leases
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        killed_at = time.monotonic()
        with SQLiteStore(db) as store:
            before = {i: store.load(i) for i in ids}
            assert any(t.status == "running" for t in before.values())
            while any(store.load(i).status != "done" for i in ids):
                assert time.monotonic() - killed_at < 60, {i: store.load(i).status for i in ids}
                time.sleep(0.05)
            after = {i: store.load(i) for i in ids}
    finally:
        if a.poll() is None:
            a.kill()
            a.wait(10)
        if a.stderr is not None:
            a.stderr.close()
        stop(b)
    for i in ids:
        assert after[i].events[: before[i].version] == before[i].events  # nothing recorded was lost
        results = [e for e in after[i].events if e.type == "tool_result"]
        assert [r.result for r in results] == [0, 1, 2]  # type: ignore[attr-defined]
        assert max(Counter(r.call_id for r in results).values()) == 1  # type: ignore[attr-defined]
    b_pid = b.pid
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(run["pid"] == b_pid for run in runs)  # the peer did the rest
