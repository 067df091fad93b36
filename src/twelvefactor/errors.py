"""The exception tree of twelvefactor: every error it raises on purpose is defined here.

    TwelveFactorError
    ├── UserError                API misuse: fix the calling code or configuration
    │   ├── UnknownAgentError    an agent reference (file, module, example name) did not resolve
    │   ├── TextTooLong          a message, answer or event text over the server's max_text_chars (422)
    │   ├── WorkflowChanged      a workflow's code no longer takes the steps its thread recorded
    │   ├── MailRejected         an inbound email that answers nothing: no or bad token, a sender not
    │   │                        allowed, an unreadable answer, unparseable MIME (nothing was changed)
    │   ├── FactKeyTaken         a memory fact's new key is one its scope already gives another fact (409)
    │   ├── CassetteError        a cassette file is missing, unreadable, or used up
    │   │   └── CassetteMismatch a request no longer matches the recording (with a diff)
    │   ├── DatasetError         an eval dataset or result file that cannot be read (names the case and field)
    │   └── PlotsUnavailable     PNG plots asked for without matplotlib (the plots extra); SVG needs nothing
    ├── ParseError               model output that is not a valid next step (also a ValueError)
    ├── ModelError               a model call failed; the agent records it as a compact error event
    │   ├── ModelRequestsForbidden  a real request while real requests are forbidden (tests)
    │   └── ProviderError        the provider answered with an error, or not at all (``kind`` says which)
    ├── ModelCancelled           the call was cancelled: it raises, and nothing about it is recorded
    ├── ToolError                a tool raised; the message is compact enough for the context window
    │                            (``may_have_run``: it cannot tell whether the call took effect)
    ├── StepFailed               a workflow step failed (or was denied or skipped); catch it to go on
    ├── ConflictError            someone else advanced the thread (optimistic concurrency)
    │   ├── NotWaitingError      a human response for a thread that is not waiting for it
    │   ├── IdempotencyKeyReused an idempotency key already applied, now with a different event
    │   └── ThreadLeased         another live process is advancing the thread right now
    ├── ThreadNotFound           no thread with that id in the store (also a KeyError)
    ├── FactNotFound             no memory fact with that id (also a KeyError)
    ├── StoreError               the store itself failed
    │   ├── StoreBusyError       transient: the database is locked, busy or unreachable; retry later
    │   ├── StoreNotWritable     a read-only file or directory, a full disk, a closed store
    │   └── StoreCorruptionError a stored row cannot be read back as an event
    ├── AuthenticationError      a request could not be authenticated (no or wrong token, bad signature)
    │   ├── SignatureError       a webhook's signature or timestamp does not check out
    │   └── SignInRequired       a web UI page without a valid session where API tokens are set
    ├── LinkError                an approval link token that is malformed, altered or expired
    ├── ChannelError             a channel (email, Slack) could not deliver a message; says if a retry may help
    ├── TokenError               a signed token (link, session) that does not check out (also a ValueError)
    │   ├── MalformedToken       not a ``payload.signature`` token at all
    │   └── ForgedToken          its signature does not match: altered, or another secret or use
    ├── SSEFieldError            an SSE field value with a line break (also a ValueError)
    └── RetrievalError           a document collection could not be read or written (its database or
                                 embedder failed, or vectors of another size than the collection's)

Not here, on purpose: the server's 413 for an oversized body is Starlette's HTTPException
(``server/limits.BodyTooLarge``), raised and answered inside the ASGI layer; the core imports no HTTP.

Every message names the offending value and what to do about it. ``is_transient(exc)`` says whether
retrying the same operation later may succeed.
"""

from __future__ import annotations

from typing import Literal


def compact(text: str, limit: int = 500) -> str:
    """One line, at most ``limit`` characters: the form errors take in a context window.

    Lone surrogates (which no UTF-8 store can hold) become U+FFFD, so the line can always be saved.
    """
    line = " ".join(text.split())
    if not line.isascii():
        line = line.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return line if len(line) <= limit else line[: limit - 1] + "…"


class TwelveFactorError(Exception):
    """Root of every error twelvefactor raises on purpose."""


class UserError(TwelveFactorError):
    """The library was called in a way it does not support."""


class UnknownAgentError(UserError):
    """An agent reference (module:attr, file.py:attr or example name) did not resolve."""


class TextTooLong(UserError):
    """A message, answer or event text over the server's ``max_text_chars`` (422)."""


class WorkflowChanged(UserError):
    """A workflow's code asked for a different step than the one its thread recorded at that place.

    A workflow is replayed from the top on every resume, so its steps must come in the same order for
    the same recorded results: deploy the new code to new threads, or fork the thread from before the
    step that changed.
    """


