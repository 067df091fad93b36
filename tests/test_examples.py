"""The shipped examples run offline with their demo models, end to end."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from twelvefactor import Agent, HumanResponse, ScriptedModel, Thread, ToolResult, respond, run

ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / name / "agent.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the tools' annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def results(thread: Thread) -> list[object]:
    return [e.result for e in thread.events if isinstance(e, ToolResult)]


def test_calculator_adds_without_asking() -> None:
    calc = load("calculator").agent
    thread = run(calc, calc.new_thread("what is 3 plus 4"))
    assert thread.status == "done" and results(thread) == [7.0]


def test_calculator_asks_for_clarification_when_the_request_is_ambiguous() -> None:
    calc = load("calculator").agent
    thread = run(calc, calc.new_thread("do some maths for me"))
    request = thread.pending_request
    assert request is not None and request.kind == "input" and "Which numbers" in request.question
    thread = run(calc, respond(thread, HumanResponse(request_id=request.call_id, text="12 times 3")))
    assert thread.status == "done" and results(thread) == [36.0]


def test_calculator_divide_waits_for_approval() -> None:
    calc = load("calculator").agent
    thread = run(calc, calc.new_thread("what is 10 divided by 4"))
    request = thread.pending_request
    assert request is not None and request.kind == "approval" and request.intent == "divide"
    thread = run(calc, respond(thread, HumanResponse(request_id=request.call_id, approved=True)))
    assert results(thread) == [2.5] and thread.events[-1].message == "The answer is 2.5."  # type: ignore[attr-defined]


def test_calculator_with_a_scripted_model_shows_how_to_test_your_own_agent() -> None:
    module = load("calculator")
    scripted = Agent(
        "calculator",
        tools=module.agent.toolset.tools[:4],
        prompt=module.agent.prompt,
        model=ScriptedModel(
            [
                '```json\n{"intent": "multiply", "a": 6, "b": 7}\n```',
                "Sure! {'intent': 'done_for_now', 'message': '42',}",
            ]
        ),
    )
    thread = run(scripted, scripted.new_thread("six times seven"))
    assert thread.status == "done" and results(thread) == [42.0]


def test_deploybot_staging_needs_no_approval() -> None:
    bot = load("deploybot").agent
    thread = run(bot, bot.new_thread("deploy the latest backend to staging"))
    assert thread.status == "done"
    assert results(thread)[-1] == {"status": "deployed", "environment": "staging", "tag": "v1.4.2"}


def test_deploybot_production_waits_for_approval_and_then_deploys() -> None:
    bot = load("deploybot").agent
    thread = run(bot, bot.new_thread("deploy v1.4.1 to production"))
    request = thread.pending_request
    assert request is not None and request.kind == "approval"
    assert request.arguments == {"environment": "production", "tag": "v1.4.1"}
    thread = run(bot, respond(thread, HumanResponse(request_id=request.call_id, approved=True)))
    assert thread.status == "done" and thread.events[-1].message == "Deployed v1.4.1 to production."  # type: ignore[attr-defined]


def test_deploybot_asks_which_environment_when_none_is_named() -> None:
    bot = load("deploybot").agent
    thread = run(bot, bot.new_thread("ship the latest tag"))
    request = thread.pending_request
    assert request is not None and request.question == "Deploy to staging or to production?"


def test_calculator_replays_its_recorded_openai_session_offline() -> None:
    # examples/*/cassettes hold sessions recorded once (see the README); replay needs no key, no network.
    from twelvefactor.models import replay

    calc = load("calculator").agent
    calc.model = replay(ROOT / "examples" / "calculator" / "cassettes" / "openai-add.json")
    thread = run(calc, calc.new_thread("what is 3 plus 4"))
    assert thread.status == "done" and results(thread) == [7.0]


def test_deploybot_replays_its_recorded_anthropic_session_in_tools_mode() -> None:
    from twelvefactor.models import replay

    bot = load("deploybot").agent
    bot.model = replay(ROOT / "examples" / "deploybot" / "cassettes" / "anthropic-tools-production.json")
    bot.output_mode = "tools"
    thread = run(bot, bot.new_thread("deploy v1.4.1 to production"))
    request = thread.pending_request
    assert request is not None and request.kind == "approval"
    thread = run(bot, respond(thread, HumanResponse(request_id=request.call_id, approved=True)))
    assert thread.status == "done" and thread.events[-1].message == "Deployed v1.4.1 to production."  # type: ignore[attr-defined]
