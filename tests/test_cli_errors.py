"""A newcomer's mistakes at the command line get one clear line naming the fix, and a non-zero exit."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from twelvefactor.cli import app
from twelvefactor.store import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
DEPLOYBOT = str(ROOT / "examples" / "deploybot")
CALCULATOR = str(ROOT / "examples" / "calculator")
runner = CliRunner()


def fails(*args: str, input: str | None = None) -> str:
    """The command's output, after checking it failed with one short error and no traceback."""
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # handled, not a crash
    assert "Traceback" not in result.output and "Error:" not in result.output.replace("error:", "")
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    return line


def scripted_agent(path: Path, name: str, says: str, *, attr: str = "agent") -> Path:
    """An agent file whose model finishes at once, saying ``says``."""
    path.write_text(
        "from twelvefactor import Agent, ScriptedModel\n"
        f"{attr} = Agent({name!r}, model=ScriptedModel([{{'intent': 'done_for_now', 'message': {says!r}}}]))\n",
        encoding="utf-8",
    )
    return path


def ok(*args: str, input: str | None = None) -> Result:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize(
    "command",
    [
        ["run", DEPLOYBOT, "deploy to staging"],
        ["serve", DEPLOYBOT],
        ["threads", "ls"],
        ["threads", "show", "some-id"],
    ],
)
def test_a_db_in_a_missing_folder_is_one_line_naming_the_folder(command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    line = fails(*command, "--db", str(missing / "t.db"))
    assert str(missing) in line and "does not exist" in line
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("command", [["threads", "ls"], ["threads", "show", "some-id"]])
def test_reading_a_db_that_does_not_exist_creates_nothing(command: list[str], tmp_path: Path) -> None:
    typo = tmp_path / "twelvefactr.db"
    line = fails(*command, "--db", str(typo))
    assert "no store at" in line and str(typo) in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ref", [".", "./", ".."])
def test_a_folder_without_agent_py_is_named_as_such(ref: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    line = fails("run", ref, "hi", "--db", str(tmp_path / "t.db"))
    assert "holds no agent.py" in line and "TypeError" not in line


def test_an_absolute_folder_without_agent_py_is_not_called_a_module(tmp_path: Path) -> None:
    line = fails("run", str(tmp_path), "hi", "--db", str(tmp_path / "t.db"))
    assert "holds no agent.py" in line and "No module named" not in line


def test_a_folder_here_without_agent_py_is_not_imported_as_an_empty_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mybot").mkdir()
    monkeypatch.chdir(tmp_path)
    line = fails("run", "mybot", "hi", "--db", str(tmp_path / "t.db"))
    assert "the folder" in line and "mybot' holds no agent.py" in line


def test_a_missing_attribute_names_the_file_and_the_agents_it_defines(tmp_path: Path) -> None:
    line = fails("run", f"{DEPLOYBOT}/agent.py:nope", "hi", "--db", str(tmp_path / "t.db"))
    assert "_twelvefactor_agent_" not in line
    assert "agent.py defines no 'nope'" in line and "agents there: agent" in line


def test_a_thread_of_another_agent_is_refused_before_anything_is_asked_or_recorded(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    ok("run", DEPLOYBOT, "deploy to production", "--db", db, input="")
    (summary,) = SQLiteStore(db).list()
    before = SQLiteStore(db).load(summary.id)
    line = fails("run", CALCULATOR, "--thread", summary.id, "--db", db, input="y\n")
    assert "belongs to agent 'deploybot'" in line and "not 'calculator'" in line
    assert SQLiteStore(db).load(summary.id) == before


def test_a_thread_file_missing_a_field_names_the_field(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    ok("run", DEPLOYBOT, "deploy to staging", "--db", db)
    (summary,) = SQLiteStore(db).list()
    data = json.loads(ok("threads", "show", summary.id, "--db", db, "--json").output)
    index = next(i for i, event in enumerate(data["events"]) if "call_id" in event)
    del data["events"][index]["call_id"]
    path = tmp_path / "thread.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    line = fails("prompt", "render", DEPLOYBOT, "--thread", str(path))
    assert "events" in line and "call_id: Field required" in line and "Field required" in line


def test_a_run_that_escalates_after_errors_exits_non_zero_and_says_how_to_continue(tmp_path: Path) -> None:
    # What an unreachable model server does after its retries: every call fails, the agent escalates.
    agent_file = tmp_path / "broken.py"
    agent_file.write_text(
        "from twelvefactor import Agent, FunctionModel\n"
        "from twelvefactor.errors import ModelError\n"
        "def unreachable(messages):\n"
        "    raise ModelError('cannot reach http://127.0.0.1:9/v1: connection refused')\n"
        "agent = Agent('broken', model=FunctionModel(unreachable))\n",
        encoding="utf-8",
    )
    db = str(tmp_path / "t.db")
    result = runner.invoke(app, ["run", str(agent_file), "hi", "--db", db], input="")
    assert result.exit_code == 1, result.output
    assert "connection refused" in result.output
    (summary,) = SQLiteStore(db).list()
    assert f"twelvefactor run {shlex.quote(str(agent_file))} --thread {summary.id} --db {shlex.quote(db)}" in " ".join(
        result.output.split()
    )


def test_continue_with_prints_the_real_command(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    out = " ".join(ok("run", DEPLOYBOT, "deploy to production", "--db", db, input="").output.split())
    (summary,) = SQLiteStore(db).list()
    assert f"continue with: twelvefactor run {DEPLOYBOT} --thread {summary.id} --db {db}" in out


def test_version() -> None:
    from twelvefactor import __version__

    assert ok("--version").output.strip() == f"twelvefactor {__version__}"


@pytest.mark.parametrize(
    "command", [[], ["run"], ["serve"], ["threads", "ls"], ["threads", "show"], ["prompt", "render"]]
)
def test_help_has_no_type_noise_and_describes_every_option(command: list[str]) -> None:
    out = ok(*command, "--help").output
    for noise in ("<str>", "<bool>", "<int>", "<float", "<path>", "list[str]"):
        assert noise not in out, (noise, out)
    command_: Any = typer.main.get_command(app)
    for name in command:
        command_ = command_.commands[name]
    options = [param for param in command_.params if param.param_type_name == "option"]
    assert options or not command
    for param in options:
        if not param.hidden:
            assert param.help, f"{' '.join(command)} {param.opts} has no help text"


def test_threads_ls_on_an_empty_store_says_so(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    SQLiteStore(db).close()
    assert ok("threads", "ls", "--db", str(db)).output.strip() == "No threads."


def test_threads_ls_shows_the_time_it_sorts_by(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    ok("run", DEPLOYBOT, "deploy to production", "--db", db, input="")
    ok("run", DEPLOYBOT, "deploy to staging", "--db", db)
    first, second = SQLiteStore(db).list()  # newest first
    ok("run", DEPLOYBOT, "--thread", second.id, "--db", db, input="y\n")  # the older one is updated last
    out = ok("threads", "ls", "--db", db).output
    assert "created" in out and out.index(first.id) < out.index(second.id)


def test_threads_show_context_finds_the_agent_the_thread_ran_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "t.db")
    ok("run", DEPLOYBOT, "deploy to staging", "--db", db)
    (summary,) = SQLiteStore(db).list()
    monkeypatch.chdir(tmp_path)  # not the repository: no examples/ folder here
    out = ok("threads", "show", summary.id, "--db", db, "--context").output
    assert out.count("--- system ---") == 3 and "type NextStep =" in out


def test_threads_show_context_with_an_unknown_agent_says_to_pass_agent(tmp_path: Path) -> None:
    agent_file = scripted_agent(tmp_path / "mybot.py", "mybot", "hi")
    db = str(tmp_path / "t.db")
    ok("run", str(agent_file), "hello", "--db", db)
    (summary,) = SQLiteStore(db).list()
    line = fails("threads", "show", summary.id, "--db", db, "--context")
    assert "'mybot'" in line and "--agent FILE" in line
    out = ok("threads", "show", summary.id, "--db", db, "--context", "--agent", str(agent_file)).output
    assert "--- user ---" in out


def test_module_colon_agent_is_found_in_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_agent(tmp_path / "cwd_bot_for_cli_test.py", "cwdbot", "found", attr="bot")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", str(tmp_path))])
    out = ok("run", "cwd_bot_for_cli_test:bot", "hi", "--db", str(tmp_path / "t.db")).output
    assert "found" in out


def test_event_text_is_printed_as_is_not_as_emoji_codes(tmp_path: Path) -> None:
    # "openai:m: cannot reach" once printed as "openaiⓂ cannot reach": Rich read ":m:" as an emoji code.
    agent_file = scripted_agent(tmp_path / "echo.py", "echo", "see openai:m: and :smile:")
    out = ok("run", str(agent_file), "hi", "--db", str(tmp_path / "t.db")).output
    assert "see openai:m: and :smile:" in out


def test_serve_without_agents_serves_the_examples_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[object] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **options: served.append(app))  # nothing binds a port
    monkeypatch.chdir(tmp_path)  # not the repository: no examples/ folder here
    result = ok("serve", "--db", str(tmp_path / "s.db"))
    assert "serving deploybot, calculator, release on http://127.0.0.1:8000" in result.output and len(served) == 1
