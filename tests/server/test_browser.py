"""End to end in a real browser: Playwright drives Debian's Chromium against a real uvicorn on 127.0.0.1.

No browser is downloaded: CI installs Debian's ``chromium`` package and the test launches
/usr/bin/chromium. Without it the tests are skipped (with the reason shown).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from twelvefactor.server.testing import live_server

from .conftest import ROOT, calculator, deploybot, sqlite_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOT = ARTIFACTS / "thread-pending-approval.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PROD = {"agent": "deploybot", "message": "deploy the latest backend to production"}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US")
    context.set_default_timeout(10_000)
    blocked: list[str] = []  # the UI must work under its Content-Security-Policy: nothing blocked
    try:
        page = context.new_page()
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
        yield page
    finally:
        context.close()  # closes the page's event stream before the server stops
    assert not blocked, blocked


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with live_server(sqlite_app(tmp_path)) as base_url:
        yield base_url


def launch(base_url: str, status: str = "waiting") -> dict[str, Any]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        launched = client.post("/v1/threads", json=PROD)
        assert launched.status_code == 202, launched.text
        thread_id = launched.json()["id"]
        deadline = time.monotonic() + 10
        while True:
            thread: dict[str, Any] = client.get(f"/v1/threads/{thread_id}").json()
            if thread["status"] == status:
                return thread
            assert time.monotonic() < deadline, f"thread {thread_id} stayed {thread['status']}"
            time.sleep(0.02)


def final_message(base_url: str, thread_id: str) -> str:
    events = httpx.get(f"{base_url}/v1/threads/{thread_id}", timeout=10).json()["events"]
    return str(events[-1].get("message"))


def test_approve_a_production_deploy_in_the_browser(server: str, page: Page) -> None:
    from playwright.sync_api import expect

    thread = launch(server)
    page.goto(f"{server}/threads/{thread['id']}")
    expect(page.get_by_role("status")).to_have_text("Status: ◷ waiting")
    expect(page.get_by_role("heading", name="Approval needed")).to_be_visible()
    expect(page.locator("#pending").get_by_text("Approve deploy_backend")).to_be_visible()
    expect(page).to_have_title(f"Thread {thread['id']} (waiting) · twelvefactor")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("done")
    expect(page.get_by_role("heading", name="Approval needed")).to_have_count(0)
    expect(page.locator("#timeline")).to_contain_text("Deployed v1.4.2 to production.")
    assert page.url == f"{server}/threads/{thread['id']}"  # Post/Redirect/Get: reloading re-sends nothing
    assert final_message(server, thread["id"]) == "Deployed v1.4.2 to production."
    assert SCREENSHOT.stat().st_size > 10_000


def test_the_page_updates_live_when_the_thread_changes_elsewhere(server: str, page: Page) -> None:
    from playwright.sync_api import expect

    thread = launch(server)
    page.goto(f"{server}/threads/{thread['id']}")
    expect(page.locator("#live-note")).to_be_visible()  # the script is running
    page.locator("#context-1 summary").click()  # an open context stays open across updates
    page.evaluate("window.stillTheSamePage = true")
    answer = {"request_id": thread["pending_request"]["call_id"], "approved": True, "idempotency_key": "api-1"}
    response = httpx.post(f"{server}/v1/threads/{thread['id']}/responses", json=answer, timeout=10)
    assert response.status_code == 200

    expect(page.get_by_role("status")).to_contain_text("done")
    expect(page.locator("#timeline")).to_contain_text("Deployed v1.4.2 to production.")
    expect(page.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    expect(page).to_have_title(f"Thread {thread['id']} (done) · twelvefactor")
    expect(page.locator("#context-1")).to_have_attribute("open", "")
    assert page.evaluate("window.stillTheSamePage") is True  # updated in place, not reloaded


def test_approve_with_the_keyboard_alone(server: str, page: Page) -> None:
    from playwright.sync_api import expect

    thread = launch(server)
    page.goto(f"{server}/threads/{thread['id']}")
    approve = page.get_by_role("button", name="Approve", exact=True)
    for _ in range(40):
        page.keyboard.press("Tab")
        if approve.evaluate("button => button === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the Approve button")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("done")
    assert final_message(server, thread["id"]) == "Deployed v1.4.2 to production."


def test_enter_in_the_reason_field_denies_and_never_approves(server: str, page: Page) -> None:
    from playwright.sync_api import expect

    thread = launch(server)
    page.goto(f"{server}/threads/{thread['id']}")
    reason = page.get_by_label("Reason for denying")
    reason.focus()
    page.keyboard.type("change freeze until friday")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("done")
    expect(page.locator("#timeline")).to_contain_text("Deploy cancelled by a human (change freeze until friday).")
    assert final_message(server, thread["id"]) == "Deploy cancelled by a human (change freeze until friday)."


def test_launch_from_the_threads_page_and_filter_by_status(server: str, page: Page) -> None:
    from playwright.sync_api import expect

    page.goto(server)
    expect(page.get_by_role("heading", name="Threads", exact=True)).to_be_visible()
    launch_form = page.get_by_role("form", name="Launch a thread")
    launch_form.get_by_label("Agent").select_option("deploybot")
    launch_form.get_by_label("Message").fill(PROD["message"])
    launch_form.get_by_role("button", name="Launch").click()
    expect(page.get_by_role("status")).to_contain_text("waiting")  # the redirect, then the live update
    thread_id = page.url.rsplit("/", 1)[1]

    page.get_by_role("link", name="Threads").first.click()
    filters = page.get_by_role("search", name="Filter threads")
    filters.get_by_label("Status").select_option("done")
    filters.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("heading", name="Done threads")).to_be_visible()
    expect(page.locator(f"#row-{thread_id}")).to_have_count(0)
    filters.get_by_label("Status").select_option("waiting")
    filters.get_by_label("Agent").select_option("deploybot")
    filters.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("heading", name="Waiting threads of deploybot")).to_be_visible()
    expect(page.locator(f"#row-{thread_id}").get_by_role("link", name=PROD["message"])).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "threads-list.png"), full_page=True)


def test_the_thread_list_updates_live(server: str, page: Page) -> None:
    from playwright.sync_api import expect

    page.goto(f"{server}/threads")
    expect(page.locator("#live-note")).to_be_visible()  # the script is running
    page.evaluate("window.stillTheSamePage = true")
    thread = launch(server)  # by the API, while the list is open
    row = page.locator(f"#row-{thread['id']}")
    expect(row.get_by_role("link", name=PROD["message"])).to_be_visible()
    expect(row).to_contain_text("waiting")
    expect(row).to_contain_text("Approval: Approve deploy_backend")
    answer = {"request_id": thread["pending_request"]["call_id"], "approved": True}
    assert httpx.post(f"{server}/v1/threads/{thread['id']}/responses", json=answer, timeout=10).status_code == 200
    expect(row).to_contain_text("done")
    expect(row).not_to_contain_text("Approval:")
    assert page.evaluate("window.stillTheSamePage") is True  # updated in place, not reloaded


def test_the_launch_hint_follows_the_chosen_agent(tmp_path: Path, page: Page) -> None:
    from playwright.sync_api import expect

    with live_server(sqlite_app(tmp_path, deploybot(), calculator())) as base:
        page.goto(f"{base}/threads")
        message = page.get_by_label("Message")
        expect(message).to_have_attribute("placeholder", re.compile(r"^A message for deploybot: Deploys the backend"))
        page.get_by_label("Agent", exact=True).first.select_option("calculator")
        expect(message).to_have_attribute("placeholder", re.compile(r"^A message for calculator"))
        page.get_by_label("Agent", exact=True).first.press("ArrowUp")  # the keyboard changes it too
        expect(message).to_have_attribute("placeholder", re.compile(r"^A message for deploybot"))


def test_sign_in_with_a_token_then_approve_on_a_server_with_tokens(tmp_path: Path, page: Page) -> None:
    from playwright.sync_api import expect

    token = "tok-" + "b" * 32
    with live_server(sqlite_app(tmp_path, api_tokens=[token])) as base:
        with httpx.Client(base_url=base, timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
            thread_id = client.post("/v1/threads", json=PROD).json()["id"]
            deadline = time.monotonic() + 10
            while client.get(f"/v1/threads/{thread_id}").json()["status"] != "waiting":
                assert time.monotonic() < deadline
                time.sleep(0.02)
        page.goto(f"{base}/threads/{thread_id}")
        expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
        page.get_by_role("textbox", name="API token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Approval needed")).to_be_visible()
        assert page.url == f"{base}/threads/{thread_id}"
        expect(page.locator("#live-note")).to_be_visible()  # the live stream runs on the session cookie
        page.get_by_role("button", name="Approve", exact=True).click()
        expect(page.get_by_role("status")).to_contain_text("done")
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
        page.goto(f"{base}/threads")
        expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()


def test_a_framed_thread_page_is_not_shown(server: str, browser: Browser) -> None:
    thread = launch(server)
    context = browser.new_context()
    try:
        attacker = context.new_page()
        # An attacker's page (about:blank here) frames the approve button under a decoy.
        attacker.set_content(
            f'<iframe id="victim" src="{server}/threads/{thread["id"]}" width="800" height="600"></iframe>'
        )
        frame = attacker.frame_locator("#victim")
        time.sleep(1)  # give the frame time to load, if it were going to
        assert frame.get_by_role("button", name="Approve", exact=True).count() == 0
    finally:
        context.close()
    assert launch_status(server, thread["id"]) == "waiting"


def test_a_dns_rebound_page_cannot_reach_the_api(server: str, playwright: Playwright) -> None:
    port = server.rsplit(":", 1)[1]
    # What DNS rebinding achieves: evil.test resolves to 127.0.0.1, so its page is "same-origin" with us.
    args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP evil.test 127.0.0.1"]
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
    try:
        page = chromium.new_page()
        response = page.goto(f"http://evil.test:{port}/v1/agents")
        assert response is not None and response.status == 400
        posted = page.evaluate(
            """async (body) => (await fetch("/v1/threads", {method: "POST", body,
                headers: {"content-type": "application/json"}})).status""",
            json.dumps(PROD),
        )
        assert posted == 400
    finally:
        chromium.close()
    with httpx.Client(base_url=server, timeout=10) as client:
        assert client.get("/v1/threads").json() == []


def launch_status(base_url: str, thread_id: str) -> str:
    return str(httpx.get(f"{base_url}/v1/threads/{thread_id}", timeout=10).json()["status"])
