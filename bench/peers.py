"""twelvefactor next to LangGraph, Pydantic AI and the OpenAI Agents SDK on one workload (figures, not a test).

Workload (as in bench/step_overhead.py): one run = 10 tool calls `add(a=i, b=i+1)`, then a final answer,
from an instant scripted model (no network); warm up 10 runs, then time N runs. A "step" = one model call
plus the tool it asked for, 11 per run; its time is measured between the starts of consecutive model calls
(the first step starts with the run, the last ends with it). The tool is a plain `def` in the sync forms
and an `async def` in the async ones, in every framework: what an async user writes, and what measures
the framework rather than a thread handoff (a sync tool on an event loop goes to a worker thread in all
four, ~0.1-0.25 ms on this machine). Pydantic AI sends even the sync forms' plain `def` to a worker thread.
Four modes per framework, all four in one subprocess per framework and round:

  memory         no store. twelvefactor run(); LangGraph invoke() compiled without a checkpointer;
                 Pydantic AI agent.run_sync(); Agents SDK Runner.run_sync().
  durable        SQLite in a temp dir, a new thread/session per run (durability settings below).
  memory-async   twelvefactor `await arun()`; LangGraph `await ainvoke()`; Pydantic AI `await agent.run()`;
                 Agents SDK `await Runner.run()`. Each in one asyncio.run() for all its runs.
  durable-async  the same with a store: twelvefactor arun(store=SQLiteStore), each store call in a thread;
                 LangGraph AsyncSqliteSaver (aiosqlite); Pydantic AI and the Agents SDK as in `durable`.
The scripted models answer on the event loop in the async forms (twelvefactor: `acomplete`; LangGraph:
`_agenerate`; Pydantic AI: an async FunctionModel; Agents SDK: `Model.get_response`, async in both forms).

Durable stores, all SQLite in WAL mode with synchronous=NORMAL (a commit survives a process crash; the last
commits may be lost to a power cut):
  twelvefactor   SQLiteStore as it ships (WAL + NORMAL are its own settings): an event row per commit; the
                 model's output is committed before its tool runs, the tool's result before the next call.
  LangGraph      SqliteSaver / AsyncSqliteSaver on a connection we open with WAL + NORMAL, durability="sync"
                 (not the default "async"): per superstep (agent, tools) the node's writes and a full
                 checkpoint, each its own commit, before the next superstep starts.
  Pydantic AI    no store of its own: agent.iter(); at every node boundary the messages not yet stored
                 (including the tool-result request the next ModelRequestNode will send) go into a `messages`
                 table, one row per message as ModelMessagesTypeAdapter.dump_json([message]), then commit
                 (sqlite3, on the event loop's thread). No sync iter() exists: the sync form drives the same
                 coroutine with loop.run_until_complete() per run, as run_sync() drives run().
  Agents SDK     SQLiteSession(session_id, db_path), one per run (opened and closed inside the timed run, as
                 its connections belong to the session). It sets WAL itself; synchronous=NORMAL is patched
                 into its (private) connection setup here; its default is FULL, an fsync per commit. It
                 commits the input, then per turn the function call and its output together, after the tool
                 ran: 12 commits per run, and a tool call is not stored before it runs. Each query runs in
                 asyncio.to_thread.

Rounds: each round runs every framework once, each in a fresh subprocess, interleaved (round k starts k
places later in the list), so a noisy neighbour hits all of them alike. Figures are medians over rounds;
a ratio is peer / twelvefactor within the same round, reported as the median of the rounds' ratios and their
min-max. Import time: one fresh interpreter per framework per round, median over rounds. "stored B/run" sums
the value bytes of one run's rows (text/blob lengths, 8 per integer, as SQLiteStore.bytes_for counts);
"file KiB/run" is the closed database file / runs written.

The peers live in their own venv so the project's stays clean:

    python3.11 -m venv /tmp/peers && /tmp/peers/bin/pip install -e '.[bench]'    # the peers, pinned from below
    /tmp/peers/bin/python bench/peers.py [--rounds 5] [--runs 200]
    /tmp/peers/bin/python bench/peers.py --one openai_agents [--json]     # one measurement
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
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

STEPS = 10
WARMUP = 10
FRAMEWORKS = ("twelvefactor", "langgraph", "pydantic_ai", "openai_agents")
MODES = ("memory", "durable", "memory-async", "durable-async")
DURABLE = ("durable", "durable-async")
# What each workload imports (the SQLite pieces included).
IMPORTS = {
    "twelvefactor": "import twelvefactor",
    "langgraph": "import langgraph.graph, langgraph.prebuilt, langgraph.checkpoint.sqlite, langchain_core.tools",
    "pydantic_ai": "import pydantic_ai, pydantic_ai.models.function",
    "openai_agents": "import agents, agents.memory",
}
PACKAGES = (
    "twelvefactor",
    "langgraph",
    "langgraph-checkpoint-sqlite",
    "langchain-core",
    "aiosqlite",
    "pydantic-ai-slim",
    "pydantic",
    "openai-agents",
    "openai",
)
DURABILITY = {
    "twelvefactor": "SQLiteStore: WAL, synchronous=NORMAL (its own); model output committed before its tool runs",
    "langgraph": 'SqliteSaver/AsyncSqliteSaver: WAL, synchronous=NORMAL (set here), durability="sync"',
    "pydantic_ai": "no store of its own: our sqlite3 table, WAL, synchronous=NORMAL, commit per node",
    "openai_agents": "SQLiteSession: WAL (its own), synchronous=NORMAL (patched in; its default is FULL); "
    "commits a call with its output, after the tool ran",
}

Summary = dict[str, Any]


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


async def atimed(runs: int, script: Script, one_run: Callable[[], Awaitable[None]]) -> tuple[list[float], float]:
    per_step: list[float] = []
    started = time.perf_counter()
    for _ in range(runs):
        script.i, script.marks = 0, []
        t0 = time.perf_counter()
        await one_run()
        per_step.extend(split(t0, script.marks, time.perf_counter()))
    return per_step, time.perf_counter() - started


def summary(per_step: list[float], total: float) -> Summary:
    cuts = statistics.quantiles(per_step, n=100)
    return {"p50": cuts[49], "p95": cuts[94], "mean": statistics.fmean(per_step), "total_ms": total * 1000}


def value_bytes(path: Path, tables: Sequence[str], column: str, key: str) -> int:
    """Bytes of the values in a run's rows: text as UTF-8, blobs as is, 8 per integer."""
    total = 0
    conn = sqlite3.connect(path)
    for table in tables:
        for row in conn.execute(f"SELECT * FROM {table} WHERE {column} = ?", (key,)):
            for v in row:
                total += (
                    len(v.encode()) if isinstance(v, str) else len(v) if isinstance(v, bytes) else 8 * (v is not None)
                )
    conn.close()
    return total


