"""Running an agent on a dataset: every case in its own thread, in parallel (bounded), answered by its script.

A case's thread runs with ``arun`` until it is done, fails, or waits for a person; a pending request gets
the case's first unused answer that fits it, and the run goes on. A request no answer fits leaves the
thread waiting (which a case may expect). Nothing is stored: the threads live in memory and in the result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from twelvefactor._aio import run_coroutine
from twelvefactor.agent import Agent
from twelvefactor.calls import EventLoopCalls
from twelvefactor.errors import UserError, compact
from twelvefactor.evals.dataset import Answer, Case, Dataset
from twelvefactor.evals.scoring import Check, score_thread, usage_of
from twelvefactor.events import HumanResponse
from twelvefactor.loop import arun
from twelvefactor.thread import Status, Thread, respond

RESULT_FORMAT: Literal[1] = 1
RESPONDER = "eval"


class CaseResult(BaseModel):
    """One case, run and scored: pass/fail, score, the failing checks' reasons, what the run cost, and the
    thread itself (its id and events: the timeline a report shows)."""

    model_config = ConfigDict(frozen=True)

    id: str
    passed: bool
    score: float
    checks: list[Check] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    status: Status | None = None
    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tokens: int = 0
    cost_usd: float | None = None
    latency_ms: float = 0.0
    model_latency_ms: float = 0.0
    thread_id: str | None = None
    events: list[dict[str, JsonValue]] = Field(default_factory=list)
    error: str | None = None

    def thread(self) -> Thread:
        """The case's thread, rebuilt from the result."""
        return Thread.model_validate({"id": self.thread_id or self.id, "events": self.events})


class Summary(BaseModel):
    model_config = ConfigDict(frozen=True)

    cases: int
    passed: int
    failed: int
    pass_rate: float
    mean_score: float
    tokens: int
    cost_usd: float | None
    latency_ms: float


class EvalResult(BaseModel):
    """A whole run: which agent and model on which dataset, when, and every case's result (the JSON file
    ``twelvefactor eval --out`` writes and ``--baseline`` reads)."""

    model_config = ConfigDict(frozen=True)

    format: Literal[1] = RESULT_FORMAT
    agent: str
    model: str | None = None
    output_mode: str | None = None  # how the model was held to the next-step schema (prompted, json_schema, tools)
    dataset: str
    started_at: datetime
    duration_ms: float
    concurrency: int
    summary: Summary
    cases: list[CaseResult]

    @property
    def passed(self) -> bool:
        return all(case.passed for case in self.cases)

    def case(self, case_id: str) -> CaseResult | None:
        return next((case for case in self.cases if case.id == case_id), None)


def summarize(cases: list[CaseResult]) -> Summary:
    passed = sum(1 for case in cases if case.passed)
    costs = [case.cost_usd for case in cases if case.cost_usd is not None]
    return Summary(
        cases=len(cases),
        passed=passed,
        failed=len(cases) - passed,
        pass_rate=round(passed / len(cases), 4) if cases else 0.0,
        mean_score=round(sum(case.score for case in cases) / len(cases), 4) if cases else 0.0,
        tokens=sum(case.tokens for case in cases),
        cost_usd=round(sum(costs), 8) if costs and len(costs) == len(cases) else None,
        latency_ms=round(sum(case.latency_ms for case in cases), 3),
    )


def run_case(agent: Agent, case: Case, *, timeout_s: float | None = None) -> CaseResult:
    """Run and score one case (the synchronous face of :func:`arun_case`)."""
    return run_coroutine(_run_case_alone(agent, case, timeout_s))


async def _run_case_alone(agent: Agent, case: Case, timeout_s: float | None) -> CaseResult:
    calls = EventLoopCalls()
    try:
        return await arun_case(agent, case, calls=calls, timeout_s=timeout_s)
    finally:
        calls.close()


