"""The next-step type on the wire: provider-enforced JSON schemas, one tool per intent, and back.

Both structured modes end where the prompted mode does: a JSON text ``{"intent": ..., ...}`` that
``parse()`` validates. Nothing here writes prose for the model: tool descriptions are the tools' own
docstrings, and the schemas are derived from the tool classes, so the recorded request shows it all.

OpenAI's strict mode accepts a subset of JSON Schema: every object lists all its properties as
required and sets ``additionalProperties: false``, the root is an object (not a union), and some
keywords are refused. :func:`strict_schema` rewrites a pydantic schema into that subset: optional
fields become required-but-nullable (the ``null`` is dropped again on the way back, see
:func:`prune_nulls`), unsupported keywords move into the description, ``oneOf`` becomes ``anyOf``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Annotated, Any, Union, cast

from pydantic import BaseModel, Field, TypeAdapter

from twelvefactor.errors import UserError
from twelvefactor.tools import intent_of

Schema = dict[str, Any]
Tools = tuple[type[BaseModel], ...]

WRAPPER = "next_step"
"""The one property of the object that wraps the next-step union (a schema root must be an object)."""

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DROP = frozenset(("title", "default", "discriminator", "$schema", "examples"))
_STRICT_UNSUPPORTED = frozenset(
    (
        "minLength",
        "maxLength",
        "patternProperties",
        "unevaluatedProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
        "unevaluatedItems",
        "contains",
        "minContains",
        "maxContains",
        "uniqueItems",
    )
)
_STRICT_FORMATS = frozenset(("date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"))
_TYPED = ("type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const")


# --- the pydantic side --------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def tool_schema(cls: type[BaseModel]) -> Schema:
    """The tool's JSON Schema as pydantic writes it (cached; treat as read-only)."""
    return cls.model_json_schema()


@lru_cache(maxsize=128)
def union_schema(tools: Tools) -> Schema:
    """The next-step union's JSON Schema, ``$defs`` included (cached; treat as read-only)."""
    union: Any = tools[0] if len(tools) == 1 else Annotated[Union[tools], Field(discriminator="intent")]  # noqa: UP007
    return TypeAdapter(union).json_schema()


def wrapped_union(tools: Tools) -> Schema:
    """``{"next_step": <union>}`` as an object schema, ``$defs`` hoisted to the root."""
    schema = dict(union_schema(tools))
    defs = schema.pop("$defs", None)
    wrapped: Schema = {
        "type": "object",
        "properties": {WRAPPER: schema},
        "required": [WRAPPER],
        "additionalProperties": False,
    }
    if defs:
        wrapped["$defs"] = defs
    return wrapped


def tool_parameters(cls: type[BaseModel]) -> Schema:
    """A tool's arguments as an object schema: its schema without the ``intent`` tag (the tool name)."""
    schema = {key: value for key, value in tool_schema(cls).items() if key not in ("title", "description")}
    schema["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k != "intent"}
    required = [k for k in schema.get("required", ()) if k != "intent"]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)
    schema["type"] = "object"
    return schema


_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def wire_name(intent: str) -> str:
    """The provider-safe tool name of an intent: the intent, with any other character as ``_``
    (``math.factorial`` is sent as ``math_factorial`` and read back as ``math.factorial``)."""
    return intent if _TOOL_NAME.match(intent) else _UNSAFE.sub("_", intent)


def tool_definitions(tools: Tools) -> list[tuple[str, str | None, Schema]]:
    """(name, description, parameters) for each intent; the description is the tool's docstring."""
    out = []
    seen: dict[str, str] = {}
    for cls in tools:
        intent = intent_of(cls)
        name = wire_name(intent)
        if not _TOOL_NAME.match(name) or seen.setdefault(name, intent) != intent:
            clash = f" (so is {seen[name]!r})" if seen.get(name, intent) != intent else ""
            raise UserError(
                f"intent {intent!r} cannot be a native tool name: it is sent as {name!r}{clash}, and names are"
                " letters, digits, _ and -, at most 64; rename it or use output_mode='prompted'"
            )
        description = tool_schema(cls).get("description")
        out.append((name, " ".join(description.split()) if description else None, tool_parameters(cls)))
    return out


# --- strict mode ---------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _strict_cached(text: str) -> str:
    return json.dumps(_strict(json.loads(text), "schema"))


def strict_schema(schema: Schema) -> Schema:
    """The schema rewritten for OpenAI strict mode (a new object; the input is left untouched)."""
    return cast(Schema, json.loads(_strict_cached(json.dumps(schema))))


