from __future__ import annotations

from typing import Literal

import pytest

from twelvefactor import Tool, ToolError, UserError, tool
from twelvefactor.tools import DoneForNow, RequestHumanInput, Toolset, compact_exception, execute


@tool
def add(a: float, b: float = 1.0) -> float:
    """Add b to a."""
    return a + b


@tool(requires_approval=True, name="remove_user")
def delete_user(user_id: int) -> str:
    """Delete a user account."""
    return f"deleted {user_id}"


class Lookup(Tool):
    """Look a customer up (handled by the caller's own code: no run method)."""

    intent: Literal["lookup"] = "lookup"
    email: str


def test_a_typed_function_becomes_a_tool_with_an_intent_and_fields() -> None:
    call = add(a=2)
    assert call.intent == "add"
    assert call.run() == 3.0
    assert add.__doc__ == "Add b to a."
    assert add.model_json_schema()["required"] == ["a"]


def test_requires_approval_and_custom_intent_name() -> None:
    assert delete_user.intent_name() == "remove_user"
    assert delete_user.requires_approval is True
    assert delete_user(user_id=4).approval_required() is True
    assert add(a=1).approval_required() is False


def test_toolset_union_validates_by_intent_and_adds_the_built_ins() -> None:
    tools = Toolset([add, delete_user, Lookup])
    assert tools.intents == ["add", "remove_user", "lookup", "request_human_input", "done_for_now"]
    step = tools.adapter.validate_python({"intent": "lookup", "email": "a@b.c"})
    assert isinstance(step, Lookup)
    assert isinstance(tools.adapter.validate_python({"intent": "done_for_now", "message": "x"}), DoneForNow)
    assert isinstance(
        tools.adapter.validate_python({"intent": "request_human_input", "question": "?"}), RequestHumanInput
    )
    assert Lookup.is_executable() is False and add.is_executable() is True


def test_duplicate_intents_are_refused() -> None:
    with pytest.raises(UserError, match="two tools share the intent 'add'"):
        Toolset([add, add])


def test_a_tool_without_an_intent_literal_is_refused() -> None:
    class NoIntent(Tool):
        x: int

    with pytest.raises(UserError, match="needs a field `intent"):
        Toolset([NoIntent])


def test_untyped_parameters_are_refused() -> None:
    def untyped(a):  # type: ignore[no-untyped-def]
        return a

    with pytest.raises(UserError, match="parameter 'a' needs a type hint"):
        tool(untyped)


def test_execute_turns_an_exception_into_a_one_line_tool_error() -> None:
    @tool
    def boom(x: int) -> int:
        raise KeyError(f"no row\nwith id {x}")

    with pytest.raises(ToolError) as info:
        execute(boom(x=3))
    assert str(info.value) == "KeyError: 'no row\\nwith id 3'"
    assert "\n" not in str(info.value)


def test_a_result_that_is_not_json_is_a_clear_tool_error() -> None:
    @tool
    def opaque() -> object:
        return object()

    with pytest.raises(ToolError, match="returned a object, which is not JSON-serialisable"):
        execute(opaque())


def test_compact_exception_is_bounded() -> None:
    text = compact_exception(ValueError("x" * 1000), limit=80)
    assert len(text) == 80 and text.startswith("ValueError: xxx") and text.endswith("…")


def test_rebuild_recreates_the_intent_from_a_recorded_call() -> None:
    tools = Toolset([add])
    assert tools.rebuild("add", {"a": 2, "b": 5}).run() == 7
    with pytest.raises(UserError, match="'nope' is not one of this agent's tools"):
        tools.rebuild("nope", {})
