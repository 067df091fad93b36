"""The web UI in-process (httpx + ASGI): pages, forms, Post/Redirect/Get, escaping, accessibility basics."""

from __future__ import annotations

import asyncio
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from markupsafe import escape

from twelvefactor import Agent, Error, ModelCall, ScriptedModel, Thread, ToolCall, UserMessage

from .conftest import calculator, client_for, deploybot, sqlite_app, wait_for_status

pytestmark = pytest.mark.anyio

PROD = {"agent": "deploybot", "message": "deploy the latest backend to production"}


async def launch(client: httpx.AsyncClient, body: dict[str, Any], *statuses: str) -> dict[str, Any]:
    response = await client.post("/v1/threads", json=body)
    assert response.status_code == 202, response.text
    return await wait_for_status(client, response.json()["id"], *statuses)


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, f"no hidden field {name!r} on the page"
    return found[1]


def event_block(page: str, index: int) -> str:
    """The HTML of timeline entry #index."""
    start = page.index(f'<li id="event-{index}"')
    end = page.find('<li id="event-', start + 1)
    return page[start : end if end != -1 else len(page)]


async def approve_form(client: httpx.AsyncClient, thread_id: str) -> dict[str, str]:
    page = (await client.get(f"/threads/{thread_id}")).text
    return {
        "request_id": hidden(page, "request_id"),
        "idempotency_key": hidden(page, "idempotency_key"),
        "decision": "approve",
    }


async def test_home_redirects_to_the_threads_list(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        response = await client.get("/")
        assert response.status_code == 303 and response.headers["location"] == "/threads"


async def test_the_list_filters_by_status_and_agent(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path, deploybot(), calculator())
    async with client_for(app) as client:
        waiting = await launch(client, PROD, "waiting")
        staging = await launch(client, {"agent": "deploybot", "message": "deploy v1.4.1 to staging"}, "done")
        calc = await launch(client, {"agent": "calculator", "message": "what is 3 plus 4"}, "done")
        failed = Thread.new(
            UserMessage(content="x"), Error(source="agent", message="boom", fatal=True), agent="calculator"
        )
        await asyncio.to_thread(app.state.runtime.store.create, failed)

        everything = (await client.get("/threads")).text
        assert all(t["id"] in everything for t in (waiting, staging, calc)) and failed.id in everything

        only_waiting = (await client.get("/threads", params={"status": "waiting"})).text
        assert waiting["id"] in only_waiting
        assert not any(t["id"] in only_waiting for t in (staging, calc)) and failed.id not in only_waiting
        assert '<option value="waiting" selected>waiting</option>' in only_waiting

        done_calc = (await client.get("/threads", params={"status": "done", "agent": "calculator"})).text
        assert calc["id"] in done_calc and staging["id"] not in done_calc and waiting["id"] not in done_calc
        # The selects show the chosen filters.
        assert '<option value="done" selected>done</option>' in done_calc
        assert '<option value="calculator" selected>calculator</option>' in done_calc

        only_failed = (await client.get("/threads", params={"status": "failed"})).text
        assert failed.id in only_failed and calc["id"] not in only_failed

        # The select form submits status=all for "all statuses".
        all_deploybot = (await client.get("/threads", params={"status": "all", "agent": "deploybot"})).text
        assert waiting["id"] in all_deploybot and staging["id"] in all_deploybot and calc["id"] not in all_deploybot

        unknown = await client.get("/threads", params={"status": "<b>zombie</b>"})
        assert unknown.status_code == 200 and "Unknown status &#39;&lt;b&gt;zombie&lt;/b&gt;&#39;" in unknown.text
        assert waiting["id"] in unknown.text

        nothing = (await client.get("/threads", params={"status": "running"})).text
        assert "No running threads." in nothing


async def test_each_row_shows_its_first_message_and_what_a_waiting_thread_asks(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path, deploybot(), calculator())
    long = "<b>please</b> " + "add these numbers up " * 20
    async with client_for(app) as client:
        waiting = await launch(client, PROD, "waiting")
        calc = await launch(client, {"agent": "calculator", "message": long}, "done", "failed", "waiting")
        page = (await client.get("/threads")).text
    row = page[page.index(f'<tr id="row-{waiting["id"]}">') :]
    row = row[: row.index("</tr>")]
    assert f'">{PROD["message"]}</a>' in row and f"<code>{waiting['id']}</code>" in row
    assert "<strong>Approval:</strong> Approve deploy_backend" in row
    calc_row = page[page.index(f'<tr id="row-{calc["id"]}">') :]
    calc_row = calc_row[: calc_row.index("</tr>")]
    assert "&lt;b&gt;please&lt;/b&gt; add these numbers up" in calc_row and "<b>please" not in calc_row
    assert "…</a>" in calc_row and "Approval:" not in calc_row and calc_row.count("please") == 2  # title + tooltip


async def test_the_launch_hint_fits_each_agent(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path, deploybot(), calculator())) as client:
        page = (await client.get("/threads")).text
    deploy_hint = "A message for deploybot: Deploys the backend; production deploys wait for a human."
    assert f'<option value="deploybot" data-placeholder="{deploy_hint}">' in page
    assert re.search(r'<option value="calculator" data-placeholder="A message for calculator[^"]*">', page)
    assert f'placeholder="{deploy_hint}"></textarea>' in page  # the first agent's, before any script runs
    assert '<script src="/static/launch.js" defer></script>' in page