def durable_conn(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def file_bytes_per_run(tmp: str, runs: int) -> float:
    return sum(p.stat().st_size for p in Path(tmp).iterdir()) / (runs + WARMUP)


# --- twelvefactor: the loop of bench/step_overhead.py, and its async twin --------------------------------


def bench_twelvefactor(runs: int) -> dict[str, Summary]:
    from step_overhead import TimedModel, measure, workload  # bench/ is sys.path[0] when run as a script

    import twelvefactor
    from twelvefactor import SQLiteStore

    out: dict[str, Summary] = {}
    measure(WARMUP, None)
    out["memory"] = summary(*measure(runs, None))
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "bench.db")
        measure(WARMUP, store)
        out["durable"] = summary(*measure(runs, store))
        out["durable"]["row_bytes"] = store.bytes_for(store.list(limit=1)[0].id)
        store.close()
        out["durable"]["file_bytes_per_run"] = file_bytes_per_run(tmp, runs)

    arun = getattr(twelvefactor, "arun", None)
    if arun is None:
        out["memory-async"] = out["durable-async"] = {"na": "n/a (no arun)"}
        return out

    class AsyncTimedModel(TimedModel):
        async def acomplete(self, messages: Sequence[object], **options: Any) -> object:
            return self.complete(messages)

    async def ameasure(n: int, store: object | None) -> tuple[list[float], float]:
        from twelvefactor import Agent, tool

        @tool(effect="read_only")  # the async form's tool is async, in every framework (see the docstring)
        async def add(a: int, b: int) -> int:
            """Add b to a."""
            return a + b

        outputs = workload()
        per_step: list[float] = []
        agent = Agent("bench", tools=[add])
        started = time.perf_counter()
        for _ in range(n):
            marks: list[float] = []
            agent.model = AsyncTimedModel(outputs, marks)  # type: ignore[assignment]
            t0 = time.perf_counter()
            thread = await arun(agent, agent.new_thread("add numbers"), store=store)
            t1 = time.perf_counter()
            assert thread.status == "done", thread.status
            bounds = [t0, *marks[1:], t1]
            per_step.extend((b - a) * 1e6 for a, b in zip(bounds, bounds[1:], strict=False))
        return per_step, time.perf_counter() - started

    async def main() -> None:
        await ameasure(WARMUP, None)
        out["memory-async"] = summary(*await ameasure(runs, None))
        with tempfile.TemporaryDirectory() as tmp:
            store = SQLiteStore(Path(tmp) / "bench.db")
            await ameasure(WARMUP, store)
            out["durable-async"] = summary(*await ameasure(runs, store))
            out["durable-async"]["row_bytes"] = store.bytes_for(store.list(limit=1)[0].id)
            store.close()
            out["durable-async"]["file_bytes_per_run"] = file_bytes_per_run(tmp, runs)

    import asyncio  # here, not at the top: the sync modes should not pay for it

    asyncio.run(main())
    return out


