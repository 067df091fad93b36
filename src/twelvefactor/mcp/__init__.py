"""MCP, both ways: another server's tools, resources and prompts for your agents (``client``), and your
agents as an MCP server any MCP client can drive (``server``).

Needs the MCP SDK: ``pip install 'twelvefactor[mcp]'``. ``import twelvefactor`` never loads this package.
"""

from __future__ import annotations

try:
    import mcp as _sdk  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is installed wherever the tests run
    raise ImportError(f"twelvefactor.mcp needs the MCP SDK: pip install 'twelvefactor[mcp]' ({exc})") from exc

from twelvefactor.mcp.client import MCPServer, call_tool, mcp_prompt, mcp_resources, mcp_tools, read_resource
from twelvefactor.mcp.server import build_mcp_server, serve_mcp, thread_state

__all__ = [
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
