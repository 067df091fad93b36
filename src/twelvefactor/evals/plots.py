"""An eval run as charts: score by case (beside the baseline's), tokens and latency by case and by step
(the k-th model call, averaged over cases), and each case's tokens and latency per model call. The HTML
report draws them as inline SVG; ``eval --plots DIR`` writes the run-wide ones as PNG files too (the
``plots`` extra).
"""

from __future__ import annotations

import re
from pathlib import Path

from twelvefactor.charts import Chart, Series, call_charts, write_png
from twelvefactor.evals.compare import Comparison
from twelvefactor.evals.runner import CaseResult, EvalResult
from twelvefactor.events import ModelCall

_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9_.-]+")


def run_charts(result: EvalResult, comparison: Comparison | None = None) -> list[Chart]:
    """Score by case (failed cases flagged; the baseline's score beside it), tokens and latency by case."""
    labels = tuple(case.id for case in result.cases)
    failed = tuple(not case.passed for case in result.cases)
    scores = Series(name="score", values=tuple(case.score for case in result.cases))
    passed = f"{result.summary.passed} of {result.summary.cases} passed"
    if comparison is not None:
        was = Series(
            name="baseline",
            values=tuple(_was_score(comparison, case.id) for case in result.cases),
        )
        regressions = len(comparison.regressions)
        score = Chart(
            title="Score by case, against the baseline",
            labels=labels,
            series=(was, scores),
            y_max=1.0,
            flagged=failed,
            note=f"{passed}; {regressions} regression{'' if regressions == 1 else 's'}; failed cases in red",
        )
    else:
        score = Chart(
            title="Score by case",
            labels=labels,
            series=(scores,),
            y_max=1.0,
            flagged=failed,
            note=f"{passed}; failed cases in red",
        )
    tokens = Chart(
        title="Tokens by case",
        labels=labels,
        series=(
            Series(name="input", values=tuple(float(case.input_tokens) for case in result.cases)),
            Series(name="output", values=tuple(float(case.output_tokens) for case in result.cases)),
        ),
        unit="tokens",
    )
    latency = Chart(
        title="Latency by case",
        labels=labels,
        series=(
            Series(name="case", values=tuple(case.latency_ms for case in result.cases)),
            Series(name="in the model", values=tuple(case.model_latency_ms for case in result.cases)),
        ),
        unit="ms",
    )
    return [score, tokens, latency, *step_charts(result)]


def step_charts(result: EvalResult) -> list[Chart]:
    """Mean tokens and latency of the k-th model call over the cases that made one (step 1, step 2...)."""
    per_step: list[list[ModelCall]] = []
    for case in result.cases:
        calls = [event for event in case.thread().events if isinstance(event, ModelCall)]
        for k, call in enumerate(calls):
            if k == len(per_step):
                per_step.append([])
            per_step[k].append(call)
    if not per_step:
        return []
    labels = tuple(f"step {k + 1}" for k in range(len(per_step)))
    cases = ", ".join(str(len(calls)) for calls in per_step)
    note = f"mean over the cases that reached each step ({cases})"

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 3)

    return [
        Chart(
            title="Tokens per step",
            labels=labels,
            series=(
                Series(name="input", values=tuple(mean([c.input_tokens or 0 for c in calls]) for calls in per_step)),
                Series(name="output", values=tuple(mean([c.output_tokens or 0 for c in calls]) for calls in per_step)),
            ),
            unit="tokens",
            note=note,
        ),
        Chart(
            title="Model latency per step",
            labels=labels,
            series=(Series(name="latency", values=tuple(mean([c.latency_ms for c in calls]) for calls in per_step)),),
            kind="line" if len(per_step) > 1 else "bar",
            unit="ms",
            note=note,
        ),
    ]


def _was_score(comparison: Comparison, case_id: str) -> float | None:
    change = comparison.of(case_id)
    return None if change is None else change.was_score


def case_charts(case: CaseResult) -> list[Chart]:
    """The case's tokens and latency per model call (none when it made no call)."""
    return call_charts(case.thread().events)


def write_pngs(result: EvalResult, folder: str | Path, comparison: Comparison | None = None) -> list[Path]:
    """The run's charts as PNG files in ``folder`` (made if missing); PlotsUnavailable without matplotlib."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_png(chart, folder / f"{_file_name(chart)}.png") for chart in run_charts(result, comparison)]


def _file_name(chart: Chart) -> str:
    """``score-by-case``, ``tokens-per-step``: the chart's title, as a file name."""
    words = chart.title.split(",")[0].lower()
    return _UNSAFE_IN_FILENAME.sub("-", words).strip("-")
