"""Charts: inline SVG with one mark per value (read back off the markup), escaped text, and PNG files."""

from __future__ import annotations

import builtins
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from twelvefactor import PlotsUnavailable
from twelvefactor.charts import Chart, Series, call_charts, to_svg, write_png
from twelvefactor.events import ModelCall, ToolCall, UserMessage

SVG = ""  # inline in HTML: no namespace needed
HOSTILE = '<script>alert("x")</script> & "quotes"'


def marks(svg: str) -> list[dict[str, Any]]:
    """Each data mark of an SVG chart: its series, label and value, and the tooltip it shows."""
    root = ET.fromstring(svg)  # also proves the markup is well-formed XML
    found = []
    for element in root.iter():
        if "data-value" in element.attrib:
            title = element.find(f"{SVG}title")
            found.append(
                {
                    "tag": element.tag.removeprefix(SVG),
                    "series": element.attrib["data-series"],
                    "label": element.attrib["data-label"],
                    "value": float(element.attrib["data-value"]),
                    "tooltip": title.text if title is not None else None,
                    "flagged": "flagged" in element.attrib.get("class", ""),
                }
            )
    return found


def test_a_bar_chart_has_one_bar_per_value_and_leaves_gaps_out() -> None:
    chart = Chart(
        title="Tokens",
        labels=("#1", "#4", "#7"),
        series=(Series(name="input", values=(812, 950, None)), Series(name="output", values=(31, 24, 40))),
        unit="tokens",
    )
    found = marks(to_svg(chart))
    assert [(m["tag"], m["series"], m["label"], m["value"]) for m in found] == [
        ("rect", "input", "#1", 812.0),
        ("rect", "output", "#1", 31.0),
        ("rect", "input", "#4", 950.0),
        ("rect", "output", "#4", 24.0),
        ("rect", "output", "#7", 40.0),
    ]
    assert found[0]["tooltip"] == "#1 · input: 812 tokens"


def test_bar_heights_are_proportional_to_values() -> None:
    chart = Chart(title="t", labels=("a", "b"), series=(Series(name="s", values=(1.0, 4.0)),))
    root = ET.fromstring(to_svg(chart))
    heights = [float(rect.attrib["height"]) for rect in root.iter(f"{SVG}rect") if "data-value" in rect.attrib]
    assert heights[1] == pytest.approx(4 * heights[0], rel=0.01)


def test_a_line_chart_has_one_point_per_value_and_flags_what_it_is_told() -> None:
    chart = Chart(
        title="Score",
        labels=("ok", "bad"),
        series=(Series(name="score", values=(1.0, 0.5)),),
        kind="line",
        y_max=1.0,
        flagged=(False, True),
    )
    found = marks(to_svg(chart))
    assert [(m["tag"], m["value"], m["flagged"]) for m in found] == [("circle", 1.0, False), ("circle", 0.5, True)]


def test_hostile_labels_series_and_titles_are_escaped() -> None:
    chart = Chart(
        title=HOSTILE,
        labels=(HOSTILE, "b"),
        series=(Series(name=HOSTILE, values=(1, 2)), Series(name="x", values=(3, 4))),
        note=HOSTILE,
    )
    svg = to_svg(chart)
    assert "<script" not in svg and "&lt;script&gt;" in svg
    found = marks(svg)  # parses: no attribute was broken out of
    assert found[0]["label"] == HOSTILE and found[0]["series"] == HOSTILE
    assert ET.fromstring(svg).attrib["aria-label"] == HOSTILE


def test_series_must_have_one_value_per_label() -> None:
    with pytest.raises(ValueError, match="has 1 values for 2 labels"):
        Chart(title="t", labels=("a", "b"), series=(Series(name="s", values=(1,)),))


def test_call_charts_show_each_model_call_of_a_thread_with_its_recorded_figures() -> None:
    events = [
        UserMessage(content="hi"),
        ModelCall(model="m", raw="{}", input_tokens=300, output_tokens=20, latency_ms=812.5),
        ToolCall(call_id="c1", intent="add", arguments={}),
        ModelCall(model="m", raw="{}", input_tokens=340, output_tokens=None, latency_ms=95.0),
    ]
    tokens, latency = call_charts(events)
    assert [(m["series"], m["label"], m["value"]) for m in marks(to_svg(tokens))] == [
        ("input", "#1", 300.0),
        ("output", "#1", 20.0),
        ("input", "#3", 340.0),
    ]
    assert [(m["series"], m["label"], m["value"]) for m in marks(to_svg(latency))] == [
        ("m", "#1", 812.5),
        ("m", "#3", 95.0),
    ]
    assert call_charts([UserMessage(content="no calls yet")]) == []


def test_a_long_thread_shows_its_last_calls_and_says_so() -> None:
    events = [ModelCall(model="m", raw="{}", input_tokens=k, output_tokens=1) for k in range(10)]
    tokens, _ = call_charts(events, limit=4)
    assert tokens.labels == ("#6", "#7", "#8", "#9") and tokens.note == "the last 4 of 10 calls"


def test_write_png_writes_a_png_file(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    chart = Chart(title=HOSTILE, labels=("a", "b"), series=(Series(name="s", values=(1, None)),), kind="line")
    path = write_png(chart, tmp_path / "chart.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    from PIL import Image  # matplotlib's own dependency: the file decodes as an image of the figure's size

    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (800, 300)


def test_write_png_without_matplotlib_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    chart = Chart(title="t", labels=("a",), series=(Series(name="s", values=(1,)),))
    with pytest.raises(PlotsUnavailable, match=r"pip install 'twelvefactor\[plots\]'"):
        write_png(chart, tmp_path / "chart.png")
    assert not (tmp_path / "chart.png").exists()


def test_the_axis_tops_at_a_round_number_with_short_ticks_and_names_its_unit_once() -> None:
    chart = Chart(title="t", labels=("a",), series=(Series(name="s", values=(3_700.0,)),), unit="tokens")
    root = ET.fromstring(to_svg(chart))
    texts = [element.text for element in root.iter(f"{SVG}text")]
    assert chart.top == 5_000 and {"0", "2.5k", "5k"} <= set(texts) and texts.count("tokens") == 1
    dollars = Chart(title="t", labels=("a",), series=(Series(name="s", values=(0.0031,)),), unit="$")
    assert dollars.top == 0.005 and "$0.005" in [e.text for e in ET.fromstring(to_svg(dollars)).iter(f"{SVG}text")]
    assert Chart(title="t", labels=("a",), series=(Series(name="s", values=(None,)),)).top == 1.0
