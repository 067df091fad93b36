"""Retry timing: Retry-After forms, and exponential backoff with jitter."""

from __future__ import annotations

import email.utils
import random
import time

from twelvefactor.models import RetryPolicy, is_loopback
from twelvefactor.models._http import retry_after_s


def test_retry_after_in_seconds_milliseconds_and_http_dates() -> None:
    assert retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    later = retry_after_s({"retry-after": email.utils.formatdate(time.time() + 30, usegmt=True)})
    assert later is not None and 25 < later <= 30
    assert retry_after_s({"retry-after": email.utils.formatdate(time.time() - 30, usegmt=True)}) == 0.0
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s({}) is None


def test_backoff_doubles_up_to_the_cap_with_jitter_and_yields_to_retry_after() -> None:
    policy = RetryPolicy(initial_delay_s=1.0, max_delay_s=5.0)
    rng = random.Random(7)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 5.0), (8, 5.0)]:
        delays = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not in lockstep
    assert policy.delay(3, 0.75, rng) == 0.75


def test_loopback_urls() -> None:
    for url in ("http://127.0.0.1:8000/v1", "http://localhost:11434/v1", "http://[::1]:8080", "http://127.1.2.3"):
        assert is_loopback(url), url
    for url in ("https://api.openai.com/v1", "http://10.0.0.5:8000", "http://localhost.example.com", "not a url"):
        assert not is_loopback(url), url
