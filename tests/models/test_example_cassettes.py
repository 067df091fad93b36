"""The examples' shipped cassettes: they replay offline, and they are what the current prompts produce."""

from __future__ import annotations

from pathlib import Path

import pytest

from twelvefactor import ModelCall, ToolResult
from twelvefactor.models import replay

from .record_cassettes import CASES, MODELS, Case, example_agent, record_case

EXPECTED = {
    "openai-add.json": [7.0],
    "openai-json-schema-divide.json": [2.5],
    "anthropic-staging.json": [
        ["v1.4.2", "v1.4.1", "v1.4.0", "v1.3.9"],
        {"status": "deployed", "environment": "staging", "tag": "v1.4.2"},
    ],
    "anthropic-tools-production.json": [
        ["v1.4.2", "v1.4.1", "v1.4.0", "v1.3.9"],
        {"status": "deployed", "environment": "production", "tag": "v1.4.1"},
    ],
}


@pytest.mark.parametrize("case", CASES, ids=[case.file for case in CASES])
def test_each_example_cassette_replays_offline(case: Case) -> None:
    model = replay(case.path)
    thread = case.flow(example_agent(case, model))
    assert thread.status == "done"
    assert [e.result for e in thread.events if isinstance(e, ToolResult)] == EXPECTED[case.file]
    calls = [e for e in thread.events if isinstance(e, ModelCall)]
    assert calls and all(c.model.startswith(MODELS[case.provider]) for c in calls)
    assert all(c.input_tokens and c.output_tokens and c.cost_usd and c.request for c in calls)
    assert model.exchange.remaining == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", CASES, ids=[case.file for case in CASES])
def test_the_shipped_cassettes_match_what_the_examples_send_today(case: Case, tmp_path: Path) -> None:
    fresh = tmp_path / case.file
    record_case(case, fresh)
    assert fresh.read_text() == case.path.read_text(), (
        f"{case.path} is out of date with the example; re-record: python -m tests.models.record_cassettes"
    )
