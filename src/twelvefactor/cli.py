"""The ``twelvefactor`` command: run agents at the terminal, read threads, render prompts."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from twelvefactor import __version__
from twelvefactor._loader import load_agent, load_target
from twelvefactor.agent import Agent
from twelvefactor.errors import TwelveFactorError, UnknownAgentError, UserError
from twelvefactor.evals import commands as eval_commands
from twelvefactor.events import (
    Compaction,
    Done,
    Error,
    Event,
    HumanRequest,
    HumanResponse,
    ModelCall,
    ToolCall,
    ToolResult,
    ToolStarted,
    UserMessage,
    Wait,
)
from twelvefactor.loop import run as run_loop
from twelvefactor.models.base import OutputMode
from twelvefactor.retrieval.cli import docs_app
from twelvefactor.store import ThreadStore, open_store
from twelvefactor.thread import Status, Thread
from twelvefactor.workers.leases import DEFAULT_LEASE_S, Leases, new_owner
from twelvefactor.workflows import Workflow

if TYPE_CHECKING:
    from pydantic import ValidationError


class _PlainTypes:
    """Help without Typer's ``<str>``/``<bool>`` labels: each option shows its metavar (``--db PATH``), flags
    and arguments nothing; the help text says the rest."""

    # ``Any``: Typer may vendor its own copy of click, whose Context and Parameter these are.
    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if type(param) is TyperArgument:
                param.__class__ = _Argument
            elif type(param) is TyperOption:
                param.__class__ = _Option
        return params


class _Argument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class _Option(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None if self.is_flag else self.metavar


class _Command(_PlainTypes, TyperCommand):
    pass


class _Group(_PlainTypes, TyperGroup):
    pass


app = typer.Typer(
    cls=_Group, no_args_is_help=True, add_completion=False, help="Reliable LLM agents, the 12-factor way."
)
threads_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Read the threads in the store.")
prompt_app = typer.Typer(cls=_Group, no_args_is_help=True, help="See the exact text a model gets.")
app.add_typer(threads_app, name="threads")
app.add_typer(prompt_app, name="prompt")
for _docs_command in docs_app.registered_commands:  # retrieval's commands, with the same plain help
    _docs_command.cls = _Command
app.add_typer(docs_app, name="docs", cls=_Group)

# emoji=False: event text is printed as is ("openai:m: ..." is a model name, not an emoji code).
console = Console(highlight=False, emoji=False)
errors = Console(stderr=True, highlight=False, emoji=False)
DEFAULT_DB = "twelvefactor.db"
DbOption = Annotated[
    str,
    typer.Option(
        "--db", metavar="PATH", help="Store: a SQLite file path or sqlite:///path, memory://, postgresql://..."
    ),
]
OutputModesOption = Annotated[
    str | None,
    typer.Option("--output-mode", metavar="MODE", help="prompted, json_schema or tools (default: each agent's)"),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="TWELVEFACTOR_CONFIG",
        metavar="FILE",
        help="TOML file with channels, contacts, routes, schedules, webhook triggers and webhooks"
        ' (secrets as "${ENV_VAR}", read from the environment)',
    ),
]


LeaseOption = Annotated[
    float,
    typer.Option(
        "--lease-s",
        envvar="TWELVEFACTOR_LEASE_S",
        metavar="SECONDS",
        min=0.1,
        help="Seconds a thread stays with a process that stopped renewing its lease (renewed every lease/4);"
        " after a crash another process takes over within about this long",
    ),
]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"twelvefactor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    """Reliable LLM agents, the 12-factor way."""


def _fail(message: str) -> NoReturn:
    """End the command with one red line (never wrapped: it is one line to read or to grep) and status 1."""
    errors.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(1)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Errors twelvefactor raises on purpose carry their fix in the message: show that, not a traceback."""
    try:
        yield
    except TwelveFactorError as exc:
        _fail(str(exc))


