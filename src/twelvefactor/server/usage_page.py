"""The web UI's usage page (``/usage``): what models cost per day and agent, as charts and a table.

The figures are ``GET /v1/usage``'s (``store.usage.usage``: one grouped query on SQLite and PostgreSQL),
behind the same sign-in as the other pages. Calls of unknown cost are counted, never priced as free.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from twelvefactor.charts import Chart, Series, to_svg
from twelvefactor.server._state import runtime_of
from twelvefactor.server.session import require_signed_in
from twelvefactor.server.ui import render_page
from twelvefactor.store.usage import UsageRow, usage

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_signed_in)])

DAYS = (7, 14, 30, 90)


@dataclass(frozen=True)
class Totals:
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced_calls: int


def _totals(rows: list[UsageRow]) -> Totals:
    return Totals(
        calls=sum(row.calls for row in rows),
        input_tokens=sum(row.input_tokens for row in rows),
        output_tokens=sum(row.output_tokens for row in rows),
        cost_usd=round(sum(row.cost_usd for row in rows), 8),
        unpriced_calls=sum(row.unpriced_calls for row in rows),
    )


def usage_charts(rows: list[UsageRow], first: date, last: date) -> list[Chart]:
    """Cost per day (one line per agent) and tokens per day (input, output), every day of the range shown."""
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    labels = tuple(day.strftime("%b %d") for day in days)
    agents = sorted({row.agent or "" for row in rows})
    by_key = {(row.day, row.agent or ""): row for row in rows}

    def per_day(agent: str | None, field: str) -> tuple[float | None, ...]:
        values = []
        for day in days:
            found = [r for (d, a), r in by_key.items() if d == day and (agent is None or a == agent)]
            values.append(float(sum(getattr(r, field) for r in found)))
        return tuple(values)

    unpriced = sum(row.unpriced_calls for row in rows)
    cost = Chart(
        title="Cost per day",
        labels=labels,
        series=tuple(Series(name=agent or "(no agent)", values=per_day(agent, "cost_usd")) for agent in agents)
        or (Series(name="cost", values=(0.0,) * len(days)),),
        kind="line",
        unit="$",
        note=f"{unpriced} call{'' if unpriced == 1 else 's'} of unknown cost not in these figures" if unpriced else "",
    )
    tokens = Chart(
        title="Tokens per day",
        labels=labels,
        series=(
            Series(name="input", values=per_day(None, "input_tokens")),
            Series(name="output", values=per_day(None, "output_tokens")),
        ),
        unit="tokens",
    )
    return [cost, tokens]


@router.get("/usage", response_class=HTMLResponse)
async def usage_page(request: Request, days: int = 14, agent: str = "") -> HTMLResponse:
    """Model cost and tokens per UTC day and agent, over the last ``days`` days."""
    days = min(max(days, 1), 366)
    last = datetime.now(UTC).date()
    first = last - timedelta(days=days - 1)
    rows = await asyncio.to_thread(usage, runtime_of(request).store, days=days, until=last)
    agents = sorted({row.agent for row in rows if row.agent})
    if agent:
        rows = [row for row in rows if row.agent == agent]
    charts = [Markup(to_svg(chart)) for chart in usage_charts(rows, first, last)]  # to_svg escapes its text
    return render_page(
        request,
        "usage.html",
        rows=sorted(rows, key=lambda row: (row.day, row.agent or ""), reverse=True),
        totals=_totals(rows),
        charts=charts,
        days=days,
        day_choices=sorted({*DAYS, days}),
        agent=agent,
        agents=agents,
    )
