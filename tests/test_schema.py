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
