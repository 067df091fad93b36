"""Both faces of the HTTP providers (complete / acomplete), streamed and not, against the local fakes."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

import pytest

from twelvefactor import Agent, ModelError, tool
from twelvefactor.models import HTTPModel, Message, ModelCancelled, OutputSpec, ProviderError, RetryPolicy
from twelvefactor.models.cassette import record, replay

from .conftest import Served
from .fakes import Reply

HI = [Message(role="system", content="Answer with JSON."), Message(role="user", content="add 1 and 2")]
Mode = Literal["prompted", "json_schema", "tools"]
MODES: list[Mode] = ["prompted", "json_schema", "tools"]
ADD = {"intent": "add", "a": 1, "b": 2}


@tool
def add(a: int, b: int) -> int:
    """Add b to a."""
    return a + b


TOOLS = Agent("calc", tools=[add]).toolset.tools


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["openai", "anthropic"])
def served(request: pytest.FixtureRequest) -> Served:
    fixture: Served = request.getfixturevalue(f"{request.param}_server")
    return fixture


def make(served: Served, **options: Any) -> HTTPModel:
    return served.openai(**options) if served.fake.kind == "openai" else served.anthropic(**options)


def spec(mode: Mode) -> OutputSpec | None:
    return None if mode == "prompted" else OutputSpec(mode, TOOLS)


def reply_for(mode: Mode) -> Reply:
    return Reply(text=json.dumps(ADD)) if mode == "prompted" else Reply(step=ADD)


def same_call(a: Any, b: Any) -> None:
    """Two responses to the same reply: equal but for the request's stream fields."""
    for field in ("text", "model", "input_tokens", "output_tokens", "finish_reason", "truncated", "cost_usd"):
        assert getattr(a, field) == getattr(b, field), field


# --- sync streaming ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_streamed_call_returns_what_the_unstreamed_one_does_and_the_pieces_make_the_text(
    served: Served, mode: Mode
) -> None:
    model = make(served)
    served.fake.push(reply_for(mode), reply_for(mode))
    plain = model.complete(HI, output=spec(mode))
    pieces: list[str] = []
    streamed = model.complete(HI, output=spec(mode), on_delta=pieces.append)
    same_call(plain, streamed)
    assert len(pieces) > 2  # it did stream
    joined = "".join(pieces)
    assert json.loads(joined) == json.loads(streamed.text) == ADD
    if mode != "tools":
        assert joined == streamed.text
    sent = served.fake.bodies[1]
    assert streamed.request == sent and sent["stream"] is True
    assert "stream" not in served.fake.bodies[0]
    if served.fake.kind == "openai":
        assert sent["stream_options"] == {"include_usage": True}


def test_a_truncated_stream_is_flagged_like_an_unstreamed_one(served: Served) -> None:
    served.fake.push(Reply(text="a long answer that gets cut", truncate=True))
    pieces: list[str] = []
    response = make(served).complete(HI, on_delta=pieces.append)
    assert response.truncated and "".join(pieces) == response.text == "a long answer"


def test_an_error_status_before_the_stream_is_the_usual_provider_error(served: Served) -> None:
    served.fake.push(Reply(status=400, message="bad"))
    pieces: list[str] = []
    with pytest.raises(ProviderError, match="HTTP 400, the request was refused: bad") as info:
        make(served).complete(HI, on_delta=pieces.append)
    assert info.value.kind == "bad_request" and pieces == []


@pytest.mark.parametrize("how", ["error", "end", "abort"])
def test_a_stream_broken_before_any_text_is_retried(served: Served, how: str) -> None:
    before_text = 1 if served.fake.kind == "openai" else 2  # the role chunk / message_start and ping
    broken = Reply(text="never", break_after=before_text)
    if how == "error":
        broken.stream_error = "Overloaded"
    else:
        broken.cut = "end" if how == "end" else "abort"
    served.fake.push(broken, Reply(text="fine"))
    pieces: list[str] = []
    response = make(served).complete(HI, on_delta=pieces.append)
    assert response.text == "fine" == "".join(pieces)
    assert len(served.fake.requests) == 2


