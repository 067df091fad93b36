"""Retry timing, one implementation: reading a server's Retry-After, and exponential backoff with jitter.

The model clients (``models/_http.py``) and the webhook sender (``server/webhooks.py``) both use it, so
one header means one wait everywhere.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime


def retry_after_s(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds a server asked to wait: ``retry-after-ms``, else ``retry-after`` (seconds, or an HTTP date).

    None when absent or unreadable: a negative, infinite or NaN value is no instruction to follow. A
    date in the past is 0. Header names are expected lower-case (httpx's headers are case-insensitive).
    """
    millis = _seconds(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if value is None or not value.strip():
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    import email.utils  # only for the rare HTTP-date form

    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # HTTP dates are GMT
    reference = now.timestamp() if now is not None else time.time()
    return max(0.0, when.timestamp() - reference)


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def backoff_s(attempt: int, *, initial_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """The wait before retry number ``attempt + 1``: ``initial_s * 2**attempt`` capped at ``max_s``, drawn
    between half of it and all of it ("equal jitter"), so a crowd of clients does not retry in step."""
    ceiling = min(max_s, initial_s * 2.0 ** min(attempt, 60))
    return (rng or random).uniform(ceiling / 2, ceiling)
