"""Schema-guided coercion: reshape the raw JSON a model wrote toward the schema, before validation.

This is step 4 of :func:`twelvefactor.parsing.parse`; it knows the schema but never decides validity
(pydantic does). :func:`shape_of` compiles a type into a tree of :class:`Shape` objects, once per type;
``Shape.coerce`` then reshapes a decoded value:

- read JSON held in a string (``"{\\"a\\": 1}"``) and unwrap a one-element array where an object is
  expected (:func:`objectify`);
- flatten tool-call envelopes (``{"name": "add", "arguments": {...}}``, OpenAI/Anthropic/Mistral shapes)
  whose name is one of the schema's intents, and put the canonical intent under the tag key
  (:func:`resolve_intent`);
- fix the case and separators of intents, ``Literal`` values, enum values/names and field names;
- write a number where a string is expected as text, wrap a lone item where a list is expected.

:func:`attempted_step` answers the other question parse() asks of a candidate that failed validation:
was it still meant as a next step (a known intent, an unknown but tool-like intent, a tool call, an
object made of the schema's own fields), or is it a prose example to ignore?
"""

from __future__ import annotations

import copy
import threading
import types
from collections.abc import Iterable, Mapping, MutableMapping, MutableSequence, Sequence
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from twelvefactor._lenient_json import DECODER, Cut, OpenDict, OpenList, TooMessy, holds_unfinished, scan, unfinished
from twelvefactor._scalars import Names, Prose, bools_in, clean, numbers_in, read_number

_MISSING: Any = object()


class CutOff(Exception):
    """The end of the output cut a value the schema cannot do without; ``path`` locates it (``[]``: the
    value itself). ``never_written``: the end came before the required field at ``path`` started."""

    def __init__(self, path: list[str | int], *, never_written: bool = False) -> None:
        super().__init__(path)
        self.path = path
        self.never_written = never_written


class Shape:
    """How to reshape raw JSON toward one type before pydantic sees it (never decides validity)."""

    __slots__ = ()
    trivial: ClassVar[bool] = False  # coerce() is the identity: callers skip it on the hot path
    texts_only: ClassVar[bool] = False  # coerce() changes strings only: callers skip it for other values
    scalar: ClassVar[bool] = False

    def coerce(self, value: Any) -> Any:
        return value

    def settle(self, value: Any) -> Any:
        """Decide what a value the end of the output cut may keep: raise :class:`CutOff` if the schema
        needs what was cut, return the value without its unfinished parts otherwise.

        Called after :meth:`coerce`, on truncated candidates only. A scalar, or anything of a type that
        names no fields, is usable only whole.
        """
        if holds_unfinished(value):
            raise CutOff([])
        return value


class AnyShape(Shape):
    __slots__ = ()
    trivial = True


class NumberShape(Shape):
    """int, float, Decimal: pydantic's lax mode reads "5"; this reads what people write too (``12,111``,
    ``-2,000.00``, ``1/5``, ``42.``, ``5 km``, ``50%``), as the number written."""

    __slots__ = ("kind",)
    scalar = True
    texts_only = True

    def __init__(self, kind: type) -> None:
        self.kind = kind

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            number = read_number(value, self.kind)
            return value if number is None else number
        return value

    def in_prose(self, text: str) -> Prose:
        return numbers_in(text, self.kind)


class BoolShape(Shape):
    """pydantic reads "true", "yes", "0"...; this also reads them wrapped in markup (``**True**.``)."""

    __slots__ = ()
    scalar = True
    texts_only = True

    def coerce(self, value: Any) -> Any:
        return clean(value) if isinstance(value, str) else value

    def in_prose(self, text: str) -> Prose:
        return bools_in(text)


class StrShape(Shape):
    __slots__ = ()
    scalar = True

    def coerce(self, value: Any) -> Any:
        # Models write ids and zip codes as bare numbers; the text is the same either way.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value


_ANY = AnyShape()
_BOOL = BoolShape()
_STR = StrShape()


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


