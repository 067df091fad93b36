"""Record a provider's requests and replies once, replay them offline forever.

    model = record("openai:gpt-4o-mini", "tests/cassettes/refund.json")   # real calls, written down
    model = replay("tests/cassettes/refund.json")                          # no network, no key

A cassette is a JSON file: the model it was recorded with (provider, name, the options that shape the
request) and each exchange in order: the exact request body, and the reply's status and body. Keys and
auth headers are never written: only the ``anthropic-version``/beta request headers are kept, and any
string holding the API key is replaced by ``<redacted>``.

Replay rebuilds the same provider, so its request bodies and reply parsing are the live code. Each
request must equal the recorded one: a changed prompt, tool or option fails with
:class:`CassetteMismatch` and a diff of the two bodies (multi-line strings shown as lines), never a
silent drift. Re-record to accept the change. Whether the reply was streamed is not part of that
comparison (``stream``/``stream_options`` are left out): a streamed recording replays without
streaming and the other way round, the provider reading either form of reply.

Both faces: ``acomplete`` on a recording model sends through the live exchange's async face; a replaying
model's exchange is called inline from ``acomplete``'s worker thread (replay is instant).
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twelvefactor import _yamlish
from twelvefactor.models._http import Exchange, WireRequest, WireResponse
from twelvefactor.models._provider import HTTPModel
from twelvefactor.models.errors import CassetteError, CassetteMismatch

CASSETTE_FORMAT = 1
_REQUEST_HEADERS = ("anthropic-version", "anthropic-beta", "openai-beta")
_RESPONSE_HEADERS = ("content-type", "retry-after", "retry-after-ms")
_DIFF_LINES = 80
_STREAM_FIELDS = ("stream", "stream_options")


class Cassette:
    """The recorded model and its exchanges (``interactions``), read from and written to ``path``."""

    def __init__(self, path: str | Path, model: dict[str, Any], interactions: list[dict[str, Any]] | None = None):
        self.path = Path(path)
        self.model = model
        self.interactions = interactions or []

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r}, {len(self.interactions)} interactions)"

    @classmethod
    def load(cls, path: str | Path) -> Cassette:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise CassetteError(f"no cassette at {str(path)!r}: record one first with record(model, path)") from exc
        except OSError as exc:
            raise CassetteError(f"cannot read cassette {str(path)!r}: {exc.strerror}") from exc
        except ValueError as exc:
            raise CassetteError(f"cassette {str(path)!r} is not JSON: {exc}") from exc
        if not (
            isinstance(data, dict)
            and data.get("twelvefactor_cassette") == CASSETTE_FORMAT
            and isinstance(data.get("model"), dict)
            and isinstance(data.get("interactions"), list)
        ):
            raise CassetteError(
                f"{str(path)!r} is not a twelvefactor cassette (format {CASSETTE_FORMAT}): re-record it"
            )
        return cls(path, data["model"], data["interactions"])

    def to_json(self) -> str:
        data = {"twelvefactor_cassette": CASSETTE_FORMAT, "model": self.model, "interactions": self.interactions}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    def save(self) -> None:
        """Write the file atomically (a crash mid-write leaves the previous version)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.to_json())
            # mkstemp makes the file private; a cassette is a test fixture meant to be shared.
            os.chmod(tmp, self.path.stat().st_mode & 0o777 if self.path.exists() else 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class RecordingExchange:
    """Sends through ``inner`` and appends each exchange to the cassette (saved after every call)."""

    def __init__(self, inner: Exchange, cassette: Cassette, secrets: Sequence[str | None] = ()) -> None:
        self.inner = inner
        self.cassette = cassette
        self._secrets = [s for s in secrets if s and len(s) >= 8]
        self._lock = threading.Lock()

    def __call__(self, request: WireRequest) -> WireResponse:
        return self._record(request, self.inner(request))

    async def acall(self, request: WireRequest) -> WireResponse:
        send = getattr(self.inner, "acall", None)
        response = await send(request) if callable(send) else await asyncio.to_thread(self.inner, request)
        return self._record(request, response)

    def _record(self, request: WireRequest, response: WireResponse) -> WireResponse:
        interaction = _scrub(_interaction(request, response), self._secrets)
        with self._lock:
            self.cassette.interactions.append(interaction)
            self.cassette.save()
        return response

    def cancel(self) -> int:
        cancel = getattr(self.inner, "cancel", None)
        return int(cancel()) if callable(cancel) else 0

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()

    async def aclose(self) -> None:
        aclose = getattr(self.inner, "aclose", None)
        if callable(aclose):
            await aclose()
        else:
            self.close()


class ReplayExchange:
    """Serves the cassette's replies in order, after checking each request against the recording."""

    def __init__(self, cassette: Cassette) -> None:
        self.cassette = cassette
        self.position = 0
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int:
        """Recorded exchanges not replayed yet (0 when the run made every recorded call)."""
        return len(self.cassette.interactions) - self.position

    def __call__(self, request: WireRequest) -> WireResponse:
        with self._lock:
            index = self.position
            total = len(self.cassette.interactions)
            if index >= total:
                raise CassetteMismatch(
                    f"cassette {str(self.cassette.path)!r} holds {total} requests, and request {index + 1} was"
                    " made: the agent now takes more steps than it did when recorded; re-record the cassette"
                )
            recorded = self.cassette.interactions[index]
            wanted = recorded.get("request", {})
            if wanted.get("endpoint") != request.endpoint or _unstreamed(wanted.get("body")) != _unstreamed(
                request.body
            ):
                raise CassetteMismatch(self._mismatch(index, wanted, request))
            self.position += 1
        reply = recorded.get("response", {})
        body = reply.get("body")
        text = reply["text"] if isinstance(reply.get("text"), str) else json.dumps(body)
        return WireResponse(
            status=int(reply.get("status", 200)), headers=dict(reply.get("headers", {})), body=body, text=text
        )

    def _mismatch(self, index: int, wanted: dict[str, Any], request: WireRequest) -> str:
        before = _yamlish.render({"endpoint": wanted.get("endpoint"), **(wanted.get("body") or {})}).splitlines()
        after = _yamlish.render({"endpoint": request.endpoint, **request.body}).splitlines()
        diff = list(difflib.unified_diff(before, after, "recorded", "sent now", n=2, lineterm=""))
        if len(diff) > _DIFF_LINES:
            diff = [*diff[:_DIFF_LINES], f"... ({len(diff) - _DIFF_LINES} more diff lines)"]
        return (
            f"request {index + 1} differs from cassette {str(self.cassette.path)!r}: the prompt, tools or"
            " model options changed since it was recorded. Re-record the cassette if the change is"
            " intended.\n" + "\n".join(diff)
        )


def _unstreamed(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    return {key: value for key, value in body.items() if key not in _STREAM_FIELDS}


def _interaction(request: WireRequest, response: WireResponse) -> dict[str, Any]:
    sent = {key: value for key, value in request.headers.items() if key.lower() in _REQUEST_HEADERS}
    got = {key: value for key, value in response.headers.items() if key.lower() in _RESPONSE_HEADERS}
    reply: dict[str, Any] = {"status": response.status, "headers": got}
    if response.body is not None:
        reply["body"] = response.body
    else:
        reply["text"] = response.text
    return {
        "request": {"method": request.method, "endpoint": request.endpoint, "headers": sent, "body": request.body},
        "response": reply,
    }


def _scrub(value: Any, secrets: Sequence[str]) -> Any:
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "<redacted>")
        return value
    if isinstance(value, dict):
        return {_scrub(k, secrets): _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secrets) for item in value]
    return value


