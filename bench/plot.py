"""Benchmark figures as pictures: PNG files and one self-contained HTML page (inline SVG, no script).

    python bench/plot.py context [--steps 10] [--out bench-plots]        # bench/context.py's measure
    python bench/plot.py eval-overhead [--cases 200] [--out bench-plots] # bench/eval_overhead.py's measure

``context``: the framework's time per step before the model call, and the tokens the model is sent, by
thread size (10 to 10,000 events), without a budget and with ``ContextBudget(4_000, ...)``.
``eval-overhead``: eval cases per second by concurrency, with an instant model and a 50 ms one.
The PNGs need matplotlib (``pip install -e '.[plots]'``); without it the HTML page is still written.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from twelvefactor import PlotsUnavailable
from twelvefactor.charts import Chart, Series, to_svg, write_png

HERE = Path(__file__).parent


def _bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def context_charts(steps: int) -> tuple[list[Chart], list[list[str]]]:
    bench = _bench("context")
    budget = bench.budget()
    labels, rows = [], [["events", "no budget: p50 ms", "tokens", "budget 4,000: p50 ms", "tokens", "compactions"]]
    plain_ms, kept_ms, plain_tokens, kept_tokens = [], [], [], []
    for size in bench.SIZES:
        plain = bench.measure(size, None, steps)
        kept = bench.measure(size, budget, steps)
        labels.append(f"{size:,}")
        plain_ms.append(plain["p50_ms"])
        kept_ms.append(kept["p50_ms"])
        plain_tokens.append(plain["tokens"])
        kept_tokens.append(kept["tokens"])
        rows.append([f"{size:,}", f"{plain['p50_ms']:.3f}", f"{plain['tokens']:,.0f}", f"{kept['p50_ms']:.3f}",
                     f"{kept['tokens']:,.0f}", f"{kept['compactions']:.0f}"])  # fmt: skip
    note = f"median of {steps} steps after a thread of N events"
    return [
        Chart(
            title="Framework time per step, before the model call",
            labels=tuple(labels),
            series=(
                Series(name="no budget", values=tuple(plain_ms)),
                Series(name="budget 4,000", values=tuple(kept_ms)),
            ),
            kind="line",
            unit="ms",
            note=note,
        ),
        Chart(
            title="Tokens sent to the model per step",
            labels=tuple(labels),
            series=(
                Series(name="no budget", values=tuple(plain_tokens)),
                Series(name="budget 4,000", values=tuple(kept_tokens)),
            ),
            unit="tokens",
            note=note,
        ),
    ], rows


def eval_overhead_charts(cases: int) -> tuple[list[Chart], list[list[str]]]:
    figures = _bench("eval_overhead").measure(cases)
    concurrencies = sorted({concurrency for _, concurrency, _, _ in figures})
    models = list(dict.fromkeys(label for label, _, _, _ in figures))
    rate = {(label, concurrency): n / seconds for label, concurrency, n, seconds in figures}
    rows = [["model", "concurrency", "cases", "seconds", "cases/s"]]
    rows += [[label, str(c), str(n), f"{s:.2f}", f"{n / s:.1f}"] for label, c, n, s in figures]
    chart = Chart(
        title="Eval cases per second, by concurrency",
        labels=tuple(f"concurrency {c}" for c in concurrencies),
        series=tuple(Series(name=model, values=tuple(rate.get((model, c)) for c in concurrencies)) for model in models),
        unit="cases/s",
        note="each case: 2 model calls, 1 tool call, scored on status, the call and the final message",
    )
    return [chart], rows


def write_page(path: Path, title: str, charts: list[Chart], rows: list[list[str]]) -> None:
    head, *body = rows
    table = "<tr>" + "".join(f"<th>{html.escape(cell)}</th>" for cell in head) + "</tr>"
    table += "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in body)
    path.write_text(
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{font:14px/1.4 system-ui,sans-serif;margin:2rem auto;max-width:60rem}"
        "td,th{padding:.2rem .6rem;border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{''.join(to_svg(chart) for chart in charts)}<table>{table}</table>"
        "</body></html>\n",
        encoding="utf-8",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=["context", "eval-overhead"])
    parser.add_argument("--out", type=Path, default=Path("bench-plots"), help="folder for the PNG and HTML files")
    parser.add_argument("--steps", type=int, default=10, help="context: steps measured per thread size")
    parser.add_argument("--cases", type=int, default=200, help="eval-overhead: cases with the instant model")
    args = parser.parse_args()
    if args.bench == "context":
        charts, rows = context_charts(args.steps)
    else:
        charts, rows = eval_overhead_charts(args.cases)
    args.out.mkdir(parents=True, exist_ok=True)
    for row in rows:
        print("  ".join(f"{cell:>12}" for cell in row))
    page = args.out / f"{args.bench}.html"
    write_page(page, f"bench/{args.bench.replace('-', '_')}.py", charts, rows)
    print(f"wrote {page}")
    for number, chart in enumerate(charts, start=1):
        try:
            print(f"wrote {write_png(chart, args.out / f'{args.bench}-{number}.png')}")
        except PlotsUnavailable as exc:
            print(f"skipped the PNG files: {exc}")
            break


if __name__ == "__main__":
    main()