class ChoiceShape(Shape):
    """A Literal or an Enum: "ADD", "Dark Blue", "**add**." or an enum member's name (or alias) name exactly
    one value."""

    __slots__ = ("exact", "folded", "spellings", "_names")
    scalar = True

    def __init__(self, exact: Iterable[Any], folded: dict[str, Any], spellings: Iterable[str]) -> None:
        self.exact = frozenset(v for v in exact if isinstance(v, str))
        self.folded = folded
        self.spellings = tuple(spellings)  # the names as the schema writes them
        self._names: Names | None = None

    @classmethod
    def of_enum(cls, enum: type[Enum]) -> ChoiceShape:
        members = list(enum.__members__.items())  # aliases included: a second name of the same member
        values = [(m.value, m) for _, m in members if isinstance(m.value, str)]
        folded = _folded_map((name, m) for name, m in members) | _folded_map(values)
        return cls([m.value for m in enum], folded, [name for name, _ in members] + [v for v, _ in values])

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str) and value not in self.exact:
            hit = self.folded.get(_norm(value), _MISSING)
            if hit is _MISSING:
                hit = self.folded.get(_norm(clean(value)), _MISSING)
            return value if hit is _MISSING else hit
        return value

    def in_prose(self, text: str) -> Prose:
        if self._names is None:
            self._names = Names(self.folded, self.spellings)
        return self._names.mentioned(text)


class ListShape(Shape):
    __slots__ = ("item",)

    def __init__(self, item: Shape) -> None:
        self.item = item

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            inner = _embedded(value)
            if isinstance(inner, list):
                value = inner
            elif not value.lstrip().startswith("["):  # a list it failed to read is no lone item
                value = [value]
        elif isinstance(value, tuple):
            value = list(value)
        elif value is not None and not isinstance(value, list):
            value = [value]  # a lone item where a list is expected
        item_shape = self.item
        if isinstance(value, list) and not item_shape.trivial:
            texts_only = item_shape.texts_only  # a list of a million numbers: no call per number
            for k, item in enumerate(value):  # in place: an OpenList stays open
                if not texts_only or type(item) is str:
                    value[k] = item_shape.coerce(item)
        return value

    def settle(self, value: Any) -> Any:
        # A list left open may have had more items: never a shorter list. Its items are not settled one
        # by one, since the list as a whole is already cut.
        if isinstance(value, OpenList | Cut):
            raise CutOff([])
        if isinstance(value, list):
            for k, item in enumerate(value):
                value[k] = _settle_at(self.item, item, k)
        return value


class DictShape(Shape):
    __slots__ = ("item",)

    def __init__(self, item: Shape) -> None:
        self.item = item

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            inner = _embedded(value)
            value = inner if isinstance(inner, dict) else value
        if isinstance(value, dict) and not self.item.trivial:
            for key in value:
                value[key] = self.item.coerce(value[key])
        return value

    def settle(self, value: Any) -> Any:
        # A map's keys are data, not fields: one left open may have had more entries.
        if isinstance(value, OpenDict | Cut):
            raise CutOff([])
        if isinstance(value, dict):
            for key in value:
                value[key] = _settle_at(self.item, value[key], key)
        return value


class OptionalShape(Shape):
    __slots__ = ("inner",)

    def __init__(self, inner: Shape) -> None:
        self.inner = inner

    def coerce(self, value: Any) -> Any:
        return None if value is None else self.inner.coerce(value)

    def settle(self, value: Any) -> Any:
        return None if value is None else self.inner.settle(value)


class Intents:
    """The intents a model or union accepts, keyed by the tag field (``intent`` by default)."""

    __slots__ = ("key", "names", "exact", "folded")

    def __init__(self, key: str, members: Sequence[tuple[str, ModelShape]]) -> None:
        self.key = key
        self.names = tuple(dict.fromkeys(name for name, _ in members))
        self.exact = {name: (name, shape) for name, shape in members}
        self.folded: dict[str, tuple[str, ModelShape]] = _folded_map((name, (name, shape)) for name, shape in members)

    def find(self, name: object) -> tuple[str, ModelShape] | None:
        if not isinstance(name, str):
            return None
        return self.exact.get(name) or self.folded.get(_norm(name))


