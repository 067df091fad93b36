"""The inbox in a real browser (Playwright + Debian's Chromium, as in test_browser.py, whose fixtures and skip
rule these tests share): approve a production deploy from the inbox and see its row go; a request answered
elsewhere (the API, as Slack or email would) leaves the open inbox without a reload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from twelvefactor.server.testing import live_server

from .conftest import sqlite_app
from .test_browser import browser, final_message, launch, page, playwright, pytestmark  # noqa: F401 - shared

if TYPE_CHECKING:
    from playwright.sync_api import Page


# The server is a fixture set up before `page`, so the page closes before it stops.
@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with live_server(sqlite_app(tmp_path)) as base_url:
        yield base_url


def test_approve_from_the_inbox_and_a_request_answered_elsewhere_leaves_it_live(server: str, page: Page) -> None:  # noqa: F811
    from playwright.sync_api import expect

    first = launch(server)
    second = launch(server)
    page.goto(f"{server}/inbox?agent=deploybot")
    expect(page).to_have_title("Inbox · twelvefactor")
    rows = page.locator("li.inbox-item")
    expect(rows).to_have_count(2)
    expect(page.locator("#live-note")).to_be_visible()  # the live script runs

    row = page.locator(f"#req-{first['id']}")
    expect(row.get_by_role("heading", name="Approval needed")).to_be_visible()
    row.get_by_role("button", name="Approve", exact=True).click()
    page.wait_for_url(f"{server}/inbox?agent=deploybot")  # back to the same filtered inbox
    expect(page.locator(f"#req-{first['id']}")).to_have_count(0)
    expect(rows).to_have_count(1)
    assert final_message(server, first["id"]) == "Deployed v1.4.2 to production."

    # Answered elsewhere: the row goes on the next poll, with no reload.
    page.evaluate("window.notReloaded = true")
    answer = {"request_id": second["pending_request"]["call_id"], "approved": False, "responder": "slack"}
    assert httpx.post(f"{server}/v1/threads/{second['id']}/responses", json=answer, timeout=10).status_code == 200
    expect(page.locator(f"#req-{second['id']}")).to_have_count(0)
    expect(page.get_by_text("No pending requests match these filters.")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
