"""The OpenAI-compatible client against a local server speaking the chat-completions wire format."""

from __future__ import annotations

import json
import threading
import time
from typing import Literal

import pytest
from pydantic import Field

from twelvefactor import (
    Agent,
    Error,
    Message,
    ModelCall,
    ModelRequestsForbidden,
    Tool,
    UserError,
    run,
    sent_request,
    tool,
)
from twelvefactor.models import ModelCancelled, OpenAIModel, OutputSpec, ProviderError, RetryPolicy

from .conftest import Served
from .fakes import KEY, Reply

HI = [Message(role="system", content="Answer with JSON."), Message(role="user", content="add 1 and 2")]


@tool
def add(a: int, b: int) -> int:
    """Add b to a."""
    return a + b


class Search(Tool):
    """Search the docs."""

    intent: Literal["search"] = "search"
    query: str = Field(min_length=2)
    limit: int = 5
    tags: list[str] | None = None


def agent(model: OpenAIModel, mode: Literal["prompted", "json_schema", "tools"] = "prompted") -> Agent:
    return Agent("calc", tools=[add, Search], model=model, output_mode=mode)


def test_prompted_call_returns_text_tokens_model_name_cost_and_the_exact_body(openai_server: Served) -> None:
    openai_server.fake.push(Reply(text='{"intent": "add", "a": 1, "b": 2}'))
    response = openai_server.openai().complete(HI)
    assert response.text == '{"intent": "add", "a": 1, "b": 2}'
    assert response.model == "gpt-4o-mini-2025-01-01"  # as the provider reports it
    assert response.input_tokens and response.output_tokens and response.finish_reason == "stop"
    assert response.cost_usd == pytest.approx((response.input_tokens * 0.15 + response.output_tokens * 0.6) / 1e6)
    (seen,) = openai_server.fake.requests
    assert (
        seen.body
        == response.request
        == {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Answer with JSON."},
                {"role": "user", "content": "add 1 and 2"},
            ],
        }
    )
    assert seen.headers["authorization"] == f"Bearer {KEY}" and seen.headers["user-agent"].startswith("twelvefactor")


def test_options_are_sent_only_when_given(openai_server: Served) -> None:
    model = openai_server.openai(max_tokens=64, temperature=0, extra_body={"seed": 7})
    model.complete(HI)
    body = openai_server.fake.bodies[0]
    assert body["max_completion_tokens"] == 64 and body["temperature"] == 0 and body["seed"] == 7
    assert "max_tokens" not in body
    openai_server.openai(preset="vllm", max_tokens=64).complete(HI)
    assert openai_server.fake.bodies[1]["max_tokens"] == 64  # compatible servers take the classic field


def test_json_schema_mode_sends_a_strict_schema_the_server_accepts_and_ends_in_the_intent(
    openai_server: Served,
) -> None:
    openai_server.fake.push(
        Reply(step={"intent": "search", "query": "retries"}), Reply(step={"intent": "done_for_now", "message": "ok"})
    )
    bot = agent(openai_server.openai(), "json_schema")
    thread, intent = bot.step(bot.new_thread("find retries"))
    assert intent == Search(query="retries")  # limit and tags were sent as null and dropped again
    form = openai_server.fake.bodies[0]["response_format"]
    assert form["type"] == "json_schema" and form["json_schema"]["strict"] is True
    assert form["json_schema"]["name"] == "next_step"
    index, call = next((i, e) for i, e in enumerate(thread.events) if isinstance(e, ModelCall))
    assert sent_request(thread, index) == openai_server.fake.bodies[0]  # the exact body, schema included
    assert call.request is not None and call.request["messages"][-1] == {"role": "user", "content": ""}
    assert call.request_refs == {"/messages/0/content": 0, "/messages/1/content": 1}  # stored once, in `sent`
    assert json.loads(call.raw) == {"intent": "search", "query": "retries", "tags": None}  # tags may be null
    search = form["json_schema"]["schema"]["$defs"]["Search"]
    assert search["properties"]["query"]["description"] == "minLength=2"  # not enforceable: said, then validated


def test_tools_mode_sends_one_tool_per_intent_and_maps_the_call_back(openai_server: Served) -> None:
    openai_server.fake.push(Reply(step={"intent": "add", "a": 1, "b": 2}))
    bot = agent(openai_server.openai(), "tools")
    _, intent = bot.step(bot.new_thread("add"))
    assert intent is not None and intent.model_dump() == {"intent": "add", "a": 1, "b": 2}
    body = openai_server.fake.bodies[0]
    assert [t["function"]["name"] for t in body["tools"]] == ["add", "search", "request_human_input", "done_for_now"]
    assert body["tools"][0]["function"]["description"] == "Add b to a."  # the docstring, nothing else
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False


