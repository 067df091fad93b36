"""Whose facts a thread sees: its scopes, read off the thread itself.

A thread has no metadata beside its events, so the launcher says whose thread it is with an event:
``{"type": "memory_scope", "scope": "user:alice"}`` (``memory_scope("user:alice")`` in Python; through the
API, one of the launch request's ``events``). Only those recorded before the thread's first model call
count (by the launcher, or by a pre-fetch hook that looked the user up): what arrives later, from a
webhook or a message, cannot move a running thread into someone else's memory.

``thread_scopes`` is the default: those scopes in order, then ``agent:NAME`` for the thread's agent, then
``global``. Pass ``Memory(scopes=...)`` a function of your own to decide otherwise (a tenant looked up from
the user, no global facts…); the first scopes come first in the memory section.
"""

from __future__ import annotations

from typing import Any

from twelvefactor.errors import UserError, compact
from twelvefactor.events import CustomEvent, Event
from twelvefactor.memory.facts import GLOBAL, check_scope
from twelvefactor.thread import Thread

__all__ = ["SCOPE_EVENT", "launch_scopes", "memory_scope", "thread_scopes"]

SCOPE_EVENT = "memory_scope"


def memory_scope(scope: str) -> Event:
    """The event that gives a thread a scope (``user:alice``, ``tenant:acme``): record it when launching."""
    return CustomEvent.model_validate({"type": SCOPE_EVENT, "scope": check_scope(scope)})


def launch_scopes(thread: Thread) -> list[str]:
    """The scopes of the thread's ``memory_scope`` events before its first model call, in order."""
    found: list[str] = []
    for event in thread.events:
        if event.type == "model_call":
            break
        if event.type == SCOPE_EVENT:
            scope: Any = getattr(event, "scope", None)
            if not isinstance(scope, str):
                raise UserError(
                    f"thread {thread.id!r} has a {SCOPE_EVENT!r} event without a string 'scope'"
                    f" ({compact(repr(event.model_dump(mode='json')), 120)}): record it as"
                    ' {"type": "memory_scope", "scope": "user:ID"}'
                )
            found.append(check_scope(scope))
    return found


def thread_scopes(thread: Thread) -> list[str]:
    """The default: the launcher's scopes, then ``agent:NAME`` (if the thread names its agent), then ``global``."""
    agent = [f"agent:{thread.agent}"] if thread.agent else []
    return [*launch_scopes(thread), *agent, GLOBAL]
