"""Schema-aligned parsing: raw model text -> a validated instance of the schema, or a short ParseError.

The model's whole job is to emit ONE next step as JSON; what it actually emits is JSON in a markdown
fence, after a ``<think>`` block, in a tool-call envelope, with single quotes, cut off by max tokens...
:func:`parse` turns that into a typed object, or into a ``ParseError`` short enough to go back into the
context window. The pipeline:

0. Fast path: when ``text.strip()`` is plain JSON, decode it in C and go straight to step 4.
1. Strip reasoning (``<think>``, ``<reasoning>``...; a draft in there is never an answer) and pick the
   answer regions (``<answer>``, ``<tool_call>``, harmony channels...) -- :mod:`._lenient_json`.
2. Find candidates: every top-level ``{...}``/``[...]`` in those regions.
3. Lenient parse of each candidate (hand-written, iterative); a value cut off by the end of the text is
   closed and its unfinished member dropped.
4. Schema-guided coercion: unwrap JSON held in strings and one-element arrays, flatten tool-call
   envelopes whose name is one of the schema's intents, fix the case of intents/literals/enums, wrap a
   scalar where a list is expected. Coercion only reshapes; it never decides validity.
5. Pydantic validation against ``schema``: every returned object comes out of it.
6. Ambiguity check: two different valid answers, or two union members that fit equally, are an error,
   never a guess.

Per-schema work (TypeAdapters, the coercion plan, the intent map) is cached by schema object.
"""

from __future__ import annotations

import copy
import re
import threading
import types
from collections.abc import Iterable, Mapping, MutableMapping, MutableSequence, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin, overload

from pydantic import BaseModel, RootModel, TypeAdapter, ValidationError

from twelvefactor._lenient_json import (
    DECODER,
    LenientError,
    Parsed,
    Region,
    TooMessy,
    bare_value,
    fallback_values,
    line_col,
    prepare,
    scan,
)
from twelvefactor._lenient_json import unescape as _unescape
from twelvefactor.errors import ParseError, UserError

__all__ = ["parse"]

T = TypeVar("T")

_MAX_MESSAGE = 599
_MAX_ANSWERS = 10
_MISSING: Any = object()


@overload
def parse(text: str, schema: type[T]) -> T: ...
@overload
def parse(text: str, schema: Any) -> Any: ...
def parse(text: str, schema: Any) -> Any:
    """Turn raw model output into an instance of ``schema``, or raise :class:`ParseError`.

    ``schema`` is a pydantic model, a (discriminated) union of models, or any type a ``TypeAdapter``
    accepts. The error message is one or two sentences under 600 characters, fit to show the model;
    the error also carries ``raw`` (the full text) and ``allowed_intents``.
    """
    plan = _plan_for(schema)
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        raise _error(plan, "", f"expected the model's reply as text, got {type(text).__name__}")
    try:
        return _parse(text, plan, 0)
    except _Invalid as exc:
        raise _error(plan, text, exc.message) from None
    except RecursionError:
        raise _error(plan, text, "the JSON is nested too deeply") from None


# --- per-schema plan ----------------------------------------------------------------------------


class _Shape:
    """How to reshape raw JSON toward one type before pydantic sees it (never decides validity)."""

    __slots__ = ()
    trivial: ClassVar[bool] = False  # coerce() is the identity: callers skip it on the hot path
    scalar: ClassVar[bool] = False

    def coerce(self, value: Any) -> Any:
        return value


class _AnyShape(_Shape):
    __slots__ = ()
    trivial = True


class _ScalarShape(_Shape):
    """Numbers and booleans: pydantic's lax mode already reads "5" and "true"."""

    __slots__ = ()
    trivial = True
    scalar = True


class _StrShape(_Shape):
    __slots__ = ()
    scalar = True

    def coerce(self, value: Any) -> Any:
        # Models write ids and zip codes as bare numbers; the text is the same either way.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value


_ANY = _AnyShape()
_SCALAR = _ScalarShape()
_STR = _StrShape()


_SEPARATORS = str.maketrans("", "", "_- \t")


