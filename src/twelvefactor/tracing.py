"""OpenTelemetry traces of what agents do: off until you turn them on, and sent nowhere by us.

    from twelvefactor.tracing import enable_tracing
    enable_tracing()   # spans go to the tracer provider you configured (OTLP, console, ...)

Spans: ``agent.run`` per loop run (thread id, agent), ``chat {model}`` per model call with the GenAI
semantic conventions (``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.usage.input_tokens`` / ``output_tokens``, ``gen_ai.response.finish_reasons``), ``execute_tool
{intent}`` per tool run (``gen_ai.tool.name``, ``gen_ai.tool.call.id``) and ``human_wait`` from a
request to its answer (recorded when the answer is acted on, with the request's time as its start).
Prompts and outputs are not put on spans: they are on the thread already, and spans often travel to
third parties. Needs ``opentelemetry-api`` (the ``otel`` extra); no exporter is set up here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any

from twelvefactor.errors import UserError

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

_tracer: Tracer | None = None
_NO_SPAN: AbstractContextManager[None] = nullcontext()


def enable_tracing(provider: TracerProvider | None = None) -> None:
    """Record spans from now on, with ``provider`` (default: the global one OpenTelemetry was given)."""
    global _tracer
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise UserError("tracing needs opentelemetry-api: pip install 'twelvefactor[otel]'") from exc
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("twelvefactor")
    except PackageNotFoundError:
        ours = None
    _tracer = trace.get_tracer("twelvefactor", ours, tracer_provider=provider)


def disable_tracing() -> None:
    global _tracer
    _tracer = None


def tracing_enabled() -> bool:
    return _tracer is not None


def span(name: str, attributes: dict[str, Any]) -> AbstractContextManager[Span | None]:
    """A span around a block when tracing is on; a shared no-op otherwise (the hot path stays free)."""
    if _tracer is None:
        return _NO_SPAN
    return _live(name, attributes)


@contextmanager
def _live(name: str, attributes: dict[str, Any]) -> Iterator[Span]:
    assert _tracer is not None
    with _tracer.start_as_current_span(name, attributes=_clean(attributes)) as current:
        yield current


def set_attributes(current: Span | None, attributes: dict[str, Any]) -> None:
    if current is not None:
        current.set_attributes(_clean(attributes))


def record_span(name: str, start: datetime, end: datetime, attributes: dict[str, Any]) -> None:
    """A span that already happened (a person's wait), from its recorded times."""
    if _tracer is None:
        return
    started = _tracer.start_span(name, attributes=_clean(attributes), start_time=_ns(start))
    started.end(end_time=_ns(end))


def _ns(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000_000)


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry takes str, bool, int, float (or lists of one): None means "not known", so it is left out."""
    return {key: value for key, value in attributes.items() if value is not None}


if os.environ.get("TWELVEFACTOR_TRACING", "").lower() in ("1", "true", "yes", "on"):  # opt in by environment
    try:
        enable_tracing()
    except UserError as exc:
        import logging

        logging.getLogger("twelvefactor.tracing").warning("TWELVEFACTOR_TRACING is set, but %s", exc)
