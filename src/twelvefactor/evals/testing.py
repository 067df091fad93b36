"""Eval cases as pytest tests: one test per case, failing with the case's reasons.

    from twelvefactor.evals import assert_case, cases
    from my_app.agents import support

    @cases("evals/support.jsonl")
    def test_support(case):
        assert_case(support, case)

pytest is imported only when ``cases`` is called (it is a developer tool, not a dependency).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from twelvefactor.agent import Agent
from twelvefactor.evals.dataset import Case, Dataset, load_dataset
from twelvefactor.evals.runner import CaseResult, run_case


def cases(dataset: str | Path | Dataset, *, argname: str = "case") -> Any:
    """``pytest.mark.parametrize`` over the dataset's cases, each test named by its case's id.

    A relative path is read from the current folder, or else from the folder of the test file calling this.
    """
    import pytest

    if isinstance(dataset, Dataset):
        loaded = dataset
    else:
        path = Path(dataset)
        if not path.is_absolute() and not path.exists():
            beside = Path(sys._getframe(1).f_code.co_filename).parent / path
            path = beside if beside.exists() else path
        loaded = load_dataset(path)
    return pytest.mark.parametrize(argname, loaded.cases, ids=[case.id for case in loaded.cases])


def assert_case(agent: Agent, case: Case, *, timeout_s: float | None = None) -> CaseResult:
    """Run ``case`` on ``agent``; AssertionError with every failing check's reason if it does not pass."""
    result = run_case(agent, case, timeout_s=timeout_s)
    if not result.passed:
        reasons = "\n  ".join(result.reasons)
        raise AssertionError(f"eval case {case.id!r} failed (score {result.score:.2f}):\n  {reasons}")
    return result