def _norm(name: str) -> str:
    # "ADD", "Dark Blue", "done-for-now" and "DoneForNow" all name the same value.
    return name.lower().translate(_SEPARATORS)


def _folded_map(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Map normalised names to values, leaving out any name two different values share."""
    out: dict[str, Any] = {}
    clashes: set[str] = set()
    for name, value in pairs:
        key = _norm(name)
        if key in out and out[key] is not value and out[key] != value:
            clashes.add(key)
        out.setdefault(key, value)
    for key in clashes:
        del out[key]
    return out


class _ChoiceShape(_Shape):
    """A Literal or an Enum: "ADD", "Dark Blue" or an enum member's name name exactly one value."""

    __slots__ = ("exact", "folded")
    scalar = True

    def __init__(self, exact: Iterable[Any], folded: dict[str, Any]) -> None:
        self.exact = frozenset(v for v in exact if isinstance(v, str))
        self.folded = folded

    @classmethod
    def of_enum(cls, enum: type[Enum]) -> _ChoiceShape:
        values = [m.value for m in enum]
        by_name = _folded_map((m.name, m) for m in enum)
        return cls(values, by_name | _folded_map((m.value, m) for m in enum if isinstance(m.value, str)))

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str) and value not in self.exact:
            return self.folded.get(_norm(value), value)
        return value


class _ListShape(_Shape):
    __slots__ = ("item",)

    def __init__(self, item: _Shape) -> None:
        self.item = item

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            inner = _embedded(value)
            value = inner if isinstance(inner, list) else [value]
        elif isinstance(value, tuple):
            value = list(value)
        elif value is not None and not isinstance(value, list):
            value = [value]  # a lone item where a list is expected
        if isinstance(value, list) and not self.item.trivial:
            return [self.item.coerce(item) for item in value]
        return value


class _DictShape(_Shape):
    __slots__ = ("item",)

    def __init__(self, item: _Shape) -> None:
        self.item = item

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            inner = _embedded(value)
            value = inner if isinstance(inner, dict) else value
        if isinstance(value, dict) and not self.item.trivial:
            for key in value:
                value[key] = self.item.coerce(value[key])
        return value


class _OptionalShape(_Shape):
    __slots__ = ("inner",)

    def __init__(self, inner: _Shape) -> None:
        self.inner = inner

    def coerce(self, value: Any) -> Any:
        return None if value is None else self.inner.coerce(value)


class _Intents:
    """The intents a model or union accepts, keyed by the tag field (``intent`` by default)."""

    __slots__ = ("key", "names", "exact", "folded")

    def __init__(self, key: str, members: Sequence[tuple[str, _ModelShape]]) -> None:
        self.key = key
        self.names = tuple(dict.fromkeys(name for name, _ in members))
        self.exact = {name: (name, shape) for name, shape in members}
        self.folded: dict[str, tuple[str, _ModelShape]] = _folded_map((name, (name, shape)) for name, shape in members)

    def find(self, name: object) -> tuple[str, _ModelShape] | None:
        if not isinstance(name, str):
            return None
        return self.exact.get(name) or self.folded.get(_norm(name))


class _ModelShape(_Shape):
    __slots__ = ("cls", "fields", "lower", "literals", "intents")

    def __init__(self, cls: type[BaseModel]) -> None:
        self.cls = cls
        self.fields: dict[str, _Shape] = {}
        self.lower: dict[str, str] = {}
        self.literals: dict[str, tuple[str, ...]] = {}  # input key -> the str values of a Literal field
        self.intents: _Intents | None = None

    def build(self) -> None:
        lower: dict[str, str | None] = {}
        for name, info in self.cls.model_fields.items():
            key = info.alias if isinstance(info.alias, str) else name
            disc = info.discriminator if isinstance(info.discriminator, str) else None
            shape = _shape_of(info.annotation, disc)
            self.fields[name] = self.fields[key] = shape
            lower[key.lower()] = key if lower.get(key.lower(), key) == key else None
            args = get_args(info.annotation)
            if get_origin(info.annotation) is Literal and all(isinstance(a, str) for a in args):
                self.literals[key] = args
        self.lower = {k: v for k, v in lower.items() if v is not None}
        if "intent" in self.literals:
            self.intents = _Intents("intent", [(name, self) for name in self.literals["intent"]])

    def coerce(self, value: Any) -> Any:
        value = _objectify(value)
        if not isinstance(value, dict):
            return value
        if self.intents is not None:
            resolved = _resolve_intent(value, self.intents)
            if resolved is not None:
                value = resolved[0]
        return self.coerce_fields(value)

    def coerce_fields(self, value: dict[Any, Any]) -> dict[Any, Any]:
        fields = self.fields
        for key in list(value):
            shape = fields.get(key)
            if shape is None:
                # "Intent" or "Message": a wrong-case key that names exactly one field.
                target = self.lower.get(key.lower()) if isinstance(key, str) else None
                if target is None or target in value:
                    continue
                value[target] = value.pop(key)
                key, shape = target, fields[target]
            if not shape.trivial:
                value[key] = shape.coerce(value[key])
        return value