class ModelShape(Shape):
    __slots__ = (
        "cls", "fields", "keys", "required", "required_fields", "needed", "lower", "folded", "literals",
        "intents", "forbids_extra", "lone",
    )  # fmt: skip

    def __init__(self, cls: type[BaseModel]) -> None:
        self.cls = cls
        self.fields: dict[str, Shape] = {}
        self.keys: dict[str, str] = {}  # field name or alias -> the input key
        self.required: frozenset[str] = frozenset()  # input keys without a default
        self.required_fields: tuple[tuple[str, str], ...] = ()  # (input key, name) without a default
        self.needed: frozenset[str] = frozenset()  # names and input keys without a default
        self.forbids_extra = False
        self.lower: dict[str, str] = {}  # lower-case key -> the input key
        self.folded: dict[str, str] = {}  # key without case or separators ("Full name") -> the input key
        self.lone: str | None = None  # the one required field, which a bare scalar fills
        self.literals: dict[str, tuple[str, ...]] = {}  # input key -> the str values of a Literal field
        self.intents: Intents | None = None

    def build(self) -> None:
        lower: dict[str, str | None] = {}
        required: list[str] = []
        pairs: list[tuple[str, str]] = []
        for name, info in self.cls.model_fields.items():
            key = info.alias if isinstance(info.alias, str) else name
            disc = info.discriminator if isinstance(info.discriminator, str) else None
            shape = _shape_of(info.annotation, disc)
            self.fields[name] = self.fields[key] = shape
            self.keys[name] = self.keys[key] = key
            if info.is_required():
                required.append(key)
                pairs.append((key, name))
            lower[key.lower()] = key if lower.get(key.lower(), key) == key else None
            args = get_args(info.annotation)
            if get_origin(info.annotation) is Literal and all(isinstance(a, str) for a in args):
                self.literals[key] = args
        self.lower = {k: v for k, v in lower.items() if v is not None}
        self.folded = _folded_map((key, key) for key in dict.fromkeys(self.keys.values()))
        self.required = frozenset(required)
        self.lone = required[0] if len(required) == 1 else None
        self.required_fields = tuple(pairs)
        self.needed = frozenset(name for _, name in pairs) | self.required
        self.forbids_extra = self.cls.model_config.get("extra") == "forbid"
        if "intent" in self.literals:
            self.intents = Intents("intent", [(name, self) for name in self.literals["intent"]])

    def coerce(self, value: Any) -> Any:
        value = objectify(value)
        if not isinstance(value, dict):
            # 1214 for a class whose one required field is foo: {"foo": 1214} is the only reading.
            if self.lone is not None and isinstance(value, str | int | float):
                return self.coerce_fields({self.lone: value})
            return value
        if self.intents is not None:
            resolved = resolve_intent(value, self.intents)
            if resolved is not None:
                value = resolved[0]
        return self.coerce_fields(value)

    def coerce_fields(self, value: dict[Any, Any]) -> dict[Any, Any]:
        fields = self.fields
        for key in list(value):
            shape = fields.get(key)
            if shape is None:
                # "Intent", "Full name": a key spelled otherwise that names exactly one field.
                target = self.spelled(key)
                if target is None or target in value:
                    continue
                value[target] = value.pop(key)
                key, shape = target, fields[target]
            if not shape.trivial and (not shape.texts_only or type(value[key]) is str):
                value[key] = shape.coerce(value[key])
        return value

    def settle(self, value: Any) -> Any:
        """An object cut off is fine as long as what it lacks is optional: a field whose value the end
        of the output cut is left to its default, or is a :class:`CutOff` naming it when required."""
        if not isinstance(value, dict):
            return super().settle(value)
        for key in list(value):
            item = value[key]
            shape = self.fields.get(key)
            if shape is None:
                if unfinished(item):
                    if self.forbids_extra:
                        raise CutOff([key])
                    del value[key]  # an unknown member: ignored whole, so ignored cut
                continue
            try:
                value[key] = shape.settle(item)
            except CutOff as cut:
                if key in self.needed:
                    raise CutOff([key, *cut.path], never_written=cut.never_written) from None
                del value[key]
        if not isinstance(value, OpenDict):
            return value
        # Cut before a required field started: the object cannot be completed, so an optional parent
        # falls back to its default rather than failing.
        for key, name in self.required_fields:
            if key not in value and name not in value:
                raise CutOff([key], never_written=True)
        return dict(value)

    def spelled(self, key: object) -> str | None:
        """The input key of the one field ``key`` names in another case or with other separators."""
        if not isinstance(key, str):
            return None
        return self.lower.get(key.lower()) or self.folded.get(_norm(key))

    def made_of_fields(self, value: dict[Any, Any]) -> bool:
        """Every key names a field (in any case) and every required field is there."""
        present = set()
        for key in value:
            target = self.keys.get(key) or self.spelled(key)
            if target is None:
                return False
            present.add(target)
        return bool(present) and self.required <= present


