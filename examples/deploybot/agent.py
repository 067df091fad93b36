"""Deploybot, from the 12-factor agents talk: list tags, deploy to staging or production (approved).

Run it:  twelvefactor run examples/deploybot "deploy the latest backend to production"
The offline demo model is a deterministic stand-in that reads the rendered context, so the whole
flow (tool call, approval pause, resume, done) runs without any LLM.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

from twelvefactor import Agent, Effect, FunctionModel, Message, Model, Tool, tool

TAGS = ["v1.4.2", "v1.4.1", "v1.4.0", "v1.3.9"]


@tool(effect="read_only")
def list_git_tags() -> list[str]:
    """List the backend's release tags, newest first."""
    return list(TAGS)


class DeployBackend(Tool):
    """Deploy a tag of the backend to an environment (production deploys wait for human approval)."""

    intent: Literal["deploy_backend"] = "deploy_backend"
    environment: Literal["staging", "production"]
    tag: str

    # A deploy that may have started before a crash is never re-run blindly: a person is asked.
    effect: ClassVar[Effect] = "irreversible"

    def run(self) -> dict[str, str]:
        if self.tag not in TAGS:
            raise ValueError(f"unknown tag {self.tag!r}; known tags: {', '.join(TAGS)}")
        return {"status": "deployed", "environment": self.environment, "tag": self.tag}

    def approval_required(self) -> bool:
        # Staging is self-service; production waits for a person.
        return self.environment == "production"


def demo_policy(messages: Sequence[Message]) -> dict[str, object]:
    """The offline stand-in for a model: one next step from the rendered context."""
    context = html.unescape(messages[-1].content)  # the XML context format escapes <, > and &
    asked = " ".join(re.findall(r"<(?:user_message|human_response)>\n(.*?)\n</", context, re.DOTALL)).lower()
    if "<human_response>\ndenied" in context:
        reason = context.rsplit("<human_response>\ndenied", 1)[1].split("</human_response>")[0].strip(": \n")
        return {"intent": "done_for_now", "message": f"Deploy cancelled by a human ({reason or 'no reason given'})."}
    deployed = re.search(r"status: deployed\n\s*environment: (\w+)\n\s*tag: (\S+)", context)
    if deployed:
        return {"intent": "done_for_now", "message": f"Deployed {deployed[2]} to {deployed[1]}."}
    tags = re.findall(r"^\s*- (v[\d.]+)$", context, re.MULTILINE)
    if not tags:
        return {"intent": "list_git_tags"}
    environment = "production" if "prod" in asked else "staging" if "staging" in asked else None
    if environment is None:
        return {"intent": "request_human_input", "question": "Deploy to staging or to production?"}
    wanted = re.search(r"v\d+\.\d+\.\d+", asked)
    return {"intent": "deploy_backend", "environment": environment, "tag": wanted[0] if wanted else tags[0]}


def demo_model() -> Model:
    return FunctionModel(demo_policy, name="deploybot-demo")


agent = Agent(
    "deploybot",
    tools=[list_git_tags, DeployBackend],
    model=demo_model(),
    prompt=Path(__file__).with_name("prompt.jinja"),
    description="Deploys the backend; production deploys wait for a human.",
)
