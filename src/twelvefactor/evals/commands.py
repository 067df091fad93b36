"""The eval commands: ``twelvefactor eval``, ``twelvefactor replay`` and ``twelvefactor threads export``.

Registered by ``twelvefactor.cli``; the store and agent options behave as in its other commands.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from twelvefactor.evals.compare import Comparison, compare, load_result
from twelvefactor.evals.dataset import load_dataset
from twelvefactor.evals.export import thread_to_case
from twelvefactor.evals.replay import ReplayReport, replay_decisions
from twelvefactor.evals.report import write_html, write_json
from twelvefactor.evals.runner import EvalResult, run_eval

if TYPE_CHECKING:
    from twelvefactor.agent import Agent

_DEFAULT_DB = "twelvefactor.db"  # the same default as every other command (cli.DEFAULT_DB)
AgentArgument = Annotated[str, typer.Argument(metavar="AGENT", help="examples/deploybot, file.py:agent, pkg.mod:agent")]
DbOption = Annotated[
    str,
    typer.Option(
        "--db", metavar="PATH", help="Store: a SQLite file path or sqlite:///path, memory://, postgresql://..."
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        envvar="TWELVEFACTOR_MODEL",
        metavar="SPEC",
        help="Use this model instead of the agent's: openai:gpt-4o-mini, replay:CASSETTE.json ...",
    ),
]
OutputModeOption = Annotated[
    str | None,
    typer.Option("--output-mode", metavar="MODE", help="prompted, json_schema or tools (default: the agent's)"),
]
PromptOption = Annotated[
    Path | None,
    typer.Option("--prompt", metavar="FILE", help="Use this prompt template instead of the agent's (a prompt change)"),
]


def _changed_agent(agent_ref: str, model: str | None, prompt: Path | None, output_mode: str | None = None) -> Agent:
    """The agent with ``--model``/``--prompt``/``--output-mode`` applied to a copy: the change under test."""
    from twelvefactor._loader import load_agent
    from twelvefactor.cli import _with_overrides
    from twelvefactor.errors import UserError
    from twelvefactor.prompts import Prompt

    agent = _with_overrides(load_agent(agent_ref), model, output_mode)
    if prompt is not None:
        if not prompt.is_file():
            raise UserError(f"--prompt {str(prompt)!r}: there is no such file")
        agent = copy.copy(agent)
        agent.prompt = Prompt.from_file(prompt)
    return agent


def eval_command(
    agent_ref: AgentArgument,
    dataset_path: Annotated[
        Path, typer.Argument(metavar="DATASET", help="Cases: a .json, .jsonl or .toml file (see the README's Evals)")
    ],
    concurrency: Annotated[int, typer.Option(min=1, metavar="N", help="Cases run at once")] = 4,
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="Write the JSON result here")] = Path(
        "eval-result.json"
    ),
    html: Annotated[Path, typer.Option("--html", metavar="FILE", help="Write the HTML report here")] = Path(
        "eval-report.html"
    ),
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", metavar="FILE", help="A saved result to compare with; exit 1 on a regression"),
    ] = None,
    plots: Annotated[
        Path | None,
        typer.Option("--plots", metavar="DIR", help="Also write the report's charts as PNG files here (plots extra)"),
    ] = None,
    tolerance: Annotated[
        float, typer.Option(min=0, max=1, metavar="DELTA", help="A score drop this small is not a regression")
    ] = 0.0,
    timeout_s: Annotated[
        float | None, typer.Option("--timeout-s", min=0.001, metavar="SECONDS", help="Fail a case running longer")
    ] = None,
    model: ModelOption = None,
    prompt: PromptOption = None,
    output_mode: OutputModeOption = None,
) -> None:
    """Run AGENT on every case of DATASET, score each, write a JSON result and an HTML report.

    Exits 1 when a case fails, or with --baseline, only when a case regressed (passed before and fails now,
    or its score dropped).
    """
    from twelvefactor.cli import _one_line_errors, console

    with _one_line_errors():
        dataset = load_dataset(dataset_path)
        before = load_result(baseline) if baseline is not None else None
        agent = _changed_agent(agent_ref, model, prompt, output_mode)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(f"{agent.name} on {dataset.name}", total=len(dataset))
            result = run_eval(
                agent,
                dataset,
                concurrency=concurrency,
                timeout_s=timeout_s,
                on_result=lambda _: progress.advance(task),
            )
        comparison = compare(result, before, tolerance=tolerance) if before is not None else None
        write_json(result, out)
        write_html(result, html, comparison)
    console.print(_table(result, comparison))
    if plots is not None:
        _write_plots(result, plots, comparison)
    summary = result.summary
    line = f"{summary.passed}/{summary.cases} passed, mean score {summary.mean_score:.2f}, {summary.tokens} tokens"
    if summary.cost_usd is not None:
        line += f", ${summary.cost_usd:.6f}"
    console.print(f"{line}; result: {escape(str(out))}, report: {escape(str(html))}")
    if comparison is not None:
        regressions = comparison.regressions
        if regressions:
            names = ", ".join(change.id for change in regressions)
            console.print(
                f"[bold red]{len(regressions)} regression(s) against {escape(str(baseline))}:[/] {escape(names)}"
            )
            raise typer.Exit(1)
        console.print(f"[green]no regression against {escape(str(baseline))}[/]")
        return
    if not result.passed:
        raise typer.Exit(1)


def _write_plots(result: EvalResult, folder: Path, comparison: Comparison | None) -> None:
    """PNG charts beside the report; without matplotlib, one line says so and the run's verdict stands."""
    from twelvefactor.cli import console
    from twelvefactor.errors import PlotsUnavailable
    from twelvefactor.evals.plots import write_pngs

    try:
        written = write_pngs(result, folder, comparison)
    except PlotsUnavailable as exc:
        console.print(f"[yellow]skipped:[/] {escape(str(exc))}", soft_wrap=True)
        return
    except OSError as exc:
        where = escape(str(folder))
        console.print(f"[yellow]skipped PNG plots:[/] cannot write to {where}: {escape(str(exc.strerror))}")
        return
    console.print(f"{len(written)} PNG plots in {escape(str(folder))}")


