"""The web UI for workflows (httpx + ASGI): a workflow's steps, its sub-agent threads nested under them,
answering a sub-agent from the workflow's page, the way back from a sub-thread, and the list's marks."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI

from twelvefactor import Agent, Error, Flow, ScriptedModel, Thread, Tool, ToolCall, UserMessage, workflow
from twelvefactor._loader import load_target
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.workflows import Workflow

from .conftest import ROOT, client_for, wait_for_status
from .test_ui import _Controls

pytestmark = pytest.mark.anyio

HOSTILE = '<img src=x onerror="alert(1)">'


class Verdict(Tool):
    """Give the pipeline your verdict."""

    intent: Literal["verdict"] = "verdict"
    go: bool
    note: str = ""


def reviewer(question: str = f"Is the freeze over? {HOSTILE}") -> Agent:
    """A sub-agent that asks a person, then answers the workflow with a verdict."""
    script = [
        {"intent": "request_human_input", "question": question},
        {"intent": "verdict", "go": True, "note": f"looks fine {HOSTILE}"},
    ]
    return Agent("reviewer", tools=[Verdict], model=ScriptedModel(script), description="Reviews a release.")


def gate_workflow(agent: Agent) -> Workflow:
    def prepare(version: str) -> str:
        return f"prepared {version} {HOSTILE}"

    @workflow(agents=[agent])
    def gate(wf: Flow, message: str) -> str:
        """Prepare, let the reviewer decide, then say so."""
        wf.step(prepare, message, effect="read_only")
        verdict = wf.agent(agent, f"Review {message}", output=Verdict)
        return "go" if verdict.go else "stop"

    return gate


def release() -> Workflow:
    target = load_target(str(ROOT / "examples" / "release"))
    assert isinstance(target, Workflow)
    return target


def app_for(tmp_path: Path, *targets: Agent | Workflow) -> FastAPI:
    return create_app(list(targets), settings=ServerSettings(database=str(tmp_path / "service.db")))


async def until(client: httpx.AsyncClient, thread_id: str, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        response = await client.get(f"/v1/threads/{thread_id}")
        body: dict[str, Any] = response.json()
        if response.status_code == 200 and ok(body):
            return body
        assert time.monotonic() < deadline, f"thread {thread_id}: {body.get('status')}"
        await asyncio.sleep(0.02)


async def launch(client: httpx.AsyncClient, agent: str, message: str) -> str:
    response = await client.post("/v1/threads", json={"agent": agent, "message": message})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def block(page: str, element_id: str) -> str:
    """The HTML of the element with ``element_id``, up to its sibling's start (rows, steps)."""
    start = page.index(f'id="{element_id}"')
    tag = page.rindex("<", 0, start)
    name = page[tag + 1 : page.index(" ", tag)]
    depth, position = 0, tag
    for match in re.finditer(rf"<(/?){name}[\s>]", page[tag:]):
        depth += -1 if match[1] else 1
        if depth == 0:
            position = tag + match.end()
            break
    return page[tag:position]


def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


