"""The next-step type on the wire: strict schemas, tool definitions, and the way back to an intent."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from twelvefactor import Agent, Tool, UserError
from twelvefactor.models._schemas import (
    prune_nulls,
    strict_schema,
    tool_call_text,
    tool_definitions,
    tool_schema,
    unwrap_text,
    wrapped_union,
)

from .fakes import strict_problem


class Priority(StrEnum):
    low = "low"
    high = "high"


class Address(BaseModel):
    street: str
    zip: str | None = None


class Node(BaseModel):
    name: str
    children: list[Node] = []


class CreateTicket(Tool):
    """Open a ticket."""

    intent: Literal["create_ticket"] = "create_ticket"
    title: Annotated[str, Field(min_length=3, max_length=80, description="short")]
    priority: Priority = Priority.low
    address: Address | None = None
    tags: list[str] = []
    count: Annotated[int, Field(ge=1, le=10)] = 1


class Tree(Tool):
    """Store a tree."""

    intent: Literal["tree"] = "tree"
    root: Node


class Free(Tool):
    """Takes anything."""

    intent: Literal["free"] = "free"
    data: dict[str, Any]


TOOLS = Agent("a", tools=[CreateTicket, Tree]).toolset.tools


def test_the_strict_schema_meets_every_strict_mode_rule() -> None:
    schema = strict_schema(wrapped_union(TOOLS))
    assert strict_problem(schema) is None
    for _, _, parameters in tool_definitions(TOOLS):
        assert strict_problem(strict_schema(parameters)) is None


def test_optional_fields_become_required_but_nullable_and_the_tag_stays_plain() -> None:
    ticket = strict_schema(wrapped_union(TOOLS))["$defs"]["CreateTicket"]
    assert ticket["required"] == ["intent", "title", "priority", "address", "tags", "count"]
    assert ticket["properties"]["intent"] == {"const": "create_ticket", "type": "string"}
    assert ticket["properties"]["tags"] == {"anyOf": [{"items": {"type": "string"}, "type": "array"}, {"type": "null"}]}
    assert ticket["properties"]["address"]["anyOf"][-1] == {"type": "null"}  # already nullable: no second null
    assert len([m for m in ticket["properties"]["address"]["anyOf"] if m == {"type": "null"}]) == 1
    # Unsupported keywords are said in the description (and still validated by parse afterwards).
    assert ticket["properties"]["title"]["description"] == "short (maxLength=80, minLength=3)"
    assert ticket["properties"]["count"]["anyOf"][0] == {"maximum": 10, "minimum": 1, "type": "integer"}


def test_schemas_strict_mode_cannot_express_are_refused_with_the_fix() -> None:
    with pytest.raises(UserError, match=r"a free-form mapping \(dict\) cannot be enforced in strict mode"):
        strict_schema(tool_schema(Free))
    with pytest.raises(UserError, match="a list without an item type cannot be enforced"):
        strict_schema({"type": "object", "properties": {"x": {"type": "array"}}, "required": ["x"]})


def test_the_input_schema_is_not_changed() -> None:
    before = json.dumps(tool_schema(CreateTicket))
    strict_schema(tool_schema(CreateTicket))
    assert json.dumps(tool_schema(CreateTicket)) == before


def test_nulls_strict_mode_forced_are_dropped_but_meaningful_nulls_stay() -> None:
    sent = {"intent": "create_ticket", "title": "abc", "priority": None, "address": None, "tags": None, "count": None}
    assert prune_nulls(sent, tool_schema(CreateTicket)) == {"intent": "create_ticket", "title": "abc", "address": None}
    nested = {"intent": "create_ticket", "title": "abc", "address": {"street": "x", "zip": None}}
    assert prune_nulls(nested, tool_schema(CreateTicket)) == nested  # zip takes null


def test_tool_calls_map_back_onto_intents() -> None:
    assert json.loads(tool_call_text("tree", '{"root": {"name": "a"}}', TOOLS, strict=True)) == {
        "intent": "tree",
        "root": {"name": "a"},
    }
    assert json.loads(tool_call_text("tree", {"intent": "other", "root": {}}, TOOLS, strict=False))["intent"] == "tree"
    assert tool_call_text("tree", "", TOOLS, strict=True) == '{"intent": "tree"}'
    assert (
        tool_call_text("tree", '{"root": {"name": "a"', TOOLS, strict=True) == '{"intent": "tree", "root": {"name": "a"'
    )
    assert tool_call_text("done_for_now", "{}", TOOLS, strict=True) == '{"intent": "done_for_now"}'


def test_the_wrapper_is_unwrapped_only_when_it_is_exactly_the_wrapper() -> None:
    assert unwrap_text('{"next_step": {"intent": "tree", "root": {"name": "a"}}}', TOOLS, strict=True) == (
        '{"intent": "tree", "root": {"name": "a"}}'
    )
    for text in ('{"intent": "tree"}', '{"next_step": {"a": 1}, "x": 2}', "not json", '{"next_step": "text"}'):
        assert unwrap_text(text, TOOLS, strict=True) == text


def test_intents_are_sent_as_safe_tool_names_and_clashes_or_long_names_are_refused() -> None:
    class Spaced(Tool):
        intent: Literal["look up"] = "look up"

    class Underscored(Tool):
        intent: Literal["look_up"] = "look_up"

    class Long(Tool):
        intent: Literal["x" * 70] = "x" * 70  # type: ignore[valid-type]

    assert [name for name, _, _ in tool_definitions((Spaced,))] == ["look_up"]
    with pytest.raises(UserError, match="intent 'look_up' cannot be a native tool name.*so is 'look up'"):
        tool_definitions((Spaced, Underscored))
    with pytest.raises(UserError, match="at most 64"):
        tool_definitions((Long,))
