"""Charts as inline SVG: server-side, no script, no stylesheet, nothing fetched; every text escaped.

Each value is one mark (a ``<rect>`` in a bar chart, a ``<circle>`` in a line chart) carrying
``data-series``, ``data-label`` and ``data-value`` and a ``<title>`` (the browser's own tooltip), so a
page stays one self-contained file and its figures stay machine-readable. Labels and series names may be
model output (a model's name, a case id): they are escaped like any untrusted text. The element is meant
to sit inline in an HTML page (no ``xmlns``: the HTML parser places it; nothing on the page names a URL).
"""

from __future__ import annotations

from html import escape

from twelvefactor.charts.model import Chart, format_tick, format_value

WIDTH = 640
HEIGHT = 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 44, 30
_PALETTE = ("#3b6ea8", "#e0913a", "#4f9a5b", "#8a5fb0", "#c0504d", "#5a9fae")
_ALARM = "#b00020"
_MUTED = "#666"
_MAX_X_LABELS = 16


def _e(text: str) -> str:
    return escape(text, quote=True)


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def to_svg(chart: Chart, *, width: int = WIDTH, height: int = HEIGHT) -> str:
    """The chart as one ``<svg>`` element, safe to place in any HTML page as it is."""
    plot_w = width - _LEFT - _RIGHT
    plot_h = height - _TOP - _BOTTOM
    top = chart.top
    n = len(chart.labels)
    parts = [
        f'<svg class="chart" role="img" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" aria-label="{_e(chart.title)}" data-kind="{chart.kind}"'
        f' font-family="system-ui, sans-serif" font-size="11">',
        f"<title>{_e(chart.title)}</title>",
        f'<text x="{_LEFT}" y="14" font-size="13" font-weight="600" fill="#1b1b1b">{_e(chart.title)}</text>',
    ]
    if chart.note:
        parts.append(f'<text x="{_LEFT}" y="28" fill="{_MUTED}">{_e(chart.note)}</text>')
    parts.extend(_legend(chart, width))
    parts.extend(_axes(chart, top, plot_w, plot_h))
    if n == 0:
        parts.append(
            f'<text x="{_LEFT + plot_w / 2}" y="{_TOP + plot_h / 2}" text-anchor="middle"'
            f' fill="{_MUTED}">no data</text>'
        )
    elif chart.kind == "bar":
        parts.extend(_bars(chart, top, plot_w, plot_h))
    else:
        parts.extend(_lines(chart, top, plot_w, plot_h))
    parts.extend(_x_labels(chart, plot_w, plot_h))
    parts.append("</svg>")
    return "".join(parts)


def _colour(index: int) -> str:
    return _PALETTE[index % len(_PALETTE)]


def _legend(chart: Chart, width: int) -> list[str]:
    if len(chart.series) < 2:
        return []
    parts = []
    x: float = width - _RIGHT
    for index in range(len(chart.series) - 1, -1, -1):
        name = chart.series[index].name
        x -= 18 + 6.5 * len(name)
        parts.append(
            f'<rect x="{_num(x)}" y="5" width="10" height="10" fill="{_colour(index)}"/>'
            f'<text x="{_num(x + 14)}" y="14" fill="#1b1b1b">{_e(name)}</text>'
        )
    return parts


def _y(value: float, top: float, plot_h: int) -> float:
    return _TOP + plot_h - min(max(value, 0.0), top) / top * plot_h


def _axes(chart: Chart, top: float, plot_w: int, plot_h: int) -> list[str]:
    parts = []
    for fraction in (0.0, 0.5, 1.0):
        value = top * fraction
        y = _y(value, top, plot_h)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{_num(y)}" y2="{_num(y)}" stroke="#ddd"/>'
            f'<text x="{_LEFT - 4}" y="{_num(y + 4)}" text-anchor="end" fill="{_MUTED}">'
            f"{_e(format_tick(value, chart.unit))}</text>"
        )
    if chart.unit and chart.unit != "$":
        parts.append(f'<text x="{_LEFT - 4}" y="{_TOP - 8}" text-anchor="end" fill="{_MUTED}">{_e(chart.unit)}</text>')
    return parts


def _tooltip(chart: Chart, label: str, series: str, value: float) -> str:
    who = f"{label} · {series}" if len(chart.series) > 1 else label
    return f"<title>{_e(who)}: {_e(format_value(value, chart.unit))}</title>"


def _data(series: str, label: str, value: float) -> str:
    return f' data-series="{_e(series)}" data-label="{_e(label)}" data-value="{value!r}"'


def _bars(chart: Chart, top: float, plot_w: int, plot_h: int) -> list[str]:
    band = plot_w / len(chart.labels)
    group = band * 0.8
    width = group / len(chart.series)
    parts = []
    for k, label in enumerate(chart.labels):
        flagged = chart.flagged is not None and chart.flagged[k]
        for index, series in enumerate(chart.series):
            value = series.values[k]
            if value is None:
                continue
            x = _LEFT + k * band + (band - group) / 2 + index * width
            y = _y(value, top, plot_h)
            height = max(_TOP + plot_h - y, 1.0)  # a zero still shows: there is a value, it is 0
            y = _TOP + plot_h - height
            fill = _ALARM if flagged and index == len(chart.series) - 1 else _colour(index)
            parts.append(
                f'<rect class="mark{" flagged" if flagged else ""}" x="{_num(x)}" y="{_num(y)}"'
                f' width="{_num(max(width - 1, 0.5))}" height="{_num(height)}" fill="{fill}"'
                f"{_data(series.name, label, value)}>{_tooltip(chart, label, series.name, value)}</rect>"
            )
    return parts


def _lines(chart: Chart, top: float, plot_w: int, plot_h: int) -> list[str]:
    band = plot_w / len(chart.labels)
    parts = []
    for index, series in enumerate(chart.series):
        points = [
            (_LEFT + (k + 0.5) * band, _y(value, top, plot_h), k, value)
            for k, value in enumerate(series.values)
            if value is not None
        ]
        colour = _colour(index)
        segment: list[str] = []
        previous = -2
        for x, y, k, _ in points:  # a gap (None) breaks the line
            if k != previous + 1 and len(segment) > 1:
                parts.append(_polyline(segment, colour))
            if k != previous + 1:
                segment = []
            segment.append(f"{_num(x)},{_num(y)}")
            previous = k
        if len(segment) > 1:
            parts.append(_polyline(segment, colour))
        for x, y, k, value in points:
            label = chart.labels[k]
            flagged = chart.flagged is not None and chart.flagged[k]
            parts.append(
                f'<circle class="mark{" flagged" if flagged else ""}" cx="{_num(x)}" cy="{_num(y)}" r="3"'
                f' fill="{_ALARM if flagged else colour}"{_data(series.name, label, value)}>'
                f"{_tooltip(chart, label, series.name, value)}</circle>"
            )
    return parts


def _polyline(points: list[str], colour: str) -> str:
    return f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="1.5"/>'


def _x_labels(chart: Chart, plot_w: int, plot_h: int) -> list[str]:
    n = len(chart.labels)
    if n == 0:
        return []
    band = plot_w / n
    every = -(-n // _MAX_X_LABELS)
    room = max(int(band * every / 6.5), 3)  # characters that fit under a shown label
    parts = []
    for k in range(0, n, every):
        label = chart.labels[k]
        shown = label if len(label) <= room else label[: room - 1] + "…"
        parts.append(
            f'<text x="{_num(_LEFT + (k + 0.5) * band)}" y="{_TOP + plot_h + 14}" text-anchor="middle"'
            f' fill="{_MUTED}">{_e(shown)}</text>'
        )
    return parts
