"""The context inspector: each model call's window by section, with tokens, and what compaction did."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from markupsafe import escape

from twelvefactor import Agent, FunctionModel, ModelCall, run, tool
from twelvefactor.compaction import ContextBudget, ShortenToolResults
from twelvefactor.events import Compaction
from twelvefactor.messages import Message

from .conftest import client_for, sqlite_app
from .test_ui import event_block

pytestmark = pytest.mark.anyio

HOSTILE = "<script>alert(1)</script> & more "


@tool(effect="read_only")
def read_page(n: int) -> str:
    """Read page n."""
    return f"page {n}: {HOSTILE * 20}"


def _pager(pages: int) -> FunctionModel:
    def step(messages: list[Message]) -> dict[str, object]:
        found = re.findall(r"page (\d+):", messages[-1].content)
        n = int(found[-1]) if found else 0
        if n >= pages:
            return {"intent": "done_for_now", "message": "read them all"}
        return {"intent": "read_page", "n": n + 1}

    return FunctionModel(step, name="function:pager")


def _agent() -> Agent:
    budget = ContextBudget(max_tokens=2_500, compaction=[ShortenToolResults(keep_last=1, max_chars=60)])
    return Agent("pager", tools=[read_page], model=_pager(10), budget=budget)


async def test_each_call_shows_its_window_by_section_and_the_compactions_before_it(tmp_path: Path) -> None:
    agent = _agent()
    thread = run(agent, agent.new_thread("Read pages 1 to 10."))
    compactions = [i for i, e in enumerate(thread.events) if isinstance(e, Compaction)]
    calls = [i for i, e in enumerate(thread.events) if isinstance(e, ModelCall)]
    assert compactions and thread.status == "done"
    app = sqlite_app(tmp_path, _agent())
    async with client_for(app) as client:
        await asyncio.to_thread(app.state.runtime.store.create, thread)
        page = (await client.get(f"/threads/{thread.id}")).text

    for index in calls:
        call = thread.events[index]
        assert isinstance(call, ModelCall) and call.context_tokens is not None
        block = event_block(page, index)
        assert f"Window: {call.estimated_input_tokens} tokens by section" in block
        for name, tokens in call.context_tokens.items():
            assert f'<tr class="section-{name}"><th scope="row">{name}</th><td>{tokens}</td>' in block
    # The call right after a compaction names it, with the tokens it saved.
    first = compactions[0]
    after = next(i for i in calls if i > first)
    compaction = thread.events[first]
    assert isinstance(compaction, Compaction)
    assert f'Compaction <a href="#event-{first}">#{first}</a> (shorten_tool_results)' in event_block(page, after)
    # The compaction's own entry: what was replaced by what, escaped like every recorded text.
    block = event_block(page, first)
    assert f"from {compaction.tokens_before} to {compaction.tokens_after} tokens" in block
    shown = compaction.replacements[0].text or ""
    assert str(escape(shown)) in block and "<script>" not in block


async def test_a_call_recorded_before_sections_were_counted_shows_no_inspector(tmp_path: Path) -> None:
    from twelvefactor import Thread, UserMessage

    thread = Thread.new(UserMessage(content="hi"), ModelCall(model="m", raw="{}"), agent="pager")
    app = sqlite_app(tmp_path, _agent())
    async with client_for(app) as client:
        await asyncio.to_thread(app.state.runtime.store.create, thread)
        block = event_block((await client.get(f"/threads/{thread.id}")).text, 1)
    assert "tokens by section" not in block and "Raw output" in block