def _shown(db: str) -> str:
    """The ``--db`` value for a status line: a database URL's password masked."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(db)
    try:
        password = parts.password
    except ValueError:
        password = None
    if not password:
        return db
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _sqlite_file(db: str) -> Path | None:
    """The file a ``--db`` value names; None for in-memory stores and for forms open_store rejects itself."""
    if db.startswith("sqlite:///"):
        db = db.removeprefix("sqlite:///")
        return None if db in ("", ":memory:") or "?" in db else Path(db)
    return None if "://" in db or not db.strip() else Path(db)


def _check_db(db: str, *, existing: bool = False) -> None:
    """Refuse a ``--db`` that cannot work before SQLite says "unable to open database file", and never let a
    read command create an empty database from a mistyped path."""
    path = _sqlite_file(db)
    if path is None:
        return
    if not path.parent.is_dir():
        raise UserError(
            f"--db {db!r}: the folder {str(path.parent)!r} does not exist;"
            f" create it (mkdir -p {shlex.quote(str(path.parent))}) or pick another path"
        )
    if existing and not path.is_file():
        raise UserError(
            f"no store at {str(path)!r}: check --db (it defaults to ./{DEFAULT_DB}, in the current folder);"
            " a store is created by the first `twelvefactor run` or `serve` that uses it"
        )


def _store(db: str, *, existing: bool = False) -> ThreadStore:
    _check_db(db, existing=existing)
    try:
        return open_store(db)
    except sqlite3.Error as exc:
        raise UserError(f"cannot open the store --db {db!r}: {exc}") from exc


def _first_error(exc: ValidationError) -> str:
    """``where: what`` for the first problem pydantic found (its own first line only says how many)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the top level"
    more = exc.error_count() - 1
    return f"{where}: {first['msg']}" + (f" (and {more} more)" if more else "")


def show_event(event: Event, *, verbose: bool = False) -> None:
    """One line (or block) per event as it happens."""
    if isinstance(event, ModelCall):
        if verbose:
            console.print(f"[dim]  model {escape(_accounting(event))}[/dim]")
            if event.context_tokens:
                sections = ", ".join(f"{name} {tokens}" for name, tokens in event.context_tokens.items())
                console.print(f"[dim]  window {event.estimated_input_tokens} tokens estimated: {sections}[/dim]")
        return
    if isinstance(event, ToolStarted) and not verbose:
        return  # bookkeeping for crash recovery
    style, label, body = _describe(event)
    console.print(f"[{style}]{label:>15}[/{style}] {escape(body)}")


def _accounting(call: ModelCall) -> str:
    """``name: in→out tokens, latency, cost[, finish reason]`` for one model call."""
    parts = [
        f"{call.input_tokens if call.input_tokens is not None else '?'}→"
        f"{call.output_tokens if call.output_tokens is not None else '?'} tokens",
        f"{call.latency_ms:.1f} ms",
    ]
    if call.cost_usd is not None:
        parts.append(f"${call.cost_usd:.6f}")
    if call.finish_reason not in (None, "stop", "end_turn", "tool_calls", "tool_use"):
        parts.append(f"stopped: {call.finish_reason}")
    return f"{call.model}: {', '.join(parts)}"


def _totals(thread: Thread) -> str | None:
    calls = [e for e in thread.events if isinstance(e, ModelCall)]
    if not calls:
        return None
    tokens_in = sum(c.input_tokens or 0 for c in calls)
    tokens_out = sum(c.output_tokens or 0 for c in calls)
    costs = [c.cost_usd for c in calls if c.cost_usd is not None]
    cost = f", ${sum(costs):.6f}" + ("" if len(costs) == len(calls) else f" ({len(calls) - len(costs)} unpriced)")
    seconds = sum(c.latency_ms for c in calls) / 1000
    return (
        f"{len(calls)} model call{'s' if len(calls) != 1 else ''}: {tokens_in} input + {tokens_out} output tokens"
        f"{cost if costs else ''}, {seconds:.2f} s in the model"
    )


def _describe(event: Event) -> tuple[str, str, str]:
    if isinstance(event, UserMessage):
        return "bold", "user", event.content
    if isinstance(event, ToolCall):
        return "cyan", "tool call", f"{event.intent} {json.dumps(event.arguments)}"
    if isinstance(event, ToolResult):
        return "green", "tool result", json.dumps(event.result)
    if isinstance(event, Error):
        return "red", f"{event.source} error", event.message
    if isinstance(event, HumanRequest):
        return "yellow", f"needs {event.kind}", event.question
    if isinstance(event, HumanResponse):
        verdict = {True: "approved", False: "denied", None: "answered"}[event.approved]
        return "yellow", verdict, event.text or ""
    if isinstance(event, Done):
        return "bold green", "done", event.message
    if isinstance(event, Wait):
        what = f"until {event.until.isoformat(timespec='seconds')}" if event.until else f"on thread {event.thread_id}"
        return "yellow", "waiting", what
    if isinstance(event, Compaction):
        spans = ", ".join(f"#{r.first}" if r.first == r.last else f"#{r.first}-#{r.last}" for r in event.replacements)
        return "blue", "compaction", f"{event.policy}: {event.tokens_before}→{event.tokens_after} tokens ({spans})"
    return "magenta", event.type, json.dumps(event.model_dump(mode="json", exclude={"type", "at"}))


