"""Calculator agent: add, subtract, multiply, divide; divide needs approval; vague requests get a question.

Run it:  twelvefactor run examples/calculator "what is 3 plus 4"
The offline demo model below is a small deterministic stand-in that reads the same context a real
model would; set TWELVEFACTOR_MODEL to use a real one once a provider is configured.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

from twelvefactor import Agent, FunctionModel, Message, Model, Prompt, tool

HERE = Path(__file__).parent


@tool(effect="read_only")
def add(a: float, b: float) -> float:
    """Add b to a."""
    return a + b


@tool(effect="read_only")
def subtract(a: float, b: float) -> float:
    """Subtract b from a."""
    return a - b


@tool(effect="read_only")
def multiply(a: float, b: float) -> float:
    """Multiply a by b."""
    return a * b


@tool(requires_approval=True, effect="read_only")
def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


_OPS = {
    "plus": "add",
    "+": "add",
    "minus": "subtract",
    "-": "subtract",
    "times": "multiply",
    "*": "multiply",
    "x": "multiply",
    "divided by": "divide",
    "/": "divide",
    "over": "divide",
}
_EXPR = re.compile(r"(-?\d+(?:\.\d+)?)\s*(divided by|plus|minus|times|over|[-+*/x])\s*(-?\d+(?:\.\d+)?)")


def demo_policy(messages: Sequence[Message]) -> dict[str, object]:
    """The offline stand-in for a model: reads the rendered context and answers with one next step."""
    context = html.unescape(messages[-1].content)  # the XML context format escapes <, > and &
    results = re.findall(r"<tool_result>\nintent: \w+\nresult: (\S+)", context)
    if results:
        return {"intent": "done_for_now", "message": f"The answer is {results[-1]}."}
    if "<human_response>\ndenied" in context:
        return {"intent": "done_for_now", "message": "OK, I did not divide."}
    said = " ".join(re.findall(r"<(?:user_message|human_response)>\n(.*?)\n</", context, re.DOTALL))
    match = _EXPR.search(said)
    if match is None:
        return {
            "intent": "request_human_input",
            "question": "Which numbers and which operation (add, subtract, multiply, divide) do you mean?",
        }
    a, op, b = match.groups()
    return {"intent": _OPS[op], "a": float(a), "b": float(b)}


def demo_model() -> Model:
    return FunctionModel(demo_policy, name="calculator-demo")


agent = Agent(
    "calculator",
    tools=[add, subtract, multiply, divide],
    model=demo_model(),
    prompt=Prompt.from_file(HERE / "prompt.jinja"),
    description="Does arithmetic with tools, one operation at a time.",
)