def test_two_tool_calls_are_not_silently_reduced_to_one(openai_server: Served) -> None:
    openai_server.fake.push(
        Reply(tool_calls=[("add", {"a": 1, "b": 2}), ("done_for_now", {"message": "x"})]),
        Reply(step={"intent": "done_for_now", "message": "3"}),
    )
    bot = agent(openai_server.openai(), "tools")
    thread, intent = bot.step(bot.new_thread("add"))
    errors = [e for e in thread.events if isinstance(e, Error)]
    assert len(errors) == 1 and "2 different answers" in errors[0].message
    assert intent is not None and intent.intent_name() == "done_for_now"


def test_a_tool_call_with_broken_arguments_still_reaches_parse(openai_server: Served) -> None:
    openai_server.fake.push(Reply(tool_calls=[("add", "{'a': 1, 'b': 2,}")]))
    response = openai_server.openai().complete(
        HI, output=OutputSpec("tools", agent(openai_server.openai()).toolset.tools)
    )
    assert response.text == "{\"intent\": \"add\", 'a': 1, 'b': 2,}"
    assert agent(openai_server.openai()).parse(response.text).model_dump() == {"intent": "add", "a": 1, "b": 2}


def test_llama_cpp_python_preset_adapts_the_request_to_that_server(openai_server: Served) -> None:
    model = OpenAIModel("smollm2", preset="llama-cpp-python", base_url=openai_server.url, api_key=KEY)
    spec = OutputSpec("json_schema", agent(model).toolset.tools)
    openai_server.fake.push(Reply(step={"intent": "add", "a": 1, "b": 2}))
    assert json.loads(model.complete(HI, output=spec).text) == {"intent": "add", "a": 1, "b": 2}
    form = openai_server.fake.bodies[0]["response_format"]
    assert form["type"] == "json_object" and form["schema"]["anyOf"]
    openai_server.fake.push(Reply(step={"intent": "add", "a": 1, "b": 2}))
    model.complete(HI, output=OutputSpec("tools", spec.tools))
    body = openai_server.fake.bodies[1]
    assert body["tool_choice"] == "auto" and "parallel_tool_calls" not in body
    assert "strict" not in body["tools"][0]["function"]


# --- errors ---------------------------------------------------------------------------------------------


def test_a_wrong_key_is_a_clear_error_naming_the_variable(openai_server: Served) -> None:
    model = OpenAIModel("gpt-4o-mini", base_url=openai_server.url, api_key="sk-wrong-key-123456")
    with pytest.raises(ProviderError, match=r"HTTP 401, the API key was refused \(check OPENAI_API_KEY\)") as info:
        model.complete(HI)
    assert info.value.kind == "auth" and info.value.status == 401 and info.value.attempts == 1


def test_an_unknown_model_and_a_context_too_long_are_named_as_such(openai_server: Served) -> None:
    with pytest.raises(ProviderError, match="unknown model 'no-such-model'") as info:
        openai_server.openai("no-such-model").complete(HI)
    assert info.value.kind == "not_found"
    huge = [Message(role="user", content="x" * 30_000)]
    with pytest.raises(ProviderError, match="the context is too long") as info:
        openai_server.openai().complete(huge)
    assert info.value.kind == "context_length" and "maximum context length" in str(info.value)


def test_429_is_retried_after_the_wait_the_server_asks_for(openai_server: Served) -> None:
    openai_server.fake.push(
        Reply(status=429, message="Rate limit reached", headers={"retry-after": "0.3"}), Reply(text="ok")
    )
    started = time.perf_counter()
    response = openai_server.openai(retry=RetryPolicy(max_retries=2, initial_delay_s=0.001)).complete(HI)
    assert response.text == "ok" and time.perf_counter() - started >= 0.3
    assert len(openai_server.fake.requests) == 2


def test_retry_after_ms_is_honoured_too(openai_server: Served) -> None:
    openai_server.fake.push(Reply(status=429, headers={"retry-after-ms": "200"}), Reply(text="ok"))
    started = time.perf_counter()
    assert openai_server.openai().complete(HI).text == "ok"
    assert time.perf_counter() - started >= 0.2


