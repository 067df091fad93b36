"""twelvefactor next to LangGraph and Pydantic AI on the same workload (figures, not a timed test).

Workload (as in bench/step_overhead.py): one run = 10 tool calls `add(a=i, b=i+1)`, then a final answer,
from an instant scripted model; warm up 10 runs, then time N runs. A "step" = one model call plus the
tool it asked for, 11 per run; its time is measured between the starts of consecutive model calls (the
first step starts with the run, the last ends with it). Two modes per framework:

  memory   twelvefactor: no store. LangGraph: compiled without a checkpointer. Pydantic AI: agent.run().
  durable  SQLite in a temp dir (WAL, synchronous=NORMAL for all three, as twelvefactor's SQLiteStore
           sets it); each step's model output is committed before its tool runs, the tool's result
           before the next model call. twelvefactor: SQLiteStore (an event row per commit). LangGraph:
           SqliteSaver, durability="sync" (not the default "async"): per superstep (agent, tools) the
           node's writes and a full checkpoint, each its own commit. Pydantic AI: agent.iter(); at every node
           boundary the messages not yet stored (including the tool-result request the next
           ModelRequestNode is about to send) go into a `messages` table, one row per message as
           ModelMessagesTypeAdapter.dump_json([message]), then commit.

Each framework runs in its own subprocess (so peak RSS and imports don't mix); import time is the median
of 5 fresh interpreters. "stored B/run" sums the value bytes of one run's rows (text/blob lengths, 8 per
integer, as SQLiteStore.bytes_for counts); "file KiB/run" is the closed database file / runs written.

    python bench/peers.py [--runs 200]            # all three, then ratios peer / twelvefactor
    python bench/peers.py --one langgraph [--json]
"""

import argparse
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

STEPS = 10
WARMUP = 10
FRAMEWORKS = ("twelvefactor", "langgraph", "pydantic_ai")
# What each workload imports (the SQLite piece included).
IMPORTS = {
    "twelvefactor": "import twelvefactor",
    "langgraph": "import langgraph.graph, langgraph.prebuilt, langgraph.checkpoint.sqlite, langchain_core.tools",
    "pydantic_ai": "import pydantic_ai, pydantic_ai.models.function",
}
PACKAGES = (
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langgraph-prebuilt",
    "langchain-core",
    "pydantic-ai-slim",
    "pydantic",
    "twelvefactor",
)


class Script:
    """Which step a run is on, and when each model call started."""

    def __init__(self) -> None:
        self.i = 0
        self.marks: list[float] = []

    def tick(self) -> int:
        self.marks.append(time.perf_counter())
        self.i += 1
        return self.i - 1


def split(t0: float, marks: list[float], t1: float) -> list[float]:
    assert len(marks) == STEPS + 1, len(marks)
    bounds = [t0, *marks[1:], t1]
    return [(b - a) * 1e6 for a, b in zip(bounds, bounds[1:], strict=False)]


def timed(runs: int, script: Script, one_run: Callable[[], None]) -> tuple[list[float], float]:
    per_step: list[float] = []
    started = time.perf_counter()
    for _ in range(runs):
        script.i, script.marks = 0, []
        t0 = time.perf_counter()
        one_run()
        per_step.extend(split(t0, script.marks, time.perf_counter()))
    return per_step, time.perf_counter() - started


def summary(per_step: list[float], total: float) -> dict[str, float]:
    cuts = statistics.quantiles(per_step, n=100)
    return {"p50": cuts[49], "p95": cuts[94], "mean": statistics.fmean(per_step), "total_ms": total * 1000}


def value_bytes(conn: sqlite3.Connection, table: str, column: str, key: str) -> int:
    """Bytes of the values in a run's rows: text as UTF-8, blobs as is, 8 per integer."""
    total = 0
    for row in conn.execute(f"SELECT * FROM {table} WHERE {column} = ?", (key,)):
        for v in row:
            total += len(v.encode()) if isinstance(v, str) else len(v) if isinstance(v, bytes) else 8 * (v is not None)
    return total


def durable_conn(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def file_bytes(tmp: str) -> int:
    return sum(p.stat().st_size for p in Path(tmp).iterdir())


# --- twelvefactor: the loop of bench/step_overhead.py ---------------------------------------------------


def bench_twelvefactor(runs: int) -> dict[str, Any]:
    from step_overhead import measure  # bench/ is sys.path[0] when this file runs as a script

    from twelvefactor import SQLiteStore

    out: dict[str, Any] = {}
    measure(WARMUP, None)
    out["memory"] = summary(*measure(runs, None))
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "bench.db")
        measure(WARMUP, store)
        out["durable"] = summary(*measure(runs, store))
        out["durable"]["row_bytes"] = store.bytes_for(store.list(limit=1)[0].id)
        store.close()
        out["durable"]["file_bytes_per_run"] = file_bytes(tmp) / (runs + WARMUP)
    return out