class UnionShape(Shape):
    """A union inside the schema; coerced only when a tag says which member applies."""

    __slots__ = ("intents",)

    def __init__(self, intents: Intents | None) -> None:
        self.intents = intents

    def coerce(self, value: Any) -> Any:
        if self.intents is None:
            return value
        value = objectify(value)
        if not isinstance(value, dict):
            return value
        resolved = resolve_intent(value, self.intents)
        if resolved is None:
            return value
        return resolved[1].coerce_fields(resolved[0])

    def settle(self, value: Any) -> Any:
        # Only a tag says which member a cut object was: what was cut may be what tells members apart.
        if self.intents is not None and isinstance(value, dict):
            tag = value.get(self.intents.key)
            if unfinished(tag):
                raise CutOff([self.intents.key])
            hit = self.intents.find(tag)
            if hit is not None:
                return hit[1].settle(value)
        return super().settle(value)


def _settle_at(shape: Shape, value: Any, where: str | int) -> Any:
    try:
        return shape.settle(value)
    except CutOff as cut:
        raise CutOff([where, *cut.path], never_written=cut.never_written) from None


_SEQUENCES = (list, set, frozenset, tuple, Sequence, MutableSequence, Iterable)
_MAPPINGS = (dict, Mapping, MutableMapping)
_MODEL_SHAPES: dict[type[BaseModel], ModelShape] = {}
_LOCK = threading.RLock()


def shape_of(tp: Any) -> Shape:
    """How to reshape raw JSON toward ``tp``; a model's shape is built once and shared (thread-safe)."""
    with _LOCK:
        return _shape_of(tp)


def _shape_of(tp: Any, disc: str | None = None) -> Shape:  # noqa: C901 - one flat type dispatch
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        return _shape_of(base, _discriminator_of(meta) or disc)
    if isinstance(tp, type) and origin is None:
        if issubclass(tp, BaseModel):
            # Imported here: importing RootModel builds a model, which loads pydantic's plugin
            # machinery (importlib.metadata, ~15 ms) -- work for the first parse, not for import.
            from pydantic import RootModel

            if issubclass(tp, RootModel):
                return _shape_of(tp.model_fields["root"].annotation)
            return _model_shape(tp)
        if issubclass(tp, Enum):
            return ChoiceShape.of_enum(tp)
        if issubclass(tp, str):
            return _STR
        if issubclass(tp, bool):
            return _BOOL
        if issubclass(tp, int | float | Decimal):
            return NumberShape(int if issubclass(tp, int) else Decimal if issubclass(tp, Decimal) else float)
        if tp in (list, set, frozenset, tuple):
            return ListShape(_ANY)
        return DictShape(_ANY) if tp is dict else _ANY
    if origin is Literal:
        values = get_args(tp)
        named = [(str(v), v) for v in values if isinstance(v, str | int)]
        return ChoiceShape(values, _folded_map(named), [name for name, _ in named])
    if origin is Union or origin is types.UnionType:
        return _union_shape(get_args(tp), disc)
    args = get_args(tp)
    if origin in _SEQUENCES:
        uniform = origin is not tuple or (len(args) == 2 and args[1] is Ellipsis)
        return ListShape(_shape_of(args[0]) if args and uniform else _ANY)
    if origin in _MAPPINGS:
        return DictShape(_shape_of(args[1]) if len(args) == 2 else _ANY)
    alias = getattr(tp, "__value__", None) or getattr(tp, "__supertype__", None)  # TypeAliasType, NewType
    return _shape_of(alias, disc) if alias is not None else _ANY


