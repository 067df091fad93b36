"""The model's memory intents: ``remember``, ``recall`` and ``forget``, bound to one :class:`Memory`.

Each reads the thread it runs for from its ToolContext (the agent loop passes it), so the scopes are the
thread's own: ``remember`` names a scope *kind* the memory lets the model write (``user``), resolved to the
thread's scope of that kind; ``forget`` removes only facts of such scopes; ``recall`` searches the scopes the
thread reads. A fact outside them is, to the model, a fact that does not exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import Field, create_model

from twelvefactor.errors import FactNotFound, ToolError
from twelvefactor.memory.facts import MAX_FACT_CHARS, MAX_KEY_CHARS, scope_kind
from twelvefactor.thread import Thread
from twelvefactor.tools import Tool, ToolContext

if TYPE_CHECKING:
    from twelvefactor.memory.memory import Memory

__all__ = ["memory_tools"]


class _MemoryTool(Tool):
    memory: ClassVar[Memory]

    intent: str  # each intent's literal, set by _tool; declared here so that it comes first in the schema

    @staticmethod
    def _thread(ctx: ToolContext | None) -> Thread:
        if ctx is None or ctx.thread is None:
            raise ToolError("a memory intent needs the thread it works for: run it through the agent loop")
        return ctx.thread


class _Remember(_MemoryTool):
    effect = "idempotent"
    changes_memory = True

    text: str = Field(min_length=1, max_length=MAX_FACT_CHARS, description="the fact, one sentence")
    scope: str | None = None  # the memory's writable kinds, set by memory_tools
    key: str | None = Field(
        default=None,
        max_length=MAX_KEY_CHARS,
        description="what the fact is about, e.g. 'timezone': remembering with the same key replaces it",
    )

    def run(self, ctx: ToolContext | None = None) -> dict[str, str]:
        thread = self._thread(ctx)
        memory = type(self).memory
        writable = memory.writable_for(thread)
        kind = self.scope
        scope = next((s for s in writable if kind is None or scope_kind(s) == kind), None)
        if scope is None:
            wanted = f"{kind!r} scope" if kind else "scope you may write"
            may = ", ".join(writable) or "none"
            raise ToolError(f"this thread has no {wanted} to remember in (yours: {may}); nothing was kept")
        fact = memory.remember(self.text, scope=scope, key=self.key, source_thread=thread.id)
        return {"id": fact.id, "scope": fact.scope, "text": fact.text}


class _Recall(_MemoryTool):
    effect = "read_only"

    query: str = Field(min_length=1, description="words to look for")

    def run(self, ctx: ToolContext | None = None) -> list[dict[str, str]]:
        thread = self._thread(ctx)
        memory = type(self).memory
        found = memory.recall(self.query, scopes=memory.scopes_for(thread))
        return [{"id": fact.id, "scope": fact.scope, "text": fact.text} for fact in found]


class _Forget(_MemoryTool):
    effect = "idempotent"
    changes_memory = True

    fact_id: str = Field(min_length=1, description="the fact's id, from recall")

    def run(self, ctx: ToolContext | None = None) -> str:
        thread = self._thread(ctx)
        memory = type(self).memory
        try:
            fact = memory.backend.get(self.fact_id)
        except FactNotFound:
            fact = None
        # Another user's fact is, to this thread, no fact at all: the answer does not say it exists.
        if fact is None or fact.scope not in memory.writable_for(thread):
            return f"no fact {self.fact_id!r} in the memory you may change: nothing to forget"
        memory.forget(self.fact_id)
        return f"forgot fact {self.fact_id!r}"


def memory_tools(memory: Memory) -> tuple[type[Tool], ...]:
    """The ``remember``, ``recall`` and ``forget`` intents of ``memory``."""
    kinds: Any = Literal.__getitem__(memory.writable)
    remember = _tool(
        _Remember,
        "remember",
        memory,
        "Remember a fact for later threads (the person's preferences, what was decided, what to avoid). One short"
        " sentence that makes sense on its own; not secrets.",
        scope=(kinds | None, Field(default=None, description=f"whose fact it is (default: {memory.writable[0]})")),
    )
    recall = _tool(
        _Recall,
        "recall",
        memory,
        "Search the facts you remember for ones about something (ids, scopes and texts come back).",
    )
    forget = _tool(
        _Forget,
        "forget",
        memory,
        "Forget a fact that is wrong or no longer true, by its id (recall finds the id).",
    )
    return remember, recall, forget


def _tool(base: type[_MemoryTool], intent: str, memory: Memory, doc: str, **fields: Any) -> type[Tool]:
    name = "".join(part.title() for part in intent.split("_"))
    literal: Any = Literal.__getitem__(intent)
    cls = cast(type[_MemoryTool], create_model(name, __base__=base, __doc__=doc, intent=(literal, intent), **fields))
    cls.memory = memory
    cls.__module__ = __name__
    return cls
