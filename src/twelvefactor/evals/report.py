"""Eval reports: the JSON result (what ``--baseline`` reads back) and a self-contained HTML page.

The page has no script and loads nothing: styles are inline, charts are inline SVG drawn here
(``evals/plots.py``), every case has a timeline of its thread's events. Model output and tool results are
untrusted text: the template is autoescaped (Jinja2), and the SVG escapes its own text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from twelvefactor.charts import Chart, to_svg
from twelvefactor.evals.compare import CaseChange, Comparison
from twelvefactor.evals.plots import case_charts, run_charts
from twelvefactor.evals.runner import CaseResult, EvalResult

_HIDDEN = ("type", "at")
_TEXT_FIELDS = ("content", "message", "question", "text")


def write_json(result: EvalResult, path: str | Path) -> None:
    Path(path).write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class _Step:
    type: str
    at: str
    text: str
    hidden: bool  # a record the model never sees (model calls, tool starts)


@dataclass(frozen=True)
class _Row:
    case: CaseResult
    change: CaseChange | None
    steps: list[_Step]
    charts: list[Any]  # the case's per-call charts, as SVG markup


def _step(event: dict[str, Any]) -> _Step:
    kind = str(event.get("type", "?"))
    at = str(event.get("at", ""))[11:23]
    if kind == "model_call":
        text = (
            f"{event.get('model')}: {event.get('input_tokens')}→{event.get('output_tokens')} tokens,"
            f" {event.get('latency_ms')} ms\n{event.get('raw', '')}"
        )
        return _Step(kind, at, text, True)
    if kind == "tool_call":
        text = f"{event.get('intent')} {json.dumps(event.get('arguments'), ensure_ascii=False)}"
    elif kind == "tool_result":
        text = f"{event.get('intent')} → {json.dumps(event.get('result'), ensure_ascii=False)}"
    elif kind == "human_response":
        verdict = {True: "approved", False: "denied"}.get(event.get("approved"), "answered")  # type: ignore[arg-type]
        text = f"{verdict} {event.get('text') or ''}".strip()
    elif any(field in event for field in _TEXT_FIELDS):
        text = next(str(event[field]) for field in _TEXT_FIELDS if field in event)
    else:
        rest = {key: value for key, value in event.items() if key not in _HIDDEN}
        text = json.dumps(rest, ensure_ascii=False)
    return _Step(kind, at, text, kind in ("tool_started", "human_contact", "compaction"))


@cache
def _template() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,  # every value: model output and tool results are untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html")


def render_html(result: EvalResult, comparison: Comparison | None = None) -> str:
    """The report page: summary, one row per case (regressions marked), each case's checks and timeline."""
    from markupsafe import Markup

    def svg(chart: Chart) -> Markup:
        return Markup(to_svg(chart))  # to_svg escapes every text it draws

    rows = [
        _Row(
            case,
            comparison.of(case.id) if comparison else None,
            [_step(e) for e in case.events],
            [svg(chart) for chart in case_charts(case)],
        )
        for case in result.cases
    ]
    missing = [c for c in comparison.changes if c.change == "missing"] if comparison else []
    regressions = len(comparison.regressions) if comparison else 0
    charts = [svg(chart) for chart in run_charts(result, comparison)]
    return str(
        _template().render(
            result=result, rows=rows, comparison=comparison, missing=missing, regressions=regressions, charts=charts
        )
    )


def write_html(result: EvalResult, path: str | Path, comparison: Comparison | None = None) -> None:
    Path(path).write_text(render_html(result, comparison), encoding="utf-8")
