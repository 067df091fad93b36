"""What a memory holds: facts with a scope, and the shape every backend has.

A fact is one line of text in one scope (``global``, ``agent:NAME``, ``user:ID``, ``tenant:ID``…), with an
optional ``key``: writing again with the same scope and key replaces the fact's text instead of adding a
second one, and writing without a key the text a scope already holds changes nothing. Both make a write
idempotent (a tool run again after a crash, a deploy script run twice).
"""

from __future__ import annotations

import builtins
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from twelvefactor.errors import FactKeyTaken, UserError, compact
from twelvefactor.events import MemoryFact

__all__ = [
    "GLOBAL",
    "MAX_FACT_CHARS",
    "MAX_KEY_CHARS",
    "MAX_OFFSET",
    "MAX_PAGE",
    "SCOPE_PATTERN",
    "MemoryBackend",
    "StoredFact",
    "check_edit",
    "check_key",
    "check_page",
    "check_put",
    "check_scope",
    "check_text",
    "duplicate_key",
    "new_fact_id",
    "scope_kind",
    "scopes_to_read",
]

GLOBAL = "global"
MAX_FACT_CHARS = 2000
MAX_KEY_CHARS = 200
MAX_PAGE = 1000
MAX_OFFSET = 2**62  # SQLite integers are 64-bit; no listing goes anywhere near this

# `kind:name`: a kind names who the scope belongs to (user, tenant, agent…), the name which one, in printable
# ASCII without spaces: a scope is shown on one line, in a URL's query and in a form, and the pattern means the
# same to Python and to JSON Schema (the API publishes it).
SCOPE_PATTERN = r"global|[a-z][a-z0-9_]{0,31}:[!-~]{1,200}"
_SCOPE = re.compile(SCOPE_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class StoredFact(BaseModel):
    """A fact as a backend keeps it: the id, scope and text the window shows, and its bookkeeping.

    ``source_thread`` is the thread whose agent wrote it (None: written by code or by a person).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    scope: str
    text: str
    key: str | None = None
    created_at: datetime
    updated_at: datetime
    source_thread: str | None = None

    def as_fact(self) -> MemoryFact:
        """What a thread records of it (``memory`` events): id, scope and text."""
        return MemoryFact(id=self.id, scope=self.scope, text=self.text)


class MemoryBackend(Protocol):
    """Where facts live: process memory, the SQLite file of a SQLiteStore, a PostgresStore's database.

    Listings are newest first (last written first). Every method is safe to call from several threads.
    """

    def put(self, scope: str, text: str, *, key: str | None = None, source_thread: str | None = None) -> StoredFact:
        """Write a fact (checked): with ``key``, replace the text of the scope's fact with that key; without,
        return the scope's fact with this text if there is one, else add it."""
        ...

    def get(self, fact_id: str) -> StoredFact:
        """The fact with this id; FactNotFound if there is none."""
        ...

    def edit(
        self, fact_id: str, *, text: str | None = None, scope: str | None = None, key: str | None = None
    ) -> StoredFact:
        """Change a fact's text, scope or key (None: keep; ``key=""``: remove the key); FactNotFound, or a
        UserError if the scope already has another fact with that key."""
        ...

    def delete(self, fact_id: str) -> bool:
        """Remove a fact; False if there was none (so deleting twice is harmless)."""
        ...

    def facts(
        self, scopes: Sequence[str] | None = None, *, limit: int = 100, offset: int = 0
    ) -> builtins.list[StoredFact]:
        """The facts of ``scopes`` (None: all), newest first."""
        ...

    def search(self, query: str, scopes: Sequence[str], *, limit: int = 10) -> builtins.list[StoredFact]:
        """The facts of ``scopes`` that share words with ``query`` (untrusted text), best match first."""
        ...

    def scopes(self) -> dict[str, int]:
        """Every scope that holds facts, with how many, by name."""
        ...

    def close(self) -> None: ...


def check_scope(scope: str) -> str:
    """``scope`` if it is ``global`` or ``kind:name`` (kind: lower-case letters, digits, ``_``), else UserError."""
    if _SCOPE.fullmatch(scope) is None:
        raise UserError(
            f"memory scope {compact(scope, 80)!r} is not 'global' or 'kind:name' (a lower-case kind, a colon, then"
            " a name of printable ASCII without spaces, e.g. 'user:alice' or 'agent:support')"
        )
    return scope


def scope_kind(scope: str) -> str:
    """``user`` of ``user:alice``; ``global`` of ``global``."""
    return scope.partition(":")[0]


def check_text(text: str) -> str:
    """The fact's text on one line (runs of white space become one space), or UserError if blank or too long."""
    line = " ".join(text.split())
    if not line:
        raise UserError("a memory fact needs some text: it is blank")
    if len(line) > MAX_FACT_CHARS:
        raise UserError(
            f"a memory fact is at most {MAX_FACT_CHARS} characters, this one has {len(line)}: keep one short fact"
        )
    return line


def check_key(key: str | None) -> str | None:
    """The key stripped (None for none or blank), or UserError if too long or with control characters."""
    if key is None or not key.strip():
        return None
    key = key.strip()
    if len(key) > MAX_KEY_CHARS or _CONTROL.search(key):
        raise UserError(
            f"a memory key is a short name (at most {MAX_KEY_CHARS} characters, no control characters),"
            f" got {compact(key, 60)!r}"
        )
    return key


def new_fact_id() -> str:
    return "f_" + uuid.uuid4().hex[:16]


def now() -> datetime:
    return datetime.now(UTC)


def check_put(scope: str, text: str, key: str | None) -> tuple[str, str, str | None]:
    """A write's scope, text and key, checked (each backend's ``put`` starts here)."""
    return check_scope(scope), check_text(text), check_key(key)


def check_edit(text: str | None, scope: str | None, key: str | None) -> dict[str, Any]:
    """The fields an edit changes, checked: None keeps a field, a blank ``key`` removes the key."""
    changes: dict[str, Any] = {}
    if text is not None:
        changes["text"] = check_text(text)
    if scope is not None:
        changes["scope"] = check_scope(scope)
    if key is not None:
        changes["key"] = check_key(key)
    return changes


def check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= MAX_OFFSET:
        raise UserError(
            f"a page of facts is 1 to {MAX_PAGE} long, from an offset of 0 to 2**62: got {limit} from {offset}"
        )


def scopes_to_read(scopes: Sequence[str]) -> builtins.list[str]:
    """``scopes`` checked, each once, in order (a plain string is one scope, not its letters)."""
    if isinstance(scopes, str):
        scopes = [scopes]
    return list(dict.fromkeys(check_scope(scope) for scope in scopes))


def duplicate_key(scope: str, key: str) -> FactKeyTaken:
    return FactKeyTaken(f"scope {scope!r} already has a fact with key {key!r}: edit that fact, or choose another key")
