"""The long-thread quality check (bench/context_quality.py): 200 tool results, the answer needs one early
fact. A model that answers right only when the fact is in its window finishes with compaction and memory,
answers wrong with compaction alone, and stops over budget with neither."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "context_quality.py"


@pytest.fixture(scope="module")
def quality() -> ModuleType:
    spec = importlib.util.spec_from_file_location("context_quality", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["context_quality"] = module
    spec.loader.exec_module(module)
    return module


def test_without_compaction_the_agent_runs_out_of_budget_and_asks(quality: ModuleType) -> None:
    outcome = quality.attempt("budget", quality.reader(200, remembers=False), 200)
    assert outcome.status == "waiting" and not outcome.correct
    assert outcome.max_window <= 4_000 and outcome.steps < 200


def test_with_compaction_alone_the_fact_is_lost(quality: ModuleType) -> None:
    outcome = quality.attempt("compaction", quality.reader(200, remembers=False), 200)
    assert outcome.status == "done" and not outcome.correct
    assert outcome.compactions > 0 and outcome.max_window <= 4_000


def test_with_compaction_and_memory_the_agent_finishes_right(quality: ModuleType) -> None:
    outcome = quality.attempt("compaction+memory", quality.reader(200, remembers=True), 200)
    assert outcome.status == "done" and outcome.correct, outcome
    assert outcome.steps == 202  # 200 reads, one remember, the answer
    assert outcome.max_window <= 4_000
