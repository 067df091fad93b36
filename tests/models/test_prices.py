"""The price table: dated snapshot names, unknown models, and overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import twelvefactor.models.prices as prices
from twelvefactor import UserError
from twelvefactor.models import Price, PriceTable, set_price


def test_dated_snapshots_and_vendor_prefixes_find_their_base_model() -> None:
    table = prices.DEFAULT_PRICES
    assert table.lookup("gpt-4o-mini-2024-07-18") == Price(0.15, 0.60, 0.075)
    assert table.lookup("gpt-4o-2024-08-06") == Price(2.50, 10.0, 1.25)  # not gpt-4o-mini's
    assert table.lookup("claude-sonnet-4-5-20250929") == Price(3.0, 15.0, 0.30, 3.75)
    assert table.lookup("openai/gpt-4.1-mini") == Price(0.40, 1.60, 0.10)  # an OpenRouter name
    assert table.lookup("o3-mini-2025-01-31") == Price(1.10, 4.40, 0.55)
    assert table.lookup("gpt-4omni") is None  # a name that merely starts alike
    assert table.cost("llama3.2", 100, 10) is None  # unknown is None, never 0


def test_cost_is_per_million_tokens() -> None:
    table = PriceTable({"m": (2.0, 8.0)})
    assert table.cost("m", 1_000_000, 500_000) == 6.0
    assert table.cost("m", None, None) is None
    with pytest.raises(UserError, match=r"price for 'x' must be \[input_per_mtok, output_per_mtok\]"):
        PriceTable({"x": (1.0,)})  # type: ignore[dict-item]


def test_overrides_by_code_and_by_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prices, "DEFAULT_PRICES", PriceTable({"gpt-4o": (2.5, 10.0)}))
    monkeypatch.setattr(prices, "_env_loaded", [])
    set_price("my-finetune", 1.0, 2.0)
    assert prices.default_prices().cost("my-finetune", 1_000_000, 0) == 1.0
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"gpt-4o": [1.0, 1.0], "llama3.2": [0, 0]}))
    monkeypatch.setenv("TWELVEFACTOR_PRICES", str(path))
    table = prices.default_prices()
    assert table.cost("gpt-4o", 1_000_000, 0) == 1.0 and table.cost("llama3.2", 10, 10) == 0.0
    path.write_text("not json")
    monkeypatch.setenv("TWELVEFACTOR_PRICES", str(tmp_path / "other.json"))
    with pytest.raises(UserError, match="cannot read the price table"):
        prices.default_prices()


def test_local_servers_have_no_price_unless_given_one() -> None:
    from twelvefactor.models import OpenAIModel

    assert OpenAIModel("gpt-4o", preset="ollama").prices is not None
    assert OpenAIModel("gpt-4o", preset="ollama").prices.cost("gpt-4o", 10, 10) is None  # type: ignore[union-attr]
    priced = OpenAIModel("llama3.2", preset="ollama", prices={"llama3.2": (0.1, 0.1)})
    assert priced.prices is not None and priced.prices.cost("llama3.2", 1_000_000, 0) == 0.1
    assert OpenAIModel("gpt-4o", api_key="sk-0000000000").prices is None  # hosted: the default list prices