async def arun_case(
    agent: Agent, case: Case, *, calls: EventLoopCalls | None = None, timeout_s: float | None = None
) -> CaseResult:
    """Run ``case`` on ``agent`` to its end (answering with its script) and score the thread."""
    thread = Thread.new(*case.initial_events(), agent=agent.name)
    started = time.perf_counter()
    error: str | None = None
    box = [thread]  # the thread as far as it got: kept when a timeout cancels the run midway
    try:
        await asyncio.wait_for(_advance(agent, case, box, calls), timeout_s)
    except TimeoutError:
        error = f"the case did not finish within {timeout_s:g} s"
    except Exception as exc:  # noqa: BLE001 - one case failing to run is that case's result, not the run's end
        error = compact(f"{type(exc).__name__}: {exc}", 300)
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    return result_of(case, box[0], latency_ms=latency_ms, error=error)


async def _advance(agent: Agent, case: Case, box: list[Thread], calls: EventLoopCalls | None) -> None:
    """Run the thread, answering each request it makes from the case's script, until nothing fits."""
    unused = list(case.answers)
    while True:
        box[0] = await arun(agent, box[0], calls=calls)
        request = box[0].pending_request
        if request is None:
            return
        answer = next((answer for answer in unused if answer.fits(request)), None)
        if answer is None:
            return  # left waiting: what a case without an answer for this request expects
        unused.remove(answer)
        box[0] = respond(box[0], _response(request.call_id, answer))


def _response(request_id: str, answer: Answer) -> HumanResponse:
    return HumanResponse(
        request_id=request_id, approved=answer.approved, text=answer.text, outcome=answer.outcome, responder=RESPONDER
    )


def result_of(case: Case, thread: Thread, *, latency_ms: float = 0.0, error: str | None = None) -> CaseResult:
    """Score ``thread`` against ``case``; a run that raised (``error``) fails with that reason first."""
    checks = score_thread(thread, case)
    if error is not None:
        checks.insert(0, Check(name="run", passed=False, score=0.0, reason=error))
    usage = usage_of(thread)
    return CaseResult(
        id=case.id,
        passed=all(check.passed for check in checks),
        score=round(sum(check.score for check in checks) / len(checks), 4) if checks else 1.0,
        checks=checks,
        reasons=[f"{check.name}: {check.reason}" for check in checks if not check.passed],
        status=thread.status,
        steps=usage.steps,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        tokens=usage.tokens,
        cost_usd=usage.cost_usd,
        latency_ms=latency_ms,
        model_latency_ms=usage.model_latency_ms,
        thread_id=thread.id,
        events=[event.model_dump(mode="json") for event in thread.events],
        error=error,
    )


def run_eval(
    agent: Agent,
    dataset: Dataset,
    *,
    concurrency: int = 4,
    timeout_s: float | None = None,
    on_result: Callable[[CaseResult], Any] | None = None,
) -> EvalResult:
    """Run every case of ``dataset`` on ``agent``, at most ``concurrency`` at once, and score each.

    ``on_result`` is called with each case's result as it finishes (a progress bar). Results keep the
    dataset's order.
    """
    return run_coroutine(arun_eval(agent, dataset, concurrency=concurrency, timeout_s=timeout_s, on_result=on_result))


async def arun_eval(
    agent: Agent,
    dataset: Dataset,
    *,
    concurrency: int = 4,
    timeout_s: float | None = None,
    on_result: Callable[[CaseResult], Any] | None = None,
) -> EvalResult:
    """:func:`run_eval` on an event loop."""
    if concurrency < 1:
        raise UserError(f"concurrency must be at least 1, got {concurrency!r}")
    if agent.model is None:
        raise UserError(f"agent {agent.name!r} has no model: pass one (--model SPEC, or model=... in code)")
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    slots = asyncio.Semaphore(concurrency)
    calls = EventLoopCalls(tool_threads=max(4, concurrency))

    async def one(case: Case) -> CaseResult:
        async with slots:
            result = await arun_case(agent, case, calls=calls, timeout_s=timeout_s)
        if on_result is not None:
            on_result(result)
        return result

    try:
        results = list(await asyncio.gather(*(one(case) for case in dataset.cases)))
    finally:
        calls.close()
    return EvalResult(
        agent=agent.name,
        model=agent.model.name,
        output_mode=agent.output_mode,
        dataset=dataset.name,
        started_at=started_at,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        concurrency=concurrency,
        summary=summarize(results),
        cases=results,
    )
