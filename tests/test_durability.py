"""A process killed mid-run loses no recorded event, and the thread resumes where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from twelvefactor import SQLiteStore, ToolCall, ToolResult

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from twelvefactor import Agent, ScriptedModel, SQLiteStore, run, tool

    db, marker, thread_id = sys.argv[1], Path(sys.argv[2]), sys.argv[3]

    @tool(effect="idempotent")  # safe to run again: the resume re-runs the interrupted call
    def add(a: int, b: int) -> int:
        '''Add b to a.'''
        if a == 5 and not marker.exists():
            marker.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)  # the power cord, mid-tool
        return a + b

    outputs = [json.dumps({"intent": "add", "a": i, "b": 1}) for i in range(8)]
    outputs.append(json.dumps({"intent": "done_for_now", "message": "all added"}))
    store = SQLiteStore(db)
    agent = Agent("adder", tools=[add], model=ScriptedModel(outputs))
    try:
        thread = store.load(thread_id)
        # Resuming: the script restarts where the recorded model calls stop.
        done = sum(1 for e in thread.events if e.type == "model_call")
        agent.model = ScriptedModel(outputs[done:])
    except KeyError:
        thread = agent.new_thread("add them all", id=thread_id)
    thread = run(agent, thread, store=store)
    print(thread.status)
    """
)


def run_child(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path / "t.db"), str(tmp_path / "marker"), "t-1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_a_killed_run_keeps_every_recorded_event_and_resumes(tmp_path: Path) -> None:
    first = run_child(tmp_path)
    assert first.returncode == -signal.SIGKILL, first.stderr

    store = SQLiteStore(tmp_path / "t.db")
    crashed = store.load("t-1")
    # The model's choice was committed before the tool ran: the call is there, its result is not.
    call, started = crashed.events[-2:]
    assert isinstance(call, ToolCall) and call.arguments == {"a": 5, "b": 1}
    assert started.type == "tool_started" and started.attempt == 1  # type: ignore[attr-defined]
    assert sum(isinstance(e, ToolResult) for e in crashed.events) == 5
    assert crashed.status == "running"
    store.close()

    second = run_child(tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "done"

    store = SQLiteStore(tmp_path / "t.db")
    final = store.load("t-1")
    assert final.events[: crashed.version] == crashed.events  # nothing rewritten
    results = [e.result for e in final.events if isinstance(e, ToolResult)]
    assert results == [i + 1 for i in range(8)]  # the interrupted call ran once more, nothing twice
    assert [e.type for e in final.events].count("model_call") == 9
    assert json.loads(final.model_dump_json())["version"] == len(final.events)
