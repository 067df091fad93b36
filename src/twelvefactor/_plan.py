"""The per-schema plan of :func:`twelvefactor.parsing.parse`: what it needs to know about one schema.

Built once per schema (TypeAdapters, the coercion shapes, the intents, how the schema reads scalars,
wrappers and lists), shared across threads, never changed.
"""

from __future__ import annotations

import threading
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import TypeAdapter

from twelvefactor._coerce import (
    BoolShape,
    ChoiceShape,
    DictShape,
    ListShape,
    ModelShape,
    NumberShape,
    OptionalShape,
    Shape,
    StrShape,
    UnionShape,
    shape_of,
)
from twelvefactor.errors import UserError

_LOCK = threading.RLock()


# Plain slotted classes rather than dataclasses: generating a dataclass costs ~0.3-0.7 ms of import time.


class Member:
    __slots__ = ("name", "adapter", "shape")

    def __init__(self, name: str, adapter: TypeAdapter[Any], shape: Shape) -> None:
        self.name = name
        self.adapter = adapter
        self.shape = shape


class Plan:
    """Everything parse() needs to know about one schema; built once, shared, never changed."""

    __slots__ = (
        "adapter", "shape", "inner", "intents", "members", "by_class", "models", "wants_object", "scalar",
        "tagged", "text", "prose", "unwraps", "many", "lone",
    )  # fmt: skip

    def __init__(self, adapter: TypeAdapter[Any], shape: Shape, members: tuple[Member, ...]) -> None:
        inner = shape.inner if isinstance(shape, OptionalShape) else shape
        self.adapter = adapter
        self.shape = shape
        self.intents = inner.intents if isinstance(inner, ModelShape | UnionShape) else None
        self.members = members  # set for a plain union: validated member by member to refuse ties
        self.by_class = {m.shape.cls: m for m in members if isinstance(m.shape, ModelShape)}
        if members:
            models = [m.shape for m in members]
        elif isinstance(inner, UnionShape) and self.intents is not None:
            models = [shape for _, shape in self.intents.exact.values()]
        else:
            models = [inner]
        # The models an answer can be an instance of: how a failed candidate is recognised as an answer.
        self.models = tuple(dict.fromkeys(m for m in models if isinstance(m, ModelShape)))
        self.wants_object = isinstance(inner, ModelShape | UnionShape | DictShape)
        self.scalar = inner.scalar or (bool(members) and all(m.shape.scalar for m in members))
        self.tagged = isinstance(inner, UnionShape) and not members  # pydantic puts the tag first in locations
        self.text = isinstance(inner, StrShape)  # a str schema: the answer is the reply's text
        self.inner = inner
        # A number, boolean or choice can be read out of prose when the reply holds no JSON for it.
        self.prose = isinstance(inner, NumberShape | BoolShape | ChoiceShape)
        self.unwraps = isinstance(inner, ListShape) or (inner.scalar and not self.text)
        # A list of objects: several top-level objects in the reply are its items.
        self.many = isinstance(inner, ListShape) and isinstance(inner.item, ModelShape | UnionShape | DictShape)
        self.lone = isinstance(inner, ModelShape) and inner.lone is not None  # a bare scalar fills it


_PLANS: dict[int, tuple[Any, Plan]] = {}
_PLANS_BY_VALUE: dict[Any, Plan] = {}


def plan_for(schema: Any) -> Plan:
    entry = _PLANS.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    with _LOCK:
        try:
            plan = _PLANS_BY_VALUE.get(schema) or _build(schema)
            _PLANS_BY_VALUE[schema] = plan
        except TypeError:  # an unhashable schema (metadata without __hash__)
            plan = _build(schema)
        if len(_PLANS) > 512:  # schemas built per call should not grow memory without bound
            _PLANS.clear()
            _PLANS_BY_VALUE.clear()
        _PLANS[id(schema)] = (schema, plan)
    return plan


def _build(schema: Any) -> Plan:
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(schema)
    except Exception as exc:  # pydantic raises several types for "not a schema"
        raise UserError(f"parse() needs a pydantic model or type, got {schema!r}: {exc}") from None
    base, discriminated = schema, False
    while get_origin(base) is Annotated:
        base, *meta = get_args(base)
        discriminated |= any(getattr(m, "discriminator", None) is not None for m in meta)
    shape = shape_of(schema)
    members: tuple[Member, ...] = ()
    if get_origin(base) in (Union, types.UnionType) and not discriminated:
        args = get_args(base)
        if len([a for a in args if a is not type(None)]) > 1:
            members = tuple(Member(_type_name(a), TypeAdapter(a), shape_of(a)) for a in args)
    return Plan(adapter, shape, members)


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else repr(tp).replace("typing.", "")