class _UnionShape(_Shape):
    """A union inside the schema; coerced only when a tag says which member applies."""

    __slots__ = ("intents",)

    def __init__(self, intents: _Intents | None) -> None:
        self.intents = intents

    def coerce(self, value: Any) -> Any:
        if self.intents is None:
            return value
        value = _objectify(value)
        if not isinstance(value, dict):
            return value
        resolved = _resolve_intent(value, self.intents)
        if resolved is None:
            return value
        return resolved[1].coerce_fields(resolved[0])


_SEQUENCES = (list, set, frozenset, tuple, Sequence, MutableSequence, Iterable)
_MAPPINGS = (dict, Mapping, MutableMapping)
_MODEL_SHAPES: dict[type[BaseModel], _ModelShape] = {}
_LOCK = threading.RLock()


def _shape_of(tp: Any, disc: str | None = None) -> _Shape:  # noqa: C901 - one flat type dispatch
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        return _shape_of(base, _discriminator_of(meta) or disc)
    if isinstance(tp, type) and origin is None:
        if issubclass(tp, RootModel):
            return _shape_of(tp.model_fields["root"].annotation)
        if issubclass(tp, BaseModel):
            return _model_shape(tp)
        if issubclass(tp, Enum):
            return _ChoiceShape.of_enum(tp)
        if issubclass(tp, str):
            return _STR
        if issubclass(tp, int | float | Decimal):
            return _SCALAR
        if tp in (list, set, frozenset, tuple):
            return _ListShape(_ANY)
        return _DictShape(_ANY) if tp is dict else _ANY
    if origin is Literal:
        values = get_args(tp)
        return _ChoiceShape(values, _folded_map((str(v), v) for v in values if isinstance(v, str | int)))
    if origin is Union or origin is types.UnionType:
        return _union_shape(get_args(tp), disc)
    args = get_args(tp)
    if origin in _SEQUENCES:
        uniform = origin is not tuple or (len(args) == 2 and args[1] is Ellipsis)
        return _ListShape(_shape_of(args[0]) if args and uniform else _ANY)
    if origin in _MAPPINGS:
        return _DictShape(_shape_of(args[1]) if len(args) == 2 else _ANY)
    alias = getattr(tp, "__value__", None) or getattr(tp, "__supertype__", None)  # TypeAliasType, NewType
    return _shape_of(alias, disc) if alias is not None else _ANY


def _discriminator_of(metadata: Iterable[Any]) -> str | None:
    for item in metadata:
        disc = getattr(item, "discriminator", None)
        if isinstance(disc, str):
            return disc
    return None


def _model_shape(cls: type[BaseModel]) -> _ModelShape:
    shape = _MODEL_SHAPES.get(cls)
    if shape is None:
        shape = _MODEL_SHAPES[cls] = _ModelShape(cls)  # registered first: models may refer to themselves
        shape.build()
    return shape


def _union_shape(args: tuple[Any, ...], disc: str | None) -> _Shape:
    present = [a for a in args if a is not None and a is not type(None)]
    if len(present) == 1:
        inner = _shape_of(present[0], disc)
    else:
        inner = _UnionShape(_common_intents([_shape_of(a) for a in present], disc))
    return _OptionalShape(inner) if len(present) < len(args) else inner