def _table(result: EvalResult, comparison: Comparison | None) -> Table:
    table = Table("case", "result", "score", title=f"{result.agent} on {result.dataset} ({result.model})")
    if comparison is not None:
        table.add_column("baseline")
    for name in ("steps", "tokens", "cost", "ms", "why"):
        table.add_column(name, overflow="fold")
    for case in result.cases:
        change = comparison.of(case.id) if comparison is not None else None
        verdict = "[green]pass[/]" if case.passed else "[red]FAIL[/]"
        row = [escape(case.id), verdict, f"{case.score:.2f}"]
        if comparison is not None:
            row.append(_baseline_cell(change))
        cost = f"${case.cost_usd:.6f}" if case.cost_usd is not None else "-"
        why = escape("; ".join(case.reasons)[:300])
        row += [str(case.steps), str(case.tokens), cost, f"{case.latency_ms:.0f}", why]
        regressed = change is not None and change.change == "regressed"
        table.add_row(*row, style="on dark_red" if regressed else None)
    return table


def _baseline_cell(change: object) -> str:
    from twelvefactor.evals.compare import CaseChange

    if not isinstance(change, CaseChange) or change.was_score is None:
        return "new"
    was = f"{'pass' if change.was_passed else 'fail'} {change.was_score:.2f}"
    if change.change == "regressed":
        return f"[bold]REGRESSED[/] (was {was})"
    if change.change == "improved":
        return f"[green]improved[/] (was {was})"
    return was


def replay_command(
    thread_id: Annotated[str, typer.Argument(metavar="THREAD_ID", help="The stored thread whose decisions to replay")],
    agent_ref: Annotated[
        str, typer.Option("--agent", metavar="AGENT", help="The changed agent: examples/deploybot, file.py:agent ...")
    ],
    db: DbOption = _DEFAULT_DB,
    model: ModelOption = None,
    prompt: PromptOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON")] = False,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 when any decision diverges")] = False,
) -> None:
    """Ask the changed AGENT for each recorded decision of a thread again (no tool runs) and show where it differs."""
    from twelvefactor.cli import _one_line_errors, _store, console

    with _one_line_errors():
        thread = _store(db, existing=True).load(thread_id)
        agent = _changed_agent(agent_ref, model, prompt)
        report = replay_decisions(agent, thread)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        console.print(_replay_table(report))
        console.print(report.summary())
    if check and report.diverged:
        raise typer.Exit(1)


def _replay_table(report: ReplayReport) -> Table:
    table = Table("event", "recorded", "new", "same", title=f"thread {report.thread_id} under {report.agent}")
    for decision in report.decisions:
        same = "[green]yes[/]" if decision.same else "[bold red]NO[/]"
        table.add_row(str(decision.index), escape(str(decision.recorded)), escape(str(decision.new)), same)
    return table


def threads_export(
    thread_id: Annotated[str, typer.Argument(metavar="ID", help="The thread's id (see `threads ls`)")],
    as_case: Annotated[bool, typer.Option("--as-case", help="As an eval case (input, answers, expectations)")] = False,
    case_id: Annotated[str | None, typer.Option("--id", metavar="CASE_ID", help="The case's id")] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="On one line, to append to a .jsonl dataset")] = False,
    db: DbOption = _DEFAULT_DB,
) -> None:
    """Print a stored thread as JSON, or with --as-case as an eval case to edit and add to a dataset."""
    from twelvefactor.cli import _one_line_errors, _store

    with _one_line_errors():
        thread = _store(db, existing=True).load(thread_id)
        data = (
            thread_to_case(thread, case_id=case_id).model_dump(mode="json", exclude_defaults=True)
            if as_case
            else thread.model_dump(mode="json")
        )
    typer.echo(json.dumps(data, ensure_ascii=False, indent=None if jsonl else 2))