def _strict(node: Any, where: str) -> Any:  # noqa: C901 - one branch per JSON Schema keyword family
    if isinstance(node, list):
        return [_strict(item, where) for item in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    notes: list[str] = []
    for key, value in node.items():
        if key in _DROP:
            continue
        if key in _STRICT_UNSUPPORTED or (key == "format" and value not in _STRICT_FORMATS):
            notes.append(f"{key}={json.dumps(value)}")
            continue
        if key in ("properties", "$defs"):
            out[key] = {name: _strict(sub, f"{where}.{name}") for name, sub in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf", "prefixItems", "additionalProperties"):
            out[key] = _strict(value, where)
        else:
            out[key] = value
    if "oneOf" in out:
        out["anyOf"] = out.pop("oneOf")
    if "allOf" in out and len(out["allOf"]) == 1 and isinstance(out["allOf"][0], dict):
        out = {**out.pop("allOf")[0], **out}
    if "$ref" in out and len(out) > 1:
        out["anyOf"] = [{"$ref": out.pop("$ref")}, *out.get("anyOf", ())]
    if notes:
        description = out.get("description")
        out["description"] = f"{description} ({', '.join(notes)})" if description else ", ".join(notes)
    if out.get("type") == "object" or "properties" in out:
        _strict_object(node, out, where)
    if out.get("type") == "array":
        items = out.get("items")
        if not (isinstance(items, dict) and any(key in items for key in _TYPED)) and not out.get("prefixItems"):
            raise UserError(
                f"{where}: a list without an item type cannot be enforced in strict mode;"
                " give it one (list[str]) or use output_mode='prompted'"
            )
    return out


def _strict_object(original: Schema, out: Schema, where: str) -> None:
    extra = out.get("additionalProperties")
    if extra not in (None, False):
        raise UserError(
            f"{where}: a free-form mapping (dict) cannot be enforced in strict mode;"
            " use a model with named fields, or output_mode='prompted'"
        )
    required = set(original.get("required", ()))
    props: Schema = out.get("properties", {})
    out["properties"] = {
        key: value if key in required or _single_value(value) else _nullable(value) for key, value in props.items()
    }
    out["required"] = list(props)
    out["additionalProperties"] = False


def _single_value(schema: Schema) -> bool:
    # An optional field with exactly one allowed value (the `intent` tag) is simply required.
    return "const" in schema or len(schema.get("enum", ())) == 1


def _nullable(schema: Schema) -> Schema:
    if schema.get("type") == "null" or any(m.get("type") == "null" for m in schema.get("anyOf", ())):
        return schema
    if "anyOf" in schema:
        return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}
    meta = {k: schema[k] for k in ("description",) if k in schema}
    inner = {k: v for k, v in schema.items() if k not in meta}
    return {"anyOf": [inner, {"type": "null"}], **meta}


# --- back to an intent ---------------------------------------------------------------------------------


def prune_nulls(value: Any, schema: Schema, defs: Schema | None = None) -> Any:
    """Drop the ``null`` strict mode made the model send for an optional field that does not take null."""
    if defs is None:
        defs = cast(Schema, schema.get("$defs", {}))
    schema = _resolve(schema, defs)
    if isinstance(value, dict) and "properties" in schema:
        required = set(schema.get("required", ()))
        out = {}
        for key, item in value.items():
            sub = schema["properties"].get(key)
            if sub is None:
                out[key] = item
            elif item is None and key not in required and not _takes_null(sub, defs):
                continue
            else:
                out[key] = prune_nulls(item, sub, defs)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune_nulls(item, schema["items"], defs) for item in value]
    members = [_resolve(m, defs) for m in _members(schema)]
    objects = [m for m in members if "properties" in m]
    if isinstance(value, dict) and len(objects) == 1:
        return prune_nulls(value, objects[0], defs)
    return value


def _resolve(schema: Schema, defs: Schema) -> Schema:
    seen = 0
    while "$ref" in schema and seen < 32:
        schema = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
        seen += 1
    return schema


def _takes_null(schema: Schema, defs: Schema) -> bool:
    schema = _resolve(schema, defs)
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind) or None in schema.get("enum", ()):
        return True
    return any(_takes_null(m, defs) for m in _members(schema))


def _members(schema: Schema) -> list[Schema]:
    members = schema.get("anyOf") or schema.get("oneOf") or []
    return [m for m in members if isinstance(m, dict)]