# --- LangGraph: StateGraph(agent node + ToolNode, tools_condition) -----------------------------------


def langgraph_builders(script: Script) -> tuple[Any, Any]:
    """The same graph twice: with a sync agent node (for invoke) and an async one (for ainvoke)."""
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import StructuredTool
    from langchain_core.utils.function_calling import convert_to_openai_tool
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

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

        # async, as a real client is (the default would send _generate to a worker thread)
        async def _agenerate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
        ) -> ChatResult:
            return self._generate(messages, stop)

    def add_sync(a: int, b: int) -> int:
        """Add b to a."""
        return a + b

    async def add_async(a: int, b: int) -> int:
        return a + b

    # One tool with both faces: invoke runs the function, ainvoke awaits the coroutine.
    add = StructuredTool.from_function(func=add_sync, coroutine=add_async, name="add", description="Add b to a.")
    model = ScriptedChat().bind_tools([add])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    async def aagent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def build(node: Callable[..., Any]) -> Any:
        builder = StateGraph(MessagesState)
        builder.add_node("agent", node)
        builder.add_node("tools", ToolNode([add]))
        builder.add_edge(START, "agent")
        builder.add_conditional_edges("agent", tools_condition)
        builder.add_edge("tools", "agent")
        return builder

    return build(agent), build(aagent)


