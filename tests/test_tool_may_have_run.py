"""A tool that cannot tell whether its call took effect (``ToolError(may_have_run=True)``): an irreversible
call is reconciled like one interrupted by a crash, never recorded as a failure the model would retry."""

from __future__ import annotations

from twelvefactor import (
    Agent,
    Error,
    HumanRequest,
    HumanResponse,
    MemoryStore,
    Reconciled,
    ScriptedModel,
    ToolContext,
    ToolReconciled,
    ToolResult,
    run,
    tool,
)
from twelvefactor.errors import ToolError

CALLS: list[int] = []


def _flaky(ctx: ToolContext) -> str:
    CALLS.append(ctx.attempt)
    if ctx.attempt == 1:
        raise ToolError("the connection dropped mid-call", may_have_run=True)
    return "sent"


@tool(effect="irreversible")
def send(to: str, ctx: ToolContext) -> str:
    """Send a message."""
    return _flaky(ctx)


@tool(effect="read_only")
def peek(to: str, ctx: ToolContext) -> str:
    """Read a mailbox."""
    return _flaky(ctx)


def _agent(intent: str) -> Agent:
    script = [{"intent": intent, "to": "ann"}, {"intent": "done_for_now", "message": "ok"}]
    return Agent("mailer", tools=[send, peek], model=ScriptedModel(script))


def test_an_irreversible_call_that_may_have_run_asks_a_person_and_retry_runs_it_again() -> None:
    CALLS.clear()
    store = MemoryStore()
    agent = _agent("send")
    thread = run(agent, agent.new_thread("mail ann"), store=store)
    request = thread.pending_request
    assert thread.status == "waiting" and request is not None and request.kind == "reconcile"
    assert "may have run (attempt 1: the connection dropped mid-call)" in request.question
    assert not any(isinstance(e, Error) for e in thread.events)
    store.respond(thread.id, HumanResponse(request_id=request.call_id, outcome="retry"))
    thread = run(agent, store.load(thread.id), store=store)
    assert thread.status == "done" and CALLS == [1, 2]
    assert [e.result for e in thread.events if isinstance(e, ToolResult)] == ["sent"]


def test_a_hook_that_can_tell_decides_instead_of_a_person() -> None:
    CALLS.clear()

    @tool(effect="irreversible", reconcile=lambda to, ctx: Reconciled.done("it had been sent"))
    def send(to: str, ctx: ToolContext) -> str:
        """Send a message."""
        return _flaky(ctx)

    agent = Agent(
        "mailer",
        tools=[send],
        model=ScriptedModel([{"intent": "send", "to": "ann"}, {"intent": "done_for_now", "message": "ok"}]),
    )
    thread = run(agent, agent.new_thread("mail ann"))
    assert thread.status == "done" and CALLS == [1]
    assert [e.outcome for e in thread.events if isinstance(e, ToolReconciled)] == ["done"]
    assert [e.result for e in thread.events if isinstance(e, ToolResult)] == ["it had been sent"]


def test_a_read_only_call_that_may_have_run_is_an_error_the_model_sees() -> None:
    CALLS.clear()
    agent = _agent("peek")
    thread = run(agent, agent.new_thread("peek"))
    assert thread.status == "done"
    errors = [e for e in thread.events if isinstance(e, Error)]
    assert [e.message for e in errors] == ["the connection dropped mid-call"]
    assert not any(isinstance(e, HumanRequest) for e in thread.events)
