"""bench/context_retrieval.py keeps working (its figures are printed by the bench, not asserted here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "context_retrieval.py"


def test_measure_reports_index_time_and_search_percentiles() -> None:
    spec = importlib.util.spec_from_file_location("context_retrieval_bench", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    figures = bench.measure(n_docs=300)
    assert figures["n_docs"] == 300 and figures["queries"] == 200
    expected = {"fts5_index_s", "fts5_p50_ms", "fts5_p99_ms"}
    if importlib.util.find_spec("wordllama") is not None:
        expected |= {"vector_index_s", "vector_p50_ms", "vector_p99_ms", "hybrid_p50_ms", "hybrid_p99_ms"}
    assert expected <= set(figures)
    assert all(figures[name] > 0 for name in expected)
    assert figures["fts5_p50_ms"] <= figures["fts5_p99_ms"]