def bench_langgraph(runs: int) -> dict[str, Summary]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    script = Script()
    builder, abuilder = langgraph_builders(script)
    last: list[str] = []
    inputs = {"messages": [("user", "add numbers")]}

    def config(durable: bool) -> tuple[Any, dict[str, Any]]:
        if not durable:
            return {"recursion_limit": 100}, {}
        last[:] = [uuid.uuid4().hex]  # a new thread per run; checkpoints written before the next superstep
        return {"recursion_limit": 100, "configurable": {"thread_id": last[0]}}, {"durability": "sync"}

    def runner(graph: Any, durable: bool) -> Callable[[], None]:
        def one_run() -> None:
            cfg, kwargs = config(durable)
            assert graph.invoke(inputs, cfg, **kwargs)["messages"][-1].content == "done"

        return one_run

    def arunner(graph: Any, durable: bool) -> Callable[[], Awaitable[None]]:
        async def one_run() -> None:
            cfg, kwargs = config(durable)
            assert (await graph.ainvoke(inputs, cfg, **kwargs))["messages"][-1].content == "done"

        return one_run

    tables = ("checkpoints", "writes")
    out: dict[str, Summary] = {}
    memory_run = runner(builder.compile(), durable=False)
    timed(WARMUP, script, memory_run)
    out["memory"] = summary(*timed(runs, script, memory_run))
    with tempfile.TemporaryDirectory() as tmp:
        conn = durable_conn(Path(tmp) / "bench.db")
        durable_run = runner(builder.compile(checkpointer=SqliteSaver(conn)), durable=True)
        timed(WARMUP, script, durable_run)
        out["durable"] = summary(*timed(runs, script, durable_run))
        conn.close()
        out["durable"]["file_bytes_per_run"] = file_bytes_per_run(tmp, runs)
        out["durable"]["row_bytes"] = value_bytes(Path(tmp) / "bench.db", tables, "thread_id", last[0])

    import asyncio

    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async def main() -> None:
        memory_arun = arunner(abuilder.compile(), durable=False)
        await atimed(WARMUP, script, memory_arun)
        out["memory-async"] = summary(*await atimed(runs, script, memory_arun))
        with tempfile.TemporaryDirectory() as tmp:
            aconn = await aiosqlite.connect(Path(tmp) / "bench.db")
            await aconn.execute("PRAGMA journal_mode = WAL")
            await aconn.execute("PRAGMA synchronous = NORMAL")
            durable_arun = arunner(abuilder.compile(checkpointer=AsyncSqliteSaver(aconn)), durable=True)
            await atimed(WARMUP, script, durable_arun)
            out["durable-async"] = summary(*await atimed(runs, script, durable_arun))
            await aconn.close()
            out["durable-async"]["file_bytes_per_run"] = file_bytes_per_run(tmp, runs)
            out["durable-async"]["row_bytes"] = value_bytes(Path(tmp) / "bench.db", tables, "thread_id", last[0])

    asyncio.run(main())
    return out


# --- Pydantic AI: Agent(FunctionModel) with a plain tool ----------------------------------------------


def pydantic_ai_agents(model: Any) -> tuple[Any, Any]:
    """The sync forms' agent (a plain `def` tool) and the async forms' (the same tool, `async def`)."""
    from pydantic_ai import Agent

    agent = Agent(model)

    @agent.tool_plain  # Pydantic AI runs a plain `def` in a worker thread, also in run_sync()
    def add(a: int, b: int) -> int:
        """Add b to a."""
        return a + b

    aagent = Agent(model)

    @aagent.tool_plain(name="add")
    async def add_async(a: int, b: int) -> int:
        """Add b to a."""
        return a + b

    return agent, aagent


def bench_pydantic_ai(runs: int) -> dict[str, Summary]:
    import asyncio

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

    agent, aagent = pydantic_ai_agents(FunctionModel(scripted))

    def memory_run() -> None:
        assert agent.run_sync("add numbers").output == "done"

    async def memory_arun() -> None:
        result = await aagent.run("add numbers")
        assert result.output == "done"

    async def durable_arun(conn: sqlite3.Connection, run_id: str, runner: Any = None) -> None:
        saved = 0
        async with (runner or agent).iter("add numbers") as run:
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

    def durable_db(tmp: str) -> sqlite3.Connection:
        conn = durable_conn(Path(tmp) / "bench.db")
        conn.execute("CREATE TABLE messages (run_id TEXT, seq INTEGER, data BLOB, PRIMARY KEY (run_id, seq))")
        return conn

    last: list[str] = []

    def fresh_id() -> str:
        last[:] = [uuid.uuid4().hex]
        return last[0]

    def finish(out: Summary, conn: sqlite3.Connection, tmp: str) -> None:
        conn.close()
        out["file_bytes_per_run"] = file_bytes_per_run(tmp, runs)
        out["row_bytes"] = value_bytes(Path(tmp) / "bench.db", ("messages",), "run_id", last[0])

    out: dict[str, Summary] = {}
    timed(WARMUP, script, memory_run)
    out["memory"] = summary(*timed(runs, script, memory_run))
    with tempfile.TemporaryDirectory() as tmp:
        conn = durable_db(tmp)
        loop = asyncio.new_event_loop()

        def durable_run() -> None:
            loop.run_until_complete(durable_arun(conn, fresh_id()))

        timed(WARMUP, script, durable_run)
        out["durable"] = summary(*timed(runs, script, durable_run))
        loop.close()
        finish(out["durable"], conn, tmp)

    async def main() -> None:
        await atimed(WARMUP, script, memory_arun)
        out["memory-async"] = summary(*await atimed(runs, script, memory_arun))
        with tempfile.TemporaryDirectory() as tmp:
            conn = durable_db(tmp)
            await atimed(WARMUP, script, lambda: durable_arun(conn, fresh_id(), aagent))
            out["durable-async"] = summary(*await atimed(runs, script, lambda: durable_arun(conn, fresh_id(), aagent)))
            finish(out["durable-async"], conn, tmp)

    asyncio.run(main())
    return out


