"""How an agent's step and the loop reach outside themselves, synchronously or on an event loop.

One implementation, two faces: ``Agent.step``/``run`` and ``Agent.astep``/``arun`` run the same
coroutines, which make every outside call (the model, a tool, a hook, the store) through a
:class:`Calls`. The synchronous face drives them with :func:`drive` through :data:`BLOCKING`, whose
calls never suspend: no event loop is started and nothing is scheduled, so a synchronous step costs
what it did before there were two faces. The async face awaits them through :class:`EventLoopCalls`:

- a model call is awaited through the model's ``acomplete`` (a model without one runs in a thread), at
  most ``limits[...]`` at once per model or provider, so a rate limit is respected by the process as a
  whole and not by a small global pool;
- an async tool or hook is awaited; a synchronous one runs in a bounded thread pool (``tool_threads``),
  so it never blocks the loop and a burst of slow tools cannot start unbounded threads;
- a store call is made in place when the store never blocks (``blocking = False``, the in-memory store)
  or can tell it need not wait now (``call_without_waiting``: SQLite, when no other thread or process
  holds its write lock), and otherwise in its own thread pool: a wait for a lock, a disk or a network
  (PostgreSQL) never holds up the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from twelvefactor._aio import run_coroutine
from twelvefactor.errors import UserError
from twelvefactor.tools import Tool, ToolContext, aexecute, execute, is_async

if TYPE_CHECKING:
    from twelvefactor.messages import Message
    from twelvefactor.models.base import ModelResponse

T = TypeVar("T")

__all__ = ["BLOCKING", "Calls", "EventLoopCalls", "drive"]


class Calls(Protocol):
    """The outside calls a step makes; see the module docstring for the two implementations."""

    async def complete(self, model: Any, messages: Sequence[Message], options: Mapping[str, Any]) -> ModelResponse: ...

    async def execute(self, tool: Tool, ctx: ToolContext) -> Any: ...

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    async def store(self, store: object, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """The synchronous face: run a coroutine of the loop whose calls never suspend (``BLOCKING``)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a synchronous step suspended: an awaitable reached the loop through BLOCKING")


class _Blocking:
    """Every call made right here, in this thread (an async tool or hook is run to its end)."""

    async def complete(self, model: Any, messages: Sequence[Message], options: Mapping[str, Any]) -> ModelResponse:
        return model.complete(messages, **options)  # type: ignore[no-any-return]

    async def execute(self, tool: Tool, ctx: ToolContext) -> Any:
        return execute(tool, ctx)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        result = fn(*args)
        return run_coroutine(result) if inspect.iscoroutine(result) else result

    async def store(self, store: object, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fn(*args, **kwargs)


BLOCKING: Calls = _Blocking()
"""The calls of the synchronous face."""


class EventLoopCalls:
    """The calls of the async face, for one process: per-model limits and bounded thread pools.

    ``limits`` maps a model name (``"openai:gpt-4o-mini"``) or a provider prefix (``"openai"``) to how
    many calls may be in flight at once; the longest matching key wins, and a model no key matches is
    limited by ``default_limit`` (None: unlimited). Share one instance between all the runs of a
    process (the worker does), so the limits hold for all of them.
    """

    def __init__(
        self,
        *,
        limits: Mapping[str, int] | None = None,
        default_limit: int | None = None,
        tool_threads: int = 32,
        store_threads: int = 8,
    ) -> None:
        checked = {**(limits or {}), **({} if default_limit is None else {"default_limit": default_limit})}
        for key, limit in checked.items():
            if limit < 1:
                raise UserError(f"model concurrency limit {key!r} must be at least 1, got {limit!r}")
        if tool_threads < 1 or store_threads < 1:
            raise UserError("tool_threads and store_threads must be at least 1")
        self.limits = dict(limits or {})
        self.default_limit = default_limit
        self.tool_threads = tool_threads
        self.store_threads = store_threads
        self._tools: ThreadPoolExecutor | None = None
        self._stores: ThreadPoolExecutor | None = None
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._in_flight: dict[str, int] = {}

    def limit_key(self, model_name: str) -> str | None:
        """The key of ``limits`` that governs ``model_name`` (None: ``default_limit``, by model name)."""
        best: str | None = None
        for key in self.limits:
            if (model_name == key or model_name.startswith(f"{key}:")) and (best is None or len(key) > len(best)):
                best = key
        return best

    def in_flight(self) -> dict[str, int]:
        """Model calls in flight now, by limit key (what a health page or a test reads)."""
        return {key: count for key, count in self._in_flight.items() if count}

    async def complete(self, model: Any, messages: Sequence[Message], options: Mapping[str, Any]) -> ModelResponse:
        name = str(getattr(model, "name", "model"))
        key = self.limit_key(name)
        limit = self.limits[key] if key is not None else self.default_limit
        slot_key = key if key is not None else name
        slot = None
        if limit is not None:
            slot = self._slots.get(slot_key)
            if slot is None:
                slot = self._slots[slot_key] = asyncio.Semaphore(limit)
            await slot.acquire()
        self._in_flight[slot_key] = self._in_flight.get(slot_key, 0) + 1
        try:
            acomplete = getattr(model, "acomplete", None)
            if acomplete is not None:
                return await acomplete(messages, **options)  # type: ignore[no-any-return]
            return await self._in_pool(self._tool_pool(), model.complete, messages, **options)
        finally:
            self._in_flight[slot_key] -= 1
            if slot is not None:
                slot.release()

    async def execute(self, tool: Tool, ctx: ToolContext) -> Any:
        if is_async(type(tool)):
            return await aexecute(tool, ctx)
        return await self._in_pool(self._tool_pool(), execute, tool, ctx)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if inspect.iscoroutinefunction(fn):
            return await fn(*args)
        result = await self._in_pool(self._tool_pool(), fn, *args)
        return await result if inspect.isawaitable(result) else result

    async def store(self, store: object, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if not getattr(store, "blocking", True):
            return fn(*args, **kwargs)
        attempt = getattr(store, "call_without_waiting", None)
        if attempt is not None:
            done, value = attempt(fn, *args, **kwargs)
            if done:
                return value  # type: ignore[no-any-return]
        return await self._in_pool(self._store_pool(), fn, *args, **kwargs)

    def close(self) -> None:
        """Let the thread pools' threads end (calls still running finish first)."""
        for pool in (self._tools, self._stores):
            if pool is not None:
                pool.shutdown(wait=False)
        self._tools = self._stores = None

    def _tool_pool(self) -> ThreadPoolExecutor:
        if self._tools is None:
            self._tools = ThreadPoolExecutor(self.tool_threads, thread_name_prefix="twelvefactor-tool")
        return self._tools

    def _store_pool(self) -> ThreadPoolExecutor:
        if self._stores is None:
            self._stores = ThreadPoolExecutor(self.store_threads, thread_name_prefix="twelvefactor-store")
        return self._stores

    @staticmethod
    async def _in_pool(pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        context = contextvars.copy_context()  # the current trace span goes along into the thread
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, lambda: context.run(fn, *args, **kwargs))


_default: EventLoopCalls | None = None


def default_calls() -> EventLoopCalls:
    """The calls ``astep``/``arun`` use when given none: no model limits, shared thread pools."""
    global _default
    if _default is None:
        _default = EventLoopCalls()
    return _default
