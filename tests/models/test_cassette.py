"""Record and replay: cassettes written from live calls, served back offline, failing loudly on drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twelvefactor import Agent, Message, ModelCall, run, tool
from twelvefactor.models import (
    CassetteError,
    CassetteMismatch,
    OpenAIModel,
    ProviderError,
    record,
    replay,
    resolve_model,
)
from twelvefactor.models.cassette import Cassette

from .conftest import Served
from .fakes import KEY, Reply

HI = [Message(role="user", content="hi")]


@tool
def add(a: int, b: int) -> int:
    """Add b to a."""
    return a + b


def calc(model: object, template: str = "Answer with JSON: {{ intents }}\n{{ context }}") -> Agent:
    return Agent("calc", tools=[add], model=model, prompt=template, output_mode="tools")  # type: ignore[arg-type]


def record_session(served: Served, path: Path) -> None:
    served.fake.push(
        Reply(step={"intent": "add", "a": 1, "b": 2}), Reply(step={"intent": "done_for_now", "message": "3"})
    )
    bot = calc(record(served.openai(max_tokens=100), path))
    assert run(bot, bot.new_thread("add 1 and 2")).status == "done"


def test_a_recorded_session_replays_offline_with_the_same_outcome_and_accounting(
    openai_server: Served, tmp_path: Path
) -> None:
    path = tmp_path / "session.json"
    record_session(openai_server, path)
    openai_server.fake.push(Reply(status=500), Reply(status=500), Reply(status=500))  # the server is no help now
    model = replay(path)
    bot = calc(model)
    thread = run(bot, bot.new_thread("add 1 and 2"))
    assert thread.status == "done" and thread.events[-1].message == "3"  # type: ignore[attr-defined]
    assert len(openai_server.fake.requests) == 2  # only the recording reached the server
    calls = [e for e in thread.events if isinstance(e, ModelCall)]
    assert [c.model for c in calls] == ["gpt-4o-mini-2025-01-01"] * 2 and all(c.cost_usd for c in calls)
    assert calls[0].request is not None and calls[0].request["max_completion_tokens"] == 100
    assert model.exchange.remaining == 0  # type: ignore[attr-defined]


def test_the_cassette_holds_no_key_and_no_auth_header(openai_server: Served, tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    record_session(openai_server, path)
    text = path.read_text()
    assert KEY not in text and "authorization" not in text.lower() and "Bearer" not in text
    data = json.loads(text)
    assert data["model"] == {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "options": {"preset": "openai", "max_tokens": 100, "strict": True},
    }
    first = data["interactions"][0]
    assert first["request"]["endpoint"] == "chat/completions" and first["response"]["status"] == 200


def test_a_key_echoed_in_a_reply_is_redacted(openai_server: Served, tmp_path: Path) -> None:
    openai_server.fake.push(Reply(text=f"your key is {KEY}"))
    record(openai_server.openai(), tmp_path / "c.json").complete(HI)
    assert KEY not in (tmp_path / "c.json").read_text() and "<redacted>" in (tmp_path / "c.json").read_text()


def test_a_changed_prompt_fails_replay_with_a_readable_diff(openai_server: Served, tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    record_session(openai_server, path)
    changed = calc(replay(path), "Answer with ONE JSON object: {{ intents }}\n{{ context }}")
    with pytest.raises(CassetteMismatch) as info:
        run(changed, changed.new_thread("add 1 and 2"))
    message = str(info.value)
    assert message.startswith(f"request 1 differs from cassette {str(path)!r}: the prompt, tools or model options")
    lines = message.splitlines()
    assert "--- recorded" in lines and "+++ sent now" in lines
    assert "-      Answer with JSON: type NextStep =" in lines  # multi-line strings diff line by line
    assert "+      Answer with ONE JSON object: type NextStep =" in lines


def test_more_steps_than_recorded_and_a_changed_option_are_mismatches(openai_server: Served, tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    record_session(openai_server, path)
    model = replay(path)
    bot = calc(model)
    run(bot, bot.new_thread("add 1 and 2"))
    with pytest.raises(CassetteMismatch, match="holds 2 requests, and request 3 was made"):
        run(bot, bot.new_thread("add 1 and 2"))
    mine = OpenAIModel("gpt-4o-mini", api_key=KEY, max_tokens=200, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(CassetteMismatch, match=r"-max_completion_tokens: 100\n\+max_completion_tokens: 200"):
        mismatched = calc(replay(path, model=mine))
        mismatched.step(mismatched.new_thread("add 1 and 2"))


def test_a_recorded_error_replays_as_the_same_error(openai_server: Served, tmp_path: Path) -> None:
    path = tmp_path / "errors.json"
    openai_server.fake.push(Reply(status=400, message="bad request"), Reply(raw="not json"))
    model = record(openai_server.openai(), path)
    for _ in range(2):
        with pytest.raises(ProviderError):
            model.complete(HI)
    replayed = replay(path)
    with pytest.raises(ProviderError, match="HTTP 400, the request was refused: bad request"):
        replayed.complete(HI)
    with pytest.raises(ProviderError, match="the reply is not a chat completion.*not json"):
        replayed.complete(HI)


def test_anthropic_sessions_record_and_replay_too(anthropic_server: Served, tmp_path: Path) -> None:
    path = tmp_path / "claude.json"
    anthropic_server.fake.push(Reply(step={"intent": "add", "a": 2, "b": 2}))
    live = record(anthropic_server.anthropic(), path).complete(HI)
    again = replay(path).complete(HI)
    assert again == live and again.model == "claude-haiku-4-5"
    interaction = json.loads(path.read_text())["interactions"][0]
    assert interaction["request"]["headers"] == {"anthropic-version": "2023-06-01"}


def test_replay_model_strings_and_cassette_errors(openai_server: Served, tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    record_session(openai_server, path)
    assert resolve_model(f"replay:{path}").name == "openai:gpt-4o-mini"
    with pytest.raises(CassetteError, match="no cassette at .*record one first"):
        replay(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(CassetteError, match="is not a twelvefactor cassette"):
        replay(tmp_path / "bad.json")
    with pytest.raises(CassetteError, match="records HTTP providers"):
        record(calc(None).model or object(), tmp_path / "x.json")  # type: ignore[arg-type]


def test_cassette_files_round_trip(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path / "deep" / "c.json", {"provider": "openai", "model": "m", "options": {}}, [])
    cassette.save()
    loaded = Cassette.load(cassette.path)
    assert loaded.to_json() == cassette.to_json() and oct(cassette.path.stat().st_mode & 0o777) == "0o644"