# --- LangGraph: StateGraph(agent node + ToolNode, tools_condition) -----------------------------------


def bench_langgraph(runs: int) -> dict[str, Any]:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool
    from langchain_core.utils.function_calling import convert_to_openai_tool
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    script = Script()

    class ScriptedChat(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "scripted"

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:  # as the real chat models do
            return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
            i = script.tick()
            if i < STEPS:
                call = {"name": "add", "args": {"a": i, "b": i + 1}, "id": f"call_{i}", "type": "tool_call"}
                message = AIMessage(content="", tool_calls=[call])
            else:
                message = AIMessage(content="done")
            return ChatResult(generations=[ChatGeneration(message=message)])

    @tool
    def add(a: int, b: int) -> int:
        """Add b to a."""
        return a + b

    model = ScriptedChat().bind_tools([add])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([add]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")

    last: list[str] = []

    def runner(graph: Any, durable: bool) -> Callable[[], None]:
        def one_run() -> None:
            config: Any = {"recursion_limit": 100}
            if durable:  # a new thread per run; checkpoints written before the next superstep starts
                last[:] = [uuid.uuid4().hex]
                config["configurable"] = {"thread_id": last[0]}
                state = graph.invoke({"messages": [("user", "add numbers")]}, config, durability="sync")
            else:
                state = graph.invoke({"messages": [("user", "add numbers")]}, config)
            assert state["messages"][-1].content == "done"

        return one_run

    out: dict[str, Any] = {}
    memory_run = runner(builder.compile(), durable=False)
    timed(WARMUP, script, memory_run)
    out["memory"] = summary(*timed(runs, script, memory_run))
    with tempfile.TemporaryDirectory() as tmp:
        conn = durable_conn(Path(tmp) / "bench.db")
        durable_run = runner(builder.compile(checkpointer=SqliteSaver(conn)), durable=True)
        timed(WARMUP, script, durable_run)
        out["durable"] = summary(*timed(runs, script, durable_run))
        out["durable"]["row_bytes"] = sum(value_bytes(conn, t, "thread_id", last[0]) for t in ("checkpoints", "writes"))
        conn.close()
        out["durable"]["file_bytes_per_run"] = file_bytes(tmp) / (runs + WARMUP)
    return out


# --- Pydantic AI: Agent(FunctionModel) with a plain tool ----------------------------------------------


def bench_pydantic_ai(runs: int) -> dict[str, Any]:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    script = Script()

    # async, as a real model client is: a plain `def` would be sent to a worker thread on every call.
    async def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        i = script.tick()
        if i < STEPS:
            return ModelResponse(parts=[ToolCallPart("add", {"a": i, "b": i + 1}, tool_call_id=f"call_{i}")])
        return ModelResponse(parts=[TextPart("done")])

    agent = Agent(FunctionModel(scripted))

    @agent.tool_plain  # the same plain `def` as for the others (Pydantic AI runs it in a worker thread)
    def add(a: int, b: int) -> int:
        """Add b to a."""
        return a + b

    async def memory_run() -> None:
        result = await agent.run("add numbers")
        assert result.output == "done"

    async def durable_run(conn: sqlite3.Connection, run_id: str) -> None:
        saved = 0
        async with agent.iter("add numbers") as run:
            async for node in run:  # each node is yielded once the one before it has run
                messages = run.all_messages()
                if Agent.is_model_request_node(node):  # the request it will send (user prompt / tool results)
                    messages = [*messages, node.request]
                if len(messages) > saved:
                    rows = [
                        (run_id, saved + k, ModelMessagesTypeAdapter.dump_json([m]))
                        for k, m in enumerate(messages[saved:])
                    ]
                    conn.executemany("INSERT INTO messages (run_id, seq, data) VALUES (?, ?, ?)", rows)
                    conn.commit()
                    saved = len(messages)
        assert run.result is not None and run.result.output == "done"
        assert saved == len(run.all_messages()) == 2 * STEPS + 2, saved

    async def atimed(n: int, one_run: Callable[[], Any]) -> tuple[list[float], float]:
        per_step: list[float] = []
        started = time.perf_counter()
        for _ in range(n):
            script.i, script.marks = 0, []
            t0 = time.perf_counter()
            await one_run()
            per_step.extend(split(t0, script.marks, time.perf_counter()))
        return per_step, time.perf_counter() - started

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        await atimed(WARMUP, memory_run)
        out["memory"] = summary(*await atimed(runs, memory_run))
        with tempfile.TemporaryDirectory() as tmp:
            conn = durable_conn(Path(tmp) / "bench.db")
            conn.execute("CREATE TABLE messages (run_id TEXT, seq INTEGER, data BLOB, PRIMARY KEY (run_id, seq))")
            last: list[str] = []

            def one() -> Any:
                last[:] = [uuid.uuid4().hex]
                return durable_run(conn, last[0])

            await atimed(WARMUP, one)
            out["durable"] = summary(*await atimed(runs, one))
            out["durable"]["row_bytes"] = value_bytes(conn, "messages", "run_id", last[0])
            conn.close()
            out["durable"]["file_bytes_per_run"] = file_bytes(tmp) / (runs + WARMUP)
        return out

    import asyncio  # here, not at the top: the other frameworks' subprocesses should not pay for it

    return asyncio.run(main())


# --- driver --------------------------------------------------------------------------------------------

BENCHES: dict[str, Callable[[int], dict[str, Any]]] = {
    "twelvefactor": bench_twelvefactor,
    "langgraph": bench_langgraph,
    "pydantic_ai": bench_pydantic_ai,
}


def import_time_ms(framework: str, repeats: int = 5) -> float:
    code = f"import time; t = time.perf_counter(); {IMPORTS[framework]}; print(time.perf_counter() - t)"
    samples = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(repeats)]
    return statistics.median(samples) * 1000


def run_child(framework: str, runs: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", framework, "--json", "--runs", str(runs)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{framework} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["import_ms"] = import_time_ms(framework)
    return result


def print_table(results: dict[str, dict[str, Any]], runs: int) -> None:
    print(
        f"{'framework':<13} {'mode':<8} {'p50 µs/step':>12} {'p95 µs/step':>12} {'total ms':>9} "
        f"{'stored B/run':>13} {'file KiB/run':>13} {'import ms':>10} {'peak RSS MB':>12}"
    )
    for name, r in results.items():
        for mode in ("memory", "durable"):
            m = r[mode]
            stored = f"{m['row_bytes']:>13,}" if "row_bytes" in m else f"{'':>13}"
            file = f"{m['file_bytes_per_run'] / 1024:>13.1f}" if "file_bytes_per_run" in m else f"{'':>13}"
            first = mode == "memory"
            imp = f"{r['import_ms']:>10.1f}" if first and "import_ms" in r else f"{'':>10}"
            rss = f"{r['peak_rss_mb']:>12.1f}" if first else f"{'':>12}"
            print(
                f"{name if first else '':<13} {mode:<8} {m['p50']:>12.1f} {m['p95']:>12.1f} {m['total_ms']:>9.1f} "
                f"{stored} {file} {imp} {rss}"
            )
    print(f"(total ms = {runs} timed runs of {STEPS + 1} steps, after {WARMUP} warm-up runs)")


def print_ratios(results: dict[str, dict[str, Any]]) -> None:
    base = results["twelvefactor"]
    metrics: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
        ("p50 memory", lambda r: r["memory"]["p50"]),
        ("p50 durable", lambda r: r["durable"]["p50"]),
        ("import", lambda r: r["import_ms"]),
        ("peak RSS", lambda r: r["peak_rss_mb"]),
        ("stored B/run", lambda r: r["durable"]["row_bytes"]),
        ("file KiB/run", lambda r: r["durable"]["file_bytes_per_run"]),
    ]
    print("\nratio peer / twelvefactor (>1: the peer costs more)")
    print(f"{'':<13}" + "".join(f"{label:>14}" for label, _ in metrics))
    for name, r in results.items():
        if name != "twelvefactor":
            print(f"{name:<13}" + "".join(f"{get(r) / get(base):>13.2f}x" for _, get in metrics))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--one", choices=FRAMEWORKS, help="run one framework in this process")
    parser.add_argument("--json", action="store_true", help="with --one: print one JSON line")
    args = parser.parse_args()

    if args.one:
        result = BENCHES[args.one](args.runs)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if args.json:
            print(json.dumps(result))
        else:
            result["import_ms"] = import_time_ms(args.one)
            print_table({args.one: result}, args.runs)
        return

    # Only the parent reports versions; the measured subprocesses never load importlib.metadata.
    from importlib.metadata import PackageNotFoundError, version

    def pkg_version(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    print(f"python {sys.version.split()[0]}; " + ", ".join(f"{p} {pkg_version(p)}" for p in PACKAGES))
    print("import: " + "; ".join(f"{k}: `{v}`" for k, v in IMPORTS.items()) + " (median of 5 fresh interpreters)\n")
    results = {name: run_child(name, args.runs) for name in FRAMEWORKS}
    print_table(results, args.runs)
    print_ratios(results)


if __name__ == "__main__":
    main()