# --- the public functions ------------------------------------------------------------------------------


def record(model: HTTPModel | str, path: str | Path) -> HTTPModel:
    """``model`` (a provider, or a model string) whose every call is also written to the cassette ``path``.

    The file is started afresh: an existing cassette at ``path`` is replaced on the first call.
    """
    if isinstance(model, str):
        from twelvefactor.models.resolve import resolve_model

        resolved = resolve_model(model)
        if not isinstance(resolved, HTTPModel):
            raise CassetteError(f"record() records HTTP providers; {model!r} is a {type(resolved).__name__}")
        model = resolved
    if not isinstance(model, HTTPModel):
        raise CassetteError(f"record() records HTTP providers (OpenAIModel, AnthropicModel), not {model!r}")
    cassette = Cassette(path, describe(model))
    return model.with_exchange(RecordingExchange(model.exchange, cassette, secrets=[model.api_key]))


def replay(path: str | Path, model: HTTPModel | None = None) -> HTTPModel:
    """A model that serves the cassette at ``path`` without any network call.

    By default it is the provider the cassette was recorded with; pass ``model`` to replay through
    your own configured provider instead (its requests must still match the recording).
    """
    cassette = Cassette.load(path)
    exchange = ReplayExchange(cassette)
    if model is not None:
        return model.with_exchange(exchange)
    return from_description(cassette.model, exchange, str(cassette.path))


def describe(model: HTTPModel) -> dict[str, Any]:
    """What a cassette notes about the recording model (nothing secret)."""
    return {"provider": model.provider, "model": model.model, "options": model.options()}


def from_description(description: dict[str, Any], exchange: Exchange, where: str = "cassette") -> HTTPModel:
    provider = description.get("provider")
    name = description.get("model")
    options = description.get("options", {})
    if not isinstance(name, str) or not isinstance(options, dict):
        raise CassetteError(f"{where}: the recorded model needs a 'model' name and an 'options' object")
    try:
        if provider == "openai":
            from twelvefactor.models.openai import OpenAIModel

            return OpenAIModel(name, exchange=exchange, **options)
        if provider == "anthropic":
            from twelvefactor.models.anthropic import AnthropicModel

            return AnthropicModel(name, exchange=exchange, **options)
    except TypeError as exc:
        raise CassetteError(f"{where}: the recorded options {sorted(options)} do not fit {provider}: {exc}") from exc
    raise CassetteError(f"{where}: unknown provider {provider!r} (openai or anthropic)")
