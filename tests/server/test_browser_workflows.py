"""Workflows in a real browser (Playwright + Debian's Chromium, as in test_browser.py, whose fixtures and
skip rule these tests share): launch the release workflow and approve production from its page; answer a
sub-agent's question from its workflow's page, the nested card appearing live."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import httpx
import pytest

from twelvefactor import Agent, Flow, ScriptedModel, Tool, tool, workflow
from twelvefactor._loader import load_target
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.testing import live_server
from twelvefactor.workflows import Workflow

from .conftest import ROOT
from .test_browser import ARTIFACTS, browser, page, playwright, pytestmark  # noqa: F401 - shared fixtures and skip

if TYPE_CHECKING:
    from playwright.sync_api import Page


def serve(tmp_path: Path, *targets: Agent | Workflow) -> AbstractContextManager[str]:
    return live_server(create_app(list(targets), settings=ServerSettings(database=str(tmp_path / "service.db"))))


# Servers are fixtures set up before `page`, so the page (and its event streams) closes before they stop.
@pytest.fixture
def release_server(tmp_path: Path) -> Iterator[str]:
    release = load_target(str(ROOT / "examples" / "release"))
    assert isinstance(release, Workflow)
    with serve(tmp_path, release) as base:
        yield base


class Verdict(Tool):
    """Give the pipeline your verdict."""

    intent: Literal["verdict"] = "verdict"
    go: bool


@pytest.fixture
def gate_server(tmp_path: Path) -> Iterator[tuple[str, threading.Event]]:
    """A workflow whose sub-agent works in a tool until the test releases it, then asks a person."""
    released = threading.Event()

    @tool(effect="idempotent")
    def gather() -> str:
        """Gather the release notes."""
        released.wait(10)
        return "notes"

    script = [
        {"intent": "gather"},
        {"intent": "request_human_input", "question": "Is the freeze over?"},
        {"intent": "verdict", "go": True},
    ]
    reviewer = Agent("reviewer", tools=[gather, Verdict], model=ScriptedModel(script))

    @workflow(agents=[reviewer])
    def gate(wf: Flow, message: str) -> str:
        verdict = wf.agent(reviewer, f"Review {message}", output=Verdict)
        return "go" if verdict.go else "stop"

    try:
        with serve(tmp_path, gate) as base:
            yield base, released
    finally:
        released.set()  # a failed test must not leave the worker stuck in the tool


def test_launch_the_release_workflow_and_approve_production_from_its_page(release_server: str, page: Page) -> None:  # noqa: F811
    from playwright.sync_api import expect

    base = release_server
    page.goto(f"{base}/threads")
    launch = page.get_by_role("form", name="Launch a thread")
    launch.get_by_label("Agent").select_option("release")
    launch.get_by_label("Message").fill("ship the latest")
    launch.get_by_role("button", name="Launch").click()
    expect(page.get_by_role("heading", name="Steps")).to_be_visible()
    thread_id = page.url.rsplit("/", 1)[1]

    # The steps fill in live; the sub-agent's thread is nested under its step.
    expect(page.locator("#step-5")).to_contain_text("waiting for a person (approval)")
    for number, name in enumerate(["merged_prs", "run_tests", "rollout", "deploy"], start=1):
        expect(page.locator(f"#step-{number}")).to_contain_text(name)
        expect(page.locator(f"#step-{number} .step-state")).to_contain_text("done")
    sub = page.locator("#sub-3-thread")
    expect(sub.get_by_role("link", name=f"{thread_id}-step3")).to_be_visible()
    expect(sub.locator(".status")).to_contain_text("done")
    expect(page.get_by_role("heading", name="Approval needed")).to_be_visible()
    expect(sub.locator("#sub-3-event-2")).to_be_hidden()  # a finished sub-thread's events are folded
    sub.get_by_text("Events of the sub-thread").click()
    expect(sub.locator("#sub-3-event-2")).to_be_visible()
    expect(sub.locator("#sub-3-event-2")).to_contain_text("list_git_tags")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "workflow-steps.png"), full_page=True)

    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("done")
    expect(page.locator("#steps")).to_contain_text("Returned: released v1.4.2 to production")
    expect(page.locator("#step-6")).to_contain_text("v1.4.2 is live on production")
    assert page.url == f"{base}/threads/{thread_id}"

    # The sub-thread's own page leads back to its step.
    page.goto(f"{base}/threads/{thread_id}-step3")
    back = page.get_by_role("link", name=thread_id, exact=True).last
    expect(page.locator(".sub-of")).to_contain_text(f"Sub-agent of workflow thread {thread_id} (step 3: rollout)")
    back.click()
    expect(page.get_by_role("heading", name=f"Workflow thread {thread_id}")).to_be_visible()


def test_a_sub_agents_question_appears_live_and_is_answered_from_the_workflow_page(
    gate_server: tuple[str, threading.Event],
    page: Page,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    base, released = gate_server
    with httpx.Client(base_url=base, timeout=10) as client:
        thread_id = client.post("/v1/threads", json={"agent": "gate", "message": "v2"}).json()["id"]
        child_id = f"{thread_id}-step1"
        deadline = time.monotonic() + 10
        while True:  # the sub-agent is inside its tool: the page opens while it works
            response = client.get(f"/v1/threads/{child_id}")
            if response.status_code == 200 and response.json()["events"][-1]["type"] == "tool_started":
                break
            assert time.monotonic() < deadline, "the sub-agent never started its tool"
            time.sleep(0.02)

        page.goto(f"{base}/threads/{thread_id}")
        expect(page.locator("#step-1")).to_contain_text("waiting on sub-agent")
        expect(page.locator("#live-note")).to_be_visible()  # the script follows the sub-thread's stream
        expect(page.get_by_role("textbox", name="Your answer")).to_have_count(0)
        page.evaluate("window.stillTheSamePage = true")
        released.set()

        # Only the sub-thread records anything: its stream brings the question to this page.
        card = page.locator("#sub-1-pending")
        expect(card).to_contain_text("Is the freeze over?")
        assert page.evaluate("window.stillTheSamePage") is True
        page.screenshot(path=str(ARTIFACTS / "workflow-sub-agent-question.png"), full_page=True)
        card.get_by_role("textbox", name="Your answer").fill("yes, since Monday")
        card.get_by_role("button", name="Send answer").click()
        expect(page.get_by_role("status")).to_contain_text("done")
        expect(page.locator("#steps")).to_contain_text("Returned: go")
        assert page.url == f"{base}/threads/{thread_id}"
        child = client.get(f"/v1/threads/{child_id}").json()
        assert child["status"] == "done"
        assert any(e.get("text") == "yes, since Monday" for e in child["events"])
