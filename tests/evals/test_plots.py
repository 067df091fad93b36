"""The eval report's charts (inline SVG read back off the page) and `eval --plots DIR` (PNG files)."""

from __future__ import annotations

import builtins
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from twelvefactor import FunctionModel
from twelvefactor.cli import app
from twelvefactor.evals import compare, dataset_from, load_result, render_html, run_eval

from .shop_agent import make_agent, policy

SHOP = f"{Path(__file__).parent / 'shop_agent.py'}:agent"
HOSTILE = "<script>alert(1)</script>\"'&"
CASES = [
    {"id": "price", "input": "price of SKU-7", "expect": {"status": "done", "final_message": {"contains": "12.5"}}},
    {"id": "wrong", "input": "price of SKU-8", "expect": {"final_message": {"contains": "99"}}},  # fails
]
PNG = b"\x89PNG\r\n\x1a\n"


def charts(page: str) -> dict[str, list[tuple[str, str, float]]]:
    """Each inline SVG chart of the page, by title: (series, label, value) of each of its marks."""
    found: dict[str, list[tuple[str, str, float]]] = {}
    for markup in re.findall(r"<svg\b.*?</svg>", page, re.DOTALL):
        root = ET.fromstring(markup)
        marks = [
            (el.attrib["data-series"], el.attrib["data-label"], float(el.attrib["data-value"]))
            for el in root.iter()
            if "data-value" in el.attrib
        ]
        found.setdefault(root.attrib["aria-label"], []).extend(marks)
    return found


def test_the_report_charts_each_case_with_its_recorded_score_tokens_and_latency() -> None:
    result = run_eval(make_agent(), dataset_from(CASES))
    found = charts(render_html(result))
    assert found["Score by case"] == [("score", "price", 1.0), ("score", "wrong", result.cases[1].score)]
    assert result.cases[1].score < 1.0
    tokens = {(series, label): value for series, label, value in found["Tokens by case"]}
    assert tokens == {
        ("input", "price"): result.cases[0].input_tokens,
        ("output", "price"): result.cases[0].output_tokens,
        ("input", "wrong"): result.cases[1].input_tokens,
        ("output", "wrong"): result.cases[1].output_tokens,
    }
    latency = {(series, label): value for series, label, value in found["Latency by case"]}
    assert latency[("case", "price")] == result.cases[0].latency_ms
    # Each case's own calls: one bar per model call and direction (2 calls per case: lookup, then done).
    per_call = found["Tokens per model call"]
    assert len(per_call) == 2 * 2 * 2
    first_call = next(e for e in result.cases[0].events if e["type"] == "model_call")
    assert per_call[0] == ("input", "#1", float(first_call["input_tokens"]))  # type: ignore[arg-type]
    steps = {(series, label) for series, label, _ in found["Tokens per step"]}
    assert steps == {("input", "step 1"), ("output", "step 1"), ("input", "step 2"), ("output", "step 2")}


def test_with_a_baseline_the_score_chart_shows_both_and_flags_the_failures() -> None:
    dataset = dataset_from(CASES)
    before = run_eval(make_agent(), dataset)
    now = run_eval(make_agent(), dataset)
    page = render_html(now, compare(now, before))
    assert charts(page)["Score by case, against the baseline"] == [
        ("baseline", "price", 1.0),
        ("score", "price", 1.0),
        ("baseline", "wrong", before.cases[1].score),
        ("score", "wrong", now.cases[1].score),
    ]
    flagged = re.findall(r'<rect class="mark flagged"[^>]*data-label="([^"]*)"', page)
    assert set(flagged) == {"wrong"}


def test_a_hostile_model_name_is_escaped_in_the_report_and_its_charts() -> None:
    agent = make_agent(model=FunctionModel(policy, name=HOSTILE))
    page = render_html(run_eval(agent, dataset_from(CASES[:1])))
    assert "<script" not in page and "&lt;script&gt;" in page
    latency = charts(page)["Latency per model call"]
    assert {series for series, _, _ in latency} == {HOSTILE}  # parsed back intact from the escaped attribute


def test_eval_plots_writes_png_files(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    dataset = tmp_path / "shop.json"
    dataset.write_text(json.dumps(CASES[:1]))
    out = CliRunner().invoke(
        app,
        ["eval", SHOP, str(dataset), "--out", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"),
         "--plots", str(tmp_path / "plots")],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    written = sorted(path.name for path in (tmp_path / "plots").iterdir())
    assert written == [
        "latency-by-case.png",
        "model-latency-per-step.png",
        "score-by-case.png",
        "tokens-by-case.png",
        "tokens-per-step.png",
    ]
    assert all((tmp_path / "plots" / name).read_bytes().startswith(PNG) for name in written)
    assert "5 PNG plots in" in out.output


def test_eval_plots_without_matplotlib_says_so_in_one_line_and_keeps_the_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    dataset = tmp_path / "shop.json"
    dataset.write_text(json.dumps(CASES[:1]))
    out = CliRunner().invoke(
        app,
        ["eval", SHOP, str(dataset), "--out", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"),
         "--plots", str(tmp_path / "plots")],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    [line] = [line for line in out.output.splitlines() if "PNG" in line]
    assert line == "skipped: PNG plots need matplotlib: pip install 'twelvefactor[plots]'"
    assert "<svg" in (tmp_path / "r.html").read_text()  # the report's charts need no extra


def test_eval_output_mode_overrides_the_agents_and_is_recorded(tmp_path: Path) -> None:
    dataset = tmp_path / "shop.json"
    dataset.write_text(json.dumps(CASES[:1]))
    out = CliRunner().invoke(
        app,
        ["eval", SHOP, str(dataset), "--out", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"),
         "--output-mode", "json_schema"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert load_result(tmp_path / "r.json").output_mode == "json_schema"
    bad = CliRunner().invoke(app, ["eval", SHOP, str(dataset), "--output-mode", "telepathy"])
    assert bad.exit_code != 0 and "--output-mode 'telepathy' is not one of prompted, json_schema, tools" in bad.output