def ask_human(request: HumanRequest) -> HumanResponse | None:
    """Ask at the terminal; None when there is no one to answer (end of input)."""
    try:
        if request.kind == "approval":
            answer = typer.prompt("Approve? [y/n]", default="n").strip().lower()
            if answer in ("y", "yes"):
                return HumanResponse(request_id=request.call_id, approved=True, responder="cli")
            reason = typer.prompt("Reason for denying", default="", show_default=False)
            return HumanResponse(request_id=request.call_id, approved=False, text=reason or None, responder="cli")
        text = typer.prompt("Your answer").strip()
        return HumanResponse(request_id=request.call_id, text=text, responder="cli")
    except (EOFError, typer.Abort):
        typer.echo()  # end the unanswered prompt's line
        return None


@app.command(cls=_Command)
def run(
    agent_ref: Annotated[str, typer.Argument(metavar="AGENT", help="examples/deploybot, file.py:agent, pkg.mod:agent")],
    message: Annotated[str | None, typer.Argument(metavar="MESSAGE", help="What to ask the agent")] = None,
    thread_id: Annotated[str | None, typer.Option("--thread", metavar="ID", help="Continue this stored thread")] = None,
    db: DbOption = DEFAULT_DB,
    max_steps: Annotated[
        int | None,
        typer.Option(metavar="N", help="Model steps allowed since a person last spoke (default: the agent's)"),
    ] = None,
    lease_s: LeaseOption = DEFAULT_LEASE_S,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show each model call")] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            envvar="TWELVEFACTOR_MODEL",
            metavar="SPEC",
            help="Use this model instead of the agent's: openai:gpt-4o-mini, anthropic:MODEL, ollama:MODEL,"
            " replay:CASSETTE.json ... (or TWELVEFACTOR_MODEL)",
        ),
    ] = None,
    output_mode: Annotated[
        str | None,
        typer.Option("--output-mode", metavar="MODE", help="prompted, json_schema or tools (default: the agent's)"),
    ] = None,
) -> None:
    """Run AGENT (or a workflow) until it is done or needs a human; answer it here, at the terminal."""
    with _one_line_errors():
        target = load_target(agent_ref)
        if isinstance(target, Workflow):
            _run_workflow(target, agent_ref, message, thread_id, db, lease_s, verbose)
            return
        agent = _with_overrides(target, model, output_mode)
        store = _store(db)
        if thread_id is not None:
            _check_agent(agent, store.load(thread_id))  # before anything is asked or recorded
        leases = Leases(store, new_owner("cli"), lease_s)
        leases.start()
        try:
            if thread_id is not None:
                leases.claim_or_raise(thread_id)  # before anything is added to it
            thread = _start(agent, store, message, thread_id)
            for event in thread.events:
                show_event(event, verbose=verbose)
            resume = _resume_command(agent_ref, thread.id, db)
            thread = _drive(agent, store, leases, thread, max_steps=max_steps, verbose=verbose, resume=resume)
        finally:
            leases.stop()
    console.print(f"[dim]thread {thread.id} is {thread.status} (store: {_shown(db)})[/dim]")
    if thread.status == "failed":
        raise typer.Exit(1)
    _fail_if_escalated(thread, resume)


def _run_workflow(
    flow: Workflow, ref: str, message: str | None, thread_id: str | None, db: str, lease_s: float, verbose: bool
) -> None:
    """``twelvefactor run`` for a workflow: its sub-agents run here too; people answer at the terminal,
    and a durable timer is waited out (Ctrl-C leaves it waiting: any process continues it later)."""
    store = _store(db)
    if thread_id is not None:
        thread = store.load(thread_id)
        if thread.agent != flow.name:
            raise UserError(f"thread {thread_id!r} belongs to {thread.agent!r}, not to workflow {flow.name!r}")
    else:
        thread = flow.new_thread(message or "")
    for event in thread.events:
        show_event(event, verbose=verbose)
    resume = _resume_command(ref, thread.id, db)
    leases = Leases(store, new_owner("cli"), lease_s)
    leases.start()
    try:
        thread = _drive_workflow(flow, store, leases, thread, verbose=verbose, resume=resume)
    finally:
        leases.stop()
    console.print(f"[dim]thread {thread.id} is {thread.status} (store: {_shown(db)})[/dim]")
    if thread.status == "failed":
        raise typer.Exit(1)


