"""The CLI and the server share threads through the store's leases: never both advance one thread."""

from __future__ import annotations

import sys
from pathlib import Path

from typer.testing import CliRunner

from twelvefactor._loader import load_agent
from twelvefactor.cli import app
from twelvefactor.errors import UnknownAgentError
from twelvefactor.events import ToolCall, UserMessage
from twelvefactor.server.settings import ServerSettings
from twelvefactor.store import SQLiteStore
from twelvefactor.thread import Thread

ROOT = Path(__file__).resolve().parents[1]
DEPLOYBOT = str(ROOT / "examples" / "deploybot")
runner = CliRunner()


def test_run_thread_refuses_a_thread_another_live_process_is_advancing(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    with SQLiteStore(db) as store:
        thread = Thread.new(
            UserMessage(content="staging"),
            ToolCall(call_id="call_1", intent="list_git_tags", arguments={}),
            agent="deploybot",
            id="t1",
        )
        store.create(thread)
        assert store.claim("t1", "worker-host-4242-abc", ttl_s=60)
    result = runner.invoke(app, ["run", DEPLOYBOT, "--thread", "t1", "--db", db])
    assert result.exit_code == 1
    assert "being advanced by 'worker-host-4242-abc'" in " ".join(result.output.split())
    with SQLiteStore(db) as store:
        assert store.load("t1") == thread  # the tool did not run here too


def test_run_thread_holds_the_lease_while_it_runs_and_gives_it_back(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    result = runner.invoke(app, ["run", DEPLOYBOT, "deploy to production", "--db", db], input="")
    assert result.exit_code == 0, result.output
    with SQLiteStore(db) as store:
        (summary,) = store.list()
        assert summary.status == "waiting"
        assert store.lease_of(summary.id) is None  # released when the command ended
        assert store.claim(summary.id, "someone", ttl_s=1)


def test_the_lease_length_is_set_by_flag_or_environment(monkeypatch: object) -> None:
    import pytest

    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("TWELVEFACTOR_LEASE_S", "2.5")
        assert ServerSettings.from_env().lease_s == 2.5
        assert ServerSettings.from_env(lease_s=7.0).lease_s == 7.0
    finally:
        mp.undo()
    help_text = runner.invoke(app, ["serve", "--help"]).output
    assert "--lease-s" in help_text


def test_a_half_imported_agent_file_is_not_left_behind(tmp_path: Path) -> None:
    broken = tmp_path / "broken_agent.py"
    broken.write_text("import twelvefactor\nraise RuntimeError('TOKEN is not set')\nagent = None\n")
    before = set(sys.modules)
    for _ in range(2):  # the second load must give the same, true reason
        try:
            load_agent(str(broken))
        except UnknownAgentError as exc:
            assert "TOKEN is not set" in str(exc)
        else:
            raise AssertionError("a broken agent file loaded")
    assert not [name for name in set(sys.modules) - before if name.startswith("_twelvefactor_agent_")]