def test_a_retry_after_longer_than_the_cap_fails_at_once_and_says_so(openai_server: Served) -> None:
    openai_server.fake.push(Reply(status=429, message="Rate limit reached", headers={"retry-after": "3600"}))
    started = time.perf_counter()
    with pytest.raises(ProviderError, match="rate limited: Rate limit reached; retry after 3600 s") as info:
        openai_server.openai().complete(HI)
    assert info.value.kind == "rate_limit" and info.value.retry_after == 3600
    assert info.value.attempts == 1 and len(openai_server.fake.requests) == 1  # no retry, so no wait
    assert time.perf_counter() - started < 60  # only a hang guard: the wait it refused is 3600 s


def test_500_then_success_is_retried_with_backoff(openai_server: Served) -> None:
    openai_server.fake.push(Reply(status=500), Reply(status=503), Reply(text="fine"))
    assert openai_server.openai().complete(HI).text == "fine"
    assert len(openai_server.fake.requests) == 3


def test_persistent_5xx_ends_in_an_error_that_counts_the_attempts(openai_server: Served) -> None:
    openai_server.fake.push(*[Reply(status=502, message="bad gateway")] * 3)
    with pytest.raises(ProviderError, match=r"HTTP 502 after 3 attempts, the provider failed: bad gateway") as info:
        openai_server.openai().complete(HI)
    assert info.value.kind == "server" and info.value.attempts == 3


def test_a_4xx_is_not_retried(openai_server: Served) -> None:
    openai_server.fake.push(Reply(status=400, message="bad"))
    with pytest.raises(ProviderError, match="HTTP 400, the request was refused: bad"):
        openai_server.openai().complete(HI)
    assert len(openai_server.fake.requests) == 1


@pytest.mark.parametrize(
    "raw", ["<html>502 Bad Gateway</html>", '{"choices": []}', '{"choices": [{"message": "hi"}]}', ""]
)
def test_a_malformed_body_is_a_clear_error(openai_server: Served, raw: str) -> None:
    openai_server.fake.push(Reply(raw=raw))
    with pytest.raises(ProviderError, match="the reply is not a chat completion") as info:
        openai_server.openai().complete(HI)
    assert info.value.kind == "malformed"


def test_a_slow_response_past_the_timeout_is_a_timeout_error(openai_server: Served) -> None:
    openai_server.fake.push(Reply(text="late", delay_s=1.0))
    model = openai_server.openai(timeout_s=0.2, retry=RetryPolicy(max_retries=0))
    with pytest.raises(ProviderError, match=r"no answer within the 0.2 s timeout") as info:
        model.complete(HI)
    # The error is the proof: had the client waited for the reply, it would have returned "late".
    assert info.value.kind == "timeout" and info.value.attempts == 1


def test_timeouts_are_retried_and_counted(openai_server: Served) -> None:
    openai_server.fake.push(Reply(text="late", delay_s=0.5), Reply(text="late", delay_s=0.5))
    model = openai_server.openai(timeout_s=0.1, retry=RetryPolicy(max_retries=1, initial_delay_s=0.01))
    with pytest.raises(ProviderError, match=r"timeout .*\(after 2 attempts\)"):
        model.complete(HI)


def test_a_refused_connection_is_a_connection_error() -> None:
    from twelvefactor.server.testing import free_port

    model = OpenAIModel(
        "m", preset="vllm", base_url=f"http://127.0.0.1:{free_port()}/v1", retry=RetryPolicy(max_retries=0)
    )
    with pytest.raises(ProviderError, match="cannot reach http://127.0.0.1") as info:
        model.complete(HI)
    assert info.value.kind == "connection"


def test_truncated_output_is_flagged_and_becomes_a_visible_error_event(openai_server: Served) -> None:
    openai_server.fake.push(
        Reply(step={"intent": "done_for_now", "message": "a long answer"}, truncate=True),
        Reply(step={"intent": "done_for_now", "message": "short"}),
    )
    bot = agent(openai_server.openai(max_tokens=8))
    thread = run(bot, bot.new_thread("hi"))
    calls = [e for e in thread.events if isinstance(e, ModelCall)]
    assert calls[0].finish_reason == "length" and calls[1].finish_reason == "stop"
    (error,) = [e for e in thread.events if isinstance(e, Error)]
    assert error.source == "model" and "cut off at its output token limit (finish_reason 'length'" in error.message
    assert thread.status == "done" and thread.events[-1].message == "short"  # type: ignore[attr-defined]


