"""The Anthropic client against a local server speaking the Messages API wire format."""

from __future__ import annotations

import json
import time
from typing import Literal

import pytest

from twelvefactor import Agent, Error, Message, ModelCall, Tool, UserError, run, sent_request, tool
from twelvefactor.models import AnthropicModel, OutputSpec, ProviderError, RetryPolicy

from .conftest import Served
from .fakes import KEY, Reply

HI = [Message(role="system", content="Answer with JSON."), Message(role="user", content="add 1 and 2")]


@tool
def add(a: int, b: int) -> int:
    """Add b to a."""
    return a + b


class Escalate(Tool):
    """Hand the case to a person."""

    intent: Literal["escalate"] = "escalate"
    reason: str
    urgent: bool = False


def agent(model: AnthropicModel, mode: Literal["prompted", "json_schema", "tools"] = "prompted") -> Agent:
    return Agent("calc", tools=[add, Escalate], model=model, output_mode=mode)


def test_prompted_call_puts_system_text_at_the_top_and_reads_the_text_blocks(anthropic_server: Served) -> None:
    anthropic_server.fake.push(Reply(text='{"intent": "add", "a": 1, "b": 2}'))
    response = anthropic_server.anthropic().complete(HI)
    assert response.text == '{"intent": "add", "a": 1, "b": 2}'
    assert response.model == "claude-haiku-4-5" and response.finish_reason == "end_turn"
    assert response.input_tokens and response.output_tokens
    assert response.cost_usd == pytest.approx((response.input_tokens * 1 + response.output_tokens * 5) / 1e6)
    (seen,) = anthropic_server.fake.requests
    assert (
        seen.body
        == response.request
        == {
            "model": "claude-haiku-4-5",
            "max_tokens": 4096,
            "system": "Answer with JSON.",
            "messages": [{"role": "user", "content": "add 1 and 2"}],
        }
    )
    assert seen.headers["x-api-key"] == KEY and seen.headers["anthropic-version"] == "2023-06-01"


