"""Running datasets: bounded parallel runs, scripted answers, failures kept per case, JSON and HTML written."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twelvefactor import Agent, FunctionModel, Message
from twelvefactor.evals import EvalResult, dataset_from, render_html, run_case, run_eval, write_html, write_json
from twelvefactor.evals.dataset import Case

from .shop_agent import RUNS, make_agent


def case(**data: Any) -> Case:
    return Case.model_validate(data)


def test_cases_run_in_parallel_at_most_concurrency_at_once() -> None:
    in_flight = 0
    most = 0
    calls = 0

    async def slow(messages: Sequence[Message]) -> dict[str, Any]:
        nonlocal in_flight, most, calls
        in_flight += 1
        calls += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.02)  # every case's model call overlaps the others that are let in
        in_flight -= 1
        return {"intent": "done_for_now", "message": "ok"}

    agent = Agent("slow", model=FunctionModel(slow))
    dataset = dataset_from([{"id": f"c{n}", "input": "hi", "expect": {"status": "done"}} for n in range(9)])
    seen: list[str] = []
    result = run_eval(agent, dataset, concurrency=3, on_result=lambda r: seen.append(r.id))
    assert most == 3 and calls == 9
    assert sorted(seen) == [f"c{n}" for n in range(9)]
    assert [r.id for r in result.cases] == [f"c{n}" for n in range(9)]  # the dataset's order
    assert result.summary.passed == 9 and result.concurrency == 3 and result.model == "function:slow"


def test_scripted_answers_take_a_run_through_a_question_and_an_approval_to_its_end() -> None:
    RUNS.clear()
    result = run_case(
        make_agent(),
        case(
            id="refund",
            input="please refund 12.5 dollars",
            answers=[
                {"kind": "approval", "intent": "refund", "approved": True},
                {"kind": "input", "question_contains": "ORDER NUMBER", "text": "order A1"},
            ],
            expect={
                "status": "done",
                "tool_calls": [{"intent": "refund", "arguments": {"order": "A1", "amount": 12.5}}],
                "final_message": {"contains": "refunded 12.5 on A1"},
                "max_steps": 3,
            },
        ),
    )
    assert result.passed, result.reasons
    assert RUNS == [("refund", {"order": "A1", "amount": 12.5})]
    types = [e["type"] for e in result.events if e["type"] != "model_call"]
    assert types == [
        "user_message", "human_request", "human_response", "tool_call", "human_request", "human_response",
        "tool_started", "tool_result", "done",
    ]  # fmt: skip
    assert (result.steps, result.status) == (3, "done")
    assert result.tokens == result.input_tokens + result.output_tokens > 0
    assert result.thread().status == "done"


def test_a_request_no_answer_fits_leaves_the_thread_waiting() -> None:
    denied_only = [{"kind": "approval", "intent": "lookup", "approved": False}]  # for another intent
    result = run_case(
        make_agent(),
        case(id="ask", input="refund 3 dollars", answers=denied_only, expect={"status": "done"}),
    )
    assert not result.passed and result.status == "waiting"
    assert result.reasons == ["status: status is waiting, expected done"]


def test_a_case_that_raises_or_times_out_fails_alone_with_its_reason() -> None:
    async def stuck(messages: Sequence[Message]) -> str:
        if "hang" in messages[-1].content:
            await asyncio.sleep(30)
        raise RuntimeError("adapter bug")  # a model adapter that is broken: the loop records a fatal error

    agent = Agent("flaky", model=FunctionModel(stuck))
    dataset = dataset_from(
        [
            {"id": "hang", "input": "hang", "expect": {"status": "done"}},
            {"id": "bug", "input": "go", "expect": {"status": "failed"}},
        ]
    )
    result = run_eval(agent, dataset, concurrency=2, timeout_s=0.2)
    hang, bug = result.cases
    assert not hang.passed and hang.error == "the case did not finish within 0.2 s"
    assert hang.reasons[0] == "run: the case did not finish within 0.2 s"
    assert bug.passed and bug.status == "failed"  # what that case expects


def test_the_json_result_round_trips_and_carries_what_later_reports_need(tmp_path: Path) -> None:
    dataset = dataset_from(
        [{"id": "price", "input": "price of SKU-7", "expect": {"final_message": {"contains": "12.5"}}}]
    )
    result = run_eval(make_agent(), dataset)
    path = tmp_path / "result.json"
    write_json(result, path)
    data = json.loads(path.read_text())
    [saved] = data["cases"]
    for key in ("passed", "score", "reasons", "steps", "tokens", "input_tokens", "output_tokens", "cost_usd",
                "latency_ms", "model_latency_ms", "thread_id", "events", "checks"):  # fmt: skip
        assert key in saved, key
    assert EvalResult.model_validate_json(path.read_text()) == result
    assert data["summary"] == {**data["summary"], "cases": 1, "passed": 1, "pass_rate": 1.0}


def test_the_html_report_is_self_contained_and_escapes_what_the_model_wrote(tmp_path: Path) -> None:
    hostile = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    dataset = dataset_from(
        [
            {"id": "echo", "input": f"say {hostile}", "expect": {"final_message": {"equals": "nothing"}}},
            {"id": "price", "input": "price of SKU-7", "expect": {"status": "done"}},
        ]
    )
    result = run_eval(make_agent(), dataset)
    assert result.cases[0].events[-1]["message"] == hostile  # it did reach the thread
    write_html(result, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert "<script" not in page and "<img" not in page and "&lt;script&gt;" in page
    assert "src=" not in page.replace("src=x", "") and "http" not in page  # loads nothing from anywhere
    assert page.count('<ol class="timeline">') == 2 and "tool_result" in page and "FAIL" in page
    assert render_html(result) == page
