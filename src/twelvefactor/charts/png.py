"""Charts as PNG files, drawn by matplotlib (the ``plots`` extra: ``pip install 'twelvefactor[plots]'``).

Only the object-oriented API is used (a ``Figure`` of its own, no pyplot): no global state, no display,
safe in a server or a test run.
"""

from __future__ import annotations

from pathlib import Path

from twelvefactor.charts.model import Chart, format_tick
from twelvefactor.charts.svg import _ALARM, _PALETTE
from twelvefactor.errors import PlotsUnavailable

_INSTALL = "PNG plots need matplotlib: pip install 'twelvefactor[plots]'"  # SVG charts need nothing


def write_png(chart: Chart, path: str | Path, *, dpi: int = 100) -> Path:
    """Draw ``chart`` into the PNG file ``path``; PlotsUnavailable when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter
    except ImportError as exc:
        raise PlotsUnavailable(_INSTALL) from exc
    figure = Figure(figsize=(8, 3), dpi=dpi, layout="constrained")
    axes = figure.add_subplot()
    figure.suptitle(chart.title + (f"\n{chart.note}" if chart.note else ""), x=0.01, ha="left", fontsize=10)
    positions = list(range(len(chart.labels)))
    group = 0.8
    width = group / len(chart.series)
    for index, series in enumerate(chart.series):
        colour = _PALETTE[index % len(_PALETTE)]
        xs = [k for k in positions if series.values[k] is not None]
        ys = [float(series.values[k] or 0.0) for k in xs]
        if chart.kind == "bar":
            offsets = [k - group / 2 + (index + 0.5) * width for k in xs]
            last = index == len(chart.series) - 1
            colours = [_ALARM if last and chart.flagged and chart.flagged[k] else colour for k in xs]
            axes.bar(offsets, ys, width=width * 0.95, color=colours, label=series.name)
        else:
            axes.plot(xs, ys, marker="o", markersize=3, color=colour, label=series.name)
    axes.set_ylim(0, chart.top)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: format_tick(value, chart.unit)))
    if chart.unit and chart.unit != "$":
        axes.set_ylabel(chart.unit, fontsize=9)
    every = max(1, -(-len(positions) // 16))
    axes.set_xticks(positions[::every], [chart.labels[k] for k in positions[::every]], fontsize=8)
    axes.grid(axis="y", color="#ddd")
    axes.set_axisbelow(True)
    if len(chart.series) > 1:
        figure.legend(loc="outside right upper", fontsize=8, frameon=False)
    target = Path(path)
    figure.savefig(target, format="png")
    return target
