"""Charts as data, drawn as inline SVG (no script, nothing loaded) or as PNG (the ``plots`` extra).

    chart = Chart(title="Tokens per model call", labels=("#2", "#5"),
                  series=(Series(name="input", values=(812, 950)), Series(name="output", values=(31, 24))))
    markup = to_svg(chart)               # one <rect> per value, every text escaped: safe inside any page
    write_png(chart, "tokens.png")       # matplotlib, or PlotsUnavailable saying how to install it
    charts = call_charts(thread.events)  # tokens in/out and latency per model call of a thread

The eval report, the web UI's thread and usage pages and ``bench/plot.py`` draw with these.
"""

from twelvefactor.charts.calls import MAX_CALLS, call_charts
from twelvefactor.charts.model import Chart, Series
from twelvefactor.charts.png import write_png
from twelvefactor.charts.svg import to_svg

__all__ = ["MAX_CALLS", "Chart", "Series", "call_charts", "to_svg", "write_png"]