def tool_call_text(name: str, arguments: str | dict[str, Any], tools: Tools, *, strict: bool) -> str:
    """A native tool call as the JSON text ``parse()`` reads: ``{"intent": name, **arguments}``.

    Arguments that are not a JSON object (a truncated call) keep their raw text after the intent, so
    ``parse()`` can still read what is there, or say what is missing.
    """
    if isinstance(arguments, str):
        try:
            loaded = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            loaded = None
        if not isinstance(loaded, dict):
            body = arguments.strip()
            rest = body[1:] if body.startswith("{") else body
            separator = ", " if rest.strip() and not rest.lstrip().startswith("}") else ""
            return f'{{"intent": {json.dumps(name)}{separator}{rest}'
        args: dict[str, Any] = loaded
    else:
        args = arguments
    cls = _by_intent(tools).get(name) or _by_wire_name(tools).get(name)
    intent = intent_of(cls) if cls is not None else name
    if strict and cls is not None:
        args = prune_nulls(args, tool_schema(cls))
    # The tool's name is the intent; an `intent` argument the model added anyway does not override it.
    return json.dumps({"intent": intent, **{k: v for k, v in args.items() if k != "intent"}})


def unwrap_text(text: str, tools: Tools, *, strict: bool) -> str:
    """The next step inside ``{"next_step": {...}}``; text that is not such an object is left as it is."""
    try:
        loaded = json.loads(text)
    except ValueError:
        return text
    if not (isinstance(loaded, dict) and isinstance(loaded.get(WRAPPER), dict) and len(loaded) == 1):
        return text
    step: dict[str, Any] = loaded[WRAPPER]
    cls = _by_intent(tools).get(str(step.get("intent")))
    if strict and cls is not None:
        step = prune_nulls(step, tool_schema(cls))
    return json.dumps(step)


def calls_text(calls: Sequence[str]) -> str:
    """One call is the next step; several are sent as a list, which ``parse()`` refuses by name."""
    return calls[0] if len(calls) == 1 else "[" + ", ".join(calls) + "]"


@lru_cache(maxsize=128)
def _by_intent(tools: Tools) -> dict[str, type[BaseModel]]:
    return {intent_of(cls): cls for cls in tools}


def _add_bounds(node: Any, max_string: int | None, max_items: int | None) -> None:
    """Add ``maxLength``/``maxItems`` where a schema (walked in place) leaves strings and arrays unbounded."""
    if isinstance(node, list):
        for item in node:
            _add_bounds(item, max_string, max_items)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    fixed = "enum" in node or "const" in node
    if kind == "string" and max_string is not None and not fixed and "maxLength" not in node:
        node["maxLength"] = max_string
    if kind == "array" and max_items is not None and "maxItems" not in node:
        node["maxItems"] = max_items
    for key, value in node.items():
        if key not in ("enum", "const", "default", "examples"):
            _add_bounds(value, max_string, max_items)


@lru_cache(maxsize=128)
def _by_wire_name(tools: Tools) -> dict[str, type[BaseModel]]:
    return {wire_name(intent_of(cls)): cls for cls in tools}


@lru_cache(maxsize=128)
def grammar_schema(
    tools: tuple[type[BaseModel], ...], *, max_string: int | None = None, max_items: int | None = None
) -> dict[str, Any]:
    """The next-step union as llama.cpp's grammar converter reads it (cached; treat as read-only).

    pydantic's schema, with ``oneOf`` as ``anyOf``, each intent's ``intent`` property required and first
    (its default would otherwise let the model leave it out), and the ``discriminator`` keyword dropped.
    With ``max_string``/``max_items``, every string and array the tools leave unbounded gets that bound
    (``maxLength``/``maxItems``; a field's own ``max_length`` wins): a grammar that bounds nothing lets a
    small model loop inside one string until it runs out of tokens.
    """
    schema = copy.deepcopy(union_schema(tools))
    if max_string is not None or max_items is not None:
        _add_bounds(schema, max_string, max_items)
    schema.pop("discriminator", None)
    if "oneOf" in schema:
        schema["anyOf"] = schema.pop("oneOf")
    members = [schema] if "properties" in schema else list(schema.get("$defs", {}).values())
    for member in members:
        properties = member.get("properties", {})
        if "intent" not in properties:
            continue
        member["properties"] = {"intent": properties["intent"], **properties}
        member["required"] = ["intent", *(name for name in member.get("required", ()) if name != "intent")]
    return schema