def _common_intents(shapes: list[_Shape], disc: str | None) -> _Intents | None:
    """The tag shared by every member (``disc``, else ``intent``, else any common Literal field)."""
    models = [s for s in shapes if isinstance(s, _ModelShape)]
    if not models or len(models) != len(shapes):
        return None
    keys = [disc] if disc else ["intent", *(k for k in models[0].literals if k != "intent")]
    for key in keys:
        if all(key in m.literals for m in models):
            pairs = [(name, m) for m in models for name in m.literals[key]]
            counts: dict[str, int] = {}
            for name, _ in pairs:
                counts[name] = counts.get(name, 0) + 1
            return _Intents(key, [(name, m) for name, m in pairs if counts[name] == 1])
    return None


@dataclass(frozen=True, slots=True)
class _Member:
    name: str
    adapter: TypeAdapter[Any]
    shape: _Shape


@dataclass(frozen=True, slots=True)
class _Plan:
    schema: Any
    adapter: TypeAdapter[Any]
    shape: _Shape
    intents: _Intents | None
    members: tuple[_Member, ...]  # set for a plain union: validated member by member to refuse ties
    by_class: dict[type[BaseModel], _Member]
    wants_object: bool
    scalar: bool
    tagged: bool  # a discriminated union: pydantic puts the tag first in error locations


_PLANS: dict[int, tuple[Any, _Plan]] = {}
_PLANS_BY_VALUE: dict[Any, _Plan] = {}


def _plan_for(schema: Any) -> _Plan:
    entry = _PLANS.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    with _LOCK:
        try:
            plan = _PLANS_BY_VALUE.get(schema) or _build_plan(schema)
            _PLANS_BY_VALUE[schema] = plan
        except TypeError:  # an unhashable schema (metadata without __hash__)
            plan = _build_plan(schema)
        if len(_PLANS) > 512:  # schemas built per call should not grow memory without bound
            _PLANS.clear()
            _PLANS_BY_VALUE.clear()
        _PLANS[id(schema)] = (schema, plan)
    return plan


def _build_plan(schema: Any) -> _Plan:
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(schema)
    except Exception as exc:  # pydantic raises several types for "not a schema"
        raise UserError(f"parse() needs a pydantic model or type, got {schema!r}: {exc}") from None
    base, discriminated = schema, False
    while get_origin(base) is Annotated:
        base, *meta = get_args(base)
        discriminated |= any(getattr(m, "discriminator", None) is not None for m in meta)
    shape = _shape_of(schema)
    members: tuple[_Member, ...] = ()
    if get_origin(base) in (Union, types.UnionType) and not discriminated:
        args = get_args(base)
        if len([a for a in args if a is not type(None)]) > 1:
            members = tuple(_Member(_type_name(a), TypeAdapter(a), _shape_of(a)) for a in args)
    inner = shape.inner if isinstance(shape, _OptionalShape) else shape
    intents = inner.intents if isinstance(inner, _ModelShape | _UnionShape) else None
    by_class = {m.shape.cls: m for m in members if isinstance(m.shape, _ModelShape)}
    return _Plan(
        schema=schema,
        adapter=adapter,
        shape=shape,
        intents=intents,
        members=members,
        by_class=by_class,
        wants_object=isinstance(inner, _ModelShape | _UnionShape | _DictShape),
        scalar=inner.scalar or (bool(members) and all(m.shape.scalar for m in members)),
        tagged=isinstance(inner, _UnionShape) and not members,
    )


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else repr(tp).replace("typing.", "")


# --- reshaping raw values -----------------------------------------------------------------------

_WRAPPERS = ("function", "function_call", "tool_call", "tool_use", "call", "action")
_NAME_KEYS = ("name", "tool", "tool_name", "function", "function_name", "action", "intent", "type", "command")
_ARG_KEYS = (
    "arguments", "args", "parameters", "params", "input", "inputs", "kwargs", "action_input", "tool_input",
)  # fmt: skip