def _drive_workflow(
    flow: Workflow, store: ThreadStore, leases: Leases, thread: Thread, *, verbose: bool, resume: str
) -> Thread:
    import time
    from datetime import UTC, datetime

    from twelvefactor.workflows import run_workflow

    def on_event(event: Event) -> None:
        show_event(event, verbose=verbose)

    while True:
        leases.claim_or_raise(thread.id)
        try:
            thread = run_workflow(flow, thread, store=store, on_event=on_event)
        finally:
            leases.release(thread.id)
        waiting = thread.waiting_on
        target, request = thread, waiting if isinstance(waiting, HumanRequest) else None
        if isinstance(waiting, Wait) and waiting.thread_id is not None:
            target = store.load(waiting.thread_id)
            request = target.pending_request
            if request is not None:
                console.print(f"[dim]sub-agent {escape(str(target.agent))} (thread {target.id}) asks:[/dim]")
        elif isinstance(waiting, Wait) and waiting.until is not None:
            seconds = (waiting.until - datetime.now(UTC)).total_seconds()
            with console.status(
                f"sleeping until {waiting.until.isoformat(timespec='seconds')} (Ctrl-C leaves it"
                f" waiting; continue with: {resume})"
            ):
                time.sleep(max(0.0, seconds))
            continue
        if request is None:
            return thread
        response = ask_human(request)
        if response is None:
            console.print(f"[dim]left waiting; continue with: {escape(resume)}[/dim]", soft_wrap=True)
            return thread
        store.respond(target.id, response)
        show_event(response)
        thread = store.load(thread.id)


def _check_agent(agent: Agent, thread: Thread) -> None:
    """A thread continues with the agent that started it: another's tools would not match its history."""
    if thread.agent is not None and thread.agent != agent.name:
        raise UserError(
            f"thread {thread.id!r} belongs to agent {thread.agent!r}, not {agent.name!r}:"
            f" continue it with {thread.agent!r} (twelvefactor run AGENT --thread {thread.id})"
        )


def _resume_command(agent_ref: str, thread_id: str, db: str) -> str:
    """The exact command that continues this thread from the same folder."""
    words = ["twelvefactor", "run", agent_ref, "--thread", thread_id]
    return shlex.join(words if db == DEFAULT_DB else [*words, "--db", db])


def _fail_if_escalated(thread: Thread, resume: str) -> None:
    """A run that stopped on repeated errors (an unreachable model, a bad key) did not do its job: exit 1."""
    request = thread.pending_request
    if request is None or not request.escalation:
        return
    last = next((e.message for e in reversed(thread.events) if isinstance(e, Error)), request.question)
    _fail(f"the run stopped after repeated errors (the last: {last}); fix the cause, then continue with: {resume}")


def _with_overrides(agent: Agent, model: str | None, output_mode: str | None) -> Agent:
    """The agent with --model / --output-mode applied to a copy (the loaded agent stays as its module defines it)."""
    if not model and not output_mode:
        return agent
    import copy

    agent = copy.copy(agent)
    if model:
        from twelvefactor.models.resolve import resolve_model

        agent.model = resolve_model(model)
    if output_mode:
        agent.output_mode = _output_mode(output_mode)
    return agent


def _output_mode(value: str) -> OutputMode:
    from typing import get_args

    from twelvefactor.errors import UserError

    modes = get_args(OutputMode)
    if value not in modes:
        raise UserError(f"--output-mode {value!r} is not one of {', '.join(modes)}")
    return value  # type: ignore[return-value]


def _start(agent: Agent, store: ThreadStore, message: str | None, thread_id: str | None) -> Thread:
    from twelvefactor.thread import reduce

    if thread_id is None:
        if not message:
            raise typer.BadParameter("give a MESSAGE, or --thread ID to continue a thread")
        return agent.new_thread(message)
    thread = store.load(thread_id)
    if message:
        thread = reduce(thread, UserMessage(content=message))
    return thread


def _drive(
    agent: Agent,
    store: ThreadStore,
    leases: Leases,
    thread: Thread,
    *,
    max_steps: int | None,
    verbose: bool,
    resume: str,
) -> Thread:
    def on_event(event: Event) -> None:
        show_event(event, verbose=verbose)

    thread_id = thread.id
    while True:
        if thread.status == "running":
            # Held only while advancing: a server may take an answer given on the web while we wait here.
            leases.claim_or_raise(thread.id)
            try:
                thread = run_loop(
                    agent,
                    thread,
                    store=store,
                    on_event=on_event,
                    max_steps=max_steps,
                    should_stop=lambda: thread_id in leases.lost,
                )
            finally:
                leases.release(thread.id)
        request = thread.pending_request
        if request is None:
            return thread
        response = ask_human(request)
        if response is None:
            if not request.escalation:  # an escalation is reported as the error it is
                console.print(f"[dim]left waiting; continue with: {escape(resume)}[/dim]", soft_wrap=True)
            return thread
        thread = store.respond(thread.id, response)
        show_event(response)