async def test_a_release_thread_shows_its_steps_in_order_with_the_sub_agent_nested(tmp_path: Path) -> None:
    async with client_for(app_for(tmp_path, release())) as client:
        thread_id = await launch(client, "release", "ship it")
        await until(client, thread_id, lambda t: t["pending_request"] is not None)
        child_id = f"{thread_id}-step3"
        page = (await client.get(f"/threads/{thread_id}")).text

        assert f"<h1>Workflow thread <code>{thread_id}</code></h1>" in page
        assert "<dt>Workflow</dt><dd>release</dd>" in page  # served: no "(not served here)"
        steps = block(page, "steps")
        names = re.findall(
            r'<li id="step-(\d+)" class="step step-(\w+)">\s*<div class="step-head">\s*<h3>.*?<code>(\w+)</code>', steps
        )
        assert names == [
            ("1", "done", "merged_prs"),
            ("2", "done", "run_tests"),
            ("3", "done", "rollout"),
            ("4", "done", "deploy"),
            ("5", "person", "approve"),
        ]
        assert "Faster search" in block(steps, "step-1")  # the result, in short
        assert "tag=&#34;main&#34;" in block(steps, "step-2")  # the arguments, in short
        assert "tag=&#34;v1.4.2&#34;, environment=&#34;staging&#34;" in block(steps, "step-4")
        assert "v1.4.2 is live on staging" in block(steps, "step-4")
        step5 = block(steps, "step-5")
        assert "waiting for a person (approval)" in step5 and "Deploy v1.4.2 to production?" in step5
        assert '<a href="#pending">Answer it above</a>' in step5

        # The agent step: its sub-thread nested under it, with its own events and a link to its page.
        step3 = block(steps, "step-3")
        assert "sub-agent <code>rollout</code>" in step3 and "Releasing v1.4.2" in step3
        sub = block(step3, "sub-3-thread")
        assert f'<a href="/threads/{child_id}"><code>{child_id}</code></a>' in sub and "status-done" in sub
        assert 'id="sub-3-event-0"' in sub and "Tool call <code>list_git_tags</code>" in sub
        assert 'href="#sub-3-event-2"' in sub and 'id="sub-3-context-1"' in sub  # its anchors do not clash
        assert "data-substream" not in sub  # done: its stream is not followed
        # The raw events stay, as before; a wait says what it waits for.
        assert 'id="event-0"' in page and '<h2 id="timeline-title">Timeline</h2>' in page
        wait = block(page, "event-7")
        assert "#7</a> Wait</h3>" in wait
        assert f'For sub-thread <a href="/threads/{child_id}"><code>{child_id}</code></a>' in wait

        # The workflow's own approval, from its page, as for any thread.
        form = hidden_fields(block(page, "pending"))
        assert form["request_id"] == "step_5" and "return_to" not in form
        response = await client.post(f"/threads/{thread_id}/respond", data={**form, "decision": "approve"})
        assert response.status_code == 303 and response.headers["location"] == f"/threads/{thread_id}"
        await wait_for_status(client, thread_id, "done")
        done = (await client.get(f"/threads/{thread_id}")).text
        assert [s for s, _ in re.findall(r'<li id="step-(\d+)" class="step step-(done)">', done)] == list("1234567")
        assert "Returned: released v1.4.2 to production" in done
        assert "v1.4.2 is live on production" in block(done, "step-6")


