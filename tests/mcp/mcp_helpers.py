"""Real MCP servers for the tests: ``tiny_server.py`` over stdio or streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from twelvefactor.mcp import MCPServer

HERE = Path(__file__).resolve().parent
TINY = HERE / "tiny_server.py"
PROXY = HERE / "garble_proxy.py"
SRC = HERE.parents[1] / "src"
ROOT = HERE.parents[1]
TIMEOUTS = {"timeout_s": 15.0, "connect_timeout_s": 20.0}


def stdio_server(errlog: TextIO | None = None, script: Path = TINY, **env: str) -> MCPServer:
    return MCPServer.stdio(sys.executable, [str(script), "stdio"], env, name="tiny", errlog=errlog, **TIMEOUTS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(10)


class HttpServer:
    """``tiny_server.py http PORT`` in a process of its own, which the test can kill and start again."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.log = (tmp / f"http-{self.port}.log").open("ab")
        self.env = {**os.environ, "TINY_OUTBOX": str(tmp / "outbox.jsonl")}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, str(TINY), "http", str(self.port)]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=self.log, env=self.env)
        wait_for_port(self.port, self.process)

    def kill(self) -> None:
        if self.process is not None:
            stop(self.process)

    def client(self) -> MCPServer:
        return MCPServer.http(self.url, name="tiny-http", **TIMEOUTS)


@contextmanager
def http_server(tmp: Path) -> Iterator[HttpServer]:
    server = HttpServer(tmp)
    server.start()
    try:
        yield server
    finally:
        server.kill()
        server.log.close()