@threads_app.command("ls", cls=_Command)
def threads_ls(
    db: DbOption = DEFAULT_DB,
    agent: Annotated[str | None, typer.Option(metavar="NAME", help="Only this agent's threads")] = None,
    status: Annotated[
        Status | None, typer.Option(metavar="STATUS", help="Only threads that are running, waiting, done or failed")
    ] = None,
    limit: Annotated[int, typer.Option(metavar="N", min=1, help="Show at most this many threads")] = 50,
) -> None:
    """List threads, newest first."""
    with _one_line_errors():
        rows = _store(db, existing=True).list(agent=agent, status=status, limit=limit)
    if not rows:
        console.print("No threads.")
        return
    # The store lists newest first by creation: that is the time shown, so the order can be read off it.
    table = Table(Column("id", no_wrap=True), "agent", "status", "events", "created")
    for row in rows:
        created = row.created_at.strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(row.id, row.agent or "", row.status, str(row.version), created)
    console.print(table)


@app.command("usage", cls=_Command)
def usage_command(
    db: DbOption = DEFAULT_DB,
    days: Annotated[int, typer.Option(metavar="N", min=1, max=366, help="The last N UTC days, today included")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="The rows as JSON")] = False,
) -> None:
    """Tokens and cost of model calls per agent and day (calls of unknown cost counted, never as free)."""
    from twelvefactor.store.usage import as_json as usage_json
    from twelvefactor.store.usage import usage

    with _one_line_errors():
        rows = usage(_store(db, existing=True), days=days)
    if as_json:
        typer.echo(usage_json(rows))
        return
    if not rows:
        console.print(f"No model calls in the last {days} days.")
        return
    table = Table("day", "agent", Column("calls", justify="right"), Column("tokens in", justify="right"),
                  Column("cached", justify="right"), Column("tokens out", justify="right"),
                  Column("cost", justify="right"))  # fmt: skip
    for row in rows:
        unpriced = f" (+{row.unpriced_calls} unpriced)" if row.unpriced_calls else ""
        table.add_row(
            row.day.isoformat(), row.agent or "", str(row.calls), f"{row.input_tokens:,}",
            f"{row.cached_input_tokens:,}", f"{row.output_tokens:,}", f"${row.cost_usd:.4f}{unpriced}",
        )  # fmt: skip
    console.print(table)


