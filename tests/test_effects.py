"""Side effects exactly once or asked: effect kinds, the tool context, and reconciling a call that may
have run before a crash."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pytest

from twelvefactor import (
    Agent,
    HumanResponse,
    MemoryStore,
    Reconciled,
    ScriptedModel,
    Thread,
    Tool,
    ToolCall,
    ToolContext,
    ToolResult,
    ToolStarted,
    UserMessage,
    run,
    tool,
)
from twelvefactor.errors import UserError
from twelvefactor.thread import respond

LEDGER: list[tuple[str, int, str]] = []


@pytest.fixture(autouse=True)
def _clear_ledger() -> None:
    LEDGER.clear()


@tool(effect="irreversible")
def pay(amount: int, ctx: ToolContext) -> str:
    """Pay an invoice."""
    LEDGER.append(("pay", ctx.attempt, ctx.idempotency_key))
    return f"paid {amount}"


@tool(effect="idempotent")
def upsert(key: str, ctx: ToolContext) -> str:
    """Write a record under a key."""
    LEDGER.append(("upsert", ctx.attempt, ctx.idempotency_key))
    return "ok"


@tool(effect="read_only")
def lookup(key: str) -> str:
    """Read a record."""
    LEDGER.append(("lookup", 0, key))
    return "value"


def agent(*tools: type[Tool], script: list[dict[str, Any]] | None = None) -> Agent:
    return Agent(
        "payer", tools=list(tools), model=ScriptedModel(script or [{"intent": "done_for_now", "message": "ok"}])
    )


def crashed_in(intent: str, arguments: dict[str, Any], attempt: int = 1) -> Thread:
    """A thread whose process died inside the tool: the call and its start are recorded, no result."""
    thread = Thread.new(UserMessage(content="go"), agent="payer", id="t1")
    call = ToolCall(call_id="call_1", intent=intent, arguments=arguments)
    started = [
        ToolStarted(call_id="call_1", intent=intent, attempt=n, call_key="t1:call_1") for n in range(1, attempt + 1)
    ]
    return Thread.new(*thread.events, call, *started, agent="payer", id="t1")


def test_effect_kinds_are_declared_and_irreversible_is_the_default() -> None:
    assert pay.effect == "irreversible" and upsert.effect == "idempotent" and lookup.effect == "read_only"

    @tool
    def plain(x: int) -> int:
        """Plain."""
        return x

    class Deploy(Tool):
        intent: Literal["deploy"] = "deploy"

        def run(self) -> str:
            return "deployed"

    assert plain.effect == "irreversible" and Deploy.effect == "irreversible"
    with pytest.raises(UserError, match="effect"):
        tool(effect="sometimes")(lambda: None)  # type: ignore[arg-type]


def test_the_context_parameter_is_not_a_field_the_model_fills() -> None:
    assert set(pay.model_fields) == {"intent", "amount"}


def test_a_tool_gets_its_thread_call_attempt_and_a_stable_key() -> None:
    bot = agent(pay, script=[{"intent": "pay", "amount": 5}, {"intent": "done_for_now", "message": "paid"}])
    thread = run(bot, Thread.new(UserMessage(content="pay"), agent="payer", id="t9"))
    assert thread.status == "done"
    assert LEDGER == [("pay", 1, "t9:call_2")]


def test_the_start_of_an_irreversible_call_is_committed_before_it_runs() -> None:
    store = MemoryStore()
    seen: list[list[str]] = []

    class Transfer(Tool):
        intent: Literal["transfer"] = "transfer"

        def run(self, ctx: ToolContext) -> str:
            seen.append([e.type for e in store.load(ctx.thread_id).events])
            return "sent"

    bot = agent(Transfer, script=[{"intent": "transfer"}, {"intent": "done_for_now", "message": "ok"}])
    run(bot, bot.new_thread("send it"), store=store)
    assert seen == [["user_message", "model_call", "tool_call", "tool_started"]]


def test_an_irreversible_call_interrupted_by_a_crash_is_not_run_again_but_asked_about() -> None:
    thread = run(agent(pay), crashed_in("pay", {"amount": 5}))
    assert LEDGER == []
    assert thread.status == "waiting"
    request = thread.pending_request
    assert request is not None and request.kind == "reconcile"
    assert "pay" in request.question and "may have run before a crash" in request.question


@pytest.mark.parametrize(
    ("outcome", "text", "ledger", "last"),
    [
        ("retry", None, [("pay", 2, "t1:call_1")], "paid 5"),
        ("done", "receipt 77", [], "receipt 77"),
        ("skip", None, [], None),
    ],
)
def test_a_person_decides_a_call_that_may_have_run(
    outcome: str, text: str | None, ledger: list[Any], last: Any
) -> None:
    bot = agent(pay, script=[{"intent": "done_for_now", "message": "ok"}])
    waiting = run(bot, crashed_in("pay", {"amount": 5}))
    request = waiting.pending_request
    assert request is not None
    answered = respond(waiting, HumanResponse(request_id=request.call_id, outcome=outcome, text=text))  # type: ignore[arg-type]
    final = run(bot, answered)
    assert final.status == "done"
    assert ledger == LEDGER
    results = [e for e in final.events if isinstance(e, ToolResult)]
    if last is None:
        assert results == []
        assert any(e.type == "error" and "skipped" in e.message for e in final.events)  # type: ignore[attr-defined]
    else:
        assert [r.result for r in results] == [last]
    assert any(e.type == "tool_reconciled" for e in final.events)  # every decision is an event


def test_a_reconcile_answer_needs_an_outcome() -> None:
    waiting = run(agent(pay), crashed_in("pay", {"amount": 5}))
    request = waiting.pending_request
    assert request is not None
    with pytest.raises(UserError, match="outcome"):
        respond(waiting, HumanResponse(request_id=request.call_id, text="hm"))


class Charge(Tool):
    """Charge a card, checking the payment provider after a crash."""

    intent: Literal["charge"] = "charge"
    amount: int
    effect: ClassVar[Literal["irreversible"]] = "irreversible"
    provider: ClassVar[dict[str, str]] = {}

    def run(self, ctx: ToolContext) -> str:
        LEDGER.append(("charge", ctx.attempt, ctx.idempotency_key))
        return "charged"

    def reconcile(self, ctx: ToolContext) -> Reconciled:
        status = self.provider.get(ctx.idempotency_key)
        if status == "succeeded":
            return Reconciled.done(f"charge {ctx.idempotency_key} had succeeded")
        if status == "absent":
            return Reconciled.not_run()
        return Reconciled.unknown()


@pytest.mark.parametrize(
    ("provider", "ledger", "status"),
    [
        ("succeeded", [], "done"),
        ("absent", [("charge", 2, "t1:call_1")], "done"),
        ("pending", [], "waiting"),
    ],
)
def test_the_reconcile_hook_decides_first(provider: str, ledger: list[Any], status: str) -> None:
    Charge.provider = {"t1:call_1": provider}
    final = run(agent(Charge), crashed_in("charge", {"amount": 9}))
    assert ledger == LEDGER
    assert final.status == status
    if status == "waiting":
        assert final.pending_request is not None and final.pending_request.kind == "reconcile"
    decided = [e for e in final.events if e.type == "tool_reconciled"]
    assert decided and decided[0].decided_by == "hook"  # type: ignore[attr-defined]


def test_an_idempotent_call_is_run_again_with_the_same_key() -> None:
    final = run(agent(upsert), crashed_in("upsert", {"key": "k"}))
    assert final.status == "done"
    assert LEDGER == [("upsert", 2, "t1:call_1")]


def test_a_read_only_call_is_run_again_freely_and_records_no_start() -> None:
    thread = Thread.new(
        UserMessage(content="go"), ToolCall(call_id="call_1", intent="lookup", arguments={"key": "k"}), agent="payer"
    )
    final = run(agent(lookup), thread)
    assert LEDGER == [("lookup", 0, "k")]
    assert not any(e.type == "tool_started" for e in final.events)
