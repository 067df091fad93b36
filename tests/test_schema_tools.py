"""Tools built from JSON Schema / OpenAI and Anthropic function definitions behave like hand-written ones."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from twelvefactor import (
    Agent,
    ScriptedModel,
    ToolCall,
    ToolResult,
    UserError,
    parse,
    run,
    tool_from_schema,
    tools_from_definitions,
)

# A corpus of function definitions of the shapes public APIs document (weather, payments, issues, chat,
# calendars, search), in the three dialects: OpenAI tools, OpenAI legacy functions, Anthropic tools.
GET_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City and country, e.g. Paris, France"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            },
            "required": ["location"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
CREATE_CHARGE = {
    "name": "create_charge",
    "description": "Charge a customer's card.",
    "parameters": {
        "type": "object",
        "properties": {
            "amount": {"type": "integer", "minimum": 50, "maximum": 99999999, "description": "in cents"},
            "currency": {"type": "string", "pattern": "^[a-z]{3}$"},
            "customer": {"type": "string", "minLength": 3},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            "capture": {"type": "boolean", "default": True},
        },
        "required": ["amount", "currency", "customer"],
    },
}
CREATE_ISSUE = {
    "name": "create_issue",
    "description": "Open an issue in a repository.",
    "input_schema": {
        "type": "object",
        "properties": {
            "repo": {"type": "string", "description": "owner/name"},
            "title": {"type": "string", "maxLength": 256},
            "body": {"type": ["string", "null"]},
            "labels": {"type": "array", "items": {"type": "string"}, "maxItems": 10, "uniqueItems": True},
            "assignee": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        },
        "required": ["repo", "title"],
    },
}
SCHEDULE_MEETING = {
    "type": "function",
    "function": {
        "name": "schedule_meeting",
        "description": "Put a meeting in the calendar.",
        "parameters": {
            "type": "object",
            "$defs": {
                "Attendee": {
                    "type": "object",
                    "properties": {
                        "email": {"type": "string", "format": "email"},
                        "optional": {"type": "boolean", "default": False},
                    },
                    "required": ["email"],
                }
            },
            "properties": {
                "title": {"type": "string"},
                "start": {"type": "string", "format": "date-time"},
                "duration_minutes": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 15},
                "attendees": {"type": "array", "items": {"$ref": "#/$defs/Attendee"}, "minItems": 1},
                "room": {
                    "type": "object",
                    "properties": {"building": {"type": "string"}, "floor": {"type": "integer"}},
                },
                "priority": {"const": "normal"},
            },
            "required": ["title", "start", "duration_minutes", "attendees"],
        },
    },
}
SEARCH = {"name": "search_docs", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}
CORPUS = [GET_WEATHER, CREATE_CHARGE, CREATE_ISSUE, SCHEDULE_MEETING, SEARCH]


def test_each_dialect_becomes_an_intent_named_and_described_as_defined() -> None:
    tools = tools_from_definitions(CORPUS)
    assert [t.intent_name() for t in tools] == [
        "get_weather", "create_charge", "create_issue", "schedule_meeting", "search_docs"
    ]  # fmt: skip
    assert tools[0].model_json_schema()["description"] == "Current weather for a city."
    assert all(not t.is_executable() for t in tools)  # handed back to your code, like any tool without run()


def test_constraints_are_kept_and_enforced() -> None:
    charge, issue, meeting = tools_from_definitions([CREATE_CHARGE, CREATE_ISSUE, SCHEDULE_MEETING])
    ok = charge.model_validate({"intent": "create_charge", "amount": 500, "currency": "eur", "customer": "cus_1"})
    assert ok.model_dump(exclude_unset=True)["amount"] == 500
    for bad in ({"amount": 10}, {"currency": "EURO"}, {"customer": "x"}, {"metadata": {"a": 1}}):
        data = {"intent": "create_charge", "amount": 500, "currency": "eur", "customer": "cus_1", **bad}
        with pytest.raises(ValidationError):
            charge.model_validate(data)
    with pytest.raises(ValidationError, match="unique"):
        issue.model_validate({"intent": "create_issue", "repo": "a/b", "title": "t", "labels": ["x", "x"]})
    base: dict[str, Any] = {"intent": "schedule_meeting", "title": "sync", "start": "2026-12-03T10:00:00Z"}
    with pytest.raises(ValidationError):
        meeting.model_validate({**base, "duration_minutes": 20, "attendees": [{"email": "a@b.c"}]})  # not x15
    with pytest.raises(ValidationError):
        meeting.model_validate({**base, "duration_minutes": 30, "attendees": []})  # minItems
    good = meeting.model_validate({**base, "duration_minutes": 30, "attendees": [{"email": "a@b.c"}]})
    assert good.model_dump(mode="json", exclude_unset=True)["attendees"] == [{"email": "a@b.c"}]
    weather = tools_from_definitions([GET_WEATHER])[0]
    with pytest.raises(ValidationError):  # additionalProperties: false
        weather.model_validate({"intent": "get_weather", "location": "Paris", "wind": True})


def test_the_schema_the_model_sees_matches_the_definition() -> None:
    (charge,) = tools_from_definitions([CREATE_CHARGE])
    schema = charge.model_json_schema()
    amount = schema["properties"]["amount"]
    assert amount["minimum"] == 50 and amount["maximum"] == 99999999 and amount["description"] == "in cents"
    assert schema["properties"]["currency"]["pattern"] == "^[a-z]{3}$"
    assert set(schema["required"]) == {"amount", "currency", "customer"}
    rendered = Agent("pay", tools=[charge], model=ScriptedModel([])).intents
    assert 'intent: "create_charge"' in rendered and "amount: integer" in rendered and "in cents" in rendered


def test_parse_and_the_loop_treat_them_like_hand_written_tools() -> None:
    tools = tools_from_definitions([GET_WEATHER, SEARCH])
    agent = Agent(
        "w",
        tools=tools,
        model=ScriptedModel(
            ['{"intent": "get_weather", "location": "Oslo"}', '{"intent": "done_for_now", "message": "ok"}']
        ),
    )
    step = parse(
        "Sure!\n```json\n{'intent': 'get_weather', 'location': 'Oslo', unit: 'FAHRENHEIT'}\n```", agent.toolset.union
    )
    assert step.model_dump()["unit"] == "fahrenheit"
    thread = run(agent, agent.new_thread("weather in Oslo?"))
    call = next(e for e in thread.events if isinstance(e, ToolCall))
    assert call.arguments == {"location": "Oslo"}  # omitted optional arguments stay omitted
    assert thread.status == "running"  # an external tool: handed back to the caller


def test_a_run_function_makes_it_executable_with_its_effect() -> None:
    seen: list[dict[str, Any]] = []
    weather = tool_from_schema(
        "get_weather",
        GET_WEATHER["function"]["parameters"],  # type: ignore[index]
        description="Current weather for a city.",
        run=lambda args: seen.append(args) or {"temp_c": 3},
        effect="read_only",
    )
    assert weather.effect == "read_only" and weather.is_executable()
    agent = Agent(
        "w",
        tools=[weather],
        model=ScriptedModel(
            [{"intent": "get_weather", "location": "Oslo"}, {"intent": "done_for_now", "message": "3C"}]
        ),
    )
    thread = run(agent, agent.new_thread("weather?"))
    assert thread.status == "done"
    assert [e.result for e in thread.events if isinstance(e, ToolResult)] == [{"temp_c": 3}]
    assert seen == [{"location": "Oslo", "unit": "celsius"}]


def test_awkward_property_names_keep_their_wire_names() -> None:
    schema = {
        "type": "object",
        "properties": {"from": {"type": "string"}, "_id": {"type": "integer"}, "max-results": {"type": "integer"}},
        "required": ["from"],
    }
    mail = tool_from_schema("list_mail", schema)
    step = mail.model_validate({"intent": "list_mail", "from": "ana", "_id": 3, "max-results": 5})
    assert step.model_dump(mode="json", by_alias=True, exclude_unset=True) == {
        "intent": "list_mail", "from": "ana", "_id": 3, "max-results": 5
    }  # fmt: skip
    assert set(mail.model_json_schema()["properties"]) == {"intent", "from", "_id", "max-results"}
    agent = Agent("m", tools=[mail], model=ScriptedModel([{"intent": "list_mail", "from": "ana", "max-results": 5}]))
    thread = run(agent, agent.new_thread("mail"), max_steps=1)
    call = next(e for e in thread.events if isinstance(e, ToolCall))
    assert call.arguments == {"from": "ana", "max-results": 5}


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}, "not"),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "patternProperties": {"^x": {}}},
            "patternProperties",
        ),
        ({"type": "object", "properties": {"a": {"if": {}, "then": {}}}}, "if"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}, "$ref"),
        ({"type": "array", "items": {"type": "string"}}, "type"),
    ],
)
def test_what_cannot_be_enforced_is_a_clear_error_naming_the_keyword(schema: dict[str, Any], keyword: str) -> None:
    with pytest.raises(UserError, match=keyword.replace("$", r"\$")):
        tool_from_schema("bad", schema)


def test_a_recursive_schema_is_refused_clearly() -> None:
    tree = {
        "type": "object",
        "$defs": {
            "Node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}
        },
        "properties": {"root": {"$ref": "#/$defs/Node"}},
    }
    with pytest.raises(UserError, match="recursive"):
        tool_from_schema("tree", tree)


def test_a_definition_without_a_name_or_a_bad_one_is_refused() -> None:
    with pytest.raises(UserError, match="name"):
        tools_from_definitions([{"parameters": {"type": "object"}}])
    with pytest.raises(UserError, match="intent"):
        tool_from_schema("bad name!", {"type": "object"})


def test_native_tool_and_strict_schema_modes_carry_the_definition() -> None:
    from twelvefactor.models._schemas import strict_schema, tool_definitions, union_schema

    tools = tools_from_definitions([GET_WEATHER, CREATE_ISSUE])
    definitions = {name: (description, parameters) for name, description, parameters in tool_definitions(tools)}
    description, parameters = definitions["get_weather"]
    assert description == "Current weather for a city."
    assert parameters["properties"]["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert "intent" not in parameters["properties"]  # the native tool's name is the intent
    strict = strict_schema(union_schema(tuple(tools)))  # what json_schema mode sends OpenAI
    text = json.dumps(strict)
    assert '"get_weather"' in text and '"create_issue"' in text and '"celsius"' in text
