"""The ThreadStore contract every backend honours, and the summary row ``list`` returns.

A store keeps threads as append-only event logs. Writes use optimistic concurrency: ``save`` names the
version it read, and fails with :class:`~twelvefactor.errors.ConflictError` (writing nothing) when
someone else advanced the thread. Human responses and trigger events may carry an ``idempotency_key``;
a key already applied to a thread makes the second ``respond``/``append`` a successful no-op, so a
double-clicked "approve" or a redelivered webhook is applied once.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, Self, cast, runtime_checkable

from pydantic import BaseModel, ConfigDict

from twelvefactor.errors import ConflictError, IdempotencyKeyReused, StoreCorruptionError, UserError
from twelvefactor.events import Event, HumanResponse
from twelvefactor.thread import Status, Thread
from twelvefactor.thread import rebase as rebase_events

__all__ = ["FINISHED", "StoreCorruptionError", "ThreadStore", "ThreadSummary"]

# The statuses ``prune`` may delete: a thread that stopped for good. Never "running" or "waiting".
FINISHED: tuple[Status, ...] = ("done", "failed")


class ThreadSummary(BaseModel):
    """One row of :meth:`ThreadStore.list`: a thread's identity and derived status, without its events."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: str
    agent: str | None
    status: Status
    version: int
    created_at: datetime
    updated_at: datetime
    parent_id: str | None = None
    forked_at: int | None = None


