"""A model reply as it streams reaches the thread's SSE stream as ``delta`` frames (server/deltas.py)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from twelvefactor.server.bus import Notifier
from twelvefactor.server.deltas import DELTA_INTERVAL_S, Deltas, calls_recorded, delta_data
from twelvefactor.thread import Delta, Thread

from .conftest import live_server, sqlite_app
from .streaming_model import StreamingModel, SyncStreamingModel, done, writer

MESSAGE = "Deployed v1.4.2 to staging; every check passed and the canary is healthy."


@dataclass
class Frame:
    event: str | None
    id: str | None
    data: str
    at: float


def frames(stream: httpx.Response) -> Any:
    """The SSE frames of a streaming response, each with the time it arrived."""
    fields: dict[str, list[str]] = {}
    for line in stream.iter_lines():
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(": ")
            fields.setdefault(name, []).append(value)
            continue
        if fields:
            event, ident = fields.get("event", [None])[0], fields.get("id", [None])[0]
            yield Frame(event, ident, "\n".join(fields.get("data", [])), time.monotonic())
            fields = {}


@pytest.mark.parametrize("model_class", [StreamingModel, SyncStreamingModel], ids=["async", "sync-in-pool"])
def test_stream_sends_the_reply_as_it_is_written_then_the_model_call(
    tmp_path: Path, model_class: type[StreamingModel]
) -> None:
    release = threading.Event()
    # Chunks of 3 characters every 10 ms: about 0.3 s of writing, held at the end until the test looks.
    model = model_class([done(MESSAGE)], chunk=3, pause=0.01, gates=[release])
    app = sqlite_app(tmp_path, writer(model))
    with live_server(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        launched = client.post("/v1/threads", json={"agent": "writer", "message": "deploy"}).json()
        deltas: list[Frame] = []
        after: list[Frame] = []
        model_call: Frame | None = None
        with client.stream("GET", f"/v1/threads/{launched['id']}/stream") as stream:
            for frame in frames(stream):
                if frame.event == "delta":
                    assert frame.id is None  # deltas are never resumed from
                    (after if model_call else deltas).append(frame)
                    if json.loads(frame.data)["text"] == done(MESSAGE)[0]:
                        release.set()  # the whole reply was shown: let the call end
                elif frame.event == "model_call":
                    model_call = frame
                elif frame.event == "done":
                    break
    assert model_call is not None and not after
    sent = [json.loads(frame.data) for frame in deltas]
    texts = [data["text"] for data in sent]
    assert len(texts) >= 2, texts
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(texts, texts[1:], strict=False)), texts
    assert texts[-1] == done(MESSAGE)[0]
    assert {data["version"] for data in sent} == {int(model_call.id or -1)}
    # Coalesced: far fewer frames than chunks, and none closer together than the interval (less jitter).
    assert len(deltas) < len(done(MESSAGE)[0]) / 3 / 2
    gaps = [b.at - a.at for a, b in zip(deltas, deltas[1:], strict=False)]
    assert min(gaps) > DELTA_INTERVAL_S * 0.6, gaps
    assert sent[-1]["partial"] == {
        "value": {"intent": "done_for_now", "message": MESSAGE},
        "missing": [],
        "complete": True,
    }
    cut = next(data["partial"] for data in sent if '"message": "' in data["text"] and not data["partial"]["complete"])
    assert cut["value"]["intent"] == "done_for_now" and MESSAGE.startswith(cut["value"]["message"])
    assert cut["missing"] == ["message"]


def test_a_stream_opened_mid_reply_gets_the_text_so_far_and_resumption_skips_deltas(tmp_path: Path) -> None:
    midway, release = threading.Event(), threading.Event()
    model = StreamingModel([done(MESSAGE, cut=8)], chunk=50, pause=0.0, gates=[midway, release])
    app = sqlite_app(tmp_path, writer(model))
    with live_server(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        launched = client.post("/v1/threads", json={"agent": "writer", "message": "deploy"}).json()
        url = f"/v1/threads/{launched['id']}/stream"
        with client.stream("GET", url, params={"since": 1}) as stream:
            first = next(frames(stream))
        assert first.event == "delta" and json.loads(first.data)["text"].endswith(MESSAGE[:8])
        midway.set()
        release.set()
        with client.stream("GET", url) as stream:
            for frame in frames(stream):
                if frame.event == "done":
                    break
        # Resuming after the last event sends events only (no reply is being written any more).
        with client.stream("GET", url, headers={"Last-Event-ID": "0"}) as stream:
            kinds = []
            for frame in frames(stream):
                kinds.append(frame.event)
                if frame.event == "done":
                    break
        assert kinds == ["model_call", "done"]


def test_a_recorded_event_of_a_custom_type_named_delta_is_sent_unnamed(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path, writer(StreamingModel([done("ok")])))
    with live_server(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        event = {"type": "delta", "version": 0, "text": "forged"}
        launched = client.post("/v1/threads", json={"agent": "writer", "events": [event]}).json()
        with client.stream("GET", f"/v1/threads/{launched['id']}/stream") as stream:
            first = next(frames(stream))
    assert (first.event, first.id, json.loads(first.data)["type"]) == (None, "0", "delta")


def test_deltas_keep_the_text_so_far_until_the_call_is_recorded() -> None:
    notifier = Notifier()
    deltas = Deltas(notifier, max_chars=10)
    thread = Thread(id="t")
    assert deltas.get("t") is None
    deltas.add(Delta("t", 1, "abc"))
    deltas.add(Delta("t", 1, "def"))
    got = deltas.get("t")
    assert got is not None and (got.version, got.text, got.seq) == (1, "abcdef", 2)
    deltas.add(Delta("t", 1, "ghijkl"))  # past max_chars: kept up to there
    assert deltas.get("t") == type(got)(1, "abcdefghij", 3)
    deltas.add(Delta("t", 0, "late"))  # a chunk of an older call changes nothing
    assert deltas.get("t") == type(got)(1, "abcdefghij", 3)
    deltas.written(thread)  # a write that does not record the call keeps it
    assert len(deltas) == 1
    deltas.add(Delta("t", 2, "new call"))  # a newer call replaces it
    assert deltas.get("t") == type(got)(2, "new call", 1)


def test_a_written_model_call_or_error_ends_the_reply_and_an_idle_one_expires() -> None:
    from twelvefactor.events import Error, ModelCall, UserMessage
    from twelvefactor.thread import reduce

    thread = reduce(Thread(id="t", agent="a"), UserMessage(content="hi"))
    deltas = Deltas(Notifier(), ttl_s=0.05)
    deltas.add(Delta("t", 1, "{"))
    deltas.written(reduce(thread, UserMessage(content="and also")))  # a newcomer, not the call
    assert deltas.get("t") is not None
    recorded = reduce(reduce(thread, UserMessage(content="and also")), ModelCall(model="m", raw="{}", latency_ms=1))
    assert calls_recorded(recorded, 1) == 3
    deltas.written(recorded)
    assert deltas.get("t") is None and len(deltas) == 0
    deltas.add(Delta("t", 1, "{"))
    deltas.written(reduce(thread, Error(source="model", message="timed out")))
    assert len(deltas) == 0
    deltas.add(Delta("t", 1, "{"))
    time.sleep(0.08)
    assert deltas.get("t") is None


def test_delta_data_is_the_text_and_what_parse_partial_reads_of_it() -> None:
    from twelvefactor import Agent
    from twelvefactor.server.deltas import Writing

    schema = Agent("a").toolset.union
    data = json.loads(delta_data(Writing(3, '{"intent": "done_for_now", "message": "Dep', 5), schema))
    assert data == {
        "version": 3,
        "text": '{"intent": "done_for_now", "message": "Dep',
        "partial": {"value": {"intent": "done_for_now", "message": "Dep"}, "missing": ["message"], "complete": False},
    }
    assert json.loads(delta_data(Writing(0, "<b>hi</b>", 1), None))["partial"] is None
    # Two whole answers cannot become one by more text: no partial, the text is still shown.
    two = '{"intent": "done_for_now", "message": "a"} {"intent": "done_for_now", "message": "b"}'
    assert json.loads(delta_data(Writing(0, two, 1), schema))["text"] == two


def test_streamed_wakes_only_waiters_that_follow_replies_and_come_from_any_thread() -> None:
    async def main() -> tuple[object, object, object]:
        notifier = Notifier()
        notifier.bind(asyncio.get_running_loop())
        plain = asyncio.create_task(notifier.wait("t", 0.1))
        follower = asyncio.create_task(notifier.wait("t", 2, streamed=True))
        await asyncio.sleep(0.01)
        threading.Thread(target=notifier.notify_streamed, args=("t",)).start()  # a pool thread's chunk
        woke = await follower
        not_woken = await plain
        written = asyncio.create_task(notifier.wait("t", 2, streamed=True))
        await asyncio.sleep(0.01)
        notifier.notify_streamed("t")
        notifier.notify("t")  # both before it runs: the write wins
        return not_woken, woke, await written

    assert asyncio.run(main()) == (None, "streamed", "written")