async def test_a_sub_agents_question_is_answered_from_the_workflow_page(tmp_path: Path) -> None:
    gate = gate_workflow(reviewer())
    async with client_for(app_for(tmp_path, gate)) as client:
        thread_id = await launch(client, "gate", "v2 <b>now</b>")
        child_id = f"{thread_id}-step2"
        waiting = await until(client, child_id, lambda t: t["status"] == "waiting")
        await wait_for_status(client, thread_id, "waiting")
        page = (await client.get(f"/threads/{thread_id}")).text

        assert "step-1" in page and "prepared v2 &lt;b&gt;now&lt;/b&gt; &lt;img src=x" in block(page, "step-1")
        step2 = block(page, "step-2")
        assert 'class="step step-agent"' in step2 and "waiting on sub-agent" in step2
        assert "task=&#34;Review v2 &lt;b&gt;now&lt;/b&gt;&#34;" in step2
        assert 'id="pending" data-part data-key=""' in page  # the workflow itself asks nobody
        pointer = block(page, "sub-asks")  # but its sub-agent does, and the top of the page says so
        assert "Sub-agent <code>reviewer</code> (step 2) needs a person" in pointer
        assert 'href="#sub-2-pending"' in pointer
        sub = block(step2, "sub-2-thread")
        # Still at work: the page's script follows its stream (since the events shown).
        assert (
            f'data-substream="/v1/threads/{child_id}/stream?since={waiting["version"]}" data-substream-key="{child_id}"'
            in sub
        )
        card = block(sub, "sub-2-pending")
        assert f'data-key="{child_id}:' in card and "The agent has a question" in card
        assert "Is the freeze over? &lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in card and HOSTILE not in page
        assert f'action="/threads/{child_id}/respond"' in card  # the sub-thread's own answer route
        assert '<label for="sub-2-answer">' in card and 'id="sub-2-answer"' in card
        fields = hidden_fields(card)
        assert fields["return_to"] == thread_id and fields["request_id"].startswith("call_")
        parser = _Controls()
        parser.feed(page)
        assert all(control.get("id") in parser.label_for for control in parser.controls)
        levels = [int(h[1]) for h in parser.headings]
        assert levels[0] == 1 and all(b - a <= 1 for a, b in zip(levels, levels[1:], strict=False)), levels

        # The live fragment carries the same nesting.
        live = (await client.get(f"/threads/{thread_id}/live")).text
        assert 'id="steps" data-part' in live and 'id="sub-2-pending"' in live and "<html" not in live

        answer = {**fields, "decision": "answer", "answer": "yes, it is over"}
        response = await client.post(f"/threads/{child_id}/respond", data=answer)
        assert response.status_code == 303 and response.headers["location"] == f"/threads/{thread_id}"
        parent = await wait_for_status(client, thread_id, "done")
        assert parent["events"][-1]["message"] == "go"
        child = (await client.get(f"/v1/threads/{child_id}")).json()
        assert child["status"] == "done" and child["events"][waiting["version"]]["text"] == "yes, it is over"

        done = (await client.get(f"/threads/{thread_id}")).text
        step2 = block(done, "step-2")
        assert 'class="step step-done"' in step2 and "looks fine &lt;img" in step2
        assert "data-substream" not in step2 and 'id="sub-2-pending"' not in step2
        assert "needs a person" not in block(done, "sub-asks")
        assert "Returned: go" in done


async def test_a_sub_thread_says_whose_step_it_is_and_the_list_marks_it(tmp_path: Path) -> None:
    app = app_for(tmp_path, gate_workflow(reviewer()))
    async with client_for(app) as client:
        thread_id = await launch(client, "gate", "v3")
        child_id = f"{thread_id}-step2"
        await until(client, child_id, lambda t: t["status"] == "waiting")
        await wait_for_status(client, thread_id, "waiting")

        page = (await client.get(f"/threads/{child_id}")).text
        assert (
            f'Sub-agent of workflow thread <a href="/threads/{thread_id}#step-2"><code>{thread_id}</code></a>'
            " (step 2: <code>reviewer</code>)" in page
        )
        assert f'<a href="/threads/{thread_id}">{thread_id}</a>' in block(page, "main")  # the breadcrumb
        assert "Forked from" not in page and "<h1>Thread <code>" in page
        # Answered on its own page, an answer stays there.
        form = hidden_fields(block(page, "pending"))
        assert "return_to" not in form

        fragment = (await client.get("/thread-list")).text
        child_row = block(fragment, f"row-{child_id}")
        assert f'↳</span> step 2 of <a href="/threads/{thread_id}"><code>{thread_id}</code></a>' in child_row
        assert 'reviewer <span class="tag">sub-agent</span>' in child_row and "fork of" not in child_row
        assert "<strong>Question:</strong> Is the freeze over? &lt;img" in child_row
        parent_row = block(fragment, f"row-{thread_id}")
        assert 'gate <span class="tag">workflow</span>' in parent_row and "↳" not in parent_row
        assert f'<strong>Waiting on sub-thread</strong> <a href="/threads/{child_id}">' in parent_row
        listing = (await client.get("/threads")).text
        assert '<option value="gate" data-placeholder="A message for gate: Prepare, let the reviewer' in listing
        assert ">gate (workflow)</option>" in listing and ">reviewer</option>" in listing

        # A sub-thread of an agent's thread (an agent used as a tool, say) is not called a workflow's step.
        nested = Thread(id="orphan-sub", agent="reviewer", events=(UserMessage(content="x"),), parent_id=child_id)
        await asyncio.to_thread(app.state.runtime.store.create, nested)
        page = (await client.get("/threads/orphan-sub")).text
        assert f'Sub-agent of thread <a href="/threads/{child_id}"><code>{child_id}</code></a></p>' in page
        row = block((await client.get("/thread-list")).text, "row-orphan-sub")
        assert f'↳</span> sub-agent of <a href="/threads/{child_id}">' in row


