from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twelvefactor.cli import app
from twelvefactor.store import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
DEPLOYBOT = str(ROOT / "examples" / "deploybot")
runner = CliRunner()


def invoke(*args: str, input: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == 0, result.output
    return result.output


def test_run_asks_for_approval_at_the_terminal_and_finishes(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    out = invoke("run", DEPLOYBOT, "deploy the latest backend to production", "--db", db, input="y\n")
    assert "needs approval" in out and "Approve? [y/n]" in out
    assert "Deployed v1.4.2 to production." in out
    (summary,) = SQLiteStore(db).list()
    assert summary.status == "done" and summary.agent == "deploybot"


def test_a_denial_with_a_reason_reaches_the_agent(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    out = invoke("run", DEPLOYBOT, "deploy to production", "--db", db, input="n\nchange freeze\n")
    assert "Deploy cancelled by a human (change freeze)." in out


def test_without_anyone_to_answer_the_thread_is_left_waiting_and_can_be_continued(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    out = invoke("run", DEPLOYBOT, "deploy to production", "--db", db, input="")
    assert "left waiting" in out
    (summary,) = SQLiteStore(db).list()
    assert summary.status == "waiting"
    out = invoke("run", DEPLOYBOT, "--thread", summary.id, "--db", db, input="y\n")
    assert "Deployed v1.4.2 to production." in out


def test_threads_ls_and_show(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    invoke("run", DEPLOYBOT, "deploy to staging", "--db", db)
    (summary,) = SQLiteStore(db).list()
    listing = invoke("threads", "ls", "--db", db, "--status", "done")
    assert summary.id in listing and "deploybot" in listing
    assert summary.id not in invoke("threads", "ls", "--db", db, "--status", "waiting")
    shown = invoke("threads", "show", summary.id, "--db", db)
    assert "list_git_tags" in shown and "Deployed v1.4.2 to staging." in shown and "tokens" in shown
    with_context = invoke("threads", "show", summary.id, "--db", db, "--context", "--agent", DEPLOYBOT)
    assert with_context.count("--- system ---") == 3  # one per model call
    assert "type NextStep =" in with_context


def test_threads_show_of_an_unknown_id_is_a_clear_error(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "t.db").close()
    result = runner.invoke(app, ["threads", "show", "nope", "--db", str(tmp_path / "t.db")])
    assert result.exit_code == 1 and "no thread with id 'nope'" in result.output


def test_prompt_render_prints_the_exact_messages_for_a_thread_file(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    invoke("run", DEPLOYBOT, "deploy to staging", "--db", db)
    (summary,) = SQLiteStore(db).list()
    thread_json = invoke("threads", "show", summary.id, "--db", db, "--json")
    path = tmp_path / "thread.json"
    path.write_text(thread_json, encoding="utf-8")
    out = invoke("prompt", "render", DEPLOYBOT, "--thread", str(path), "--json")
    messages = json.loads(out)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "<done>\nDeployed v1.4.2 to staging.\n</done>" in messages[1]["content"]


def test_prompt_render_rejects_a_file_that_is_not_a_thread(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"not": "a thread"}', encoding="utf-8")
    result = runner.invoke(app, ["prompt", "render", DEPLOYBOT, "--thread", str(path)])
    assert result.exit_code == 1 and "is not a thread JSON file" in result.output


@pytest.mark.parametrize("ref", ["no/such/agent.py", "twelvefactor.nothing_here"])
def test_an_unknown_agent_reference_is_a_clear_error(ref: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", ref, "hi", "--db", str(tmp_path / "t.db")])
    assert result.exit_code == 1 and "cannot load agent" in result.output


def test_an_unknown_output_mode_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", DEPLOYBOT, "hi", "--db", str(tmp_path / "t.db"), "--output-mode", "telepathy"])
    assert (
        result.exit_code == 1
        and "--output-mode 'telepathy' is not one of prompted, json_schema, tools" in result.output
    )


def test_output_mode_json_schema_runs_with_a_model_that_supports_it(tmp_path: Path) -> None:
    # The demo FunctionModel serves every output mode; the run is the same, the request asks for a schema.
    out = invoke("run", DEPLOYBOT, "deploy to staging", "--db", str(tmp_path / "t.db"), "--output-mode", "json_schema")
    assert "Deployed v1.4.2 to staging." in out


def test_serve_applies_model_and_output_mode_overrides_before_starting(tmp_path: Path) -> None:
    # A bad model string fails before anything binds a port: the override reaches every served agent.
    result = runner.invoke(app, ["serve", DEPLOYBOT, "--db", str(tmp_path / "s.db"), "--model", "nope:gpt"])
    assert result.exit_code == 1 and "unknown model provider 'nope'" in result.output
    result = runner.invoke(app, ["serve", DEPLOYBOT, "--db", str(tmp_path / "s.db"), "--output-mode", "telepathy"])
    assert result.exit_code == 1 and "--output-mode 'telepathy' is not one of" in result.output


def test_run_drives_a_workflow_its_sub_agent_and_its_approval_at_the_terminal(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    release = str(ROOT / "examples" / "release")
    out = invoke("run", release, "ship it", "--db", db, input="")
    assert "needs approval" in out and "left waiting; continue with:" in out
    parent = next(s for s in SQLiteStore(db).list() if s.agent == "release")
    assert parent.status == "waiting"
    out = invoke("run", release, "--thread", parent.id, "--db", db, input="y\n")
    assert "released v1.4.2 to production" in out
    assert "tool_started" not in out  # bookkeeping, shown with --verbose only
    rows = {s.agent: s for s in SQLiteStore(db).list()}
    assert rows["release"].status == "done" and rows["rollout"].parent_id == parent.id


def test_a_workflow_waits_out_a_durable_timer_at_the_terminal(tmp_path: Path) -> None:
    flow_file = tmp_path / "nap.py"
    flow_file.write_text(
        "from twelvefactor import Flow, workflow\n\n"
        "@workflow\n"
        "def agent(wf: Flow) -> str:\n"
        "    wf.sleep(0.3)\n"
        "    return 'rested'\n"
    )
    out = invoke("run", str(flow_file), "go", "--db", str(tmp_path / "t.db"))
    assert "waiting" in out and "rested" in out


def test_threads_delete_and_prune(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    invoke("run", DEPLOYBOT, "deploy to staging", "--db", db)
    invoke("run", DEPLOYBOT, "deploy to production", "--db", db, input="")  # left waiting
    rows = {s.status: s.id for s in SQLiteStore(db).list()}
    assert set(rows) == {"done", "waiting"}
    out = invoke("threads", "prune", "--older-than", "0", "--db", db)
    assert "Deleted 1 finished thread older than 0 days." in out
    assert [s.status for s in SQLiteStore(db).list()] == ["waiting"]  # a waiting thread is never pruned
    missing = runner.invoke(app, ["threads", "delete", rows["done"], "--db", db])
    assert missing.exit_code == 1 and "no thread" in missing.output.lower()
    assert "Deleted thread" in invoke("threads", "delete", rows["waiting"], "--db", db)
    assert SQLiteStore(db).list() == []