def _discriminator_of(metadata: Iterable[Any]) -> str | None:
    for item in metadata:
        disc = getattr(item, "discriminator", None)
        if isinstance(disc, str):
            return disc
    return None


def _model_shape(cls: type[BaseModel]) -> ModelShape:
    shape = _MODEL_SHAPES.get(cls)
    if shape is None:
        shape = _MODEL_SHAPES[cls] = ModelShape(cls)  # registered first: models may refer to themselves
        shape.build()
    return shape


def _union_shape(args: tuple[Any, ...], disc: str | None) -> Shape:
    present = [a for a in args if a is not None and a is not type(None)]
    if len(present) == 1:
        inner = _shape_of(present[0], disc)
    else:
        inner = UnionShape(_common_intents([_shape_of(a) for a in present], disc))
    return OptionalShape(inner) if len(present) < len(args) else inner


def _common_intents(shapes: list[Shape], disc: str | None) -> Intents | None:
    """The tag shared by every member (``disc``, else ``intent``, else any common Literal field)."""
    models = [s for s in shapes if isinstance(s, ModelShape)]
    if not models or len(models) != len(shapes):
        return None
    keys = [disc] if disc else ["intent", *(k for k in models[0].literals if k != "intent")]
    for key in keys:
        if all(key in m.literals for m in models):
            pairs = [(name, m) for m in models for name in m.literals[key]]
            counts: dict[str, int] = {}
            for name, _ in pairs:
                counts[name] = counts.get(name, 0) + 1
            return Intents(key, [(name, m) for name, m in pairs if counts[name] == 1])
    return None


# --- reshaping raw values -----------------------------------------------------------------------


def unwrap(shape: Shape, value: Any) -> Any:
    """The reply as a whole, where a one-element wrapper holds what the schema wants: ``[5]`` or
    ``{"answer": 5}`` for a number, ``[[1, 2]]`` or ``{"items": [1, 2]}`` for a list of numbers.

    Only a closed wrapper: ``[true,`` may have gone on with ``false``.
    """
    if isinstance(shape, ListShape):
        return _unwrap_list(shape, value)
    if not shape.scalar or isinstance(shape, StrShape):
        return value
    for _ in range(3):  # [{"answer": 5}]: a few layers
        if isinstance(value, list) and len(value) == 1 and not unfinished(value):
            value = value[0]
        elif isinstance(value, dict) and len(value) == 1 and not unfinished(value):
            value = next(iter(value.values()))
        else:
            break
    return value


def _unwrap_list(shape: ListShape, value: Any) -> Any:
    item = shape.item
    nested = isinstance(item, ListShape | AnyShape | UnionShape | OptionalShape)
    if nested or unfinished(value):
        return value  # an item could be a list itself: [[1, 2]] has two readings
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        return value[0]
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        # {"items": [...]}, unless "items" is a field of the item: then it is one item.
        of_item = isinstance(item, ModelShape) and (item.keys.get(key) or item.spelled(key)) is not None
        if isinstance(inner, list) and not isinstance(item, DictShape) and not of_item:
            return inner
    return value


_WRAPPERS = ("function", "function_call", "tool_call", "tool_use", "call", "action")
NAME_KEYS = ("name", "tool", "tool_name", "function", "function_name", "action", "intent", "type", "command")
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
    # A whole string holding cut JSON is a string, not a value: its end is not the output's end.
    return found[0].value if len(found) == 1 and not found[0].truncated else _MISSING


def objectify(value: Any) -> Any:
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


def resolve_intent(value: dict[Any, Any], intents: Intents) -> tuple[dict[Any, Any], ModelShape] | None:
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


def _flatten_envelope(value: dict[Any, Any], intents: Intents, depth: int) -> tuple[dict[Any, Any], ModelShape] | None:
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
    for name_key in NAME_KEYS:
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
    tagged = [v for v in map(objectify, value.values()) if isinstance(v, dict) and intents.find(v.get(intents.key))]
    return resolve_intent(tagged[0], intents) if len(tagged) == 1 else None