async def test_an_answer_goes_back_only_to_the_sub_threads_own_workflow(tmp_path: Path) -> None:
    gate = gate_workflow(reviewer())
    async with client_for(app_for(tmp_path, gate)) as client:
        thread_id = await launch(client, "gate", "v4")
        child_id = f"{thread_id}-step2"
        child = await until(client, child_id, lambda t: t["status"] == "waiting")
        request_id = child["pending_request"]["call_id"]
        # Not its workflow: the answer is applied, and the page shown is the sub-thread's own.
        elsewhere = {"request_id": request_id, "decision": "answer", "answer": "yes", "return_to": "someone-else"}
        response = await client.post(f"/threads/{child_id}/respond", data=elsewhere)
        assert response.status_code == 303 and response.headers["location"] == f"/threads/{child_id}"
        # Answered already: the 409 is shown on the workflow's page when asked from there.
        again = {**elsewhere, "return_to": thread_id}
        conflict = await client.post(f"/threads/{child_id}/respond", data=again)
        assert conflict.status_code == 409 and "already answered" in conflict.text
        assert f"<h1>Workflow thread <code>{thread_id}</code></h1>" in conflict.text
        await wait_for_status(client, thread_id, "done")


async def test_timers_failures_and_unfinished_steps_are_shown(tmp_path: Path) -> None:
    def check(release: str) -> None:
        raise RuntimeError(f"no such release {release} {HOSTILE}")

    @workflow
    def nap(wf: Flow) -> str:
        wf.sleep(3600, name="cool_down")
        return "rested"

    @workflow
    def broken(wf: Flow, message: str) -> str:
        wf.step(check, message, effect="read_only")
        return "unreachable"

    app = app_for(tmp_path, nap, broken)
    async with client_for(app) as client:
        napping = await launch(client, "nap", "rest")
        failing = await launch(client, "broken", "v9")
        await wait_for_status(client, napping, "waiting")
        await wait_for_status(client, failing, "failed")

        timer = block((await client.get(f"/threads/{napping}")).text, "step-1")
        assert 'class="step step-timer"' in timer and "<code>cool_down</code>" in timer
        assert re.search(r'waiting until <time datetime="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>', timer)
        assert "Until <time datetime=" in (await client.get(f"/threads/{napping}")).text

        page = (await client.get(f"/threads/{failing}")).text
        step = block(page, "step-1")
        assert 'class="step step-failed"' in step and "RuntimeError: no such release v9 &lt;img" in step
        assert "Stopped: workflow &#39;broken&#39; stopped" in page and HOSTILE not in page

        # A step the thread ended without finishing (its code changed under it, say).
        cut = Thread.new(
            UserMessage(content="v8"),
            ToolCall(call_id="step_1", intent="check", arguments={"release": "v8"}),
            Error(source="agent", message="workflow 'broken' asked for another step", fatal=True),
            agent="broken",
        )
        await asyncio.to_thread(app.state.runtime.store.create, cut)
        step = block((await client.get(f"/threads/{cut.id}")).text, "step-1")
        assert 'class="step step-stopped"' in step and "not finished" in step

        fragment = (await client.get("/thread-list", params={"status": "waiting"})).text
        assert "<strong>Timer:</strong> until <time" in block(fragment, f"row-{napping}")
        assert failing not in fragment
