"""A model reply as it streams, in a real browser (Playwright + Debian's Chromium, as in test_browser.py,
whose fixtures and skip rule these tests share): the thread page shows the next step being written, live,
and the recorded step replaces it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from twelvefactor.server.testing import live_server

from .conftest import sqlite_app
from .streaming_model import StreamingModel, done, writer
from .test_browser import ARTIFACTS, browser, page, playwright, pytestmark  # noqa: F401 - shared

if TYPE_CHECKING:
    from playwright.sync_api import Page

# Model output is untrusted: markup in it must show as text.
MESSAGE = "Deployed <b>v1.4.2</b> to staging <img src=x onerror=alert(1)>, all checks green."


@pytest.fixture
def gates() -> Iterator[tuple[threading.Event, threading.Event]]:
    midway, release = threading.Event(), threading.Event()
    yield midway, release
    midway.set()
    release.set()  # a failed test leaves no model call hanging


# The server is a fixture set up before `page`, so the page closes before it stops.
@pytest.fixture
def server(tmp_path: Path, gates: tuple[threading.Event, threading.Event]) -> Iterator[str]:
    model = StreamingModel([done(MESSAGE, cut=12)], chunk=3, pause=0.03, gates=list(gates))
    with live_server(sqlite_app(tmp_path, writer(model))) as base_url:
        yield base_url


def test_the_page_shows_the_step_as_the_model_writes_it(
    gates: tuple[threading.Event, threading.Event],
    server: str,
    page: Page,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    midway, release = gates
    launched = httpx.post(f"{server}/v1/threads", json={"agent": "writer", "message": "deploy"}, timeout=10)
    thread_id = launched.json()["id"]
    page.goto(f"{server}/threads/{thread_id}")
    card = page.locator("#writing")
    fields = card.locator(".writing-fields")

    # Part of the reply is written: its intent and the message so far, and nothing recorded yet.
    expect(card).to_be_visible()
    expect(card).to_contain_text("Model is writing")
    expect(fields).to_contain_text("done_for_now")
    expect(fields).to_contain_text(MESSAGE[:12])
    expect(fields).not_to_contain_text(MESSAGE)
    expect(page.locator("#timeline .event-model_call")).to_have_count(0)
    expect(page.get_by_role("status")).to_contain_text("running")

    midway.set()  # the rest of the reply streams in, escaped
    expect(fields).to_contain_text(MESSAGE)
    assert card.locator("b, img").count() == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    card.screenshot(path=str(ARTIFACTS / "thread-model-writing.png"))
    expect(page.locator("#timeline .event-model_call")).to_have_count(0)

    release.set()  # the call ends: the recorded step replaces the card
    expect(card).to_be_hidden()
    expect(page.get_by_role("status")).to_contain_text("done")
    expect(page.locator("#timeline .event-model_call")).to_have_count(1)
    expect(page.locator("#timeline")).to_contain_text(MESSAGE)
    assert page.locator("#timeline b, #timeline img").count() == 0
