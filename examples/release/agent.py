"""The deploybot as the 12-factor talk tells it: a deterministic release pipeline with one micro-agent.

    gather merged PRs -> run the tests -> the rollout agent decides (tag, go or not, announcement)
    -> deploy to staging -> a person approves production -> deploy to production -> post the summary

Most of it is plain code; the one judgement call is a small agent in its own thread. Every step is
durable: kill the process anywhere and the next one goes on from the last recorded step, never
deploying twice (a deploy interrupted by a crash is checked against the deploy log; a summary
interrupted mid-post is asked about).

Run it:  twelvefactor serve release deploybot     (then launch "release" from the web UI)
The offline demo model stands in for an LLM; set RELEASE_LEDGER=/path/file to keep the deploy log
and chat posts in a file (bench/crash.py does, to count effects).
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from twelvefactor import Agent, Flow, FunctionModel, Message, Reconciled, Tool, ToolContext, tool, workflow

TAGS = ["v1.4.2", "v1.4.1", "v1.4.0"]
_MEMORY_LEDGER: list[str] = []


class PullRequest(BaseModel):
    number: int
    title: str


class TestReport(BaseModel):
    passed: int
    failed: int


def ledger() -> list[str]:
    """The deploy log and chat posts so far: one JSON line each (a file with RELEASE_LEDGER)."""
    path = os.environ.get("RELEASE_LEDGER")
    if not path:
        return list(_MEMORY_LEDGER)
    file = Path(path)
    return file.read_text().splitlines() if file.exists() else []


def _write(entry: dict[str, str]) -> None:
    line = json.dumps(entry, sort_keys=True)
    path = os.environ.get("RELEASE_LEDGER")
    if not path:
        _MEMORY_LEDGER.append(line)
        return
    with open(path, "a") as file:
        file.write(line + "\n")
        file.flush()
        os.fsync(file.fileno())


def merged_prs() -> list[PullRequest]:
    """The pull requests merged since the last release (read-only)."""
    return [PullRequest(number=412, title="Faster search"), PullRequest(number=415, title="Fix login redirect")]


def run_tests(tag: str) -> TestReport:
    """The test suite against the candidate (idempotent: running it again only costs time)."""
    return TestReport(passed=128, failed=0)


def deploy(tag: str, environment: str, ctx: ToolContext) -> str:
    """Deploy a tag (irreversible). The deploy system records the idempotency key with each deploy."""
    _write({"effect": "deploy", "tag": tag, "environment": environment, "key": ctx.idempotency_key})
    return f"{tag} is live on {environment}"


def deployed_already(ctx: ToolContext) -> Reconciled:
    """After a crash inside a deploy: the deploy log says whether it happened, so nobody is asked."""
    for line in ledger():
        entry = json.loads(line)
        if entry.get("effect") == "deploy" and entry.get("key") == ctx.idempotency_key:
            return Reconciled.done(f"{entry['tag']} is live on {entry['environment']}")
    return Reconciled.not_run()


def post_summary(text: str, ctx: ToolContext) -> str:
    """Post to the team's channel (irreversible, no way to check: after a crash mid-post, a person says)."""
    _write({"effect": "post", "text": text, "key": ctx.idempotency_key})
    return "posted"


# --- the one judgement call: a micro-agent ---


@tool(effect="read_only")
def list_git_tags() -> list[str]:
    """List the release tags, newest first."""
    return list(TAGS)


class RolloutPlan(Tool):
    """Hand the decision back to the pipeline: which tag, whether to proceed, what to tell the team."""

    intent: Literal["rollout_plan"] = "rollout_plan"
    tag: str = Field(description="the tag to ship")
    proceed: bool = Field(description="false when the release must not go out (e.g. failed tests)")
    announcement: str = Field(description="one or two sentences for the team: what ships and why")


def demo_policy(messages: Sequence[Message]) -> dict[str, object]:
    """The offline stand-in for a model: one next step from the rendered context."""
    context = html.unescape(messages[-1].content)
    tags = re.findall(r"^\s*- (v[\d.]+)$", context, re.MULTILINE)
    if not tags:
        return {"intent": "list_git_tags"}
    failed = re.search(r"failed=(\d+)", context)
    proceed = failed is None or failed[1] == "0"
    titles = re.findall(r"#\d+ ([^;\n]+)", context)
    what = ", ".join(titles) if titles else "the merged changes"
    announcement = f"Releasing {tags[0]}: {what}." if proceed else f"Holding {tags[0]}: tests failed."
    return {"intent": "rollout_plan", "tag": tags[0], "proceed": proceed, "announcement": announcement}


rollout = Agent(
    "rollout",
    tools=[list_git_tags, RolloutPlan],
    model=FunctionModel(demo_policy, name="rollout-demo"),
    prompt=Path(__file__).with_name("prompt.jinja"),
    description="Decides a release's rollout: tag, go or no-go, announcement.",
    max_steps=6,
)


@workflow(agents=[rollout])
def release(wf: Flow, message: str) -> str:
    """Release pipeline: tests, a rollout decision, staging, an approved production deploy, a summary."""
    prs = wf.step(merged_prs, effect="read_only")
    report = wf.step(run_tests, "main", effect="idempotent")
    changes = "; ".join(f"#{pr.number} {pr.title}" for pr in prs)
    plan = wf.agent(
        rollout,
        f"Request: {message or 'release the latest'}\nMerged: {changes}\nTests: passed={report.passed}"
        f" failed={report.failed}\nDecide the rollout.",
        output=RolloutPlan,
    )
    if not plan.proceed:
        wf.step(post_summary, f"Release held: {plan.announcement}")
        return f"held: {plan.announcement}"
    wf.step(deploy, plan.tag, "staging", reconcile=deployed_already)
    approval = wf.approve(
        f"Deploy {plan.tag} to production? {plan.announcement}",
        intent="deploy",
        arguments={"tag": plan.tag, "environment": "production"},
    )
    if not approval:
        wf.step(post_summary, f"{plan.tag} stays on staging ({approval.reason or 'production not approved'}).")
        return f"{plan.tag} on staging only: production was not approved"
    wf.step(deploy, plan.tag, "production", reconcile=deployed_already)
    wf.step(post_summary, plan.announcement)
    return f"released {plan.tag} to production"


agent = release  # what `twelvefactor serve release` loads