@runtime_checkable
class ThreadStore(Protocol):
    """Durable threads with optimistic concurrency. Implementations: MemoryStore, SQLiteStore, PostgresStore."""

    def create(self, thread: Thread) -> Thread:
        """Store a new thread with all its events; ConflictError(id, 0, actual) if the id exists."""
        ...

    def save(self, thread: Thread, expected_version: int) -> Thread:
        """Append ``thread.events[expected_version:]`` iff the stored version is ``expected_version``.

        With ``expected_version == 0`` and no stored thread this is :meth:`create`. Otherwise raises
        ConflictError and writes nothing. Returns ``thread``.
        """
        ...

    def load(self, thread_id: str) -> Thread:
        """The stored thread; ThreadNotFound if there is none."""
        ...

    def list(
        self,
        *,
        agent: str | None = None,
        status: Status | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[ThreadSummary]:
        """Thread summaries, newest (by creation) first, optionally filtered by agent and status."""
        ...

    def respond(self, thread_id: str, response: HumanResponse) -> Thread:
        """Apply a human response atomically; a repeated ``idempotency_key`` is a no-op.

        Keys are scoped to the thread. A key already applied returns the current thread unchanged,
        whatever the repeated response says; a response without a key is applied at most once anyway
        (the request is no longer pending), but the second caller gets NotWaitingError.

        Raises NotWaitingError (or UserError for a malformed answer) and writes nothing when the
        response does not fit the pending request.
        """
        ...

    def append(
        self,
        thread_id: str,
        events: Event | Sequence[Event],
        expected_version: int | None = None,
        *,
        rebase: bool = False,
    ) -> Thread:
        """Append events (a trigger, or what a process decided) at the tail, or at ``expected_version``.

        With ``expected_version`` the append is all or nothing: ConflictError if the thread moved. With
        ``rebase=True`` a moved thread is no conflict: in the same transaction, the events that commute
        with what landed since ``expected_version`` are appended at the tail (``thread.rebase``), the
        others dropped. An event whose ``idempotency_key`` was already applied to the thread is skipped
        (a redelivery), unless it differs from the applied one: then IdempotencyKeyReused and nothing is
        written.
        """
        ...

    def delete(self, thread_id: str) -> bool:
        """Remove a thread for good: its row, its events, its lease and its idempotency records.

        True if it was there, False (and nothing changes) if not. Other threads are left alone: a
        sub-thread or fork of the deleted thread keeps its ``parent_id``, now a dangling link (loading the
        parent is ThreadNotFound), and a deleted sub-thread's parent keeps its ``wait`` events. The id is
        free again: a new thread may take it, and the old thread's idempotency keys no longer apply.
        The store does not look at the status: refusing to delete a running thread is the caller's
        choice (the REST API answers 409). Not reversible, and not an event: the log is gone.
        """
        ...

    def prune(
        self,
        *,
        older_than: datetime,
        agent: str | None = None,
        statuses: Iterable[Status] = FINISHED,
        limit: int = 1000,
    ) -> int:
        """Delete (as :meth:`delete`) finished threads last updated before ``older_than``; how many.

        Only threads whose derived status is in ``statuses`` (a subset of ``("done", "failed")``: a
        running or waiting thread is never pruned, and asking for one is UserError) and, with ``agent``,
        of that agent; the oldest updates first, at most ``limit`` in one call (one transaction): call
        again while it returns ``limit``. ``older_than`` must be timezone-aware.
        """
        ...

    def claim(self, thread_id: str, owner: str, ttl_s: float) -> bool:
        """Take (or renew) the lease to advance a thread for ``ttl_s`` seconds; False if another owner holds it.

        Workers claim a thread before running its steps, so one thread never runs in two places at once,
        also across processes sharing the database. An expired lease (a crashed worker) can be taken.
        """
        ...

    def release(self, thread_id: str, owner: str) -> None:
        """Give the lease back (no-op if ``owner`` does not hold it)."""
        ...

    def heartbeat(self, owner: str, thread_ids: Iterable[str], ttl_s: float) -> set[str]:
        """Renew (or take, where free or expired) ``owner``'s leases on ``thread_ids`` in one write.

        Returns the ids ``owner`` now holds: an id missing from it is held by another live owner.
        """
        ...

    def expired_leases(self, limit: int = 100) -> builtins.list[str]:
        """Threads whose lease expired without being released: their holder died (oldest first)."""
        ...

    def lease_of(self, thread_id: str) -> tuple[str, float] | None:
        """``(owner, expires_at)`` of the thread's lease (``time.time()`` seconds), None if none is held."""
        ...

    def close(self) -> None:
        """Release the store's resources; the store cannot be used afterwards."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def check_prune(older_than: datetime, statuses: Iterable[Status], limit: int) -> frozenset[Status]:
    """``prune``'s arguments checked (UserError); the statuses as a set."""
    if not isinstance(older_than, datetime) or older_than.tzinfo is None or older_than.utcoffset() is None:
        raise UserError(f"older_than must be a timezone-aware datetime (e.g. datetime.now(UTC)), got {older_than!r}")
    wanted = frozenset(statuses)
    if not wanted <= frozenset(FINISHED):
        raise UserError(f"prune deletes finished threads only: statuses must be among {FINISHED}, got {sorted(wanted)}")
    if not 0 <= limit < 2**63:
        raise UserError(f"limit ({limit!r}) must be between 0 and 2**63 - 1")
    return wanted


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_page(limit: int, offset: int) -> None:
    if not (0 <= limit < 2**63 and 0 <= offset < 2**63):
        raise UserError(f"limit ({limit!r}) and offset ({offset!r}) must be between 0 and 2**63 - 1")


def check_save(thread: Thread, expected_version: int) -> None:
    if not 0 <= expected_version <= thread.version:
        raise UserError(
            f"expected_version {expected_version!r} is outside 0..{thread.version} for thread"
            f" {thread.id!r}: pass the version the thread had when you loaded it"
        )


def idempotency_key(event: Event) -> str | None:
    """The event's idempotency key: HumanResponse's field, or a trigger's extra field of that name."""
    # Read the field dicts directly: getattr on a pydantic model without the field goes through
    # __getattr__ and an AttributeError, several µs on the save path.
    key = event.__dict__.get("idempotency_key")
    if key is None and event.__pydantic_extra__:
        key = event.__pydantic_extra__.get("idempotency_key")
    return key if isinstance(key, str) else None


def check_repeat(thread_id: str, key: str, applied: Event, repeated: Event) -> None:
    """A redelivered event with an applied key must say the same thing; IdempotencyKeyReused if not.

    For a human response "the same" is the same request and decision (who clicked, and when, may
    differ); for other events it is every field but the time.
    """
    if isinstance(applied, HumanResponse) and isinstance(repeated, HumanResponse):
        fields = ("request_id", "approved", "text")
        if all(getattr(applied, name) == getattr(repeated, name) for name in fields):
            return
        detail = "answer" if applied.request_id == repeated.request_id else "request"
        raise IdempotencyKeyReused(thread_id, key, detail)
    exclude = {"at"}
    if type(applied) is not type(repeated) or applied.model_dump(exclude=exclude) != repeated.model_dump(
        exclude=exclude
    ):
        raise IdempotencyKeyReused(thread_id, key, "event")


def unapplied(thread_id: str, events: Sequence[Event], applied: Callable[[str], Event | None]) -> builtins.list[Event]:
    """``events`` less those whose idempotency key the thread already has (``applied(key)`` finds them);
    a redelivered event that says something else is IdempotencyKeyReused."""
    fresh = []
    for event in events:
        key = idempotency_key(event)
        prior = None if key is None else applied(key)
        if prior is None:
            fresh.append(event)
        else:
            check_repeat(thread_id, cast(str, key), prior, event)
    return fresh


def rebased(thread: Thread, events: Sequence[Event], expected_version: int | None, rebase: bool) -> Sequence[Event]:
    """The events to append to ``thread`` (as stored now): all of them, re-based, or ConflictError."""
    if expected_version is None or thread.version == expected_version:
        return events
    if not rebase or not 0 <= expected_version <= thread.version:
        raise ConflictError(thread.id, expected_version, thread.version)
    return rebase_events(events, thread.events[expected_version:])


def as_events(events: Event | Sequence[Event]) -> tuple[Event, ...]:
    if isinstance(events, Event):
        return (events,)
    result = tuple(events)
    for event in result:
        if not isinstance(event, Event):
            raise UserError(f"append() takes Events, got {type(event).__name__}")
    return result


def duplicate_key_error(thread_id: str, key: str) -> UserError:
    return UserError(
        f"idempotency key {key!r} was already applied to thread {thread_id!r}: use a new key for a"
        " new event, or respond()/append() to make a retried delivery a no-op"
    )