class MailRejected(UserError):
    """An inbound email that changes nothing: not a valid reply to a pending request nor a mail to an
    inbound address, a sender not allowed, an answer that cannot be read, or a message that cannot be parsed.
    The message says why, for the sender."""


class FactKeyTaken(UserError):
    """An edit would give a memory fact a key that another fact of its scope has: nothing was changed."""


class CassetteError(UserError):
    """A cassette cannot be read, written or replayed as asked."""


class CassetteMismatch(CassetteError):
    """The agent sent a request the cassette did not record: the prompt, tools or options changed."""


class DatasetError(UserError):
    """An eval dataset (or a saved eval result) cannot be read or does not validate; the message names the
    file, the case and the field."""


class PlotsUnavailable(UserError):
    """PNG plots were asked for and matplotlib (the ``plots`` extra) is not installed; the message says how
    to install it. SVG charts need no extra."""


class ParseError(TwelveFactorError, ValueError):
    """Model output could not be turned into a valid instance of the schema.

    The message is short (under 600 characters) so it can go back into a context window as is.
    """


class ModelError(TwelveFactorError):
    """A model call failed; the loop records it as a compact error event."""


class ModelRequestsForbidden(ModelError):
    """A real model request was attempted while real requests are forbidden (tests)."""


ProviderErrorKind = Literal[
    "auth",  # 401/403: the key is missing, wrong or lacks access
    "not_found",  # 404: unknown model, or a wrong base URL
    "context_length",  # the prompt does not fit the model's context window
    "bad_request",  # any other 4xx: the request itself is wrong
    "rate_limit",  # 429 after the last retry
    "server",  # 5xx (or 408/409) after the last retry
    "timeout",  # no answer within the timeout, after the last retry
    "connection",  # the server could not be reached, after the last retry
    "malformed",  # a 2xx answer that is not what the wire format promises
]


