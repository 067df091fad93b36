"""Re-record the examples' cassettes against the local fake provider servers.

    python -m tests.models.record_cassettes

The fake servers speak the real OpenAI and Anthropic wire formats (see ``fakes.py``); the answers
come from each example's offline demo policy, so recording needs no key and no network, and is
deterministic: ``test_example_cassettes.py`` re-records into a temporary folder and checks the shipped
files are byte-for-byte what the current prompts produce. To record against a real provider instead,
wrap a real model: ``record("openai:gpt-4o-mini", path)`` (see the README).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from twelvefactor import Agent, HumanResponse, Message, Thread, respond, run
from twelvefactor.models import AnthropicModel, HTTPModel, OpenAIModel, RetryPolicy, record

from .fakes import KEY, FakeProvider, Reply

ROOT = Path(__file__).resolve().parents[2]
Mode = Literal["prompted", "json_schema", "tools"]


@dataclass(frozen=True)
class Case:
    """One recorded session: which example, provider and output mode, and how the session goes."""

    example: str
    provider: Literal["openai", "anthropic"]
    mode: Mode
    file: str
    flow: Callable[[Agent], Thread]

    @property
    def path(self) -> Path:
        return ROOT / "examples" / self.example / "cassettes" / self.file


def ask(message: str) -> Callable[[Agent], Thread]:
    def flow(agent: Agent) -> Thread:
        return run(agent, agent.new_thread(message))

    return flow


def ask_and_approve(message: str) -> Callable[[Agent], Thread]:
    def flow(agent: Agent) -> Thread:
        thread = run(agent, agent.new_thread(message))
        request = thread.pending_request
        assert request is not None and request.kind == "approval", thread.status
        return run(agent, respond(thread, HumanResponse(request_id=request.call_id, approved=True)))

    return flow


CASES = (
    Case("calculator", "openai", "prompted", "openai-add.json", ask("what is 3 plus 4")),
    Case(
        "calculator",
        "openai",
        "json_schema",
        "openai-json-schema-divide.json",
        ask_and_approve("what is 10 divided by 4"),
    ),
    Case("deploybot", "anthropic", "prompted", "anthropic-staging.json", ask("deploy the latest backend to staging")),
    Case(
        "deploybot",
        "anthropic",
        "tools",
        "anthropic-tools-production.json",
        ask_and_approve("deploy v1.4.1 to production"),
    ),
)

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}


def load_example(name: str) -> ModuleType:
    path = ROOT / "examples" / name / "agent.py"
    spec = importlib.util.spec_from_file_location(f"cassette_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def example_agent(case: Case, model: Any) -> Agent:
    """The example's own agent (prompt, tools), with ``model`` and the case's output mode."""
    agent: Agent = load_example(case.example).agent
    agent.model = model
    agent.output_mode = case.mode
    return agent


def record_case(case: Case, path: Path) -> Thread:
    policy = load_example(case.example).demo_policy

    def responder(body: dict[str, Any]) -> Reply:
        messages = [Message(role=m["role"], content=m["content"]) for m in body["messages"]]
        return Reply(step=policy(messages))

    fake = FakeProvider(case.provider, responder=responder)
    with fake.serve() as url:
        live: HTTPModel
        retry = RetryPolicy(max_retries=0)
        if case.provider == "openai":
            live = OpenAIModel(MODELS["openai"], base_url=url, api_key=KEY, retry=retry)
        else:
            live = AnthropicModel(MODELS["anthropic"], base_url=url, api_key=KEY, retry=retry)
        path.unlink(missing_ok=True)
        return case.flow(example_agent(case, record(live, path)))


def main() -> None:
    for case in CASES:
        thread = record_case(case, case.path)
        print(f"{case.path.relative_to(ROOT)}: {thread.status}, {len(thread.events)} events")


if __name__ == "__main__":
    main()
