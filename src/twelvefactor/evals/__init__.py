"""Evals: score an agent on cases, turn stored threads into cases, replay recorded decisions under change.

    dataset = load_dataset("evals/calculator.jsonl")
    result = run_eval(agent, dataset, concurrency=8)            # every case, in parallel, scored
    regressions = compare(result, load_result("baseline.json")).regressions
    case = thread_to_case(store.load(thread_id))                # a production thread, as a case
    report = replay_decisions(changed_agent, store.load(thread_id))   # where would it decide otherwise?

The command line: ``twelvefactor eval AGENT DATASET``, ``twelvefactor threads export ID --as-case``,
``twelvefactor replay ID --agent AGENT``.
"""

from twelvefactor.evals.compare import CaseChange, Comparison, compare, load_result
from twelvefactor.evals.dataset import (
    Answer,
    Case,
    Dataset,
    Expect,
    MessageCheck,
    ScorerRef,
    ToolExpectation,
    dataset_from,
    load_dataset,
)
from twelvefactor.evals.export import thread_to_case
from twelvefactor.evals.replay import Decision, ReplayReport, Step, areplay_decisions, replay_decisions
from twelvefactor.evals.report import render_html, write_html, write_json
from twelvefactor.evals.runner import (
    CaseResult,
    EvalResult,
    Summary,
    arun_case,
    arun_eval,
    run_case,
    run_eval,
)
from twelvefactor.evals.scoring import Check, Score, Usage, score_thread, usage_of
from twelvefactor.evals.testing import assert_case, cases

__all__ = [
    "Answer",
    "Case",
    "CaseChange",
    "CaseResult",
    "Check",
    "Comparison",
    "Dataset",
    "Decision",
    "EvalResult",
    "Expect",
    "MessageCheck",
    "ReplayReport",
    "Score",
    "ScorerRef",
    "Step",
    "Summary",
    "ToolExpectation",
    "Usage",
    "areplay_decisions",
    "arun_case",
    "arun_eval",
    "assert_case",
    "cases",
    "compare",
    "dataset_from",
    "load_dataset",
    "load_result",
    "render_html",
    "replay_decisions",
    "run_case",
    "run_eval",
    "score_thread",
    "thread_to_case",
    "usage_of",
    "write_html",
    "write_json",
]