def _envelope_arguments(
    value: dict[Any, Any], name_key: str, hit: tuple[str, ModelShape], intents: Intents
) -> tuple[dict[Any, Any], ModelShape] | None:
    member = hit[1]
    for arg_key in _ARG_KEYS:
        if arg_key in value and arg_key not in member.fields:
            args = _as_arguments(value[arg_key])
            return None if args is None else _tagged(args, hit, intents)
    if name_key in member.fields:  # a real field of the tool, not the tool's name
        return None
    return _tagged({k: v for k, v in value.items() if k != name_key}, hit, intents)


def _tagged(
    args: dict[Any, Any], hit: tuple[str, ModelShape], intents: Intents
) -> tuple[dict[Any, Any], ModelShape] | None:
    own = args.get(intents.key, _MISSING)
    if own is not _MISSING and intents.find(own) is not hit:
        return None  # the envelope and its arguments disagree on the intent
    return {**args, intents.key: hit[0]}, hit[1]


# --- was it meant as a next step? ---------------------------------------------------------------

_CALL_NAME_KEYS = ("name", "tool", "tool_name", "function", "function_name", "action")
_NAME_CHARS = str.maketrans("", "", "_-.")


class Attempt:
    """A candidate that failed validation yet reads as an answer.

    ``name`` is the intent it names (canonical when ``known``, the model's spelling otherwise) or, for
    a schema without intents, the model's class name; ``data`` is the candidate, reshaped.
    """

    __slots__ = ("name", "known", "data")

    def __init__(self, name: str, known: bool, data: dict[Any, Any]) -> None:
        self.name = name
        self.known = known
        self.data = data


def attempted_step(value: Any, intents: Intents | None, models: Sequence[ModelShape]) -> Attempt | None:
    """What a candidate that failed validation was meant to be, if it reads as an answer at all.

    It does when it names an allowed intent (directly or in a tool-call envelope), names a tool the
    schema lacks with a tool-like name (``{"intent": "search_web"}``, ``{"name": "search_web",
    "arguments": {...}}``), or -- with no intent to go by and one candidate model -- is made of that
    model's fields, required ones included. Prose snippets such as ``{"example": true}`` or
    ``{"intent": "<name>"}`` do not. ``value`` is left as it is.
    """
    value = objectify(value)
    if not isinstance(value, dict):
        return None
    if intents is not None:
        resolved = resolve_intent(copy.deepcopy(value), intents)
        if resolved is not None:
            data, shape = resolved
            return Attempt(data[intents.key], True, shape.coerce_fields(data))
        called = _called(value, intents.key == "intent", 0)
        if called is not None:
            return Attempt(called, False, value)
        if len(models) > 1:
            return None  # fields alone cannot say which of several tools it was
    for shape in models:
        if shape.made_of_fields(value):
            names = shape.intents.names if shape.intents is not None else ()
            name = names[0] if len(names) == 1 else shape.cls.__name__
            return Attempt(name, True, shape.coerce_fields(copy.deepcopy(value)))
    return None


def _called(value: dict[Any, Any], by_intent: bool, depth: int) -> str | None:
    """The tool-like name ``value`` calls, in an ``intent`` key or a tool-call envelope."""
    if by_intent:
        tags = [v for k, v in value.items() if isinstance(k, str) and k.lower() == "intent"]
        if len(tags) == 1 and _tool_like(tags[0]):
            return str(tags[0])
    if depth < 3:
        calls = value.get("tool_calls")
        inner = [value.get(w) for w in _WRAPPERS] + (calls if isinstance(calls, list) and len(calls) == 1 else [])
        for found in (_called(i, by_intent, depth + 1) for i in inner if isinstance(i, dict)):
            if found is not None:
                return found
    if any(key in value and _as_arguments(value[key]) is not None for key in _ARG_KEYS):
        for key in _CALL_NAME_KEYS:
            if _tool_like(value.get(key)):
                return str(value[key])
    return None


def _tool_like(name: object) -> bool:
    """``search_web``, ``files.read``, ``SendEmail``: a name, not a placeholder (``<name>``) or prose."""
    return isinstance(name, str) and name[:1].isalpha() and name.translate(_NAME_CHARS).isalnum()
