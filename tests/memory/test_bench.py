"""bench/context_memory.py runs and reports what it says it does (figures, not a timed test)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_measure_reports_recall_figures_for_the_facts_it_wrote() -> None:
    spec = importlib.util.spec_from_file_location("context_memory_bench", ROOT / "bench" / "context_memory.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    figures = bench.measure(n_facts=200, calls=5)
    assert figures["facts"] == 200
    assert 0 < figures["recall_for_facts"] <= 50  # one user's, the agent's and the global facts, capped
    assert figures["recall_mean_hits"] > 0  # the queries find facts: the search is measured, not a no-op
    for name in ("recall_for_p50_ms", "recall_for_p99_ms", "recall_p50_ms", "recall_p99_ms", "write_ms_per_fact"):
        assert figures[name] > 0, name
    assert figures["recall_for_p50_ms"] <= figures["recall_for_p99_ms"]
