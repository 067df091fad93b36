"""TestModel: a model that needs no script, and overriding an agent's model in a test."""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Annotated, ClassVar, Literal

import pytest
from pydantic import BaseModel, Field

from twelvefactor import Agent, Effect, Tool, ToolResult, run, tool
from twelvefactor.errors import UserError
from twelvefactor.models import ScriptedModel, TestModel, valid_arguments


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    city: str = Field(min_length=3)
    zip_code: Annotated[str, Field(pattern=r"^\d{5}$")]


class Ship(Tool):
    """Ship an order."""

    intent: Literal["ship"] = "ship"
    order: int = Field(ge=1000, le=9999)
    weight_kg: float = Field(gt=0.5)
    express: bool
    color: Color
    when: date
    to: Address
    tags: list[str] = Field(min_length=2)
    note: str | None = None
    effect: ClassVar[Effect] = "idempotent"

    def run(self) -> str:
        return f"shipped {self.order} to {self.to.city}"


@tool(effect="read_only")
def lookup(sku: Annotated[str, Field(min_length=4, max_length=8)], count: int = 1) -> str:
    """Look a product up."""
    return f"{sku} x{count}"


def test_valid_arguments_satisfy_every_constraint_of_the_schema() -> None:
    arguments = valid_arguments(Ship)
    ship = Ship.model_validate({"intent": "ship", **arguments})  # validates: ranges, pattern, nesting, lengths
    assert 1000 <= ship.order <= 9999 and ship.weight_kg > 0.5 and len(ship.tags) >= 2
    assert valid_arguments(lookup)["sku"].__len__() >= 4


def test_an_agent_runs_on_the_test_model_without_a_script_calling_each_tool_once() -> None:
    agent = Agent("shop", tools=[Ship, lookup], model=TestModel())
    thread = run(agent, agent.new_thread("ship it"))
    assert thread.status == "done"
    results = [e for e in thread.events if isinstance(e, ToolResult)]
    assert [r.intent for r in results] == ["ship", "lookup"]
    assert str(results[0].result).startswith("shipped ")


@pytest.mark.parametrize("mode", ["prompted", "json_schema", "tools"])
def test_the_test_model_serves_every_output_mode(mode: str) -> None:
    agent = Agent("shop", tools=[lookup], model=TestModel(), output_mode=mode)  # type: ignore[arg-type]
    assert run(agent, agent.new_thread("find it")).status == "done"


def test_chosen_tools_and_arguments_and_the_final_message() -> None:
    model = TestModel(call_tools=["lookup"], arguments={"lookup": {"sku": "ABCD", "count": 3}}, final="all found")
    agent = Agent("shop", tools=[Ship, lookup], model=model)
    thread = run(agent, agent.new_thread("find it"))
    results = [e.result for e in thread.events if isinstance(e, ToolResult)]
    assert results == ["ABCD x3"]
    assert thread.events[-1].message == "all found"  # type: ignore[attr-defined]


def test_unknown_tools_or_arguments_that_do_not_validate_are_clear_errors() -> None:
    agent = Agent("shop", tools=[lookup], model=TestModel(call_tools=["nope"]))
    failed = run(agent, agent.new_thread("go"))
    assert failed.status == "failed" and "'nope' is not one of" in failed.events[-1].message  # type: ignore[attr-defined]
    with pytest.raises(UserError, match="the agent's intents"):
        TestModel().complete([])
    bad = Agent("shop", tools=[lookup], model=TestModel(arguments={"lookup": {"sku": "x"}}))
    thread = run(bad, bad.new_thread("go"))
    # The arguments are the test's own: sent as given, so the agent's real validation answers them.
    assert any(e.type == "error" for e in thread.events)


def test_override_swaps_an_agents_model_for_a_block_and_restores_it() -> None:
    real = ScriptedModel([])
    agent = Agent("shop", tools=[lookup], model=real)
    with agent.override(model=TestModel()):
        assert isinstance(agent.model, TestModel)
        assert run(agent, agent.new_thread("x")).status == "done"
    assert agent.model is real
    with pytest.raises(RuntimeError), agent.override(model=TestModel()):
        raise RuntimeError("boom")
    assert agent.model is real
