"""`cases()` + `assert_case()`: a dataset's cases as pytest tests, run by pytest itself in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SHOP = Path(__file__).parent / "shop_agent.py"
SRC = Path(__file__).resolve().parents[2] / "src"

TEST_FILE = f"""
import importlib.util
from twelvefactor.evals import assert_case, cases

spec = importlib.util.spec_from_file_location("shop_agent", {str(SHOP)!r})
shop = importlib.util.module_from_spec(spec)
spec.loader.exec_module(shop)


@cases("cases.jsonl")
def test_shop(case):
    assert_case(shop.agent, case)
"""


def test_each_case_is_a_test_named_by_its_id_and_a_failure_says_why(tmp_path: Path) -> None:
    cases = [
        {"id": "price", "input": "price of SKU-3", "expect": {"final_message": {"contains": "12.5"}}},
        {"id": "too-terse", "input": "price of SKU-3", "expect": {"final_message": {"equals": "12.5"}, "max_steps": 1}},
    ]
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "cases.jsonl").write_text("".join(json.dumps(case) + "\n" for case in cases))
    (tests / "test_shop_evals.py").write_text(TEST_FILE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", "tests/test_shop_evals.py"],
        cwd=tmp_path,  # the dataset's path is relative to the test file, found from the project's root
        env={**os.environ, "PYTHONPATH": str(SRC)},  # this checkout's twelvefactor
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "PASSED tests/test_shop_evals.py::test_shop[price]" in out
    assert "FAILED tests/test_shop_evals.py::test_shop[too-terse]" in out
    assert "eval case 'too-terse' failed (score 0.00)" in out
    assert "final message: final message 'It costs 12.5 dollars.' is not '12.5'" in out
    assert "max steps: 2 model steps, over 1" in out