def _embedded(text: str) -> Any:
    """The JSON value a string holds (``"{\\"a\\": 1}"``), or ``_MISSING``."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[`":
        return _MISSING
    try:
        return DECODER.decode(stripped)
    except (ValueError, RecursionError):
        pass
    try:
        found, _ = scan(stripped)
    except TooMessy:
        return _MISSING
    return found[0].value if len(found) == 1 else _MISSING


def _objectify(value: Any) -> Any:
    """Where an object is expected: read JSON out of a string, unwrap a one-element array."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str):
        inner = _embedded(value)
        if inner is not _MISSING:
            value = inner[0] if isinstance(inner, list) and len(inner) == 1 else inner
    return value


def _as_arguments(value: Any) -> dict[Any, Any] | None:
    if value is None:
        return {}
    if isinstance(value, str):
        value = _embedded(value)
    return value if isinstance(value, dict) else None


def _resolve_intent(value: dict[Any, Any], intents: _Intents) -> tuple[dict[Any, Any], _ModelShape] | None:
    """Put the canonical intent under the tag key; flatten a tool-call envelope naming an intent."""
    key = intents.key
    tag = value.get(key, _MISSING)
    if tag is _MISSING:
        wrong_case = [k for k in value if isinstance(k, str) and k.lower() == key.lower()]
        if len(wrong_case) == 1:
            tag = value[key] = value.pop(wrong_case[0])
    hit = intents.find(tag)
    if hit is None:
        return _flatten_envelope(value, intents, 0)
    value[key] = hit[0]
    member = hit[1]
    # {"intent": "add", "arguments": {"a": 1}}: the arguments nested under a key the tool doesn't have.
    for arg_key in _ARG_KEYS:
        if arg_key in value and arg_key not in member.fields:
            args = _as_arguments(value[arg_key])
            if args:
                del value[arg_key]
                for k, v in args.items():
                    value.setdefault(k, v)
            break
    return value, member


def _flatten_envelope(
    value: dict[Any, Any], intents: _Intents, depth: int
) -> tuple[dict[Any, Any], _ModelShape] | None:
    """``{"name": "add", "arguments": {...}}`` and friends, only when the name is an allowed intent."""
    if depth > 3:
        return None
    for wrapper in _WRAPPERS:
        inner = value.get(wrapper)
        if isinstance(inner, dict):
            found = _flatten_envelope(inner, intents, depth + 1)
            if found is not None:
                return found
    calls = value.get("tool_calls")
    if isinstance(calls, list) and len(calls) == 1 and isinstance(calls[0], dict):
        return _flatten_envelope(calls[0], intents, depth + 1)
    for name_key in _NAME_KEYS:
        hit = intents.find(value.get(name_key))
        if hit is not None:
            return _envelope_arguments(value, name_key, hit, intents)
    if len(value) == 1:  # {"add": {"a": 1, "b": 2}}
        ((name, inner),) = value.items()
        hit = intents.find(name)
        args = _as_arguments(inner) if hit is not None else None
        if hit is not None and args is not None:
            return _tagged(args, hit, intents)
    # {"thought": "...", "next_step": {"intent": "add", ...}}: exactly one member names an intent.
    tagged = [v for v in map(_objectify, value.values()) if isinstance(v, dict) and intents.find(v.get(intents.key))]
    return _resolve_intent(tagged[0], intents) if len(tagged) == 1 else None


def _envelope_arguments(
    value: dict[Any, Any], name_key: str, hit: tuple[str, _ModelShape], intents: _Intents
) -> tuple[dict[Any, Any], _ModelShape] | None:
    member = hit[1]
    for arg_key in _ARG_KEYS:
        if arg_key in value and arg_key not in member.fields:
            args = _as_arguments(value[arg_key])
            return None if args is None else _tagged(args, hit, intents)
    if name_key in member.fields:  # a real field of the tool, not the tool's name
        return None
    return _tagged({k: v for k, v in value.items() if k != name_key}, hit, intents)