def test_several_system_messages_become_system_blocks_and_a_late_one_is_refused(anthropic_server: Served) -> None:
    model = anthropic_server.anthropic()
    two = [Message(role="system", content="a"), Message(role="system", content="b"), HI[1]]
    model.complete(two)
    assert anthropic_server.fake.bodies[0]["system"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    with pytest.raises(UserError, match="message 2 is a system message after the conversation started"):
        model.complete([*HI, Message(role="system", content="late")])
    with pytest.raises(UserError, match="the prompt has no user message"):
        model.complete(HI[:1])
    assert len(anthropic_server.fake.requests) == 1  # refused before sending


def test_json_schema_mode_forces_one_tool_whose_input_is_the_next_step(anthropic_server: Served) -> None:
    anthropic_server.fake.push(Reply(step={"intent": "escalate", "reason": "angry customer"}))
    bot = agent(anthropic_server.anthropic(), "json_schema")
    thread, intent = bot.step(bot.new_thread("help"))
    assert intent == Escalate(reason="angry customer")
    body = anthropic_server.fake.bodies[0]
    (only,) = body["tools"]
    assert only["name"] == "next_step" and only["input_schema"]["required"] == ["next_step"]
    assert "discriminator" not in json.dumps(only) and "title" not in only["input_schema"]
    assert body["tool_choice"] == {"type": "tool", "name": "next_step", "disable_parallel_tool_use": True}
    index, call = next((i, e) for i, e in enumerate(thread.events) if isinstance(e, ModelCall))
    assert sent_request(thread, index) == body and call.finish_reason == "tool_use"
    assert call.request_refs == {"/system": 0, "/messages/0/content": 1}
    assert call.request is not None and call.request["system"] == ""


def test_tools_mode_sends_one_tool_per_intent_and_maps_tool_use_back(anthropic_server: Served) -> None:
    anthropic_server.fake.push(Reply(step={"intent": "add", "a": 4, "b": 5}))
    bot = agent(anthropic_server.anthropic(), "tools")
    _, intent = bot.step(bot.new_thread("add"))
    assert intent is not None and intent.model_dump() == {"intent": "add", "a": 4, "b": 5}
    body = anthropic_server.fake.bodies[0]
    assert [t["name"] for t in body["tools"]] == ["add", "escalate", "request_human_input", "done_for_now"]
    assert body["tools"][1] == {
        "name": "escalate",
        "description": "Hand the case to a person.",
        "input_schema": {
            "properties": {"reason": {"type": "string"}, "urgent": {"default": False, "type": "boolean"}},
            "required": ["reason"],
            "type": "object",
        },
    }
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_a_full_run_in_tools_mode(anthropic_server: Served) -> None:
    anthropic_server.fake.push(
        Reply(step={"intent": "add", "a": 4, "b": 5}), Reply(step={"intent": "done_for_now", "message": "9"})
    )
    bot = agent(anthropic_server.anthropic(), "tools")
    thread = run(bot, bot.new_thread("add 4 and 5"))
    assert thread.status == "done" and thread.events[-1].message == "9"  # type: ignore[attr-defined]
    calls = [e for e in thread.events if isinstance(e, ModelCall)]
    assert len(calls) == 2 and all(c.cost_usd and c.request for c in calls)


def test_errors_in_anthropic_shape_become_clear_provider_errors(anthropic_server: Served) -> None:
    wrong = AnthropicModel("claude-haiku-4-5", base_url=anthropic_server.url, api_key="sk-ant-wrong-000000")
    with pytest.raises(
        ProviderError, match=r"HTTP 401, the API key was refused \(check ANTHROPIC_API_KEY\): invalid x-api-key"
    ):
        wrong.complete(HI)
    with pytest.raises(ProviderError, match="unknown model 'no-such-model'"):
        anthropic_server.anthropic("no-such-model").complete(HI)
    with pytest.raises(ProviderError, match="the context is too long .*prompt is too long") as info:
        anthropic_server.anthropic().complete([Message(role="user", content="x" * 30_000)])
    assert info.value.kind == "context_length"


def test_overloaded_529_and_429_with_retry_after_are_retried(anthropic_server: Served) -> None:
    anthropic_server.fake.push(
        Reply(status=529, message="Overloaded"),
        Reply(status=429, headers={"retry-after": "0.2"}),
        Reply(text="done"),
    )
    started = time.perf_counter()
    model = anthropic_server.anthropic(retry=RetryPolicy(max_retries=3, initial_delay_s=0.01))
    assert model.complete(HI).text == "done"
    assert len(anthropic_server.fake.requests) == 3 and time.perf_counter() - started >= 0.2


def test_a_malformed_body_and_a_timeout(anthropic_server: Served) -> None:
    anthropic_server.fake.push(Reply(raw='{"type": "message", "content": "not a list"}'))
    with pytest.raises(ProviderError, match="the reply is not an Anthropic message"):
        anthropic_server.anthropic().complete(HI)
    anthropic_server.fake.push(Reply(text="late", delay_s=1.0))
    with pytest.raises(ProviderError, match="no answer within the 0.2 s timeout") as info:
        anthropic_server.anthropic(timeout_s=0.2, retry=RetryPolicy(max_retries=0)).complete(HI)
    assert info.value.kind == "timeout"


def test_max_tokens_stop_reason_surfaces_as_truncation(anthropic_server: Served) -> None:
    anthropic_server.fake.push(Reply(step={"intent": "done_for_now", "message": "a long answer"}, truncate=True))
    model = anthropic_server.anthropic(max_tokens=5)
    output = OutputSpec("prompted", ())
    first = model.complete(HI, output=output)
    assert first.truncated and first.finish_reason == "max_tokens"
    bot = agent(anthropic_server.anthropic(max_tokens=5))
    anthropic_server.fake.push(
        Reply(step={"intent": "done_for_now", "message": "a long answer"}, truncate=True),
        Reply(step={"intent": "done_for_now", "message": "ok"}),
    )
    thread = run(bot, bot.new_thread("hi"))
    errors = [e for e in thread.events if isinstance(e, Error)]
    assert len(errors) == 1 and "finish_reason 'max_tokens'" in errors[0].message and thread.status == "done"


def test_anthropic_base_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with pytest.raises(UserError, match="needs an API key: set ANTHROPIC_API_KEY"):
        AnthropicModel("claude-sonnet-4-5")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env-0000")
    model = AnthropicModel("claude-sonnet-4-5")
    assert model.request_url() == "https://api.anthropic.com/v1/messages" and model.api_key == "sk-ant-from-env-0000"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9999")
    assert AnthropicModel("claude-sonnet-4-5").request_url() == "http://127.0.0.1:9999/v1/messages"
