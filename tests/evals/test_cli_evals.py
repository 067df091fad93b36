"""The commands: `eval` (files, table, exit codes against a baseline), `threads export --as-case`, `replay`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from twelvefactor import HumanResponse, run
from twelvefactor.cli import app
from twelvefactor.evals import load_dataset, load_result
from twelvefactor.prompts import DEFAULT_TEMPLATE
from twelvefactor.store import SQLiteStore

from .shop_agent import RUNS, agent

SHOP = f"{Path(__file__).parent / 'shop_agent.py'}:agent"
runner = CliRunner()

CASES = [
    {"id": "price", "input": "what is the price of SKU-1", "expect": {"final_message": {"contains": "dollars"}}},
    {
        "id": "refund",
        "input": "refund 5 dollars on order A1",
        "answers": [{"kind": "approval", "approved": True}],
        "expect": {"status": "done", "tool_calls": [{"intent": "refund", "arguments": {"order": "A1"}}]},
    },
]


def cli(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def prompt_file(tmp_path: Path, name: str, extra: str) -> str:
    path = tmp_path / name
    path.write_text(DEFAULT_TEMPLATE.replace("Decide the ONE next step", f"{extra} Decide the ONE next step"))
    return str(path)


def test_eval_writes_its_files_and_a_baseline_catches_a_prompt_change_that_regresses(tmp_path: Path) -> None:
    dataset = tmp_path / "shop.jsonl"
    dataset.write_text("".join(json.dumps(case) + "\n" for case in CASES))
    base, report = tmp_path / "base.json", tmp_path / "base.html"
    out = cli("eval", SHOP, str(dataset), "--out", str(base), "--html", str(report), "--concurrency", "2")
    assert "2/2 passed" in out and load_result(base).summary.passed == 2
    assert "<table>" in report.read_text()

    # The same agent against its baseline: no regression.
    again = cli("eval", SHOP, str(dataset), "--baseline", str(base), "--out", str(tmp_path / "r.json"),
                "--html", str(tmp_path / "r.html"))  # fmt: skip
    assert "no regression" in again

    # A prompt change that makes the price answer terse: that case regressed, exit 1 (CI fails).
    terse = prompt_file(tmp_path, "terse.jinja", "Be terse.")
    changed, changed_html = tmp_path / "changed.json", tmp_path / "changed.html"
    out = cli("eval", SHOP, str(dataset), "--prompt", terse, "--baseline", str(base), "--out", str(changed),
              "--html", str(changed_html), code=1)  # fmt: skip
    assert "1 regression(s)" in out and "REGRESSED" in out and ": price" in out
    assert 'class="badge regressed"' in changed_html.read_text()
    assert [case.passed for case in load_result(changed).cases] == [False, True]

    # A case that failed before and still fails is a known failure, not a regression.
    still = cli("eval", SHOP, str(dataset), "--prompt", terse, "--baseline", str(changed), "--out",
                str(tmp_path / "s.json"), "--html", str(tmp_path / "s.html"))  # fmt: skip
    assert "no regression" in still and "1/2 passed" in still

    # Without a baseline, a failing case is a failing run.
    cli("eval", SHOP, str(dataset), "--prompt", terse, "--out", str(tmp_path / "t.json"),
        "--html", str(tmp_path / "t.html"), code=1)  # fmt: skip


def test_eval_refuses_a_bad_dataset_or_baseline_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "x", "input": "hi", "expect": {"max_steps": -1}}]))
    out = cli("eval", SHOP, str(bad), code=1)
    assert "case 'x' (#1): expect.max_steps" in out and "Traceback" not in out
    good = tmp_path / "good.json"
    good.write_text(json.dumps(CASES[:1]))
    out = cli("eval", SHOP, str(good), "--baseline", str(good), code=1)
    assert "is not an eval result" in out


def stored_refund_thread(db: Path) -> str:
    """A production thread: asked for the order, approved by a person, done."""
    with SQLiteStore(db) as store:
        thread = run(agent, agent.new_thread("please refund 7 dollars"), store=store)
        store.respond(thread.id, HumanResponse(request_id=thread.pending_request.call_id, text="order Z9"))  # type: ignore[union-attr]
        thread = run(agent, store.load(thread.id), store=store)
        store.respond(thread.id, HumanResponse(request_id=thread.pending_request.call_id, approved=True))  # type: ignore[union-attr]
        thread = run(agent, store.load(thread.id), store=store)
        assert thread.status == "done"
        return thread.id


def test_a_stored_thread_exported_as_a_case_runs_as_an_eval(tmp_path: Path) -> None:
    db = tmp_path / "prod.db"
    thread_id = stored_refund_thread(db)
    exported = cli("threads", "export", thread_id, "--as-case", "--db", str(db))
    case = json.loads(exported)
    assert case["input"] == "please refund 7 dollars" and case["source_thread"] == thread_id
    assert case["answers"] == [
        {"kind": "input", "text": "order Z9"},
        {"kind": "approval", "intent": "refund", "approved": True},
    ]
    assert case["expect"]["status"] == "done"
    assert case["expect"]["tool_calls"] == [{"intent": "refund", "arguments": {"order": "Z9", "amount": 7.0}}]
    path = tmp_path / "case.json"
    path.write_text(exported)
    assert [c.id for c in load_dataset(path).cases] == [f"thread-{thread_id}"]
    out = cli("eval", SHOP, str(path), "--out", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"))
    assert "1/1 passed" in out

    line = cli("threads", "export", thread_id, "--as-case", "--jsonl", "--id", "refund-z9", "--db", str(db))
    assert line.count("\n") == 1 and json.loads(line)["id"] == "refund-z9"
    plain = json.loads(cli("threads", "export", thread_id, "--db", str(db)))
    assert plain["id"] == thread_id and len(plain["events"]) > 5
    assert "no store at" in cli("threads", "export", thread_id, "--db", str(tmp_path / "none.db"), code=1)


def test_replay_shows_where_a_changed_prompt_decides_otherwise_and_runs_no_tool(tmp_path: Path) -> None:
    db = tmp_path / "prod.db"
    thread_id = stored_refund_thread(db)
    RUNS.clear()
    same = cli("replay", thread_id, "--agent", SHOP, "--db", str(db), "--check")
    assert "3 decisions, 3 the same, 0 different; none diverge" in same
    never_ask = prompt_file(tmp_path, "never_ask.jinja", "Never ask for an order number.")
    out = cli("replay", thread_id, "--agent", SHOP, "--db", str(db), "--prompt", never_ask, "--check", code=1)
    assert "first divergence at event 1" in out and "NO" in out
    report = json.loads(cli("replay", thread_id, "--agent", SHOP, "--db", str(db), "--prompt", never_ask, "--json"))
    first = report["decisions"][0]
    assert first["recorded"]["kind"] == "question" and first["new"]["intent"] == "refund"
    assert RUNS == []  # replaying decisions ran no tool


def test_eval_runs_offline_on_a_cassette_with_its_costs(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    dataset = tmp_path / "calc.json"
    expect = {"status": "done", "tool_calls": [{"intent": "add", "arguments": {"a": 3, "b": 4}}], "max_cost_usd": 0.01}
    dataset.write_text(json.dumps({"id": "add", "input": "what is 3 plus 4", "expect": expect}))
    out = tmp_path / "r.json"
    cassette = root / "examples" / "calculator" / "cassettes" / "openai-add.json"
    cli("eval", str(root / "examples" / "calculator"), str(dataset), "--model", f"replay:{cassette}",
        "--out", str(out), "--html", str(tmp_path / "r.html"))  # fmt: skip
    result = load_result(out)
    [case] = result.cases
    assert case.passed and case.steps == 2 and case.cost_usd is not None and case.cost_usd > 0
    assert str(result.model).startswith("openai:")