class ProviderError(ModelError):
    """A provider call failed; ``str(err)`` is one line that names the model and what to do."""

    def __init__(
        self,
        message: str,
        *,
        kind: ProviderErrorKind,
        model: str,
        status: int | None = None,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ProviderErrorKind = kind
        self.model = model
        self.status = status
        self.attempts = attempts
        self.retry_after = retry_after


class ModelCancelled(TwelveFactorError):
    """A model call was cancelled (``model.cancel()``) before its reply was used.

    Deliberately not a ModelError: the run stops and the thread is left as recorded, resumable.
    """


class ToolError(TwelveFactorError):
    """A tool failed; `str(err)` is one line without a stack trace.

    ``may_have_run=True`` says the tool cannot tell whether its call took effect (the connection to a
    remote tool dropped mid-call): the loop then treats an irreversible call like one interrupted by a
    crash (its ``reconcile`` hook, then a person) instead of recording a failure the model may retry.
    """

    def __init__(self, message: str, *, may_have_run: bool = False) -> None:
        super().__init__(message)
        self.may_have_run = may_have_run


class StepFailed(TwelveFactorError):
    """A workflow step failed, was denied or skipped; ``step`` is its call id, ``name`` what it ran.

    Raised inside the workflow function, where it can be caught to take another path; uncaught, it
    ends the workflow's thread with a fatal error naming the step.
    """

    def __init__(self, step: str, name: str, message: str) -> None:
        self.step = step
        self.name = name
        self.message = message
        super().__init__(f"step {step} ({name}) failed: {message}")


class ConflictError(TwelveFactorError):
    """The stored thread is not in the state the caller expected; nothing was written.

    ``expected_version`` and ``actual_version`` are set for version conflicts (``actual_version`` is
    None when the thread is absent); subclasses that are about something else leave them None.
    """

    def __init__(
        self,
        thread_id: str,
        expected_version: int | None = None,
        actual_version: int | None = None,
        *,
        message: str | None = None,
    ) -> None:
        self.thread_id = thread_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        if message is None:
            actual = "absent" if actual_version is None else f"at version {actual_version}"
            message = (
                f"thread {thread_id!r} is {actual}, expected version {expected_version}: "
                "someone else advanced it; reload the thread and apply your change again"
            )
        super().__init__(message)


class NotWaitingError(ConflictError):
    """A human response does not match the thread's pending request."""

    def __init__(self, thread_id: str, message: str) -> None:
        super().__init__(thread_id, message=message)


class IdempotencyKeyReused(ConflictError):
    """An idempotency key that was already applied to the thread came back with a different event
    (e.g. the same key now says "deny" where it said "approve"): nothing is written."""

    def __init__(self, thread_id: str, key: str, detail: str) -> None:
        self.key = key
        super().__init__(
            thread_id,
            message=f"idempotency key {key!r} was already applied to thread {thread_id!r} with a different"
            f" {detail}: a retry must repeat the same request; use a new key for a new one",
        )


class ThreadLeased(ConflictError):
    """Another live process holds the thread's lease: it is advancing the thread right now."""

    def __init__(self, thread_id: str, owner: str, seconds_left: float) -> None:
        self.owner = owner
        self.seconds_left = seconds_left
        super().__init__(
            thread_id,
            message=f"thread {thread_id!r} is being advanced by {owner!r} (its lease runs {seconds_left:.1f} s more"
            " and is renewed while that process lives): wait for it to pause or finish, or stop that process",
        )


class ThreadNotFound(TwelveFactorError, KeyError):
    """No thread with this id exists in the store."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        super().__init__(thread_id)

    def __str__(self) -> str:
        return f"no thread with id {self.thread_id!r} in this store"


class FactNotFound(TwelveFactorError, KeyError):
    """No memory fact with this id (it was never written, or was forgotten)."""

    def __init__(self, fact_id: str) -> None:
        self.fact_id = fact_id
        super().__init__(fact_id)

    def __str__(self) -> str:
        return f"no memory fact with id {self.fact_id!r}: list the facts (GET /v1/memory) for the ids there are"


class StoreError(TwelveFactorError):
    """The store failed to read or write (as opposed to refusing a write: see ConflictError)."""


class StoreBusyError(StoreError):
    """Transient: another writer held the database lock past the busy timeout (SQLite), or the database
    server could not be reached, was restarting or asked for a retry (PostgreSQL). Retrying later is safe:
    a write either happened whole or not at all, and versions and idempotency keys keep a retry from
    applying twice."""


class StoreNotWritable(StoreError):
    """The store cannot be written: a read-only file or directory, a full disk, a closed store."""


class StoreCorruptionError(StoreError):
    """A stored row cannot be read back as an event (or the rows disagree with the thread's version).

    Nothing is repaired automatically: the message names the thread and the event's sequence number so
    the row can be inspected (``seq`` is the event's 0-based index in the thread).
    """

    def __init__(self, thread_id: str, seq: int | None, reason: str) -> None:
        self.thread_id = thread_id
        self.seq = seq
        self.reason = reason
        where = f"thread {thread_id!r}" if seq is None else f"thread {thread_id!r}, event seq {seq}"
        super().__init__(f"corrupt store row for {where}: {reason}")


class AuthenticationError(TwelveFactorError):
    """A request could not be authenticated (no or wrong token, bad signature)."""


class SignatureError(AuthenticationError):
    """A webhook's signature or timestamp does not check out: forged, altered, or stale."""


class SignInRequired(AuthenticationError):
    """A web UI page was asked for without a valid session on a server with API tokens."""

    def __init__(self, next_url: str) -> None:
        super().__init__("sign in with an API token first (/sign-in)")
        self.next_url = next_url


class LinkError(TwelveFactorError):
    """An approval link token that is malformed, altered, signed with another secret, or expired."""


class ChannelError(TwelveFactorError):
    """A channel could not deliver. ``retryable``: try again later (a timeout, a 5xx, rate limited), else
    give up on this delivery (bad address, revoked token); ``retry_after_s`` when the service said."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class TokenError(TwelveFactorError, ValueError):
    """A signed token (an approval link, a session cookie) that does not check out."""


class MalformedToken(TokenError):
    """Not a ``payload.signature`` token at all (truncated, empty, too long)."""


class ForgedToken(TokenError):
    """A token whose signature does not match: altered, or signed with another secret or for another use."""


class SSEFieldError(TwelveFactorError, ValueError):
    """An SSE ``event`` or ``id`` value that holds a line break (or NUL) and would split the frame."""


class RetrievalError(TwelveFactorError):
    """A document collection could not be read or written: its database or its embedder failed, or an
    embedder gave vectors of another size than the collection was indexed with."""


def is_transient(exc: BaseException) -> bool:
    """Whether the same operation may succeed if retried later (a busy database, a moved thread)."""
    if isinstance(exc, StoreBusyError):
        return True
    if isinstance(exc, ConflictError):
        return type(exc) is ConflictError  # a version conflict; a refused response or a held lease is final
    # sqlite3 is imported lazily; its OperationalError for a locked database is transient too.
    name = type(exc).__name__
    return name == "OperationalError" and any(s in str(exc) for s in ("locked", "busy"))
