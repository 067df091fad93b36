from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from twelvefactor.models import AnthropicModel, OpenAIModel, RetryPolicy

from .fakes import KEY, FakeProvider

FAST = RetryPolicy(max_retries=2, initial_delay_s=0.01, max_delay_s=0.02)


@dataclass
class Served:
    fake: FakeProvider
    url: str

    def openai(self, model: str = "gpt-4o-mini", **options: Any) -> OpenAIModel:
        options.setdefault("retry", FAST)
        return OpenAIModel(model, base_url=self.url, api_key=KEY, **options)

    def anthropic(self, model: str = "claude-haiku-4-5", **options: Any) -> AnthropicModel:
        options.setdefault("retry", FAST)
        return AnthropicModel(model, base_url=self.url, api_key=KEY, **options)


@pytest.fixture(scope="session")
def _openai_server() -> Iterator[Served]:
    fake = FakeProvider("openai")
    with fake.serve() as url:
        yield Served(fake, url)


@pytest.fixture(scope="session")
def _anthropic_server() -> Iterator[Served]:
    fake = FakeProvider("anthropic")
    with fake.serve() as url:
        yield Served(fake, url)


def _reset(served: Served) -> Served:
    served.fake.queue.clear()
    served.fake.requests.clear()
    served.fake.responder = None
    return served


@pytest.fixture
def openai_server(_openai_server: Served) -> Iterator[Served]:
    yield _reset(_openai_server)
    _reset(_openai_server)


@pytest.fixture
def anthropic_server(_anthropic_server: Served) -> Iterator[Served]:
    yield _reset(_anthropic_server)
    _reset(_anthropic_server)