# --- OpenAI Agents SDK: Agent(custom Model) with a function_tool ---------------------------------------


def bench_openai_agents(runs: int) -> dict[str, Summary]:
    import asyncio

    from agents import Agent, Runner, function_tool, set_tracing_disabled
    from agents.items import ModelResponse
    from agents.memory import SQLiteSession
    from agents.models.interface import Model
    from agents.usage import Usage
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    set_tracing_disabled(True)  # its exporter would try the network
    configure = getattr(SQLiteSession, "_configure_connection", None)  # private: checked on 0.24
    assert configure is not None, "SQLiteSession has no _configure_connection: synchronous=NORMAL not set"

    def configure_normal(conn: sqlite3.Connection) -> None:  # its own setup (WAL), then NORMAL as for the others
        configure(conn)
        conn.execute("PRAGMA synchronous = NORMAL")

    SQLiteSession._configure_connection = staticmethod(configure_normal)  # type: ignore[method-assign]

    script = Script()

    class ScriptedModel(Model):
        async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
            i = script.tick()
            if i < STEPS:
                args_json = json.dumps({"a": i, "b": i + 1})
                item: Any = ResponseFunctionToolCall(
                    id=f"fc_{i}", call_id=f"call_{i}", type="function_call", name="add", arguments=args_json
                )
            else:
                text = ResponseOutputText(text="done", type="output_text", annotations=[], logprobs=[])
                item = ResponseOutputMessage(
                    id="msg", type="message", role="assistant", status="completed", content=[text]
                )
            return ModelResponse(output=[item], usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

    @function_tool
    def add(a: int, b: int) -> int:
        """Add b to a."""
        return a + b

    @function_tool(name_override="add")
    async def add_async(a: int, b: int) -> int:
        """Add b to a."""
        return a + b

    agent = Agent(name="bench", model=ScriptedModel(), tools=[add])
    aagent = Agent(name="bench", model=ScriptedModel(), tools=[add_async])  # the async forms' agent
    last: list[str] = []

    def session(path: Path) -> Any:
        last[:] = [uuid.uuid4().hex]
        return SQLiteSession(last[0], path)

    def memory_run() -> None:
        assert Runner.run_sync(agent, "add numbers", max_turns=100).final_output == "done"

    async def memory_arun() -> None:
        assert (await Runner.run(aagent, "add numbers", max_turns=100)).final_output == "done"

    def durable_run(path: Path) -> Callable[[], None]:
        def one_run() -> None:
            s = session(path)
            assert Runner.run_sync(agent, "add numbers", max_turns=100, session=s).final_output == "done"
            s.close()

        return one_run

    def durable_arun(path: Path) -> Callable[[], Awaitable[None]]:
        async def one_run() -> None:
            s = session(path)
            assert (await Runner.run(aagent, "add numbers", max_turns=100, session=s)).final_output == "done"
            s.close()

        return one_run

    tables = ("agent_sessions", "agent_messages")
    out: dict[str, Summary] = {}
    timed(WARMUP, script, memory_run)
    out["memory"] = summary(*timed(runs, script, memory_run))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        timed(WARMUP, script, durable_run(path))
        out["durable"] = summary(*timed(runs, script, durable_run(path)))
        out["durable"]["file_bytes_per_run"] = file_bytes_per_run(tmp, runs)
        out["durable"]["row_bytes"] = value_bytes(path, tables, "session_id", last[0])

    async def main() -> None:
        await atimed(WARMUP, script, memory_arun)
        out["memory-async"] = summary(*await atimed(runs, script, memory_arun))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.db"
            await atimed(WARMUP, script, durable_arun(path))
            out["durable-async"] = summary(*await atimed(runs, script, durable_arun(path)))
            out["durable-async"]["file_bytes_per_run"] = file_bytes_per_run(tmp, runs)
            out["durable-async"]["row_bytes"] = value_bytes(path, tables, "session_id", last[0])

    asyncio.run(main())
    return out


# --- driver --------------------------------------------------------------------------------------------

BENCHES: dict[str, Callable[[int], dict[str, Summary]]] = {
    "twelvefactor": bench_twelvefactor,
    "langgraph": bench_langgraph,
    "pydantic_ai": bench_pydantic_ai,
    "openai_agents": bench_openai_agents,
}
LABELS = {
    "twelvefactor": "twelvefactor",
    "langgraph": "LangGraph",
    "pydantic_ai": "Pydantic AI",
    "openai_agents": "Agents SDK",
}


def import_time_ms(framework: str) -> float:
    code = f"import time; t = time.perf_counter(); {IMPORTS[framework]}; print(time.perf_counter() - t)"
    return float(subprocess.check_output([sys.executable, "-c", code], text=True)) * 1000


def run_child(framework: str, runs: int) -> dict[str, Any]:
    """One measurement in a fresh interpreter, then one import timing; {"error": ...} if it failed."""
    cmd = [sys.executable, __file__, "--one", framework, "--json", "--runs", str(runs)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        return {"error": lines[-1]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["import_ms"] = import_time_ms(framework)
    return result


def measure_one(framework: str, runs: int) -> dict[str, Any]:
    result: dict[str, Any] = dict(BENCHES[framework](runs))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def median_of(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio_text(ratios: list[float]) -> str:
    if not ratios:
        return "n/a"
    return f"{statistics.median(ratios):.1f}x ({min(ratios):.1f}-{max(ratios):.1f})"


def mode_value(r: dict[str, Any], mode: str, key: str) -> float | None:
    m = r.get(mode)
    return m.get(key) if isinstance(m, dict) else None


Get = Callable[[dict[str, Any]], float | None]


def cell(v: float | None, width: int, fmt: str) -> str:
    return f"{'n/a':>{width}}" if v is None else f"{v:>{width}{fmt}}"


class Rounds:
    """The rounds' results: figures of one framework over rounds, and its ratios to twelvefactor per round."""

    def __init__(self, rounds: list[dict[str, dict[str, Any]]]) -> None:
        self.rounds = rounds
        self.frameworks = [fw for fw in FRAMEWORKS if fw in rounds[0]]

    def median(self, fw: str, get: Get) -> float | None:
        return median_of([v for rnd in self.rounds if "error" not in rnd[fw] and (v := get(rnd[fw])) is not None])

    def ratio(self, fw: str, get: Get) -> str:
        if fw == "twelvefactor":
            return "1"
        out = []
        for rnd in self.rounds:
            if "twelvefactor" not in rnd or "error" in rnd[fw] or "error" in rnd["twelvefactor"]:
                continue
            peer, base = get(rnd[fw]), get(rnd["twelvefactor"])
            if peer is not None and base:
                out.append(peer / base)
        return ratio_text(out)

    def na(self, fw: str, mode: str) -> str:
        return next((f"  {m['na']}" for rnd in self.rounds if "na" in (m := rnd[fw].get(mode) or {})), "")


def print_header(r: Rounds, runs: int) -> None:
    if len(r.frameworks) == 1:
        print(f"{LABELS[r.frameworks[0]]}: {runs} timed runs of {STEPS + 1} steps per mode after {WARMUP} warm-up runs")
    else:
        print(
            f"{len(r.rounds)} rounds, frameworks interleaved, each a fresh subprocess timing {runs} runs of "
            f"{STEPS + 1} steps per mode after {WARMUP} warm-up runs.\nFigures: median over rounds. Ratio: peer / "
            "twelvefactor in the same round, median (min-max) over rounds; >1: the peer costs more."
        )
    for fw in r.frameworks:
        errors = [rnd[fw]["error"] for rnd in r.rounds if "error" in rnd[fw]]
        if errors:
            print(f"{LABELS[fw]}: failed in {len(errors)} round(s): {errors[0]}")


def print_mode(r: Rounds, mode: str) -> None:
    durable = mode in DURABLE
    print(f"\n{mode:<14} {'p50 µs/step':>11} {'p95 µs/step':>11} {'p50 ratio':>18}", end="")
    print(f" {'stored B/run':>12} {'file KiB/run':>12}" if durable else "")
    for fw in r.frameworks:
        p50 = r.median(fw, lambda x: mode_value(x, mode, "p50"))
        p95 = r.median(fw, lambda x: mode_value(x, mode, "p95"))
        ratio = r.ratio(fw, lambda x: mode_value(x, mode, "p50")) if p50 is not None else ""
        line = f"{LABELS[fw]:<14} {cell(p50, 11, '.1f')} {cell(p95, 11, '.1f')} {ratio:>18}"
        if durable:
            stored = r.median(fw, lambda x: mode_value(x, mode, "row_bytes"))
            kib = r.median(fw, lambda x: mode_value(x, mode, "file_bytes_per_run"))
            line += f" {cell(stored, 12, ',.0f')} {cell(None if kib is None else kib / 1024, 12, '.1f')}"
        print(line + r.na(fw, mode))


def report(rounds: list[dict[str, dict[str, Any]]], runs: int) -> None:
    r = Rounds(rounds)
    print_header(r, runs)
    for mode in MODES:
        print_mode(r, mode)

    print(f"\n{'process':<14} {'import ms':>11} {'ratio':>18} {'peak RSS MB':>12} {'ratio':>18}")
    for fw in r.frameworks:
        imp, rss = r.median(fw, lambda x: x.get("import_ms")), r.median(fw, lambda x: x.get("peak_rss_mb"))
        imp_ratio, rss_ratio = r.ratio(fw, lambda x: x.get("import_ms")), r.ratio(fw, lambda x: x.get("peak_rss_mb"))
        print(f"{LABELS[fw]:<14} {cell(imp, 11, '.1f')} {imp_ratio:>18} {cell(rss, 12, '.1f')} {rss_ratio:>18}")
    print("(import: the workload's imports (IMPORTS), one fresh interpreter per round; peak RSS: the measuring")
    print(" subprocess after all four modes)")
    print("\ndurability (all SQLite, WAL, synchronous=NORMAL):")
    for fw in r.frameworks:
        print(f"  {LABELS[fw]:<13} {DURABILITY[fw]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="timed runs per mode and measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of all frameworks")
    parser.add_argument("--one", choices=FRAMEWORKS, help="measure one framework in this process")
    parser.add_argument("--json", action="store_true", help="with --one: print one JSON line")
    args = parser.parse_args()

    if args.one:
        result = measure_one(args.one, args.runs)
        if args.json:
            print(json.dumps(result))
        else:
            result["import_ms"] = import_time_ms(args.one)
            report([{args.one: result}], args.runs)
        return

    # Only the parent reports versions; the measured subprocesses never load importlib.metadata.
    from importlib.metadata import PackageNotFoundError, version

    def pkg_version(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    print(f"python {sys.version.split()[0]}; " + ", ".join(f"{p} {pkg_version(p)}" for p in PACKAGES))
    rounds: list[dict[str, dict[str, Any]]] = []
    for k in range(args.rounds):
        order = FRAMEWORKS[k % len(FRAMEWORKS) :] + FRAMEWORKS[: k % len(FRAMEWORKS)]
        print(f"round {k + 1}/{args.rounds}: {', '.join(order)}", file=sys.stderr, flush=True)
        rounds.append({fw: run_child(fw, args.runs) for fw in order})
    report(rounds, args.runs)


if __name__ == "__main__":
    main()
