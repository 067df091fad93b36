"""Every example's eval dataset passes on the demo model it ships with, so the datasets cannot rot.

The same runs as ``twelvefactor eval examples/NAME examples/NAME/evals.jsonl`` (the release workflow's
dataset scores its rollout agent: ``eval`` runs agents, not workflows). The committed baselines
(``examples/*/eval-baseline.json``) are these runs' results; the local-model results beside them are
figures for the README, not tests (too slow).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from twelvefactor._loader import load_agent
from twelvefactor.evals import compare, load_dataset, load_result, run_eval

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {
    "calculator": "examples/calculator",
    "deploybot": "examples/deploybot",
    "release": "examples/release/agent.py:rollout",
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_example_dataset_passes_on_its_demo_model_as_in_its_baseline(name: str) -> None:
    agent = load_agent(str(ROOT / EXAMPLES[name]))
    dataset = load_dataset(ROOT / "examples" / name / "evals.jsonl")
    result = run_eval(agent, dataset, concurrency=2)
    assert [(case.id, case.reasons) for case in result.cases if not case.passed] == []
    assert len(dataset) >= 3
    baseline = load_result(ROOT / "examples" / name / "eval-baseline.json")
    assert baseline.model == result.model and baseline.summary.passed == baseline.summary.cases == len(dataset)
    assert compare(result, baseline).regressions == []
    assert {change.change for change in compare(result, baseline).changes} == {"same"}  # no case added or lost


def test_the_release_workflow_itself_is_refused_by_eval_with_a_pointer_to_its_agents() -> None:
    from twelvefactor import UnknownAgentError

    with pytest.raises(UnknownAgentError, match=r"workflow 'release', not an agent.*its agents: rollout"):
        load_agent(str(ROOT / "examples" / "release"))
