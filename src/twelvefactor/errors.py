"""The exception tree of twelvefactor.

    TwelveFactorError
    ├── UserError            API misuse: fix the calling code or configuration
    │   └── UnknownAgentError
    ├── ParseError           model output that is not a valid next step (also a ValueError)
    ├── ModelError           a model call failed (provider error, script exhausted, requests forbidden)
    │   └── ModelRequestsForbidden
    ├── ToolError            a tool raised; the message is compact enough for the context window
    ├── ConflictError        someone else advanced the thread (optimistic concurrency)
    ├── NotWaitingError      a human response for a thread that is not waiting for it
    └── ThreadNotFound       no thread with that id in the store

Every message names the offending value and what to do about it.
"""

from __future__ import annotations


def compact(text: str, limit: int = 500) -> str:
    """One line, at most ``limit`` characters: the form errors take in a context window."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class TwelveFactorError(Exception):
    """Root of every error twelvefactor raises on purpose."""


class UserError(TwelveFactorError):
    """The library was called in a way it does not support."""


class UnknownAgentError(UserError):
    """An agent reference (module:attr, file.py:attr or example name) did not resolve."""


class ParseError(TwelveFactorError, ValueError):
    """Model output could not be turned into a valid instance of the schema.

    The message is short (under 600 characters) so it can go back into a context window as is.
    """


class ModelError(TwelveFactorError):
    """A model call failed; the loop records it as a compact error event."""


class ModelRequestsForbidden(ModelError):
    """A real model request was attempted while real requests are forbidden (tests)."""


class ToolError(TwelveFactorError):
    """A tool failed; `str(err)` is one line without a stack trace."""


class ConflictError(TwelveFactorError):
    """The stored thread moved past the version the caller expected."""

    def __init__(self, thread_id: str, expected_version: int, actual_version: int | None) -> None:
        self.thread_id = thread_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        actual = "absent" if actual_version is None else f"at version {actual_version}"
        super().__init__(
            f"thread {thread_id!r} is {actual}, expected version {expected_version}: "
            "someone else advanced it; reload the thread and apply your change again"
        )


class NotWaitingError(ConflictError):
    """A human response does not match the thread's pending request."""

    def __init__(self, thread_id: str, message: str) -> None:
        self.thread_id = thread_id
        self.expected_version = -1
        self.actual_version = None
        TwelveFactorError.__init__(self, message)


class ThreadNotFound(TwelveFactorError, KeyError):
    """No thread with this id exists in the store."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        super().__init__(thread_id)

    def __str__(self) -> str:
        return f"no thread with id {self.thread_id!r} in this store"
