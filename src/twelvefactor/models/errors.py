"""The errors model providers raise, under twelvefactor's one exception tree.

    TwelveFactorError
    ├── UserError
    │   └── CassetteError         a cassette file is missing, unreadable, or used up
    │       └── CassetteMismatch  a request no longer matches the recording (with a diff)
    ├── ModelError                the agent records these as compact error events and carries on
    │   └── ProviderError         the provider answered with an error, or not at all (``kind`` says which)
    └── ModelCancelled            the call was cancelled: it raises, and nothing about it is recorded

A ``ProviderError`` is a ``ModelError``, so a failed call becomes one short error event in the thread
(never a stack trace in the context). A cancelled call and a cassette mismatch are deliberately *not*
model errors: they stop the run instead of being retried by the agent.
"""

from __future__ import annotations

from typing import Literal

from twelvefactor.errors import ModelError, TwelveFactorError, UserError

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
    """A model call was cancelled (``model.cancel()``) before its reply was used."""


class CassetteError(UserError):
    """A cassette cannot be read, written or replayed as asked."""


class CassetteMismatch(CassetteError):
    """The agent sent a request the cassette did not record: the prompt, tools or options changed."""
