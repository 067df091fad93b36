"""The view :func:`twelvefactor.parsing.parse_partial` gives of an answer still being written.

A display view, never an answer: JSON-like data (dicts, lists, strings, numbers, booleans) in the
schema's spellings (the canonical intent, field names, enum values), holding what was read so far.
A string cut short shows its text so far, since that is what a person watching the stream wants to
see; a number, a literal or a word cut mid-token is left out, since ``2`` may still become ``25``.
Nothing here is validated: :func:`parse` is what turns a whole answer into an object.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from twelvefactor._coerce import (
    DictShape,
    Intents,
    ListShape,
    ModelShape,
    OptionalShape,
    Shape,
    StrShape,
    UnionShape,
    objectify,
)
from twelvefactor._lenient_json import Cut, holds_unfinished

_OMIT: Any = object()


def view_of(shape: Shape, value: Any) -> tuple[Any, list[str]]:
    """The view of a (coerced) value the end of the output cut, and the required fields not complete.

    ``missing`` names a model's required fields (its tag first, while it is unknown) that are absent
    or still unfinished; it is empty for other schemas.
    """
    inner = shape.inner if isinstance(shape, OptionalShape) else shape
    value = objectify(value) if isinstance(inner, ModelShape | UnionShape) else value
    if isinstance(value, dict):
        model = _model_for(inner, value)
        if model is not None:
            return _fields(model, value), _missing(model, value)
        if isinstance(inner, UnionShape) and inner.intents is not None:
            return _plain(value), [inner.intents.key]
    shown = _view(inner, value)
    return (None if shown is _OMIT else shown), []


def required_fields(shape: Shape) -> list[str]:
    """What a model schema still needs when nothing is read yet (a union: its tag)."""
    inner = shape.inner if isinstance(shape, OptionalShape) else shape
    if isinstance(inner, ModelShape):
        return [key for key, _ in inner.required_fields]
    if isinstance(inner, UnionShape) and inner.intents is not None:
        return [inner.intents.key]
    return []


def _model_for(shape: Shape, value: dict[Any, Any]) -> ModelShape | None:
    if isinstance(shape, ModelShape):
        return shape
    if isinstance(shape, UnionShape) and shape.intents is not None:
        return _member(shape.intents, value)
    return None


def _member(intents: Intents, value: dict[Any, Any]) -> ModelShape | None:
    hit = intents.find(value.get(intents.key))
    return hit[1] if hit is not None else None


def _fields(model: ModelShape, value: dict[Any, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for key, item in value.items():
        field = model.fields.get(key)
        item_view = _view(field, item) if field is not None else _plain(item)
        if item_view is not _OMIT:
            shown[str(key)] = item_view
    return shown


def _missing(model: ModelShape, value: dict[Any, Any]) -> list[str]:
    missing = []
    for key, name in model.required_fields:
        item = value.get(key, value.get(name, _OMIT))
        if item is _OMIT or holds_unfinished(item):
            missing.append(key)
    return missing


def _view(shape: Shape, value: Any) -> Any:  # noqa: C901 - one flat dispatch over the shapes
    if isinstance(value, Cut):
        return value.text if value.text is not None and _is_text(shape) else _OMIT
    if isinstance(shape, OptionalShape):
        return None if value is None else _view(shape.inner, value)
    if isinstance(value, dict):
        model = _model_for(shape, value)
        if model is not None:
            return _fields(model, value)
        if isinstance(shape, DictShape):
            return {k: v for k, v in ((k, _view(shape.item, v)) for k, v in value.items()) if v is not _OMIT}
        return _plain(value)
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [v for v in (_view(shape.item, item) for item in value) if v is not _OMIT]
    if isinstance(value, list):
        return _plain(value)
    return value.value if isinstance(value, Enum) else value


def _is_text(shape: Shape) -> bool:
    inner = shape.inner if isinstance(shape, OptionalShape) else shape
    return isinstance(inner, StrShape)


def _plain(value: Any) -> Any:
    """A value of no known shape, without its unfinished scalars (a cut string keeps its text)."""
    if isinstance(value, Cut):
        return value.text if value.text is not None else _OMIT
    if isinstance(value, dict):
        return {k: v for k, v in ((k, _plain(v)) for k, v in value.items()) if v is not _OMIT}
    if isinstance(value, list):
        return [v for v in map(_plain, value) if v is not _OMIT]
    return value.value if isinstance(value, Enum) else value
