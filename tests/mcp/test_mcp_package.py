"""The MCP package is an optional extra: its surface is pinned, and ``import twelvefactor`` never loads it."""

from __future__ import annotations

import subprocess
import sys

import twelvefactor.mcp


def test_the_mcp_surface_is_pinned_and_sorted() -> None:
    assert twelvefactor.mcp.__all__ == sorted(twelvefactor.mcp.__all__)
    assert twelvefactor.mcp.__all__ == [
        "MCPServer",
        "build_mcp_server",
        "call_tool",
        "mcp_prompt",
        "mcp_resources",
        "mcp_tools",
        "read_resource",
        "serve_mcp",
        "thread_state",
    ]


def test_importing_the_library_does_not_import_the_mcp_sdk() -> None:
    code = "import sys, twelvefactor; print(sorted(m for m in ('mcp', 'twelvefactor.mcp') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