def _tagged(
    args: dict[Any, Any], hit: tuple[str, _ModelShape], intents: _Intents
) -> tuple[dict[Any, Any], _ModelShape] | None:
    own = args.get(intents.key, _MISSING)
    if own is not _MISSING and intents.find(own) is not hit:
        return None  # the envelope and its arguments disagree on the intent
    return {**args, intents.key: hit[0]}, hit[1]


# --- validating one candidate -------------------------------------------------------------------


class _Invalid(Exception):
    """One candidate does not fit the schema; ``message`` says why, for the model."""

    def __init__(self, message: str, missing: Sequence[str] = (), *, final: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.missing = list(missing)
        self.final = final  # an ambiguity: report it even if another candidate is valid


def _parse(text: str, plan: _Plan, depth: int) -> Any:
    stripped = text.strip()
    if stripped:
        try:
            value = DECODER.decode(stripped)
        except (ValueError, RecursionError):
            pass
        else:
            if isinstance(value, str) and not plan.scalar and depth < 2:
                return _parse(value, plan, depth + 1)  # the whole answer was written as a JSON string
            return _evaluate(value, plan)
    return _parse_messy(text, plan)


def _evaluate(value: Any, plan: _Plan) -> Any:
    if plan.wants_object and isinstance(value, list) and len(value) > 1:
        return _evaluate_many(value, plan)
    if plan.members:
        return _validate_members(value, plan)
    coerced = plan.shape.coerce(value)
    try:
        return plan.adapter.validate_python(coerced)
    except ValidationError as exc:
        raise _describe(exc, plan, coerced) from None


def _evaluate_many(values: list[Any], plan: _Plan) -> Any:
    """An array where one object is expected: fine if it repeats one answer, an error otherwise."""
    results = []
    for value in values:
        try:
            results.append(_evaluate(value, plan))
        except _Invalid:
            continue
    distinct = _distinct(results)
    if len(distinct) > 1:
        raise _ambiguous(distinct, plan)
    if distinct and len(results) == len(values):
        return distinct[0]
    raise _Invalid(f"expected one JSON object, got an array of {len(values)} items")


def _validate_members(value: Any, plan: _Plan) -> Any:
    """A plain union: pick the one member that fits best, refuse a tie."""
    intents = plan.intents
    value = _objectify(value)
    if intents is not None and isinstance(value, dict):
        resolved = _resolve_intent(value, intents)
        if resolved is not None and resolved[1].cls in plan.by_class:
            member = plan.by_class[resolved[1].cls]
            data = resolved[1].coerce_fields(resolved[0])
            try:
                return plan.adapter.validate_python(member.adapter.validate_python(data))
            except ValidationError as exc:
                raise _describe(exc, plan, data) from None
        if intents.key in value:
            raise _Invalid(f"unknown {intents.key} {_snip(value[intents.key])}")
    fits: list[tuple[tuple[int, int, int], _Member, Any]] = []
    failures: list[tuple[int, _Member, ValidationError, Any]] = []
    for member in plan.members:
        data = member.shape.coerce(copy.deepcopy(value))
        try:
            result = member.adapter.validate_python(data)
        except ValidationError as exc:
            failures.append((exc.error_count(), member, exc, data))
            continue
        fits.append((_rank(member, result, value), member, result))
    if not fits:
        if intents is not None and isinstance(value, dict):
            raise _Invalid(_missing_tag(intents.key, value))
        _, member, closest, data = min(failures, key=lambda f: f[0])
        parts, missing = _clauses(closest, plan, data)
        detail = "; ".join(parts)
        raise _Invalid(f"fits none of {_names(plan.members)}; closest is {member.name}: {detail}", missing)
    fits.sort(key=lambda f: f[0], reverse=True)
    if len(fits) > 1 and fits[0][0] == fits[1][0]:
        tied = [f[1].name for f in fits if f[0] == fits[0][0]]
        raise _Invalid(
            f"the JSON fits {' and '.join(tied)} equally well; add the fields that tell them apart",
            final=True,
        )
    try:
        return plan.adapter.validate_python(fits[0][2])
    except ValidationError as exc:
        raise _describe(exc, plan, fits[0][2]) from None


def _rank(member: _Member, result: Any, original: Any) -> tuple[int, int, int]:
    """(input keys used, same type and value as the input, the raw input validates in strict mode)."""
    keys = len(result.model_fields_set) if isinstance(result, BaseModel) else 0
    exact = not isinstance(result, BaseModel) and type(result) is type(original) and result == original
    try:
        member.adapter.validate_python(original, strict=True)
        strict = True
    except ValidationError:
        strict = False
    return keys, int(exact), int(strict)


def _distinct(results: list[Any]) -> list[Any]:
    distinct: list[Any] = []
    for result in results:
        if not any(result == seen for seen in distinct):
            distinct.append(result)
            if len(distinct) >= _MAX_ANSWERS:
                break
    return distinct


# --- the messy path -----------------------------------------------------------------------------


_ESCAPED_OBJECT = re.compile(r'[{\[](?:\s|\\[nrt])*\\"')  # {\"intent\": ...}: a string's content, escapes and all


@dataclass(slots=True)
class _Failure:
    parsed: Parsed
    error: _Invalid
    score: tuple[int, int, int]


@dataclass(slots=True)
class _Found:
    results: list[Any] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    errors: list[tuple[str, LenientError]] = field(default_factory=list)  # (region text, error)


def _parse_messy(text: str, plan: _Plan) -> Any:
    prepared = prepare(text)
    found = _Found()
    try:
        _collect(prepared.regions, plan, found)
        if not found.results and _ESCAPED_OBJECT.search(text):
            _collect([Region(_unescape(r.text), r.tool) for r in prepared.regions], plan, found)
        if not found.results and not found.failures:
            for region in prepared.regions:
                for parsed in fallback_values(region.text):
                    _consider(parsed, region.tool, plan, found)
    except TooMessy as exc:
        raise _Invalid(f"{exc.reason}; reply with exactly one JSON object") from None
    if not found.results and not found.failures and plan.scalar:
        _consider(bare_value(prepared.regions[-1].text), None, plan, found)
    distinct = _distinct(found.results)
    if len(distinct) > 1:
        extra = " (the <think> block was never closed)" if prepared.unclosed_reasoning else ""
        raise _ambiguous(distinct, plan, extra)
    if distinct:
        return distinct[0]
    if found.failures:
        raise _explain_failure(max(found.failures, key=lambda f: f.score))
    if found.errors:
        source, err = max(found.errors, key=lambda e: e[1].pos - e[1].start)
        line, col = line_col(source, err.pos)
        near = _snip(source[max(0, err.pos - 15) : err.pos + 15])
        raise _Invalid(f"invalid JSON at line {line}, column {col} (near {near}): {err.reason}")
    if not text.strip():
        raise _Invalid("the output is empty; reply with exactly one JSON object")
    where = " outside the reasoning block" if prepared.reasoning_had_json else ""
    raise _Invalid(f"no JSON object found{where}; reply with exactly one JSON object")


def _collect(regions: list[Region], plan: _Plan, found: _Found) -> None:
    for region in regions:
        candidates, errors = scan(region.text)
        found.errors.extend((region.text, err) for err in errors)
        for parsed in candidates:
            _consider(parsed, region.tool, plan, found)


def _consider(parsed: Parsed, tool: str | None, plan: _Plan, found: _Found) -> None:
    value = parsed.value
    if tool is not None and plan.intents is not None and plan.intents.find(tool):
        value = {"name": tool, "arguments": value}  # markup named the tool: <function=add>{...}
    try:
        found.results.append(_evaluate(value, plan))
    except _Invalid as exc:
        if exc.final:
            raise
        found.failures.append(_Failure(parsed, exc, _score(value, plan, parsed)))


def _score(value: Any, plan: _Plan, parsed: Parsed) -> tuple[int, int, int]:
    """Which failed candidate the model most likely meant as its answer (for the error message)."""
    inner = _objectify(value)
    named = plan.intents is not None and isinstance(inner, dict) and plan.intents.key in inner
    return int(named), int(isinstance(inner, dict)), parsed.end - parsed.start


def _explain_failure(failure: _Failure) -> _Invalid:
    error = failure.error
    if failure.parsed.truncated and error.missing:
        fields = ", ".join(repr(m) for m in error.missing[:3])
        return _Invalid(
            f"the output looks truncated (it ends inside the JSON object) and required field {fields} "
            "is missing; reply again with a complete, shorter JSON object"
        )
    return error


# --- messages -----------------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _snip(value: Any, limit: int = 60) -> str:
    """A value quoted for a message, cut short: models echo long inputs."""
    return repr(_clip(value, limit)) if isinstance(value, str) else _clip(repr(value), limit)


def _names(members: Sequence[_Member]) -> str:
    return ", ".join(m.name for m in members)


def _ambiguous(distinct: list[Any], plan: _Plan, extra: str = "") -> _Invalid:
    count = f"at least {len(distinct)}" if len(distinct) >= _MAX_ANSWERS else str(len(distinct))
    key = plan.intents.key if plan.intents is not None else None
    labels = [str(getattr(r, key, "?")) for r in distinct] if key else []
    what = f" ({', '.join(labels)})" if labels else ""
    return _Invalid(
        f"found {count} different answers{what}{extra}; only one next step is allowed, "
        "reply with exactly one JSON object",
        final=True,
    )


def _missing_tag(key: str, data: Any) -> str:
    if isinstance(data, dict):
        # A tool-call envelope whose name is not an intent: say so rather than "missing intent".
        for name_key in _NAME_KEYS:
            name = data.get(name_key)
            if isinstance(name, str):
                return f"unknown {key} {_snip(name)} (in {name_key!r})"
    return f"missing {key!r}: say which intent this is"


_OBJECT_ERRORS = frozenset({"model_type", "dict_type", "model_attributes_type"})


def _describe(exc: ValidationError, plan: _Plan, data: Any) -> _Invalid:
    """Pydantic's errors, one short clause each, without URLs or input dumps."""
    parts, missing = _clauses(exc, plan, data)
    prefix = "invalid next step: " if plan.intents is not None else "invalid output: "
    return _Invalid(prefix + "; ".join(parts), missing)


def _clauses(exc: ValidationError, plan: _Plan, data: Any) -> tuple[list[str], list[str]]:
    key = plan.intents.key if plan.intents is not None else "intent"
    tag = data.get(key) if isinstance(data, dict) else None
    parts: list[str] = []
    missing: list[str] = []
    errors = exc.errors(include_url=False)
    for err in errors[:3]:
        # Drop pydantic's internal steps such as "function-after[check(), Add]".
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.endswith("]") and "[" in p)]
        if plan.tagged and loc and loc[0] == tag:
            loc = loc[1:]
        where = ".".join(str(p) for p in loc)
        kind = err["type"]
        if kind == "union_tag_invalid" or (where == key and kind == "literal_error"):
            parts.append(f"unknown {key} {_snip(err['input'] if where else tag)}")
        elif kind == "union_tag_not_found":
            parts.append(_missing_tag(key, data))
        elif kind == "missing":
            missing.append(where)
            parts.append(f"field {where!r} is required")
        elif not where and kind in _OBJECT_ERRORS:
            parts.append(f"expected a JSON object, got {_snip(err['input'], 40)}")
        else:
            got = err.get("input")
            shown = f" (got {_snip(got, 40)})" if isinstance(got, str | int | float) else ""
            label = f"field {where!r}: " if where else ""
            parts.append(f"{label}{_clip(err['msg'], 120)}{shown}")
    if len(errors) > 3:
        parts.append(f"and {len(errors) - 3} more")
    return parts, missing


def _error(plan: _Plan, raw: str, message: str) -> ParseError:
    message = " ".join(message.split())
    if len(message) > 400:
        message = message[:399] + "…"
    if plan.intents is not None and plan.intents.names:
        listed = f"; allowed intents: {', '.join(plan.intents.names)}"
        room = _MAX_MESSAGE - len(message)
        message += listed if len(listed) <= room else listed[: room - 1] + "…"
    err = ParseError(message)
    vars(err).update(raw=raw, allowed_intents=list(plan.intents.names) if plan.intents else [])
    return err
