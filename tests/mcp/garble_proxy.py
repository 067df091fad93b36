"""Stands between a client and ``tiny_server.py stdio`` and spoils two answers, for the tests:
the result of ``garble`` becomes one that is no CallToolResult, the answer to ``garbage`` a line that is
not JSON. Everything else passes through unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

SERVER = Path(__file__).with_name("tiny_server.py")


def main() -> None:
    child = subprocess.Popen([sys.executable, str(SERVER), "stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    spoil: dict[Any, str] = {}

    def upstream() -> None:
        assert child.stdin is not None
        for line in sys.stdin.buffer:
            message = _json(line)
            if message.get("method") == "tools/call" and message.get("params", {}).get("name") in ("garble", "garbage"):
                spoil[message["id"]] = message["params"]["name"]
            child.stdin.write(line)
            child.stdin.flush()
        child.stdin.close()

    threading.Thread(target=upstream, daemon=True).start()
    for line in child.stdout:
        message = _json(line)
        how = spoil.pop(message.get("id"), None) if "result" in message else None
        if how == "garble":
            line = json.dumps({**message, "result": {"content": "not a list"}}).encode() + b"\n"
        elif how == "garbage":
            line = b"this is not json\n"
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
    os._exit(child.wait())


def _json(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


if __name__ == "__main__":
    main()
