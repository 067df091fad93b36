"""The Memory page in a real browser (Debian's Chromium through Playwright, a real uvicorn on 127.0.0.1):
the nav link, then add, edit and delete a fact with the page's own forms, under the UI's CSP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from server.test_browser import CHROMIUM, browser, page, playwright  # noqa: F401 - the browser fixtures
from twelvefactor.server.testing import live_server

from .test_server import app_with_memory

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with live_server(app_with_memory(tmp_path)) as base_url:
        yield base_url


def test_a_person_adds_edits_and_deletes_a_fact_on_the_memory_page(page: Page, server: str) -> None:  # noqa: F811
    page.goto(f"{server}/threads")
    page.get_by_role("link", name="Memory").click()
    page.wait_for_url("**/memory")
    assert page.locator("h1").inner_text() == "Memory"

    page.locator("#add-scope").fill("user:alice")
    page.get_by_label("Fact", exact=True).first.fill("Alice prefers <b>metric</b> units")
    page.get_by_role("button", name="Add").click()
    page.wait_for_url("**/memory?scope=user%3Aalice#fact-*")
    row = page.locator("tr[id^='fact-']")
    assert row.count() == 1
    assert row.locator("input[name='text']").input_value() == "Alice prefers <b>metric</b> units"

    row.locator("input[name='text']").fill("Alice prefers imperial units")
    row.locator("input[name='key']").fill("units")
    row.get_by_role("button", name="Save").click()
    page.locator("tr[id^='fact-'] code", has_text="units").wait_for()  # the reloaded page shows the new key
    facts = httpx.get(f"{server}/v1/memory").json()
    assert [(f["text"], f["key"]) for f in facts] == [("Alice prefers imperial units", "units")]

    page.locator("tr[id^='fact-']").get_by_role("button", name="Delete").click()
    page.get_by_text("No facts in user:alice yet.").wait_for()
    assert httpx.get(f"{server}/v1/memory").json() == []
