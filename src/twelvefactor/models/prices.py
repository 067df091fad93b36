"""What a model call cost: a price table per million tokens that you can override.

Prices change, and what you pay depends on your contract, so the table is data you own. The built-in
rows are the providers' list prices (not batch) as of :data:`PRICES_CHECKED`, with the prompt cache's
rates (cached input; Anthropic's cache writes): check them before relying on them. Override with
:func:`set_price`, with a JSON file named by ``TWELVEFACTOR_PRICES`` (``{"my-model": [input_per_mtok,
output_per_mtok, cached_input_per_mtok, cache_write_per_mtok], ...}``, the last two optional), or per
model (``OpenAIModel(..., prices=PriceTable({...}))``). A model the table does not know costs ``None``
(unknown), never 0. Local servers (vLLM, Ollama, llama.cpp) have no price unless you give one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from twelvefactor.errors import UserError

PRICES_CHECKED = "2025-11"
_ENV = "TWELVEFACTOR_PRICES"


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens: input, output, and the prompt cache's reads and writes.

    A cached rate that is not known (None) is charged at the input rate: a cost is never understated.
    """

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None

    def cost(
        self,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_input_tokens: int | None = None,
        cache_write_tokens: int | None = None,
    ) -> float:
        """``input_tokens`` counts every input token, the cached reads and cache writes among them."""
        cached, written = cached_input_tokens or 0, cache_write_tokens or 0
        plain = max(0, (input_tokens or 0) - cached - written)
        total = (
            plain * self.input_per_mtok
            + cached * _or(self.cached_input_per_mtok, self.input_per_mtok)
            + written * _or(self.cache_write_per_mtok, self.input_per_mtok)
            + (output_tokens or 0) * self.output_per_mtok
        )
        return round(total / 1_000_000, 8)


def _or(value: float | None, fallback: float) -> float:
    return fallback if value is None else value


PriceLike = Price | tuple[float, ...] | list[float]


def _price(model: str, value: PriceLike) -> Price:
    if isinstance(value, Price):
        return value
    if isinstance(value, tuple | list) and 2 <= len(value) <= 4 and all(isinstance(v, int | float) for v in value):
        return Price(*(float(v) for v in value))
    raise UserError(
        f"price for {model!r} must be [input_per_mtok, output_per_mtok] in dollars (optionally then the cached"
        f" input and cache write rates), got {value!r}"
    )


class PriceTable:
    """Model name -> :class:`Price`. A dated snapshot (``gpt-4o-2024-08-06``) matches its base name."""

    def __init__(self, prices: Mapping[str, PriceLike] | None = None) -> None:
        self._prices = {name: _price(name, value) for name, value in (prices or {}).items()}
        self._found: dict[str, Price | None] = {}

    def __repr__(self) -> str:
        return f"PriceTable({len(self._prices)} models)"

    def __contains__(self, model: str) -> bool:
        return self.lookup(model) is not None

    def set(self, model: str, input_per_mtok: float, output_per_mtok: float) -> None:
        self._prices[model] = Price(input_per_mtok, output_per_mtok)
        self._found.clear()

    def update(self, prices: Mapping[str, PriceLike]) -> None:
        self._prices.update({name: _price(name, value) for name, value in prices.items()})
        self._found.clear()

    def lookup(self, model: str) -> Price | None:
        """Exact name first, then the longest known name the model's name extends (``name-…``)."""
        if model not in self._found:
            self._found[model] = self._search(model)
        return self._found[model]

    def _search(self, model: str) -> Price | None:
        for candidate in (model, model.rsplit("/", 1)[-1]):
            price = self._prices.get(candidate)
            if price is not None:
                return price
            best = max(
                (name for name in self._prices if candidate.startswith(name) and candidate[len(name)] in "-@:"),
                key=len,
                default=None,
            )
            if best is not None:
                return self._prices[best]
        return None

    def cost(
        self,
        model: str,
        input_tokens: int | None,
        output_tokens: int | None,
        *,
        cached_input_tokens: int | None = None,
        cache_write_tokens: int | None = None,
    ) -> float | None:
        """Dollars for one call, or None when the model has no price or no token counts were reported."""
        price = self.lookup(model)
        if price is None or (input_tokens is None and output_tokens is None):
            return None
        return price.cost(input_tokens, output_tokens, cached_input_tokens, cache_write_tokens)


# List prices, USD per million tokens: input, output, cached input (OpenAI: automatic prompt caching;
# Anthropic: cache reads, 0.1x input) and, for Anthropic, cache writes (5-minute cache, 1.25x input).
_BUILTIN: dict[str, PriceLike] = {
    "gpt-5": (1.25, 10.0, 0.125),
    "gpt-5-mini": (0.25, 2.0, 0.025),
    "gpt-5-nano": (0.05, 0.40, 0.005),
    "gpt-4.1": (2.0, 8.0, 0.50),
    "gpt-4.1-mini": (0.40, 1.60, 0.10),
    "gpt-4.1-nano": (0.10, 0.40, 0.025),
    "gpt-4o": (2.50, 10.0, 1.25),
    "gpt-4o-mini": (0.15, 0.60, 0.075),
    "o3": (2.0, 8.0, 0.50),
    "o3-mini": (1.10, 4.40, 0.55),
    "o4-mini": (1.10, 4.40, 0.275),
    "claude-opus-4-5": (5.0, 25.0, 0.50, 6.25),
    "claude-opus-4-1": (15.0, 75.0, 1.50, 18.75),
    "claude-opus-4": (15.0, 75.0, 1.50, 18.75),
    "claude-sonnet-4-5": (3.0, 15.0, 0.30, 3.75),
    "claude-sonnet-4": (3.0, 15.0, 0.30, 3.75),
    "claude-3-7-sonnet": (3.0, 15.0, 0.30, 3.75),
    "claude-3-5-sonnet": (3.0, 15.0, 0.30, 3.75),
    "claude-haiku-4-5": (1.0, 5.0, 0.10, 1.25),
    "claude-3-5-haiku": (0.80, 4.0, 0.08, 1.0),
}

DEFAULT_PRICES = PriceTable(_BUILTIN)
"""The table providers use unless given their own; :func:`set_price` and ``TWELVEFACTOR_PRICES`` change it."""

_env_loaded: list[str] = []


def default_prices() -> PriceTable:
    """:data:`DEFAULT_PRICES`, with the ``TWELVEFACTOR_PRICES`` file applied (read once per path)."""
    path = os.environ.get(_ENV)
    if path and path not in _env_loaded:
        DEFAULT_PRICES.update(load_prices(path))
        _env_loaded.append(path)
    return DEFAULT_PRICES


def load_prices(path: str | Path) -> dict[str, Price]:
    """Read ``{"model": [input_per_mtok, output_per_mtok]}`` from a JSON file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read the price table {str(path)!r}: {exc.strerror}") from exc
    except ValueError as exc:
        raise UserError(f"price table {str(path)!r} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError(f"price table {str(path)!r} must be an object of model -> [input, output] per 1M tokens")
    return {str(name): _price(str(name), value) for name, value in data.items()}


def set_price(model: str, input_per_mtok: float, output_per_mtok: float) -> None:
    """Set (or correct) one model's price in the default table, in dollars per million tokens."""
    DEFAULT_PRICES.set(model, input_per_mtok, output_per_mtok)
