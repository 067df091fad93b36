"""One Retry-After reading and one backoff, shared by the model clients and the webhook sender."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from twelvefactor._backoff import backoff_s, retry_after_s
from twelvefactor.models import _http, _provider
from twelvefactor.server import webhooks

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 7 "}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the finer one wins
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": format_datetime(NOW + timedelta(seconds=30), usegmt=True)}, 30.0),
        ({"retry-after": "Thu, 03 Dec 2026 12:00:30"}, 30.0),  # no zone: GMT, as HTTP dates are
        ({"retry-after": format_datetime(NOW - timedelta(seconds=30), usegmt=True)}, 0.0),  # in the past
        ({"retry-after": "-5"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "1e400"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_one_way_everywhere(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_s(headers, now=NOW) == expected
    # The model clients and the webhook sender read it the same way (they call the same function).
    assert _http.retry_after_s is retry_after_s and _provider.retry_after_s is retry_after_s
    assert webhooks.retry_after_s is retry_after_s


def test_backoff_doubles_with_equal_jitter_up_to_a_ceiling() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        ceiling = min(20.0, 0.5 * 2**attempt)
        for _ in range(50):
            delay = backoff_s(attempt, initial_s=0.5, max_s=20.0, rng=rng)
            assert ceiling / 2 <= delay <= ceiling
