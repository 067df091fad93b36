"""Workflows: deterministic Python whose steps are durable on a thread (plain, human, timer, sub-agent)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel

from twelvefactor import (
    Agent,
    Effect,
    Error,
    Flow,
    HumanRequest,
    HumanResponse,
    MemoryStore,
    Reconciled,
    ScriptedModel,
    SQLiteStore,
    StepFailed,
    Tool,
    ToolCall,
    ToolContext,
    ToolResult,
    ToolStarted,
    UserError,
    Wait,
    run_workflow,
    workflow,
)
from twelvefactor.store.base import ThreadStore
from twelvefactor.workflows import has_work, wake_at

CALLS: list[tuple[str, Any]] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()


class Crash(BaseException):
    """What kill -9 looks like from inside a step: nothing after it runs, nothing is recorded."""


class Release(BaseModel):
    tag: str
    prs: list[int]


def gather(repo: str) -> Release:
    CALLS.append(("gather", repo))
    return Release(tag="v1.4.2", prs=[12, 15])


def deploy(tag: str, environment: str, ctx: ToolContext) -> str:
    CALLS.append(("deploy", (tag, environment, ctx.attempt, ctx.idempotency_key)))
    return f"{tag} on {environment}"


@workflow
def release(wf: Flow, message: str) -> str:
    found = wf.step(gather, message, effect="read_only")
    assert isinstance(found, Release)  # typed from the return annotation, on the first run and on replays
    wf.step(deploy, found.tag, "staging")
    if not wf.approve(f"Deploy {found.tag} to production?"):
        return f"{found.tag} stays on staging"
    wf.step(deploy, found.tag, "production")
    return f"released {found.tag} ({len(found.prs)} PRs)"


def approve(store: ThreadStore, thread_id: str, approved: bool = True, text: str | None = None) -> None:
    pending = store.load(thread_id).pending_request
    assert pending is not None
    store.respond(thread_id, HumanResponse(request_id=pending.call_id, approved=approved, text=text, responder="ana"))


def test_a_workflow_waits_for_a_person_and_resumes_without_running_a_completed_step_again() -> None:
    store = MemoryStore()
    thread = run_workflow(release, release.new_thread("backend"), store=store)
    assert thread.status == "waiting"
    assert [c[0] for c in CALLS] == ["gather", "deploy"]
    assert thread.pending_request is not None and thread.pending_request.kind == "approval"

    approve(store, thread.id)
    thread = run_workflow(release, store.load(thread.id), store=store)
    assert thread.status == "done"
    assert thread.events[-1].message == "released v1.4.2 (2 PRs)"  # type: ignore[attr-defined]
    assert [c[0] for c in CALLS] == ["gather", "deploy", "deploy"]  # gather and staging ran once
    assert CALLS[2][1][:2] == ("v1.4.2", "production")
    steps = [e.intent for e in thread.events if isinstance(e, ToolCall)]
    assert steps == ["gather", "deploy", "approve", "deploy"]

    again = run_workflow(release, thread, store=store)
    assert again == store.load(thread.id) and again.version == thread.version
    assert len(CALLS) == 3


def test_a_denial_is_a_value_the_workflow_branches_on() -> None:
    store = MemoryStore()
    thread = run_workflow(release, release.new_thread("backend"), store=store)
    approve(store, thread.id, approved=False, text="freeze week")
    thread = run_workflow(release, store.load(thread.id), store=store)
    assert thread.status == "done"
    assert thread.events[-1].message == "v1.4.2 stays on staging"  # type: ignore[attr-defined]
    result = [e for e in thread.events if isinstance(e, ToolResult) and e.intent == "approve"][0]
    assert result.result == {"approved": False, "reason": "freeze week", "responder": "ana"}


def test_a_stored_workflow_resumes_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "threads.db"
    with SQLiteStore(path) as store:
        thread = run_workflow(release, release.new_thread("backend"), store=store)
        approve(store, thread.id)
    with SQLiteStore(path) as store:  # a fresh process: only the file is shared
        thread = run_workflow(release, store.load(thread.id), store=store)
        assert thread.status == "done"
    assert [c[0] for c in CALLS] == ["gather", "deploy", "deploy"]


def crash_in(step_name: str, crash_after: bool = True) -> Callable[..., str]:
    """A step that dies (as a killed process would) right after its side effect, the first time."""

    def step(tag: str, ctx: ToolContext) -> str:
        CALLS.append((step_name, (ctx.attempt, ctx.idempotency_key)))
        if crash_after and sum(1 for c in CALLS if c[0] == step_name) == 1:
            raise Crash  # the side effect happened, the process died before recording it
        return f"{step_name} {tag}"

    step.__name__ = step_name
    return step


def one_step_workflow(effect: Effect, reconcile: Callable[[ToolContext], Reconciled] | None = None) -> Any:
    effectful = crash_in("charge")

    @workflow(name=f"charge_{effect}")
    def charge(wf: Flow) -> str:
        return str(wf.step(effectful, "v1", effect=effect, reconcile=reconcile))

    return charge


def crash_then_resume(flow: Any, store: ThreadStore) -> Any:
    thread = flow.new_thread("go")
    with pytest.raises(Crash):
        run_workflow(flow, thread, store=store)
    stored = store.load(thread.id)
    assert isinstance(stored.events[-1], ToolStarted)  # committed before the step ran
    return run_workflow(flow, stored, store=store)


def test_an_irreversible_step_interrupted_by_a_crash_is_asked_about_never_run_blindly() -> None:
    store = MemoryStore()
    thread = crash_then_resume(one_step_workflow("irreversible"), store)
    assert thread.status == "waiting"
    request = thread.pending_request
    assert request is not None and request.kind == "reconcile" and request.intent == "charge"
    assert len(CALLS) == 1

    store.respond(thread.id, HumanResponse(request_id=request.call_id, outcome="done", text="charged ok"))
    thread = run_workflow(one_step_workflow("irreversible"), store.load(thread.id), store=store)
    assert thread.status == "done" and thread.events[-1].message == "charged ok"  # type: ignore[attr-defined]
    assert len(CALLS) == 1  # never ran twice


def test_a_person_can_say_retry_which_runs_it_again_with_the_same_key() -> None:
    store = MemoryStore()
    flow = one_step_workflow("irreversible")
    thread = crash_then_resume(flow, store)
    assert thread.pending_request is not None
    store.respond(thread.id, HumanResponse(request_id=thread.pending_request.call_id, outcome="retry"))
    thread = run_workflow(flow, store.load(thread.id), store=store)
    assert thread.status == "done"
    assert [c[1][0] for c in CALLS] == [1, 2] and CALLS[0][1][1] == CALLS[1][1][1]


def test_skipping_an_interrupted_step_fails_it_and_the_workflow_says_which_step() -> None:
    store = MemoryStore()
    flow = one_step_workflow("irreversible")
    thread = crash_then_resume(flow, store)
    assert thread.pending_request is not None
    store.respond(thread.id, HumanResponse(request_id=thread.pending_request.call_id, outcome="skip", responder="bo"))
    thread = run_workflow(flow, store.load(thread.id), store=store)
    assert thread.status == "failed"
    last = thread.events[-1]
    assert isinstance(last, Error) and "step_1 (charge)" in last.message and "skipped by bo" in last.message
    assert len(CALLS) == 1


def test_a_reconcile_hook_that_knows_records_the_result_without_asking() -> None:
    store = MemoryStore()
    thread = crash_then_resume(
        one_step_workflow("irreversible", lambda ctx: Reconciled.done(f"found {ctx.call_id}")), store
    )
    assert thread.status == "done" and thread.events[-1].message == "found step_1"  # type: ignore[attr-defined]
    assert len(CALLS) == 1


def test_idempotent_steps_run_again_with_the_same_key_and_read_only_ones_freely() -> None:
    store = MemoryStore()
    thread = crash_then_resume(one_step_workflow("idempotent"), store)
    assert thread.status == "done"
    assert [c[1][0] for c in CALLS] == [1, 2] and CALLS[0][1][1] == CALLS[1][1][1] == f"{thread.id}:step_1"

    CALLS.clear()
    flow = one_step_workflow("read_only")
    fresh = flow.new_thread("go")
    with pytest.raises(Crash):
        run_workflow(flow, fresh, store=store)
    assert not any(isinstance(e, ToolStarted) for e in store.load(fresh.id).events)  # nothing to reconcile
    assert run_workflow(flow, store.load(fresh.id), store=store).status == "done"
    assert len(CALLS) == 2


def test_a_failing_step_is_retried_then_raises_step_failed_which_the_workflow_may_catch() -> None:
    attempts: list[int] = []

    def flaky(ctx: ToolContext) -> str:
        attempts.append(ctx.attempt)
        if len(attempts) < 3:
            raise ConnectionError("registry unreachable")
        return "pushed"

    def broken() -> None:
        raise RuntimeError("disk full")

    @workflow
    def push(wf: Flow) -> str:
        pushed = wf.step(flaky, effect="idempotent", retries=2)
        try:
            wf.step(broken, effect="read_only")
        except StepFailed as exc:
            return f"{pushed}; {exc.name} failed: {exc.message}"
        return "unreachable"

    store = MemoryStore()
    thread = run_workflow(push, push.new_thread(), store=store)
    assert thread.status == "done"
    assert thread.events[-1].message == "pushed; broken failed: RuntimeError: disk full"  # type: ignore[attr-defined]
    assert attempts == [1, 2, 3]
    errors = [e for e in thread.events if isinstance(e, Error)]
    assert [e.call_id for e in errors] == ["step_1", "step_1", "step_2"]


def test_an_uncaught_failure_ends_the_thread_failed_with_everything_before_it_kept() -> None:
    @workflow
    def fragile(wf: Flow) -> None:
        wf.step(gather, "backend", effect="read_only")
        raise KeyError("no such environment")

    thread = run_workflow(fragile, fragile.new_thread(), store=MemoryStore())
    assert thread.status == "failed"
    assert isinstance(thread.events[-2], ToolResult)
    last = thread.events[-1]
    assert isinstance(last, Error) and last.fatal and "KeyError" in last.message


def test_code_that_changed_under_a_running_thread_fails_it_with_the_step_named() -> None:
    store = MemoryStore()
    thread = run_workflow(release, release.new_thread("backend"), store=store)

    @workflow(name="release")
    def reordered(wf: Flow, message: str) -> str:
        wf.step(deploy, "v1", "staging")
        return "?"

    thread = run_workflow(reordered, store.load(thread.id), store=store)
    last = thread.events[-1]
    assert thread.status == "failed" and isinstance(last, Error)
    assert "step_1 'deploy'" in last.message and "recorded 'gather'" in last.message


def test_a_durable_timer_waits_and_survives_a_restart(tmp_path: Path) -> None:
    now = [datetime(2026, 12, 3, 12, 0, tzinfo=UTC)]

    @workflow
    def nightly(wf: Flow) -> str:
        wf.step(gather, "backend", effect="read_only")
        wf.sleep(3600)
        wf.step(gather, "frontend", effect="read_only")
        return "both gathered"

    path = tmp_path / "t.db"
    with SQLiteStore(path) as store:
        thread = run_workflow(nightly, nightly.new_thread(), store=store, clock=lambda: now[0])
        assert thread.status == "waiting" and isinstance(thread.events[-1], Wait)
        assert wake_at(thread) == now[0] + timedelta(hours=1)
        assert not has_work(nightly, thread, store, clock=lambda: now[0])
    now[0] += timedelta(minutes=59)
    with SQLiteStore(path) as store:
        thread = run_workflow(nightly, store.load(thread.id), store=store, clock=lambda: now[0])
        assert thread.status == "waiting"
        now[0] += timedelta(minutes=1)
        assert has_work(nightly, thread, store, clock=lambda: now[0])
        thread = run_workflow(nightly, thread, store=store, clock=lambda: now[0])
    assert thread.status == "done"
    assert CALLS == [("gather", "backend"), ("gather", "frontend")]


class RolloutPlan(Tool):
    """Hand the rollout decision back to the pipeline."""

    intent: Literal["rollout_plan"] = "rollout_plan"
    tag: str
    proceed: bool
    announcement: str


def rollout_agent(script: list[dict[str, Any]]) -> Agent:
    return Agent("rollout", tools=[RolloutPlan], model=ScriptedModel(script), description="decides the rollout")


def test_a_sub_agent_runs_in_its_own_stored_thread_linked_both_ways_and_returns_typed_output() -> None:
    agent = rollout_agent([{"intent": "rollout_plan", "tag": "v1.4.2", "proceed": True, "announcement": "shipping"}])

    @workflow(agents=[agent])
    def plan(wf: Flow) -> str:
        decided = wf.agent(agent, "PRs 12 and 15 merged; pick the tag", output=RolloutPlan)
        assert isinstance(decided, RolloutPlan)
        return f"{decided.tag}: {decided.announcement}"

    store = MemoryStore()
    thread = run_workflow(plan, plan.new_thread(), store=store)
    assert thread.status == "done" and thread.events[-1].message == "v1.4.2: shipping"  # type: ignore[attr-defined]
    call = next(e for e in thread.events if isinstance(e, ToolCall))
    child = store.load(str(call.arguments["thread_id"]))
    assert child.parent_id == thread.id and child.forked_at is None and child.agent == "rollout"
    assert child.status == "done"  # the pipeline took its answer and closed it


def test_a_sub_agent_asking_a_person_pauses_its_parent_until_it_is_done() -> None:
    agent = rollout_agent(
        [
            {"intent": "request_human_input", "question": "Is the freeze over?"},
            {"intent": "done_for_now", "message": "go with v1.4.2"},
        ]
    )

    @workflow(agents=[agent])
    def plan(wf: Flow) -> str:
        advice = wf.agent(agent, "pick the tag")
        wf.step(gather, "after", effect="read_only")
        return advice

    store = MemoryStore()
    thread = run_workflow(plan, plan.new_thread(), store=store)
    assert thread.status == "waiting" and thread.pending_request is None
    wait = thread.events[-1]
    assert isinstance(wait, Wait) and wait.thread_id is not None
    child = store.load(wait.thread_id)
    assert child.status == "waiting" and child.parent_id == thread.id
    assert not has_work(plan, thread, store)

    assert child.pending_request is not None
    store.respond(child.id, HumanResponse(request_id=child.pending_request.call_id, text="yes"))
    assert has_work(plan, store.load(thread.id), store) is False  # the child has work, not the parent (yet)
    thread = run_workflow(plan, store.load(thread.id), store=store)  # no worker: the child runs here
    assert thread.status == "done" and thread.events[-1].message == "go with v1.4.2"  # type: ignore[attr-defined]
    assert store.load(child.id).status == "done"
    assert CALLS == [("gather", "after")]


def test_a_sub_agent_must_be_declared_so_every_process_can_run_it() -> None:
    agent = rollout_agent([])

    @workflow
    def undeclared(wf: Flow) -> str:
        return wf.agent(agent, "x")

    thread = run_workflow(undeclared, undeclared.new_thread(), store=MemoryStore())
    assert thread.status == "failed" and "without declaring it" in thread.events[-1].message  # type: ignore[attr-defined]


class DeployTool(Tool):
    """Deploy (production waits for a person)."""

    intent: Literal["deploy_tool"] = "deploy_tool"
    environment: str
    effect: ClassVar[Effect] = "irreversible"

    def run(self, ctx: ToolContext) -> str:
        CALLS.append(("deploy_tool", (self.environment, ctx.idempotency_key)))
        return f"on {self.environment}"

    def approval_required(self) -> bool:
        return self.environment == "production"


def test_a_tool_step_brings_its_own_approval_rule() -> None:
    @workflow
    def ship(wf: Flow) -> str:
        wf.step(DeployTool(environment="staging"))
        return str(wf.step(DeployTool(environment="production")))

    store = MemoryStore()
    thread = run_workflow(ship, ship.new_thread(), store=store)
    request = thread.pending_request
    assert isinstance(request, HumanRequest) and request.kind == "approval" and request.intent == "deploy_tool"
    assert request.arguments == {"environment": "production"}
    assert CALLS[0] == ("deploy_tool", ("staging", f"{thread.id}:step_1"))
    assert len(CALLS) == 1
    approve(store, thread.id)
    thread = run_workflow(ship, store.load(thread.id), store=store)
    assert thread.status == "done" and len(CALLS) == 2


def test_events_landing_while_a_step_runs_are_kept_and_the_step_is_recorded_after_them() -> None:
    from twelvefactor import CustomEvent

    store = MemoryStore()

    def slow(ctx: ToolContext) -> str:
        store.append(ctx.thread_id, CustomEvent(type="pager_alert", text="disk 91%"))
        return "ok"

    @workflow
    def one(wf: Flow) -> str:
        return str(wf.step(slow, effect="idempotent"))

    thread = run_workflow(one, one.new_thread(), store=store)
    assert thread.status == "done"
    stored = store.load(thread.id)
    assert [e.type for e in stored.events] == [
        "user_message",
        "tool_call",
        "tool_started",
        "pager_alert",
        "tool_result",
        "done",
    ]


def test_workflow_definitions_are_checked_when_they_are_made() -> None:
    with pytest.raises(UserError, match="must take"):
        workflow(lambda: None)
    with pytest.raises(UserError, match="distinct names"):
        workflow(name="x", agents=[rollout_agent([]), rollout_agent([])])(lambda wf: None)

    @workflow
    def anonymous(wf: Flow) -> None:
        wf.step(lambda: 1)

    thread = run_workflow(anonymous, anonymous.new_thread(), store=MemoryStore())
    assert thread.status == "failed" and "needs a name" in thread.events[-1].message  # type: ignore[attr-defined]


def test_a_crash_right_after_the_sub_agent_is_closed_still_gives_the_workflow_its_typed_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = rollout_agent([{"intent": "rollout_plan", "tag": "v1.4.2", "proceed": True, "announcement": "go"}])

    @workflow(agents=[agent])
    def plan(wf: Flow) -> str:
        return wf.agent(agent, "decide", output=RolloutPlan).tag

    store = MemoryStore()
    original = Flow._close_child

    def close_then_crash(self: Flow, child: Any, arguments: Any) -> None:
        original(self, child, arguments)
        raise Crash  # the sub-thread is closed, the parent's step result is not recorded yet

    monkeypatch.setattr(Flow, "_close_child", close_then_crash)
    thread = plan.new_thread()
    with pytest.raises(Crash):
        run_workflow(plan, thread, store=store)
    monkeypatch.setattr(Flow, "_close_child", original)
    thread = run_workflow(plan, store.load(thread.id), store=store)  # a fresh process resumes
    assert thread.status == "done" and thread.events[-1].message == "v1.4.2"  # type: ignore[attr-defined]


def test_a_sub_agent_that_finishes_without_its_typed_answer_fails_the_step_not_the_parser() -> None:
    agent = rollout_agent([{"intent": "done_for_now", "message": "I would ship v1.4.2"}])

    @workflow(agents=[agent])
    def plan(wf: Flow) -> str:
        try:
            return wf.agent(agent, "decide", output=RolloutPlan).tag
        except StepFailed as exc:
            return f"no plan: {exc.message}"

    thread = run_workflow(plan, plan.new_thread(), store=MemoryStore())
    assert thread.status == "done"
    assert "without answering with rollout_plan: I would ship v1.4.2" in thread.events[-1].message  # type: ignore[attr-defined]


def test_a_sub_thread_its_workflow_waits_on_cannot_be_deleted_from_under_it() -> None:
    from twelvefactor.errors import ConflictError
    from twelvefactor.store.retention import delete_thread

    agent = rollout_agent([{"intent": "request_human_input", "question": "freeze over?"}])

    @workflow(agents=[agent])
    def plan(wf: Flow) -> str:
        return wf.agent(agent, "decide")

    store = MemoryStore()
    parent = run_workflow(plan, plan.new_thread(), store=store)
    wait = parent.events[-1]
    assert isinstance(wait, Wait) and wait.thread_id is not None
    with pytest.raises(ConflictError, match="waits on"):
        delete_thread(store, wait.thread_id)
    assert store.load(wait.thread_id).status == "waiting"  # nothing deleted
    delete_thread(store, parent.id)  # the parent first, then the child may go
    delete_thread(store, wait.thread_id)
