"""Token and cost accounting per agent and day, read off the stored model calls (issue 13: cost).

Every ``model_call`` event (and every summarising ``compaction``) records its tokens and cost; this adds
them up per agent and UTC day, in the database where it can (one grouped query on SQLite and PostgreSQL,
no thread loaded), by walking the threads otherwise. A call of unknown cost is counted as ``unpriced``,
never as free.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from twelvefactor.spend import Spend, spend
from twelvefactor.store.base import ThreadStore

__all__ = ["UsageRow", "spent_today", "usage"]


class UsageRow(BaseModel):
    """What one agent spent on models in one UTC day."""

    model_config = ConfigDict(frozen=True)

    day: date
    agent: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: float
    unpriced_calls: int

    @property
    def spent(self) -> Spend:
        """The row as a :class:`Spend` (what budgets compare)."""
        return Spend(
            self.calls, self.input_tokens, self.output_tokens, self.cached_input_tokens, self.cost_usd,
            self.unpriced_calls,
        )  # fmt: skip

    @classmethod
    def of(cls, day: date, agent: str | None, spent: Spend) -> UsageRow:
        return cls(
            day=day,
            agent=agent,
            calls=spent.calls,
            input_tokens=spent.input_tokens,
            output_tokens=spent.output_tokens,
            cached_input_tokens=spent.cached_input_tokens,
            cost_usd=spent.usd,
            unpriced_calls=spent.unpriced,
        )


# The spending events: model calls, and compactions that called a model (their `model` is set).
_SQLITE = """
SELECT t.agent, substr(json_extract(e.data, '$.at'), 1, 10) AS day, count(*),
       sum(coalesce(json_extract(e.data, '$.input_tokens'), 0)),
       sum(coalesce(json_extract(e.data, '$.output_tokens'), 0)),
       sum(coalesce(json_extract(e.data, '$.cached_input_tokens'), 0)),
       sum(coalesce(json_extract(e.data, '$.cost_usd'), 0)),
       sum(json_extract(e.data, '$.cost_usd') IS NULL)
FROM events e JOIN threads t ON t.id = e.thread_id
WHERE (e.type = 'model_call' OR (e.type = 'compaction' AND json_extract(e.data, '$.model') IS NOT NULL))
  AND t.updated_at >= ? AND json_extract(e.data, '$.at') >= ? AND json_extract(e.data, '$.at') < ?
GROUP BY t.agent, day ORDER BY day, t.agent
"""
_POSTGRES = """
SELECT t.agent, substr(e.data::jsonb ->> 'at', 1, 10) AS day, count(*),
       sum(coalesce((e.data::jsonb ->> 'input_tokens')::bigint, 0)),
       sum(coalesce((e.data::jsonb ->> 'output_tokens')::bigint, 0)),
       sum(coalesce((e.data::jsonb ->> 'cached_input_tokens')::bigint, 0)),
       sum(coalesce((e.data::jsonb ->> 'cost_usd')::double precision, 0)),
       sum(CASE WHEN e.data::jsonb ->> 'cost_usd' IS NULL THEN 1 ELSE 0 END)
FROM events e JOIN threads t ON t.id = e.thread_id
WHERE (e.type = 'model_call' OR (e.type = 'compaction' AND e.data::jsonb ->> 'model' IS NOT NULL))
  AND t.updated_at >= %s AND e.data::jsonb ->> 'at' >= %s AND e.data::jsonb ->> 'at' < %s
GROUP BY t.agent, day ORDER BY day, t.agent
"""


def usage(store: ThreadStore, *, days: int = 7, until: date | None = None) -> list[UsageRow]:
    """Per agent and UTC day, what model calls spent in the ``days`` days up to ``until`` (default today)."""
    last = until or datetime.now(UTC).date()
    first = last - timedelta(days=days - 1)
    # Event times are stored as ISO text (`...T...Z`): bounds in the same form compare as text.
    low, high = f"{first.isoformat()}T", f"{(last + timedelta(days=1)).isoformat()}T"
    since = datetime.combine(first, datetime.min.time(), UTC)
    from twelvefactor.store.sqlite import SQLiteStore

    while hasattr(store, "inner"):  # a wrapper (the server's notifying store): ask the store it wraps
        store = store.inner

    if isinstance(store, SQLiteStore):
        with store._read() as conn:  # noqa: SLF001 - the store's own read snapshot
            rows = conn.execute(_SQLITE, (since.isoformat(), low, high)).fetchall()
        return [_row(row) for row in rows]
    postgres = _postgres_store(store)
    if postgres is not None:
        with postgres.connection() as pg:
            rows = pg.execute(_POSTGRES, (since, low, high)).fetchall()
        return [_row(row) for row in rows]
    return _walk(store, first, last)


def _postgres_store(store: ThreadStore) -> Any | None:
    try:
        from twelvefactor.store.postgres import PostgresStore
    except ImportError:  # psycopg not installed: not a PostgreSQL store
        return None
    return store if isinstance(store, PostgresStore) else None


def _row(row: Any) -> UsageRow:
    agent, day, calls, tokens_in, tokens_out, cached, cost, unpriced = row
    spent = Spend(int(calls), int(tokens_in), int(tokens_out), int(cached), round(float(cost), 8), int(unpriced))
    return UsageRow.of(date.fromisoformat(day), agent, spent)


def _walk(store: ThreadStore, first: date, last: date) -> list[UsageRow]:
    """The same sums by loading every thread (stores without SQL: the in-memory one)."""
    totals: dict[tuple[date, str | None], Spend] = {}
    offset = 0
    while True:
        page = store.list(limit=500, offset=offset)
        if not page:
            break
        offset += len(page)
        for summary in page:
            thread = store.load(summary.id)
            for event in thread.events:
                day = event.at.astimezone(UTC).date()
                if first <= day <= last:
                    found = spend((event,))
                    if found.calls:
                        key = (day, thread.agent)
                        totals[key] = totals.get(key, Spend()) + found
    ordered = sorted(totals.items(), key=lambda item: (item[0][0], item[0][1] or ""))
    return [UsageRow.of(day, agent, spent) for (day, agent), spent in ordered]


def as_json(rows: list[UsageRow]) -> str:
    return json.dumps([row.model_dump(mode="json") for row in rows], indent=2)


def spent_today(store: ThreadStore, *, refresh_s: float = 10.0) -> Callable[[str], Spend]:
    """``agent name -> what it spent today (UTC)``, read from ``store`` at most every ``refresh_s`` seconds
    (for ``SpendBudget(usd_per_day=..., spent_today=spent_today(store))``: one grouped query, not one per call)."""
    lock = threading.Lock()
    cached: dict[str, Any] = {"at": -math.inf, "rows": {}}

    def read(agent: str) -> Spend:
        with lock:
            if time.monotonic() - cached["at"] >= refresh_s:
                rows = usage(store, days=1)
                cached["rows"] = {row.agent: row for row in rows}
                cached["at"] = time.monotonic()
            row = cached["rows"].get(agent)
        return Spend() if row is None else row.spent

    return read
