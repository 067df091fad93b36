"""Running a coroutine to its end from synchronous code: an async tool, hook or model used from ``run()``.

``asyncio.run`` refuses to start while this thread already runs an event loop (synchronous ``run()``
called from inside async code); the coroutine then gets a fresh loop in a thread of its own, and this
thread waits for it. That blocks the caller's loop, which is what calling a synchronous API from
async code means: use ``arun`` there.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end and return its result (or raise its exception)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}
    context = contextvars.copy_context()  # the caller's trace span and settings go along

    def target() -> None:
        try:
            box["value"] = context.run(asyncio.run, coro)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, raised there
            box["error"] = exc

    thread = threading.Thread(target=target, name="twelvefactor-coroutine", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
