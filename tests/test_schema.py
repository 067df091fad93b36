from __future__ import annotations

from typing import Literal

from inline_snapshot import snapshot
from pydantic import BaseModel, Field

from twelvefactor import Tool, render_intents, tool
from twelvefactor.schema import schema_size_report
from twelvefactor.tools import BUILTIN_TOOLS


class Address(BaseModel):
    city: str
    zip: str | None = None


class Ship(Tool):
    """Ship an order."""

    intent: Literal["ship"] = "ship"
    order_id: int = Field(ge=1)
    speed: Literal["standard", "express"] = "standard"
    to: Address
    items: list[str]
    weights: dict[str, float] = {}


@tool(requires_approval=True)
def refund(order_id: int, amount: float) -> str:
    """Refund part of an order."""
    return "ok"


def test_compact_rendering_of_the_intent_union() -> None:
    assert render_intents([Ship, refund, *BUILTIN_TOOLS]) == snapshot("""\
type NextStep =
  // Ship an order.
  | { intent: "ship"; order_id: integer (>= 1); speed?: "standard" | "express" /* default "standard" */; to: { city: string; zip?: string | null }; items: string[]; weights?: Record<string, number> /* default {} */ }
  // Refund part of an order. (needs human approval)
  | { intent: "refund"; order_id: integer; amount: number }
  // Ask the person a question when the request is ambiguous or information is missing.
  | { intent: "request_human_input"; question: string /* one clear question for the person */ }
  // Finish: everything asked for is done (or cannot be done); tell the person the outcome.
  | { intent: "done_for_now"; message: string /* the final answer or summary for the person */ }\
""")


def test_compact_rendering_is_much_smaller_than_json_schema() -> None:
    report = schema_size_report([Ship, refund, *BUILTIN_TOOLS])
    assert report["ratio"] > 2.0, report


def test_an_optional_field_shows_the_default_it_takes_when_left_out() -> None:
    @tool
    def search(query: str, limit: int = 10, lang: str | None = None, exact: bool = False) -> str:
        """Search the docs."""
        return query

    rendered = render_intents([search])
    assert "limit?: integer /* default 10 */" in rendered
    assert "exact?: boolean /* default false */" in rendered
    assert "lang?: string | null;" in rendered or "lang?: string | null }" in rendered  # None: nothing to add


def test_steps_are_lines_a_small_model_can_copy_and_fill_in() -> None:
    import json
    import re

    from pydantic import Field

    from twelvefactor import Tool
    from twelvefactor.schema import render_steps

    class Deploy(Tool):
        """Deploy a tag to an environment."""

        intent: Literal["deploy"] = "deploy"
        environment: Literal["staging", "production"]
        tag: str = Field(description="the release tag")
        retries: int = 2
        requires_approval = True

    class Ping(Tool):
        """Check the service is up."""

        intent: Literal["ping"] = "ping"

    text = render_steps([Deploy, Ping])
    assert text.splitlines() == [
        "- Deploy a tag to an environment. (a person approves it first)",
        '  {"intent": "deploy", "environment": <"staging" | "production">, "tag": <string; the release tag>,'
        ' "retries": <integer; optional, default 2>}',
        "- Check the service is up.",
        '  {"intent": "ping"}',
    ]
    assert "type " not in text and "NextStep" not in text  # no header to echo back as a field
    # Every line is a reply once its <...> are filled in.
    for line in text.splitlines()[1::2]:
        assert isinstance(json.loads(re.sub(r"<[^>]*>", "null", line)), dict)


def test_the_default_prompt_shows_steps_to_copy_and_no_type_header() -> None:
    from twelvefactor import Agent, ScriptedModel

    agent = Agent("x", model=ScriptedModel([]))
    system, user = agent.render(agent.new_thread("hi"))
    assert '{"intent": "done_for_now", "message": <string;' in system.content
    assert "type NextStep" not in system.content and "What is the next step?" not in user.content
    assert agent.window(agent.new_thread("hi")).sections["schema"] > 0  # the steps count as the schema
