"""The thread page's "Context sent" is what each call was sent, not today's prompt (issue 8, item 11)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from markupsafe import escape

from twelvefactor import Agent, ModelCall, ScriptedModel, Thread, UserMessage, run, sent_messages, tool

from .conftest import client_for, sqlite_app
from .test_ui import event_block

pytestmark = pytest.mark.anyio


@tool
def add(a: float, b: float) -> float:
    """Add b to a."""
    return a + b


def calc(prompt: str, *outputs: dict[str, object]) -> Agent:
    return Agent("calc", tools=[add], model=ScriptedModel(outputs), prompt=prompt)


async def test_the_page_shows_the_context_recorded_with_each_call_under_the_prompt_of_its_day(tmp_path: Path) -> None:
    then = calc(
        "OLD PROMPT <rules>\n{{ context }}",
        {"intent": "add", "a": 1, "b": 2},
        {"intent": "done_for_now", "message": "3"},
    )
    thread = run(then, then.new_thread("add 1 and 2"))
    app = sqlite_app(tmp_path, calc("NEW PROMPT\n{{ context }}"))
    async with client_for(app) as client:
        await asyncio.to_thread(app.state.runtime.store.create, thread)
        page = (await client.get(f"/threads/{thread.id}")).text
    calls = [i for i, e in enumerate(thread.events) if isinstance(e, ModelCall)]
    assert len(calls) == 2 and "NEW PROMPT" not in page
    for i in calls:
        block = event_block(page, i)
        messages = sent_messages(thread, i)
        assert messages is not None and "Recorded with the call: exactly what the model received." in block
        for message in messages:
            assert f"<pre>{escape(message.content)}</pre>" in block
        assert escape("OLD PROMPT <rules>") in block


async def test_a_call_recorded_before_calls_kept_their_context_is_re_derived_and_says_so(tmp_path: Path) -> None:
    thread = Thread.new(UserMessage(content="add 1 and 2"), ModelCall(model="m", raw="{}"), agent="calc")
    app = sqlite_app(tmp_path, calc("NEW PROMPT\n{{ context }}"))
    async with client_for(app) as client:
        await asyncio.to_thread(app.state.runtime.store.create, thread)
        block = event_block((await client.get(f"/threads/{thread.id}")).text, 1)
    assert "Not recorded with this call (an older thread): re-derived" in block and "NEW PROMPT" in block
