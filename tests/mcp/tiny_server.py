"""A tiny MCP server for the tests, built with the official SDK.

    python tiny_server.py stdio            (over stdin/stdout)
    python tiny_server.py http PORT        (streamable HTTP on 127.0.0.1:PORT, path /mcp)

Environment: ``TINY_OUTBOX`` (a file each ``send_email`` appends a line to: what really happened),
``TINY_PIDFILE`` (the process writes its pid there when it starts), ``TINY_ODD=1`` (also list a tool
whose schema uses ``not``, which twelvefactor cannot express), ``TINY_CRASH_ONCE`` (see ``upsert``).
"""

from __future__ import annotations

import json
import os
import sys

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

server = MCPServer("tiny", log_level="WARNING")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def send_email(to: str, body: str) -> str:
    """Send an email (irreversible: it lands in the outbox)."""
    outbox = os.environ.get("TINY_OUTBOX")
    if outbox:
        with open(outbox, "a", encoding="utf-8") as file:
            file.write(json.dumps({"to": to, "body": body}) + "\n")
    return f"sent to {to}"


@server.tool()
def lookup(user: str) -> dict[str, str]:
    """Look a user up (structured content)."""
    if user == "nobody":
        raise ToolError(f"no user {user!r}")
    return {"user": user, "email": f"{user}@example.com"}


@server.tool()
def upsert(key: str, ctx: Context) -> dict[str, str | None]:
    """Write a record (idempotent). With ``TINY_CRASH_ONCE`` (a file path) the first call ever dies midway."""
    marker = os.environ.get("TINY_CRASH_ONCE")
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    meta = ctx.request_context.meta or {}
    return {"key": key, "idempotency_key": meta.get("twelvefactor/idempotencyKey")}


@server.tool()
def crash() -> str:
    """Die in the middle of the call."""
    os._exit(3)


@server.tool()
def garble() -> str:
    """Answers well; ``garble_proxy.py`` in front of this server turns its result into a malformed one."""
    return "fine"


@server.tool()
def garbage() -> str:
    """Answers well; ``garble_proxy.py`` in front of this server replaces the answer with a line that is not JSON."""
    return "fine"


@server.resource("notes://today", mime_type="text/plain")
def today() -> str:
    """Today's notes."""
    return "standup at 10; release at 16"


@server.prompt()
def review(topic: str) -> str:
    """A review prompt."""
    return f"Review the {topic} change carefully."


if os.environ.get("TINY_ODD"):

    @server.tool()
    def odd(x: int) -> int:
        """A tool whose schema says `not`."""
        return x

    server._tool_manager.get_tool("odd").parameters["properties"]["x"]["not"] = {"const": 0}


def main() -> None:
    pidfile = os.environ.get("TINY_PIDFILE")
    if pidfile:  # one line per start: the tests see restarts
        with open(pidfile, "a", encoding="utf-8") as file:
            file.write(f"{os.getpid()}\n")
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
