"""The agent the eval tests score: a shop assistant whose model is a small function of what it is sent.

Loaded by path (``tests/evals/shop_agent.py:agent``) like a user's agent file. Its tools write down every
run in ``RUNS``, so a test can tell that replaying decisions ran none. A system prompt that says "terse"
changes how it answers a price question (the prompt change the tests make); one that says "never ask"
changes what it does without an order number, and one that names a manager asks for one before a refund.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from twelvefactor import Agent, FunctionModel, Message, tool

RUNS: list[tuple[str, dict[str, Any]]] = []


@tool(effect="read_only")
def lookup(sku: str) -> dict[str, Any]:
    """Look a product up by its SKU: price and stock."""
    RUNS.append(("lookup", {"sku": sku}))
    return {"sku": sku, "price": 12.5, "stock": 3}


@tool(requires_approval=True)
def refund(order: str, amount: float) -> str:
    """Refund an amount on an order (a person approves it first)."""
    RUNS.append(("refund", {"order": order, "amount": amount}))
    return f"refunded {amount} on {order}"


def policy(messages: Sequence[Message]) -> dict[str, Any]:
    system = messages[0].content.lower()
    context = html.unescape(messages[-1].content)
    said = " ".join(re.findall(r"<(?:user_message|human_response)>\n(.*?)\n</", context, re.DOTALL))
    if "<human_response>\ndenied" in context:
        return {"intent": "done_for_now", "message": "OK, no refund."}
    results = re.findall(r"<tool_result>\nintent: (\w+)\nresult:(.*?)</tool_result>", context, re.DOTALL)
    if results:
        intent, result = results[-1]
        if intent == "refund":
            return {"intent": "done_for_now", "message": f"Done: {result.strip()}."}
        price = re.search(r"price: ([\d.]+)", result)
        amount = price[1] if price else "?"
        return {"intent": "done_for_now", "message": amount if "terse" in system else f"It costs {amount} dollars."}
    sku = re.search(r"\b(SKU-\d+)\b", said)
    if sku:
        return {"intent": "lookup", "sku": sku[1]}
    if "refund" in said:
        order = re.search(r"\border (\w+)", said)
        amount = re.search(r"(\d+(?:\.\d+)?) dollars", said)
        if order is None and "never ask" not in system:
            return {"intent": "request_human_input", "question": "Which order number?"}
        if "manager" in system and "manager says" not in said:
            return {"intent": "request_human_input", "question": "May a manager approve this refund?"}
        return {
            "intent": "refund",
            "order": order[1] if order else "unknown",
            "amount": float(amount[1]) if amount else 0,
        }
    if "say" in said:  # says back what it was told: how hostile text reaches the thread
        return {"intent": "done_for_now", "message": said.split("say", 1)[1].strip()}
    return {"intent": "request_human_input", "question": "What can I do for you?"}


def make_agent(**kwargs: Any) -> Agent:
    return Agent("shop", tools=[lookup, refund], **{"model": FunctionModel(policy, name="shop-demo"), **kwargs})


agent = make_agent()