async def test_the_list_rows_come_as_a_fragment_for_the_live_script(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch(client, PROD, "waiting")
        page = (await client.get("/threads", params={"status": "waiting", "agent": "deploybot"})).text
        assert '<div id="live" data-live="/thread-list?status=waiting&amp;agent=deploybot" data-poll="' in page
        fragment = await client.get("/thread-list", params={"status": "waiting", "agent": "deploybot"})
        assert fragment.status_code == 200 and "<html" not in fragment.text
        assert fragment.headers["cache-control"] == "no-store"
        assert f'<tr id="row-{thread["id"]}">' in fragment.text and 'id="thread-list" data-part' in fragment.text
        done = (await client.get("/thread-list", params={"status": "done"})).text
        assert "No done threads." in done and thread["id"] not in done
        # Rows are cached by version: once the thread moves on, the row says so.
        form = await approve_form(client, thread["id"])
        assert (await client.post(f"/threads/{thread['id']}/respond", data=form)).status_code == 303
        await wait_for_status(client, thread["id"], "done")
        row = (await client.get("/thread-list")).text
        assert f'<tr id="row-{thread["id"]}">' in row and "Approval:" not in row and "status-done" in row


async def test_the_launch_form_starts_a_thread_and_redirects_to_it(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        response = await client.post("/threads", data=PROD)
        assert response.status_code == 303
        location = response.headers["location"]
        assert re.fullmatch(r"/threads/[0-9a-f]{16}", location)
        thread = await wait_for_status(client, location.rsplit("/", 1)[1], "waiting")
        assert thread["events"][0] == {**thread["events"][0], "type": "user_message", "content": PROD["message"]}
        page = await client.get(location)
        assert page.status_code == 200 and "waiting" in page.text


async def test_the_launch_form_reports_bad_input_and_keeps_what_was_typed(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        unknown = await client.post("/threads", data={"agent": "<i>ghost</i>", "message": "hello <there>"})
        assert unknown.status_code == 422
        assert "no agent named &#39;&lt;i&gt;ghost&lt;/i&gt;&#39;" in unknown.text
        assert "hello &lt;there&gt;</textarea>" in unknown.text
        empty = await client.post("/threads", data={"agent": "deploybot", "message": "   "})
        assert empty.status_code == 422 and "Write a message for the agent." in empty.text
        threads = (await client.get("/v1/threads")).json()
        assert threads == []


async def test_the_thread_page_shows_the_timeline(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)
    async with client_for(app) as client:
        thread = await launch(client, PROD, "waiting")
        page = (await client.get(f"/threads/{thread['id']}")).text
        types = [e["type"] for e in thread["events"]]
        assert types == [
            "user_message",
            "model_call",
            "tool_call",
            "tool_result",
            "model_call",
            "tool_call",
            "human_request",
        ]
        assert "<h1>Thread <code>" in page and 'role="status"' in page
        assert "#0</a> User message" in event_block(page, 0)
        assert "deploy the latest backend to production" in event_block(page, 0)
        assert "Tool call <code>list_git_tags</code>" in event_block(page, 2)
        assert "Tool result <code>list_git_tags</code>" in event_block(page, 3)
        assert "v1.4.2" in event_block(page, 3)
        assert "Tool call <code>deploy_backend</code>" in event_block(page, 5)
        assert escape('"environment": "production"') in event_block(page, 5)
        assert "Approval requested" in event_block(page, 6)
        # Live updates: the stream starts after the events already shown; the Refresh link works without JS.
        assert f'data-stream="/v1/threads/{thread["id"]}/stream?since=7"' in page
        assert f'<a href="/threads/{thread["id"]}">Refresh</a>' in page
        assert '<script src="/static/live.js" defer></script>' in page


async def test_each_model_call_shows_its_exact_context_raw_output_intent_tokens_and_latency(tmp_path: Path) -> None:
    agent = deploybot()
    app = sqlite_app(tmp_path, agent)
    async with client_for(app) as client:
        launched = await launch(client, PROD, "waiting")
        thread = await asyncio.to_thread(app.state.runtime.store.load, launched["id"])
        page = (await client.get(f"/threads/{thread.id}")).text
    calls = [i for i, e in enumerate(thread.events) if isinstance(e, ModelCall)]
    assert calls == [1, 4]
    for i in calls:
        call = thread.events[i]
        assert isinstance(call, ModelCall)
        block = event_block(page, i)
        messages = agent.render(thread.at(i))
        assert f'<details id="context-{i}" class="context">' in block
        assert f"Context sent: {len(messages)} messages, from events #0–#{i - 1}" in block
        for message in messages:
            assert f'<p class="role">{message.role}</p>\n      <pre>{escape(message.content)}</pre>' in block
        assert f'<pre class="raw">{escape(call.raw)}</pre>' in block
        assert f"<dt>Tokens in</dt><dd>{call.input_tokens}</dd>" in block
        assert f"<dt>Tokens out</dt><dd>{call.output_tokens}</dd>" in block
        assert f"<dt>Latency</dt><dd>{call.latency_ms:.1f} ms</dd>" in block
        intent = thread.events[i + 1]
        assert isinstance(intent, ToolCall)
        assert escape(f'"intent": "{intent.intent}"') in block and f'href="#event-{i + 1}"' in block
    # The second call saw the tag list the first call's tool returned.
    assert "v1.4.2" in event_block(page, 4).split('<pre class="raw">')[0]


async def test_a_call_that_did_not_parse_and_an_unserved_agent_are_explained(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)
    thread = Thread.new(
        UserMessage(content="hi"),
        ModelCall(model="m", raw="not json at all", latency_ms=3.0),
        Error(source="parse", message="no JSON object found"),
        agent="retired-bot",
    )
    async with client_for(app) as client:
        await asyncio.to_thread(app.state.runtime.store.create, thread)
        page = (await client.get(f"/threads/{thread.id}")).text
    block = event_block(page, 1)
    assert "agent &#39;retired-bot&#39; is not served here" in block
    assert "<dt>Tokens in</dt><dd>not reported</dd>" in block
    assert "Did not parse: no JSON object found" in block
    assert "(not served here)" in page


async def test_a_waiting_deploybot_thread_shows_the_approval_card(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch(client, PROD, "waiting")
        page = (await client.get(f"/threads/{thread['id']}")).text
        card = page[page.index('<div id="pending"') : page.index('<h2 id="timeline-title">')]
        request_id = thread["pending_request"]["call_id"]
        assert f'data-key="{request_id}"' in card and "Approval needed" in card
        assert "<code>deploy_backend</code>" in card and escape('"tag": "v1.4.2"') in card
        assert '<button type="submit" name="decision" value="approve" class="approve">Approve</button>' in card
        assert '<button type="submit" name="decision" value="deny" class="deny">Deny</button>' in card
        assert '<label for="deny-reason">' in card and '<input id="deny-reason" name="reason"' in card
        assert card.count(f'name="request_id" value="{request_id}"') == 2
        # One key per rendered page, shared by both forms: approve-then-deny clicks apply once.
        assert len(set(re.findall(r'name="idempotency_key" value="([^"]+)"', card))) == 1
        assert hidden(page, "idempotency_key") != hidden(
            (await client.get(f"/threads/{thread['id']}")).text, "idempotency_key"
        )


async def test_an_approval_says_what_the_call_does_and_shows_the_arguments_once(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch(client, PROD, "waiting")
        page = (await client.get(f"/threads/{thread['id']}")).text
    card = page[page.index('<div id="pending"') : page.index('<h2 id="timeline-title">')]
    request = page[page.index('class="event event-human_request"') :]
    for part in (card, request[: request.index("</li>")]):
        assert "Approve <code>deploy_backend</code>: Deploy a tag of the backend to an environment" in part
        assert part.count(escape('"tag": "v1.4.2"')) == 1 and part.count("production") == 2  # description + args


async def test_a_question_shows_an_answer_field_and_the_answer_resumes_the_thread(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch(client, {"agent": "deploybot", "message": "deploy the backend"}, "waiting")
        page = (await client.get(f"/threads/{thread['id']}")).text
        assert "The agent has a question" in page and "Deploy to staging or to production?" in page
        assert '<label for="answer">Your answer</label>' in page and '<textarea id="answer" name="answer"' in page
        form = {"request_id": hidden(page, "request_id"), "idempotency_key": hidden(page, "idempotency_key")}

        empty = await client.post(
            f"/threads/{thread['id']}/respond", data={**form, "decision": "answer", "answer": " "}
        )
        assert empty.status_code == 422 and "Write an answer before sending it." in empty.text

        sent = await client.post(
            f"/threads/{thread['id']}/respond", data={**form, "decision": "answer", "answer": "staging"}
        )
        assert sent.status_code == 303 and sent.headers["location"] == f"/threads/{thread['id']}"
        done = await wait_for_status(client, thread["id"], "done")
        assert done["events"][-1]["message"] == "Deployed v1.4.2 to staging."
        answer = next(e for e in done["events"] if e["type"] == "human_response")
        assert answer["text"] == "staging" and answer["responder"] == "web ui"


async def test_approving_with_the_form_finishes_the_thread(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch(client, PROD, "waiting")
        response = await client.post(f"/threads/{thread['id']}/respond", data=await approve_form(client, thread["id"]))
        assert response.status_code == 303 and response.headers["location"] == f"/threads/{thread['id']}"
        done = await wait_for_status(client, thread["id"], "done")
        assert done["events"][-1]["message"] == "Deployed v1.4.2 to production."
        page = (await client.get(response.headers["location"])).text
        assert 'class="status status-done"' in page and '<div id="pending" data-part data-key="">' in page
        assert "<strong>Approved</strong> by web ui" in page
        assert "Deployed v1.4.2 to production." in page


async def test_denying_with_a_reason_reaches_the_agent(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch(client, PROD, "waiting")
        form = {**await approve_form(client, thread["id"]), "decision": "deny", "reason": "release freeze"}
        assert (await client.post(f"/threads/{thread['id']}/respond", data=form)).status_code == 303
        done = await wait_for_status(client, thread["id"], "done")
        assert done["events"][-1]["message"] == "Deploy cancelled by a human (release freeze)."
        page = (await client.get(f"/threads/{thread['id']}")).text
        assert "<strong>Denied</strong> by web ui" in page and "release freeze" in page


async def test_a_double_submitted_form_is_applied_once(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch(client, PROD, "waiting")
        form = await approve_form(client, thread["id"])
        url = f"/threads/{thread['id']}/respond"
        first, second = await asyncio.gather(client.post(url, data=form), client.post(url, data=form))
        assert first.status_code == second.status_code == 303
        done = await wait_for_status(client, thread["id"], "done")
        # Sent again once the thread has moved on: the same answer is a no-op; the same form turned
        # into a different answer is refused (409), and the record keeps the first.
        again = await client.post(url, data=form)
        assert again.status_code == 303
        third = await client.post(url, data={**form, "decision": "deny", "reason": "too late"})
        assert third.status_code == 409
        final = (await client.get(f"/v1/threads/{thread['id']}")).json()
        assert [e["type"] for e in final["events"]].count("human_response") == 1
        assert final["events"] == done["events"]


async def test_an_answer_to_a_request_that_is_no_longer_pending_gets_a_clear_409(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch(client, PROD, "waiting")
        stale = await approve_form(client, thread["id"])  # a second tab, rendered earlier
        assert (
            await client.post(f"/threads/{thread['id']}/respond", data=await approve_form(client, thread["id"]))
        ).status_code == 303
        await wait_for_status(client, thread["id"], "done")
        response = await client.post(f"/threads/{thread['id']}/respond", data=stale)
        assert response.status_code == 409
        assert 'role="alert">That request was already answered or is no longer pending' in response.text
        assert 'class="status status-done"' in response.text  # the thread as it is now
        wrong = await client.post(f"/threads/{thread['id']}/respond", data={**stale, "decision": "maybe"})
        assert wrong.status_code == 422 and "Unknown decision &#39;maybe&#39;" in wrong.text
        missing = await client.post("/threads/nope/respond", data=stale)
        assert missing.status_code == 404 and "There is no thread with id &#39;nope&#39;." in missing.text


async def test_untrusted_text_is_shown_as_text(tmp_path: Path) -> None:
    evil = "<script>alert('x')</script>"
    model = ScriptedModel(
        [
            f'<img src=x onerror="alert(1)"> {{"intent": "request_human_input", "question": "{evil}?"}}',
            {"intent": "done_for_now", "message": f"bye {evil}"},
        ]
    )
    agent = Agent("echo", model=model)
    app = sqlite_app(tmp_path, agent)
    async with client_for(app) as client:
        thread = await launch(client, {"agent": "echo", "message": f"hello {evil}"}, "waiting")
        trigger = {"type": "pager_alert", "note": "</pre><b>bold</b>"}
        assert (await client.post(f"/v1/threads/{thread['id']}/events", json=trigger)).status_code == 202
        page = (await client.get(f"/threads/{thread['id']}")).text
        assert "<script>alert" not in page and "<img src=x" not in page and "<b>bold</b>" not in page
        assert "hello &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page  # the user message, as text
        assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page  # the raw model output, as text
        assert '<p class="question">&lt;script&gt;' in page  # the pending question
        assert "&lt;/pre&gt;&lt;b&gt;bold&lt;/b&gt;" in page  # a custom event's fields
        assert re.search(r"#\d+</a> pager_alert</h3>", page), page  # custom events are titled with their type
        form = {"request_id": hidden(page, "request_id"), "idempotency_key": hidden(page, "idempotency_key")}
        await client.post(f"/threads/{thread['id']}/respond", data={**form, "decision": "answer", "answer": evil})
        await wait_for_status(client, thread["id"], "done")
        done_page = (await client.get(f"/threads/{thread['id']}")).text
        assert "<script>alert" not in done_page and "bye &lt;script&gt;" in done_page


async def test_forms_posted_from_another_site_are_refused(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch(client, PROD, "waiting")
        form = await approve_form(client, thread["id"])
        for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
            launched = await client.post("/threads", data=PROD, headers=headers)
            approved = await client.post(f"/threads/{thread['id']}/respond", data=form, headers=headers)
            assert launched.status_code == approved.status_code == 403
            assert "posted from another site" in approved.text
        assert len((await client.get("/v1/threads")).json()) == 1
        assert (await client.get(f"/v1/threads/{thread['id']}")).json()["status"] == "waiting"
        # The same site (what a browser sends for our own pages) is accepted.
        same = {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"}
        assert (await client.post(f"/threads/{thread['id']}/respond", data=form, headers=same)).status_code == 303
        json_post = await client.post("/threads", json=PROD)
        assert json_post.status_code == 415


async def test_the_live_fragment_and_unknown_threads(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch(client, PROD, "waiting")
        fragment = await client.get(f"/threads/{thread['id']}/live")
        assert fragment.status_code == 200 and "<html" not in fragment.text
        assert 'id="thread-status"' in fragment.text and 'id="timeline"' in fragment.text
        assert f'data-key="{thread["pending_request"]["call_id"]}"' in fragment.text
        assert fragment.headers["cache-control"] == "no-store"
        missing = await client.get("/threads/does-not-exist")
        assert missing.status_code == 404 and "No such thread" in missing.text


async def test_static_assets_are_served_and_nothing_loads_from_elsewhere(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch(client, PROD, "waiting")
        for asset, kind in (
            ("/static/ui.css", "text/css"),
            ("/static/live.js", "javascript"),
            ("/static/launch.js", "javascript"),
        ):
            response = await client.get(asset)
            assert response.status_code == 200 and kind in response.headers["content-type"]
        for url in ("/threads", f"/threads/{thread['id']}"):
            page = (await client.get(url)).text
            assert not re.search(r'(src|href)="(https?:)?//', page), url
        css = (await client.get("/static/ui.css")).text
        assert "@import" not in css and "url(" not in css


async def test_the_list_has_one_set_of_filter_controls(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        page = (await client.get("/threads", params={"status": "waiting"})).text
    assert page.count('aria-label="Filter') == 1 and page.count('<select id="filter-status"') == 1
    assert not re.search(r'href="/threads\?status=[^"]*">(all|running|waiting|done|failed)<', page)  # no status links


async def test_pages_have_a_favicon_from_static(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        page = (await client.get("/threads")).text
        found = re.search(r'<link rel="icon" href="([^"]+)"', page)
        assert found is not None and found[1] == "/static/favicon.svg"
        icon = await client.get(found[1])
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert "<script" not in icon.text and "http" not in icon.text.replace("http://www.w3.org/2000/svg", "")


class _Controls(HTMLParser):
    """Collects form controls, labels, buttons and headings of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.headings: list[str] = []
        self.buttons: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("input", "select", "textarea") and attributes.get("type") != "hidden":
            self.controls.append(attributes)
        elif tag == "label" and attributes.get("for"):
            self.label_for.add(attributes["for"] or "")
        elif tag == "button":
            self.buttons.append(attributes)
        elif re.fullmatch(r"h[1-6]", tag):
            self.headings.append(tag)


@pytest.mark.parametrize("message", [PROD["message"], "deploy the backend"])
async def test_every_control_has_a_label_and_headings_start_at_h1(tmp_path: Path, message: str) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        thread = await launch(client, {"agent": "deploybot", "message": message}, "waiting")
        for url in ("/threads", f"/threads/{thread['id']}"):
            parser = _Controls()
            parser.feed((await client.get(url)).text)
            assert parser.controls, url
            for control in parser.controls:
                assert control.get("id") in parser.label_for, f"{url}: unlabelled control {control}"
            assert all(button.get("type") == "submit" for button in parser.buttons)
            assert parser.headings[0] == "h1" and parser.headings.count("h1") == 1
            levels = [int(h[1]) for h in parser.headings]
            assert all(b - a <= 1 for a, b in zip(levels, levels[1:], strict=False)), f"{url}: skipped heading level"


async def test_on_a_server_with_api_tokens_the_ui_needs_a_sign_in(tmp_path: Path) -> None:
    token = "t" * 32
    async with client_for(sqlite_app(tmp_path, api_tokens=[token])) as client:
        api = {"Authorization": f"Bearer {token}"}
        thread = (await client.post("/v1/threads", json=PROD, headers=api)).json()
        for url in ("/", "/threads", f"/threads/{thread['id']}"):
            response = await client.get(url)
            assert response.status_code == 303 and response.headers["location"].startswith("/sign-in?next="), url
        assert (await client.post("/threads", data=PROD)).status_code == 401
        form = {"request_id": "call_5", "decision": "approve"}
        assert (await client.post(f"/threads/{thread['id']}/respond", data=form)).status_code == 401
        assert len((await client.get("/v1/threads", headers=api)).json()) == 1


async def test_the_list_pages_through_many_threads(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)
    threads = [
        Thread.new(UserMessage(content=f"n{i}"), Error(source="agent", message="x", fatal=True)) for i in range(53)
    ]
    async with client_for(app) as client:
        for thread in threads:
            await asyncio.to_thread(app.state.runtime.store.create, thread)
        first = (await client.get("/threads", params={"status": "failed"})).text
        second = (await client.get("/threads", params={"status": "failed", "page": 2})).text
    on_first = {t.id for t in threads if f'href="/threads/{t.id}"' in first}
    on_second = {t.id for t in threads if f'href="/threads/{t.id}"' in second}
    assert len(on_first) == 50 and len(on_second) == 3 and not on_first & on_second
    assert 'href="/threads?status=failed&amp;page=2" rel="next">Older</a>' in first and 'rel="prev"' not in first
    assert 'href="/threads?status=failed" rel="prev">Newer</a>' in second and 'rel="next"' not in second
