"""Charts in the web UI: the thread page's tokens and latency per model call, and the /usage page."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from twelvefactor import Done, ModelCall, Thread, UserMessage

from .conftest import client_for, sqlite_app

pytestmark = pytest.mark.anyio

TOKEN = "tok-" + "b" * 32
HOSTILE = '<img src=x onerror=alert(1)>"&'


def charts(page: str) -> dict[str, list[dict[str, Any]]]:
    """Each inline SVG chart on the page, by title: its marks' series, label and value."""
    found: dict[str, list[dict[str, Any]]] = {}
    for markup in re.findall(r"<svg\b.*?</svg>", page, re.DOTALL):
        root = ET.fromstring(markup)  # each chart is well-formed on its own: nothing broke out of it
        found[root.attrib["aria-label"]] = [
            {
                "series": el.attrib["data-series"],
                "label": el.attrib["data-label"],
                "value": float(el.attrib["data-value"]),
            }
            for el in root.iter()
            if "data-value" in el.attrib
        ]
    return found


def call(model: str, tokens_in: int, tokens_out: int, ms: float, cost: float | None = None) -> ModelCall:
    return ModelCall(
        model=model, raw="{}", input_tokens=tokens_in, output_tokens=tokens_out, latency_ms=ms, cost_usd=cost
    )


def finished(agent: str, *calls: ModelCall) -> Thread:
    return Thread.new(UserMessage(content="hi"), *calls, Done(message="ok"), agent=agent)


async def test_the_thread_page_charts_each_model_call_with_its_recorded_tokens_and_latency(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)
    thread = finished("calculator", call("small-model", 310, 22, 812.5), call(HOSTILE, 402, 9, 95.25))
    async with client_for(app) as client:
        await asyncio.to_thread(app.state.runtime.store.create, thread)
        page = (await client.get(f"/threads/{thread.id}")).text
        live = (await client.get(f"/threads/{thread.id}/live")).text  # what the page's script swaps in
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    found = charts(page)
    assert [(m["series"], m["label"], m["value"]) for m in found["Tokens per model call"]] == [
        ("input", "#1", 310.0),
        ("output", "#1", 22.0),
        ("input", "#2", 402.0),
        ("output", "#2", 9.0),
    ]
    assert [(m["series"], m["label"], m["value"]) for m in found["Latency per model call"]] == [
        ("small-model", "#1", 812.5),
        (HOSTILE, "#2", 95.25),
    ]
    assert charts(live) == found


async def test_a_thread_without_model_calls_has_no_chart(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)
    thread = Thread.new(UserMessage(content="hi"), Done(message="ok"), agent="calculator")
    async with client_for(app) as client:
        await asyncio.to_thread(app.state.runtime.store.create, thread)
        page = (await client.get(f"/threads/{thread.id}")).text
    assert 'id="call-charts"' in page and charts(page) == {}


async def test_the_usage_page_shows_cost_and_tokens_per_day_and_agent(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)
    store = app.state.runtime.store
    today = datetime.now(UTC).strftime("%b %d")
    async with client_for(app) as client:
        await asyncio.to_thread(
            store.create, finished("calculator", call("m", 100, 10, 5, 0.002), call("m", 50, 5, 5, 0.001))
        )
        await asyncio.to_thread(store.create, finished(HOSTILE, call("m", 7, 3, 5, None)))
        page = (await client.get("/usage", params={"days": 7})).text
        only = (await client.get("/usage", params={"days": 7, "agent": "calculator"})).text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    found = charts(page)
    cost = {(m["series"], m["label"]): m["value"] for m in found["Cost per day"]}
    assert cost[("calculator", today)] == pytest.approx(0.003) and cost[(HOSTILE, today)] == 0.0
    assert len(found["Cost per day"]) == 2 * 7  # one point per agent and day of the range, zeros included
    tokens = {(m["series"], m["label"]): m["value"] for m in found["Tokens per day"]}
    assert tokens[("input", today)] == 157.0 and tokens[("output", today)] == 18.0
    assert "3 model calls" in page and "and 1 call of unknown cost" in page
    assert "2 model calls" in only and {m["series"] for m in charts(only)["Cost per day"]} == {"calculator"}


async def test_the_usage_page_needs_a_sign_in_where_api_tokens_are_set(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path, api_tokens=[TOKEN], secret="s" * 32)) as client:
        response = await client.get("/usage")
        assert response.status_code == 303 and response.headers["location"].startswith("/sign-in?next=")
        await client.post("/sign-in", data={"token": TOKEN, "next": "/threads"})
        page = await client.get("/usage")
        assert page.status_code == 200 and "Cost per day" in page.text