@threads_app.command("complete", cls=_Command)
def threads_complete(
    thread_id: Annotated[str, typer.Argument(metavar="ID", help="The thread's id (see `threads ls`)")],
    call_id: Annotated[str, typer.Argument(metavar="CALL", help="The pending tool call's id (see `threads show`)")],
    result: Annotated[str | None, typer.Argument(metavar="RESULT_JSON", help="What the tool returned, as JSON")] = None,
    error: Annotated[
        str | None, typer.Option("--error", metavar="TEXT", help="Instead of a result: why the tool failed")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Complete the pending call of an external tool (one without run()) with its result, or --error."""
    if (result is None) == (error is None):
        _fail("give the tool's RESULT_JSON, or --error TEXT (one of the two)")
    value: Any = None
    if result is not None:
        try:
            value = json.loads(result)
        except ValueError as exc:
            _fail(f'RESULT_JSON is not JSON ({exc}): quote it for the shell, e.g. \'{{"name": "Ada"}}\'')
    with _one_line_errors():
        from twelvefactor.loop import complete_tool_call

        thread = complete_tool_call(_store(db, existing=True), thread_id, call_id, result=value, error=error)
    show_event(thread.events[-1])
    console.print(f"[dim]continue with: twelvefactor run AGENT --thread {thread.id} --db {db}[/dim]")


@threads_app.command("show", cls=_Command)
def threads_show(
    thread_id: Annotated[str, typer.Argument(metavar="ID", help="The thread's id (see `threads ls`)")],
    db: DbOption = DEFAULT_DB,
    context: Annotated[
        bool, typer.Option("--context", help="Print the exact messages sent at each model call")
    ] = False,
    agent_ref: Annotated[
        str | None,
        typer.Option(
            "--agent",
            metavar="FILE",
            help="Agent whose prompt renders the context (default: the agent the thread ran with, by name)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The thread as JSON")] = False,
    calls: Annotated[
        bool, typer.Option("--calls", help="Print the exact request body each model call sent, with its accounting")
    ] = False,
) -> None:
    """Show one thread: its events, status and model calls (and with --context, what each call saw)."""
    with _one_line_errors():
        thread = _store(db, existing=True).load(thread_id)
        agent = _context_agent(thread, agent_ref) if context else None
    if as_json:
        typer.echo(thread.model_dump_json(indent=2))
        return
    console.print(
        f"[bold]thread {thread.id}[/bold]  agent={thread.agent}  status={thread.status}  version={thread.version}"
    )
    for index, event in enumerate(thread.events):
        if context and isinstance(event, ModelCall):
            _print_context(agent, thread.at(index))
        show_event(event, verbose=True)
        if calls and isinstance(event, ModelCall):
            _print_request(thread, index)
    totals = _totals(thread)
    if totals:
        console.print(f"[dim]{totals}[/dim]")


def _context_agent(thread: Thread, agent_ref: str | None) -> Agent | None:
    """The agent whose prompt renders the thread: ``--agent``, else the one named on the thread."""
    if agent_ref is not None:
        return load_agent(agent_ref)
    if thread.agent is None:
        return None  # the bare context format is all there is to show
    try:
        return load_agent(thread.agent)
    except UnknownAgentError as exc:
        raise UnknownAgentError(
            f"thread {thread.id!r} ran with agent {thread.agent!r}, which is not found from here by that name:"
            " pass --agent FILE (its file or folder) to render the context with its prompt"
        ) from exc


def _print_request(thread: Thread, index: int) -> None:
    from twelvefactor.sent import sent_request

    console.rule(f"request body of the model call at event {index}")
    body = sent_request(thread, index)  # the stored body with the messages put back in (kept once, in `sent`)
    if body is None:
        typer.echo("(not recorded: a test double, or an agent with record_requests=False)")
    else:
        typer.echo(json.dumps(body, indent=2, ensure_ascii=False))
    console.rule()


def _print_context(agent: Agent | None, before: Thread) -> None:
    from twelvefactor.context import XmlFormat

    console.rule(f"context at event {before.version}")
    if agent is None:
        typer.echo(XmlFormat().render(before.events))
    else:
        for message in agent.render(before):
            console.print(f"[dim]--- {message.role} ---[/dim]")
            typer.echo(message.content)
    console.rule()


@threads_app.command("delete", cls=_Command)
def threads_delete(
    thread_id: Annotated[str, typer.Argument(metavar="ID", help="The thread's id (see `threads ls`)")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Delete a thread for good: its events, lease and idempotency keys (not while it is running)."""
    with _one_line_errors():
        from twelvefactor.store.retention import delete_thread

        delete_thread(_store(db, existing=True), thread_id)
    console.print(f"Deleted thread {escape(thread_id)}.")


@threads_app.command("prune", cls=_Command)
def threads_prune(
    older_than: Annotated[
        float,
        typer.Option("--older-than", metavar="DAYS", min=0, help="Delete finished threads not updated for DAYS days"),
    ],
    agent: Annotated[str | None, typer.Option(metavar="NAME", help="Only this agent's threads")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Delete done and failed threads last updated more than DAYS days ago; never a running or waiting one."""
    with _one_line_errors():
        from twelvefactor.store.retention import prune_older_than

        pruned = prune_older_than(_store(db, existing=True), older_than, agent=agent)
    console.print(f"Deleted {pruned} finished thread{'' if pruned == 1 else 's'} older than {older_than:g} days.")


@prompt_app.command("render", cls=_Command)
def prompt_render(
    agent_ref: Annotated[str, typer.Argument(metavar="AGENT", help="examples/deploybot, file.py:agent, pkg.mod:agent")],
    thread_file: Annotated[
        Path | None, typer.Option("--thread", metavar="FILE", help="A thread JSON file (threads show ID --json)")
    ] = None,
    message: Annotated[
        str | None, typer.Option("--message", metavar="TEXT", help="Render for a new thread with this message")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The messages as JSON")] = False,
) -> None:
    """Print the exact messages a model would get for a thread: nothing hidden, nothing added."""
    with _one_line_errors():
        agent = load_agent(agent_ref)
        thread = _thread_from_file(thread_file) if thread_file else agent.new_thread(message or "")
        messages = agent.render(thread)
    if as_json:
        typer.echo(json.dumps([m.model_dump() for m in messages], indent=2, ensure_ascii=False))
        return
    for message_ in messages:
        typer.echo(f"--- {message_.role} ---")
        typer.echo(message_.content)


def _thread_from_file(path: Path) -> Thread:
    from pydantic import ValidationError

    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        return Thread.model_validate(data)
    except OSError as exc:
        raise UserError(f"cannot read thread file {str(path)!r}: {exc.strerror}") from exc
    except (ValueError, ValidationError) as exc:
        problem = _first_error(exc) if isinstance(exc, ValidationError) else str(exc).splitlines()[0]
        raise UserError(
            f"{str(path)!r} is not a thread JSON file (twelvefactor threads show ID --json): {problem}"
        ) from exc


app.command("eval", cls=_Command)(eval_commands.eval_command)
app.command("replay", cls=_Command)(eval_commands.replay_command)
threads_app.command("export", cls=_Command)(eval_commands.threads_export)


def main() -> None:
    app(prog_name="twelvefactor")


@app.command(cls=_Command)
def serve(
    agent_refs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[AGENT]...",
            help="Agents and workflows to serve (default: the examples deploybot, calculator and release)",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(metavar="ADDRESS", help="Address to bind; beyond loopback, API tokens are required")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on")] = 8000,
    db: DbOption = DEFAULT_DB,
    api_token: Annotated[
        list[str] | None, typer.Option("--api-token", metavar="TOKEN", help="Accepted bearer token (repeat)")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(metavar="N", help="OS threads for synchronous tools and models"),
    ] = 16,
    max_in_flight: Annotated[
        int | None,
        typer.Option(
            "--max-in-flight",
            metavar="N",
            min=1,
            help="Threads advanced at once here (default 1000); rate limits per model are model_limits in --config",
        ),
    ] = None,
    lease_s: LeaseOption = DEFAULT_LEASE_S,
    queue: Annotated[
        str,
        typer.Option(
            "--queue",
            metavar="KIND",
            help="inprocess (default): advance threads here; procrastinate: enqueue jobs that"
            " `twelvefactor worker` processes run (needs --db postgresql://...)",
        ),
    ] = "inprocess",
    queue_worker: Annotated[
        bool, typer.Option("--queue-worker", help="With --queue procrastinate: also run a worker in this process")
    ] = False,
    webhook_url: Annotated[
        list[str] | None,
        typer.Option(
            "--webhook-url", metavar="URL", help="POST signed thread.waiting/done/failed events here (repeat)"
        ),
    ] = None,
    webhook_secret: Annotated[
        list[str] | None,
        typer.Option(
            "--webhook-secret",
            metavar="SECRET",
            help="whsec_<base64> signing secret: one for all URLs, or one per --webhook-url in order"
            " (prefer TWELVEFACTOR_WEBHOOK_SECRET: the command line is visible to other users)",
        ),
    ] = None,
    inbound_webhook_secret: Annotated[
        str | None,
        typer.Option(
            "--inbound-webhook-secret",
            metavar="SECRET",
            help="whsec_<base64> secret that enables POST /v1/webhooks/resume (or TWELVEFACTOR_INBOUND_WEBHOOK_SECRET)",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option("--public-url", metavar="URL", help="Base URL people reach this server at (approval links)"),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            envvar="TWELVEFACTOR_MODEL",
            metavar="SPEC",
            help="Serve every agent on this model (see `run --model`)",
        ),
    ] = None,
    output_mode: OutputModesOption = None,
    config: ConfigOption = None,
) -> None:
    """Serve agents over HTTP with the web UI (SQLite file and in-process worker by default)."""
    import uvicorn
    from pydantic import ValidationError

    from twelvefactor.server import ServerSettings, create_app
    from twelvefactor.server.config_file import load_config

    # By example name: found from any folder of a checkout.
    refs = agent_refs or ["deploybot", "calculator", "release"]
    try:
        _check_db(db)
        targets = [load_target(ref) for ref in refs]
        agents = [_with_overrides(t, model, output_mode) if isinstance(t, Agent) else t for t in targets]
        from_file = load_config(config) if config is not None else {}
        settings = ServerSettings.from_env(
            from_file,
            host=host,
            port=port,
            database=db,
            workers=workers,
            max_in_flight=max_in_flight,
            lease_s=lease_s,
            queue=queue,
            queue_worker=queue_worker,
            api_tokens=api_token,
            webhooks=_webhook_endpoints(webhook_url or [], webhook_secret or []),
            inbound_webhook_secret=inbound_webhook_secret,
            public_url=public_url,
        )
        application = create_app(agents, settings=settings)
    except TwelveFactorError as exc:
        _fail(str(exc))
    except ValidationError as exc:
        _fail(f"invalid setting {_first_error(exc)}")
    except sqlite3.Error as exc:
        _fail(f"cannot open the store --db {db!r}: {exc}")
    console.print(f"serving {', '.join(a.name for a in agents)} on http://{host}:{port} (store: {_shown(db)})")
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 1,
    )


@app.command("mcp", cls=_Command)
def mcp_command(
    agent_refs: Annotated[
        list[str], typer.Argument(metavar="AGENT", help="examples/deploybot, file.py:agent, pkg.mod:agent")
    ],
    db: DbOption = DEFAULT_DB,
    http: Annotated[
        int | None,
        typer.Option("--http", metavar="PORT", help="Serve streamable HTTP on 127.0.0.1:PORT (/mcp) instead of stdio"),
    ] = None,
    lease_s: LeaseOption = DEFAULT_LEASE_S,
) -> None:
    """Serve agents over MCP (stdio by default): any MCP client can launch, read and answer their threads."""
    try:
        from twelvefactor.mcp import serve_mcp
    except ImportError as exc:
        _fail(str(exc))
    with _one_line_errors():
        _check_db(db)
        agents = [load_agent(ref) for ref in agent_refs]
        store = _store(db)
    if http is not None:  # on stdio, stdout is the protocol's: nothing else may be printed there
        names = ", ".join(agent.name for agent in agents)
        errors.print(f"serving {names} over MCP on http://127.0.0.1:{http}/mcp (store: {_shown(db)})")
    with store, _one_line_errors():
        serve_mcp(agents, store, http_port=http, lease_s=lease_s)


def _webhook_endpoints(urls: list[str], secrets: list[str]) -> list[dict[str, str]] | None:
    """``--webhook-url``/``--webhook-secret`` pairs; None (keep the environment's) when no URL is given."""
    from twelvefactor.errors import UserError

    if not urls:
        if secrets:
            raise UserError("--webhook-secret was given without --webhook-url: add the URL it signs for")
        return None
    if not secrets:
        env_secret = os.environ.get("TWELVEFACTOR_WEBHOOK_SECRET")
        if not env_secret:
            raise UserError("--webhook-url needs a signing secret: --webhook-secret or TWELVEFACTOR_WEBHOOK_SECRET")
        secrets = [env_secret]
    if len(secrets) not in (1, len(urls)):
        raise UserError(
            f"{len(urls)} --webhook-url but {len(secrets)} --webhook-secret: give one secret for all, or one per URL"
        )
    pairs = zip(urls, secrets * len(urls) if len(secrets) == 1 else secrets, strict=True)
    return [{"url": url, "secret": secret} for url, secret in pairs]


@app.command(cls=_Command)
def worker(
    agent_refs: Annotated[
        list[str],
        typer.Argument(metavar="AGENT...", help="Agents and workflows whose threads this worker advances"),
    ],
    db: Annotated[
        str,
        typer.Option(
            "--db", envvar="TWELVEFACTOR_DATABASE", metavar="URL", help="The PostgreSQL store: postgresql://..."
        ),
    ],
    concurrency: Annotated[
        int,
        typer.Option(
            min=1, max=100_000, metavar="N", help="Threads advanced at once (waiting on a model holds no OS thread)"
        ),
    ] = 100,
    model: Annotated[
        str | None,
        typer.Option("--model", envvar="TWELVEFACTOR_MODEL", metavar="SPEC", help="Run every agent on this model"),
    ] = None,
    output_mode: OutputModesOption = None,
    config: ConfigOption = None,
) -> None:
    """Run a Procrastinate worker: advance the threads that `serve --queue procrastinate` enqueues."""
    if not db.startswith(("postgresql://", "postgres://")):
        _fail(f"a worker needs the PostgreSQL store (--db postgresql://...), not {db!r}")
    try:
        from twelvefactor.workers.procrastinate import run_worker
    except ImportError:
        _fail("workers need procrastinate: pip install 'twelvefactor[procrastinate]'")
    from pydantic import ValidationError

    from twelvefactor.calls import EventLoopCalls
    from twelvefactor.server.config_file import load_config
    from twelvefactor.server.settings import ServerSettings
    from twelvefactor.triggers.schedules import Schedule

    try:
        targets = [load_target(ref) for ref in agent_refs]
        agents = {t.name: _with_overrides(t, model, output_mode) if isinstance(t, Agent) else t for t in targets}
        # Webhook triggers are the web server's; a worker fires the schedules (once across workers).
        from_file = load_config(config) if config is not None else {}
        schedules = [Schedule.model_validate(item) for item in from_file.get("schedules", [])]
        for schedule in schedules:
            if schedule.agent not in agents:
                raise UserError(f"schedule {schedule.name!r} starts agent {schedule.agent!r}, which is not served here")
        # The same per-model limits and thread count as the web processes read from the file.
        settings = ServerSettings.from_env(from_file, database=db)
        calls = EventLoopCalls(limits=settings.model_limits, tool_threads=settings.workers)
    except TwelveFactorError as exc:
        _fail(str(exc))
    except ValidationError as exc:
        _fail(f"invalid configuration {_first_error(exc)}")
    console.print(f"worker for {', '.join(agents)} on {_shown(db)} ({concurrency} at once); Ctrl-C stops")
    try:
        run_worker(db, agents, concurrency=concurrency, schedules=schedules, calls=calls)
    except TwelveFactorError as exc:
        _fail(str(exc))
