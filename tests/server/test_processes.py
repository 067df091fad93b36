"""Two server processes on one SQLite file: a thread's steps never run in both at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import httpx

from twelvefactor import SQLiteStore, Thread, UserMessage
from twelvefactor.server.testing import free_port

from .conftest import ROOT

SERVE = "from twelvefactor.cli import main; main()"


def start_server(
    db: Path, port: int, log: Path, sleep: float = 0.05, workers: int = 4, lease_s: float = 3.0
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            SERVE,
            "serve",
            str(ROOT / "tests" / "server" / "slow_agent.py"),
            "--db",
            str(db),
            "--port",
            str(port),
            "--max-in-flight",
            str(workers),
            "--lease-s",
            str(lease_s),
        ],
        env={
            **os.environ,
            "SLOW_AGENT_LOG": str(log),
            "SLOW_AGENT_SLEEP": str(sleep),
            "PYTHONPATH": os.pathsep.join(sys.path),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode() if process.stderr else "server exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("server did not start")


def test_two_processes_share_a_database_and_never_advance_one_thread_concurrently(tmp_path: Path) -> None:
    db, log = tmp_path / "shared.db", tmp_path / "steps.log"
    store = SQLiteStore(db)
    ids = [f"t{i}" for i in range(8)]
    for thread_id in ids:
        # Left running, as after a crash: BOTH servers recover every one of them at start-up.
        store.create(Thread.new(UserMessage(content=thread_id), agent="slow", id=thread_id))
    store.close()

    ports = [free_port(), free_port()]
    # Two workers each and slow steps: one process alone would need seconds, so the second one (which
    # recovers the same threads at start-up) gets work and meets the first one's leases.
    servers = [start_server(db, port, log, sleep=0.25, workers=2) for port in ports]
    try:
        for port, server in zip(ports, servers, strict=True):
            wait_healthy(port, server)
        deadline = time.monotonic() + 60
        store = SQLiteStore(db)
        while any(store.load(i).status != "done" for i in ids):
            assert time.monotonic() < deadline, [store.load(i).status for i in ids]
            time.sleep(0.1)
    finally:
        stop(*servers)

    for thread_id in ids:
        thread = store.load(thread_id)
        results = [e.result for e in thread.events if e.type == "tool_result"]  # type: ignore[attr-defined]
        assert results == [0, 1, 2], (thread_id, [e.type for e in thread.events])
    store.close()
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(runs) == len(ids) * 3  # every tool call ran exactly once
    assert len({run["pid"] for run in runs}) == 2  # both processes did work
    for thread_id in ids:
        steps = sorted((run for run in runs if run["tag"] == thread_id), key=lambda run: run["start"])
        assert [step["n"] for step in steps] == [0, 1, 2]
        for before, after in pairwise(steps):
            assert before["end"] <= after["start"], (thread_id, before, after)  # never two at once


def test_graceful_shutdown_leaves_threads_resumable(tmp_path: Path) -> None:
    db, log = tmp_path / "shared.db", tmp_path / "steps.log"
    port = free_port()
    server = start_server(db, port, log, sleep=0.4)
    try:
        wait_healthy(port, server)
        launched = httpx.post(f"http://127.0.0.1:{port}/v1/threads", json={"agent": "slow", "message": "go"}).json()
        time.sleep(0.6)  # mid-run: the second of three 0.4 s steps
    finally:
        log_text = stop(server)  # SIGTERM: uvicorn's graceful shutdown, the worker stops between steps
    # uvicorn re-raises the signal after a graceful shutdown, so -SIGTERM is the clean exit here.
    assert server.returncode in (0, -signal.SIGTERM)
    assert "Waiting for application shutdown." in log_text and "Application shutdown complete." in log_text
    with SQLiteStore(db) as store:
        stopped = store.load(launched["id"])
    assert stopped.status == "running"
    types = [e.type for e in stopped.events]
    assert types[-1] in ("tool_result", "user_message")  # never a half-written step
    port = free_port()
    server = start_server(db, port, log)
    try:
        wait_healthy(port, server)
        deadline = time.monotonic() + 30
        with SQLiteStore(db) as store:
            while store.load(launched["id"]).status != "done":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            final = store.load(launched["id"])
    finally:
        stop(server)
    assert [e.result for e in final.events if e.type == "tool_result"] == [0, 1, 2]  # type: ignore[attr-defined]
    assert final.events[: stopped.version] == stopped.events


def stop(*servers: subprocess.Popen[bytes]) -> str:
    """SIGTERM each server, wait, and return what they logged."""
    for server in servers:
        server.terminate()
    logged = []
    for server in servers:
        server.wait(timeout=30)
        if server.stderr is not None:
            logged.append(server.stderr.read().decode(errors="replace"))
            server.stderr.close()
    return "\n".join(logged)
