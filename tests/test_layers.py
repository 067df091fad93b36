"""The layers point one way (docs/architecture.md): read off the source, every import, lazy ones included.

Imports under ``if TYPE_CHECKING:`` are annotations only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "twelvefactor"

CORE = {
    "events", "thread", "tools", "parsing", "_coerce", "_lenient_json", "_yamlish", "schema", "prompts",
    "context", "errors", "messages", "sent", "schema_tools", "_backoff", "_aio", "calls", "tracing", "_reply", "_plan", "_scalars", "_partial", "tokens", "window", "_fts", "compaction", "spend",
}  # fmt: skip
ABOVE_CORE = {
    "models", "store", "server", "workers", "workflows", "agent", "loop", "cli", "_loader", "mcp", "channels",
    "triggers", "evals", "memory", "retrieval",
}  # fmt: skip

# module (or package) -> what it must never import at run time
RULES: dict[str, set[str]] = {
    **{name: ABOVE_CORE for name in CORE},
    # Charts draw numbers (and a thread's model calls) as SVG or PNG: core-level, usable from any layer.
    "charts": ABOVE_CORE,
    "agent": {"store", "server", "workers", "workflows", "cli", "loop", "mcp", "evals", "memory"},
    "loop": {"store", "server", "workers", "workflows", "cli", "mcp", "evals", "memory"},
    "models": {"store", "server", "workers", "workflows", "agent", "loop", "cli", "mcp", "evals"},
    "store": {"server", "workers", "workflows", "agent", "loop", "cli", "models", "mcp", "evals"},
    "workflows": {"store", "server", "workers", "cli", "mcp"},
    "workers": {"server", "cli", "mcp"},
    "server": {"cli", "mcp"},
    # MCP both ways (an optional extra): above the loop and the stores, beside the HTTP server.
    "mcp": {"server", "cli"},
    # Channels reach people and know no HTTP server, store or agent: the server hands them what to send.
    "channels": {"server", "workers", "cli", "mcp", "models", "agent", "loop", "workflows", "store", "triggers"},
    # Triggers start threads through the store interface; the server and workers run them.
    "triggers": {"server", "cli", "mcp", "channels"},
    # Evals run agents and read stores, beside the CLI (their commands live in evals/commands.py); the server
    # uses them for a thread's case download, never the reverse.
    "evals": {"server", "workers", "mcp", "channels", "triggers"},
    # Memory sits on the core (agents see it through window.MemorySource); the stores hand out its backends
    # (store/facts.py), so it knows no store, agent, loop or HTTP.
    "memory": {
        "models",
        "store",
        "server",
        "workers",
        "workflows",
        "agent",
        "loop",
        "cli",
        "mcp",
        "channels",
        "triggers",
        "evals",
        "retrieval",
    },
    # Retrieval is a context source beside the core: events and tools in, its own tables; nothing above the core.
    "retrieval": ABOVE_CORE,
}


def _runtime_imports(path: Path) -> set[str]:
    """The top-level twelvefactor sub-packages or modules ``path`` imports at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "twelvefactor" and len(parts) > 1:
                found.add(parts[1])
    return found


def _layer_of(path: Path) -> str:
    relative = path.relative_to(SRC)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_each_module_imports_only_from_the_layers_below_it(path: Path) -> None:
    layer = _layer_of(path)
    forbidden = RULES.get(layer, set()) - {layer}
    assert sorted(_runtime_imports(path) & forbidden) == []


def test_the_rules_cover_every_core_module_and_package() -> None:
    modules = {p.stem for p in SRC.glob("*.py")} - {"__init__", "__main__"}
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    assert modules >= CORE
    assert packages <= set(RULES)
