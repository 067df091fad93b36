"""The CLI's model options: ``run --model`` and ``threads show ID --calls`` with accounting."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twelvefactor.cli import app
from twelvefactor.store import SQLiteStore

LOCAL = importlib.util.find_spec("llama_cpp") is not None

ROOT = Path(__file__).resolve().parents[2]
CALCULATOR = str(ROOT / "examples" / "calculator")
CASSETTE = ROOT / "examples" / "calculator" / "cassettes" / "openai-add.json"
runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_run_with_a_model_string_and_show_the_exact_request_bodies_and_totals(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    out = invoke("run", CALCULATOR, "what is 3 plus 4", "--db", db, "-v", "--model", f"replay:{CASSETTE}")
    assert "The answer is 7.0." in out
    assert "model gpt-4o-mini-2025-01-01:" in out and "tokens" in out and "$0.0000" in out
    (summary,) = SQLiteStore(db).list()
    shown = invoke("threads", "show", summary.id, "--db", db, "--calls")
    recorded = json.loads(CASSETTE.read_text())["interactions"]
    first_body = json.dumps(recorded[0]["request"]["body"], indent=2, ensure_ascii=False)
    assert first_body in shown  # byte for byte what was sent
    assert shown.count("request body of the model call at event") == 2
    assert "2 model calls: 587 input + 28 output tokens, $0.000105" in shown


def test_the_model_can_come_from_the_environment(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    out = invoke("run", CALCULATOR, "what is 3 plus 4", "--db", db, env={"TWELVEFACTOR_MODEL": f"replay:{CASSETTE}"})
    assert "The answer is 7.0." in out
    (summary,) = SQLiteStore(db).list()
    thread = SQLiteStore(db).load(summary.id)
    assert all(e.model.startswith("gpt-4o-mini") for e in thread.events if e.type == "model_call")  # type: ignore[attr-defined]


def test_calls_of_a_test_double_say_they_sent_no_body(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    invoke("run", CALCULATOR, "what is 3 plus 4", "--db", db)
    (summary,) = SQLiteStore(db).list()
    shown = invoke("threads", "show", summary.id, "--db", db, "--calls")
    assert "(not recorded: a test double" in shown and "2 model calls:" in shown


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope:gpt", "unknown model provider 'nope'"),
        ("local:/no/such/model.gguf", "no such file" if LOCAL else "install the local extra"),
    ],
)
def test_a_bad_model_string_is_a_clear_error(tmp_path: Path, spec: str, message: str) -> None:
    result = runner.invoke(app, ["run", CALCULATOR, "hi", "--db", str(tmp_path / "t.db"), "--model", spec])
    assert result.exit_code == 1 and message in " ".join(result.output.split())