def test_a_provider_error_becomes_a_compact_error_event_never_a_stack_trace(openai_server: Served) -> None:
    openai_server.fake.push(
        Reply(status=400, message="Invalid 'messages': bad\nsecond line"),
        Reply(step={"intent": "done_for_now", "message": "ok"}),
    )
    bot = agent(openai_server.openai())
    thread = run(bot, bot.new_thread("hi"))
    (error,) = [e for e in thread.events if isinstance(e, Error)]
    assert error.message == "openai:gpt-4o-mini: HTTP 400, the request was refused: Invalid 'messages': bad second line"
    assert "Traceback" not in error.message and thread.status == "done"


# --- cancellation ---------------------------------------------------------------------------------------


def test_cancel_aborts_a_call_waiting_on_the_network_and_nothing_is_recorded(openai_server: Served) -> None:
    openai_server.fake.push(Reply(text='{"intent": "done_for_now", "message": "late"}', delay_s=10.0))
    model = openai_server.openai(timeout_s=30)
    bot = agent(model)
    thread = bot.new_thread("hi")
    threading.Timer(0.2, model.cancel).start()
    started = time.perf_counter()
    with pytest.raises(ModelCancelled, match="cancelled"):
        bot.step(thread)
    # Only a hang guard, far from the expected 0.2 s: waiting for the reply would take 10 s, the timeout 30 s.
    assert time.perf_counter() - started < 5
    assert [e.type for e in thread.events] == ["user_message"]
    openai_server.fake.push(Reply(text="after"))
    assert model.complete(HI).text == "after"  # the model is usable again after a cancel


def test_cancel_wakes_a_call_waiting_to_retry(openai_server: Served) -> None:
    openai_server.fake.push(Reply(status=429, headers={"retry-after": "60"}))
    model = openai_server.openai(retry=RetryPolicy(max_retries=1, max_retry_after_s=120))
    threading.Timer(0.2, model.cancel).start()
    started = time.perf_counter()
    with pytest.raises(ModelCancelled, match="waiting to retry"):
        model.complete(HI)
    assert time.perf_counter() - started < 10  # only a hang guard: without the wake-up it would wait 60 s


# --- configuration --------------------------------------------------------------------------------------


def test_real_requests_stay_forbidden_but_loopback_servers_are_not_real_requests() -> None:
    model = OpenAIModel("gpt-4o-mini", api_key="sk-not-a-real-key-000", retry=RetryPolicy(max_retries=0))
    with pytest.raises(ModelRequestsForbidden, match="'openai:gpt-4o-mini'"):
        model.complete(HI)  # refused before any network access


def test_the_key_is_required_for_hosted_presets_but_not_for_local_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(UserError, match="needs an API key: set OPENAI_API_KEY"):
        OpenAIModel("gpt-4o-mini")
    assert OpenAIModel("llama3.2", preset="ollama").base_url == "http://localhost:11434/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1/")
    assert OpenAIModel("qwen").base_url == "http://127.0.0.1:8000/v1"  # a local compatible server, no key


def test_azure_uses_the_endpoint_the_api_key_header_and_an_optional_api_version(
    monkeypatch: pytest.MonkeyPatch, openai_server: Served
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    with pytest.raises(UserError, match="set AZURE_OPENAI_ENDPOINT"):
        OpenAIModel("my-deployment", preset="azure", api_key="k" * 20)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")
    model = OpenAIModel("my-deployment", preset="azure", api_key="k" * 20, api_version="2024-10-21")
    assert model.request_url() == "https://res.openai.azure.com/openai/v1/chat/completions?api-version=2024-10-21"
    assert model.auth_headers() == {"api-key": "k" * 20}
    assert "k" * 20 not in repr(model)


def test_a_model_without_structured_output_is_refused_clearly_in_those_modes() -> None:
    class Plain:
        name = "plain"

        def complete(self, messages: object) -> object:
            raise AssertionError("not called")

    bot = Agent("a", model=Plain(), output_mode="tools")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="output_mode='tools', which model 'plain' does not support"):
        bot.step(bot.new_thread("hi"))


def test_a_dotted_intent_goes_out_as_a_safe_tool_name_and_comes_back_as_itself(openai_server: Served) -> None:
    from twelvefactor import Agent, tool

    @tool(name="math.factorial", effect="read_only")
    def factorial(n: int) -> int:
        """n!"""
        return n

    openai_server.fake.push(Reply(tool_calls=[("math_factorial", {"n": 5})]))
    bot = Agent("m", tools=[factorial], model=openai_server.openai(), output_mode="tools")
    _, intent = bot.step(bot.new_thread("5!"))
    assert intent is not None and intent.model_dump() == {"intent": "math.factorial", "n": 5}
    names = [t["function"]["name"] for t in openai_server.fake.bodies[0]["tools"]]
    assert names[0] == "math_factorial"