def test_a_stream_that_keeps_breaking_before_any_text_is_a_server_error(served: Served) -> None:
    broken = Reply(text="never", break_after=1, stream_error="Overloaded")
    served.fake.push(broken, broken, broken)
    with pytest.raises(
        ProviderError, match=r"stream broke before any text arrived .*Overloaded.*after 3 attempts"
    ) as e:
        make(served).complete(HI, on_delta=lambda _: None)
    assert e.value.kind == "server" and e.value.attempts == 3


@pytest.mark.parametrize("how", ["error", "abort"])
def test_a_stream_broken_after_text_was_delivered_is_not_retried(served: Served, how: str) -> None:
    broken = Reply(text="0123456789abcdef", break_after=4)
    if how == "error":
        broken.stream_error = "Overloaded"
    else:
        broken.cut = "abort"
    served.fake.push(broken, Reply(text="a different answer"))
    pieces: list[str] = []
    with pytest.raises(ModelError, match="stream broke after part of it was delivered"):
        make(served).complete(HI, on_delta=pieces.append)
    assert pieces and "".join(pieces) in "0123456789abcdef"
    assert len(served.fake.requests) == 1


def test_an_on_delta_that_raises_is_logged_once_and_the_call_goes_on(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    served.fake.push(Reply(text="0123456789abcdef"))
    calls: list[str] = []

    def broken(chunk: str) -> None:
        calls.append(chunk)
        raise RuntimeError("the UI went away")

    with caplog.at_level(logging.ERROR, logger="twelvefactor.models"):
        response = make(served).complete(HI, on_delta=broken)
    assert response.text == "0123456789abcdef" and len(calls) == 1
    assert [r.getMessage() for r in caplog.records if "on_delta" in r.getMessage()] == [
        f"on_delta of a call to {make(served).name!r} raised; streaming to it stopped"
    ]


# --- the async face --------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_acomplete_returns_what_complete_does(served: Served, mode: Mode) -> None:
    model = make(served)
    served.fake.push(reply_for(mode), reply_for(mode))
    plain = model.complete(HI, output=spec(mode))
    awaited = await model.acomplete(HI, output=spec(mode))
    same_call(plain, awaited)
    assert awaited.request == plain.request == served.fake.bodies[1]
    await model.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_acomplete_streams(served: Served, mode: Mode) -> None:
    model = make(served)
    served.fake.push(reply_for(mode))
    pieces: list[str] = []
    response = await model.acomplete(HI, output=spec(mode), on_delta=pieces.append)
    assert len(pieces) > 2 and json.loads("".join(pieces)) == json.loads(response.text) == ADD
    if mode != "tools":
        assert "".join(pieces) == response.text
    assert response.request is not None and response.request["stream"] is True
    await model.aclose()


@pytest.mark.anyio
async def test_acomplete_never_blocks_the_event_loop(served: Served) -> None:
    model = make(served)
    served.fake.push(Reply(text="slow", delay_s=0.5))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    beat = asyncio.create_task(ticker())
    assert (await model.acomplete(HI)).text == "slow"
    beat.cancel()
    assert ticks >= 10
    await model.aclose()


@pytest.mark.anyio
async def test_acomplete_retries_after_the_wait_the_server_asks_for(served: Served) -> None:
    served.fake.push(Reply(status=429, headers={"retry-after": "0.3"}), Reply(status=503), Reply(text="ok"))
    model = make(served, retry=RetryPolicy(max_retries=2, initial_delay_s=0.001))
    started = time.perf_counter()
    assert (await model.acomplete(HI, on_delta=lambda _: None)).text == "ok"
    assert time.perf_counter() - started >= 0.3 and len(served.fake.requests) == 3
    await model.aclose()


@pytest.mark.anyio
async def test_acomplete_ends_in_the_same_errors(served: Served) -> None:
    served.fake.push(*[Reply(status=502, message="bad gateway")] * 3)
    model = make(served)
    with pytest.raises(ProviderError, match=r"HTTP 502 after 3 attempts, the provider failed: bad gateway"):
        await model.acomplete(HI)
    served.fake.push(Reply(text="late", delay_s=1.0))
    slow = make(served, timeout_s=0.2, retry=RetryPolicy(max_retries=0))
    with pytest.raises(ProviderError, match=r"no answer within the 0.2 s timeout") as info:
        await slow.acomplete(HI)
    assert info.value.kind == "timeout"
    await model.aclose()
    await slow.aclose()


@pytest.mark.anyio
async def test_cancel_aborts_an_async_call_in_flight_without_cancelling_the_caller(served: Served) -> None:
    served.fake.push(Reply(text="late", delay_s=3.0))
    model = make(served, timeout_s=30)
    asyncio.get_running_loop().call_later(0.2, model.cancel)
    started = time.perf_counter()
    with pytest.raises(ModelCancelled, match="cancelled"):
        await model.acomplete(HI, on_delta=lambda _: None)
    assert time.perf_counter() - started < 2  # a hang guard: the reply would take 3 s
    await asyncio.sleep(0.01)  # the caller's task was not cancelled: it goes on
    served.fake.push(Reply(text="after"))
    assert (await model.acomplete(HI)).text == "after"
    await model.aclose()


@pytest.mark.anyio
async def test_cancel_wakes_an_async_call_waiting_to_retry(served: Served) -> None:
    served.fake.push(Reply(status=429, headers={"retry-after": "60"}))
    model = make(served, retry=RetryPolicy(max_retries=1, max_retry_after_s=120))
    asyncio.get_running_loop().call_later(0.2, model.cancel)
    started = time.perf_counter()
    with pytest.raises(ModelCancelled, match="waiting to retry"):
        await model.acomplete(HI)
    assert time.perf_counter() - started < 10
    await model.aclose()


# --- cassettes ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_streamed_async_recording_replays_on_both_faces_streamed_or_not(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "streamed.json"
    served.fake.push(Reply(step=ADD))
    recording = record(make(served), path)
    pieces: list[str] = []
    live = await recording.acomplete(HI, output=spec("json_schema"), on_delta=pieces.append)
    await recording.aclose()
    assert json.loads(path.read_text())["interactions"][0]["request"]["body"]["stream"] is True
    replayed: list[str] = []
    again = replay(path).complete(HI, output=spec("json_schema"), on_delta=replayed.append)
    same_call(live, again)
    assert "".join(replayed) == "".join(pieces) == again.text
    quiet = await replay(path).acomplete(HI, output=spec("json_schema"))  # no streaming asked: still read
    same_call(live, quiet)


def test_an_unstreamed_recording_feeds_on_delta_in_one_piece(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "plain.json"
    served.fake.push(Reply(text="recorded"))
    record(make(served), path).complete(HI)
    pieces: list[str] = []
    assert replay(path).complete(HI, on_delta=pieces.append).text == "recorded"
    assert pieces == ["recorded"]


def test_asyncio_run_without_aclose_leaves_no_connection_open(served: Served) -> None:
    import gc
    import warnings

    model = make(served)
    served.fake.push(Reply(text="one"), Reply(text="two"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert asyncio.run(model.acomplete(HI)).text == "one"
        assert asyncio.run(model.acomplete(HI, on_delta=lambda _: None)).text == "two"  # a new loop, a new pool
        del model
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


@pytest.mark.anyio
async def test_a_real_request_stays_forbidden_on_the_async_face() -> None:
    from twelvefactor import ModelRequestsForbidden
    from twelvefactor.models import OpenAIModel

    model = OpenAIModel("gpt-4o-mini", api_key="sk-not-a-real-key-000", retry=RetryPolicy(max_retries=0))
    with pytest.raises(ModelRequestsForbidden, match="'openai:gpt-4o-mini'"):
        await model.acomplete(HI, on_delta=lambda _: None)  # refused before any network access
    await model.aclose()


def test_cancel_aborts_a_sync_streamed_call_too(served: Served) -> None:
    import threading

    served.fake.push(Reply(text="late", delay_s=3.0))
    model = make(served, timeout_s=30)
    threading.Timer(0.2, model.cancel).start()
    started = time.perf_counter()
    with pytest.raises(ModelCancelled, match="cancelled"):
        model.complete(HI, on_delta=lambda _: None)
    assert time.perf_counter() - started < 2  # a hang guard: the reply would take 3 s
