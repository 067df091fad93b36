"""The test doubles' async face and streaming: what the async loop, its benchmark and the streaming UI use."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import pytest

from twelvefactor import Agent, tool
from twelvefactor.models import (
    AsyncModel,
    FunctionModel,
    Message,
    Model,
    OutputSpec,
    ScriptedModel,
    StreamingModel,
    TestModel,
)

HI = [Message(role="user", content="hi")]


@tool
def add(a: int, b: int) -> int:
    """Add b to a."""
    return a + b


def test_without_on_delta_nothing_changes_and_with_it_the_text_comes_in_pieces() -> None:
    model = ScriptedModel(["0123456789", "abc"], chunk_chars=4)
    assert model.complete(HI).text == "0123456789"
    pieces: list[str] = []
    response = model.complete(HI, on_delta=pieces.append)
    assert pieces == ["abc"] and response.text == "abc"
    pieces.clear()
    model = ScriptedModel(["0123456789"], chunk_chars=4)
    assert model.complete(HI, on_delta=pieces.append).text == "".join(pieces)
    assert pieces == ["0123", "4567", "89"]


def test_every_double_is_an_async_streaming_model_and_a_plain_model_still_is_a_model() -> None:
    async def fn(messages: Sequence[Message]) -> str:
        return "x"

    doubles: list[StreamingModel] = [ScriptedModel([]), FunctionModel(fn), TestModel()]
    for double in doubles:
        assert isinstance(double, AsyncModel) and isinstance(double, Model) and double.streams

    class Plain:
        name = "plain"

        def complete(self, messages: Sequence[Message]) -> object:
            return None

    assert isinstance(Plain(), Model) and not isinstance(Plain(), AsyncModel)


@pytest.mark.anyio
async def test_acomplete_streams_paced_pieces_without_blocking_the_loop() -> None:
    model = ScriptedModel(["0123456789ab", "0123456789ab"], chunk_chars=4, chunk_delay_s=0.1)
    pieces: list[str] = []
    started = time.perf_counter()
    first, second = await asyncio.gather(
        model.acomplete(HI, on_delta=pieces.append), model.acomplete(HI, on_delta=pieces.append)
    )
    assert first.text == second.text == "0123456789ab" and len(pieces) == 6
    assert 0.2 <= time.perf_counter() - started < 0.35  # paced, and the two ran side by side


def test_an_on_delta_that_raises_is_logged_once_and_the_double_still_answers(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def broken(chunk: str) -> None:
        calls.append(chunk)
        raise RuntimeError("gone")

    with caplog.at_level(logging.ERROR, logger="twelvefactor.models"):
        assert ScriptedModel(["0123456789"], chunk_chars=2).complete(HI, on_delta=broken).text == "0123456789"
    assert calls == ["01"] and len(caplog.records) == 1


@pytest.mark.anyio
async def test_an_async_function_model_runs_side_by_side_on_the_async_face() -> None:
    async def slow(messages: Sequence[Message]) -> dict[str, str]:
        await asyncio.sleep(0.2)
        return {"intent": "done_for_now", "message": messages[-1].content}

    model = FunctionModel(slow)
    started = time.perf_counter()
    responses = await asyncio.gather(*(model.acomplete(HI) for _ in range(5)))
    assert time.perf_counter() - started < 0.6  # five one-sleep calls, not five sleeps in a row
    assert {r.text for r in responses} == {'{"intent": "done_for_now", "message": "hi"}'}
    assert model.name == "function:slow"


def test_an_async_function_model_answers_on_the_sync_face_too() -> None:
    async def fn(messages: Sequence[Message]) -> str:
        await asyncio.sleep(0)
        return "sync face"

    model = FunctionModel(fn)
    assert model.complete(HI).text == "sync face"  # no loop in this thread: asyncio.run

    async def inside_a_loop() -> str:
        return model.complete(HI).text  # a loop runs here: the coroutine runs in a thread of its own

    assert asyncio.run(inside_a_loop()) == "sync face"


@pytest.mark.anyio
async def test_a_sync_function_model_and_the_test_model_have_the_async_face() -> None:
    pieces: list[str] = []
    model = FunctionModel(lambda messages: "plain text", chunk_chars=5)
    assert (await model.acomplete(HI, on_delta=pieces.append)).text == "plain text"
    assert pieces == ["plain", " text"]
    bot = Agent("calc", tools=[add])
    spec = OutputSpec("tools", bot.toolset.tools)
    test_model = TestModel()
    pieces.clear()
    step = await test_model.acomplete(HI, output=spec, on_delta=pieces.append)
    assert step.text == '{"intent": "add", "a": 0, "b": 0}' == "".join(pieces)
    assert (await test_model.acomplete(HI, output=spec)).text.startswith('{"intent": "done_for_now"')


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
