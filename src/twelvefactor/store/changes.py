"""PostgreSQL's change feed: every committed write of a thread, announced to whoever listens.

A trigger on ``threads`` (migration ``m005_change_feed``) runs ``pg_notify`` for every row inserted,
advanced or deleted, so every write of every PostgresStore in every process announces itself, in the
writing transaction: NOTIFY is delivered on commit only, never for a rolled-back write. The payload is
``<thread_id>:<version>:<origin>``: the thread's version after the write (``-1``: deleted) and the
``origin`` of the store that wrote it (each PostgresStore sets ``twelvefactor.origin`` on its pooled
connections), so a listener can tell its own process's writes, which it already knows, from the others'.

NOTIFY payloads must stay under 8000 bytes. The API bounds thread ids to 128 characters, but a library
user may choose any id: a thread id over ``MAX_ID_BYTES`` is announced as ``*`` (some thread changed),
and a listener catches up by ``updated_at`` instead.

The listening side (a dedicated connection that wakes the server's live views) is
``twelvefactor.server.changefeed``: stores know nothing of servers.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CHANGED_SINCE_SQL",
    "CHANNEL",
    "DELETED",
    "MAX_ID_BYTES",
    "MIGRATION",
    "ORIGIN_SETTING",
    "UNKNOWN",
    "Change",
    "parse",
]

CHANNEL = "twelvefactor_threads"
ORIGIN_SETTING = "twelvefactor.origin"
MAX_ID_BYTES = 7000
DELETED = -1
UNKNOWN = "*"  # the thread id of a change whose id was too long to announce

MIGRATION: tuple[str, tuple[str, ...]] = (
    "m005_change_feed",
    (
        f"""
        CREATE FUNCTION twelvefactor_threads_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            row_id TEXT := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
            at_version INTEGER := CASE WHEN TG_OP = 'DELETE' THEN {DELETED} ELSE NEW.version END;
        BEGIN
            IF octet_length(row_id) > {MAX_ID_BYTES} THEN
                row_id := '{UNKNOWN}';
            END IF;
            PERFORM pg_notify('{CHANNEL}', row_id || ':' || at_version || ':'
                || COALESCE(current_setting('{ORIGIN_SETTING}', true), ''));
            RETURN NULL;
        END $$
        """,
        # UPDATE OF version: a write that does not move the thread (none today) announces nothing.
        "CREATE TRIGGER threads_notify AFTER INSERT OR DELETE OR UPDATE OF version ON threads"
        " FOR EACH ROW EXECUTE FUNCTION twelvefactor_threads_notify()",
    ),
)

# The threads written since a moment (the database's clock), for a listener catching up after a gap.
CHANGED_SINCE_SQL = "SELECT id, version FROM threads WHERE updated_at >= %s ORDER BY updated_at LIMIT %s"


@dataclass(frozen=True, slots=True)
class Change:
    """One announced write: the thread, its version after the write (``DELETED``), the writer's origin."""

    thread_id: str
    version: int
    origin: str


def parse(payload: str) -> Change | None:
    """The change a notification announces; None for a payload this version does not understand."""
    thread_id, _, rest = payload.rpartition(":")
    thread_id, _, version = thread_id.rpartition(":")
    if not thread_id:
        return None
    try:
        number = int(version)
    except ValueError:
        return None
    return Change(thread_id, number, rest)
