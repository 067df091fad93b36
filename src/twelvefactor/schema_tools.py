"""Tools from definitions you already have: a JSON Schema, or OpenAI / Anthropic function definitions.

The schema becomes a pydantic model with every constraint pydantic can enforce (types, enums and
consts, required and optional with defaults, nested objects, arrays with bounds and uniqueness,
numeric bounds and multiples, string lengths and patterns, descriptions), so the intents rendering,
``parse`` and all three output modes treat it exactly like a hand-written tool. A keyword that would
be silently ignored (``not``, ``if``, ``patternProperties``...) is an error naming it instead.

Property names that are not Python identifiers (``from``, ``max-results``, ``_id``) keep their wire
name as an alias: the model sees and sends ``max-results``, and the recorded arguments say so too.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from twelvefactor.errors import UserError
from twelvefactor.tools import EFFECTS, Effect, Tool, ToolContext

Schema = Mapping[str, Any]
RunFunction = Callable[[dict[str, Any]], Any]

_INTENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
# Keywords that only annotate, or that pydantic enforces through the mapping below.
_KNOWN = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum", "const",
        "default", "description", "title", "examples", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern", "format", "minItems",
        "maxItems", "uniqueItems", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions", "$schema",
        "$id", "$comment", "nullable", "strict", "deprecated", "readOnly", "writeOnly",
    }
)  # fmt: skip
_FORMATS: dict[str, Any] = {"date": date, "date-time": datetime, "uuid": UUID}
_CONFIG = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)


def tool_from_schema(
    name: str,
    schema: Schema,
    *,
    description: str | None = None,
    run: RunFunction | None = None,
    effect: Effect = "irreversible",
    requires_approval: bool = False,
) -> type[Tool]:
    """A Tool class with intent ``name`` whose arguments are the JSON Schema object ``schema``.

    Without ``run`` the tool is handed back to your code (like any tool without ``run()``); with it,
    the loop calls ``run(arguments)`` (the arguments as the model sent them, wire names, defaults
    filled in) and records what it returns. ``effect`` says what running it twice means.
    """
    if _INTENT.fullmatch(name) is None:
        raise UserError(f"{name!r} cannot be an intent: use 1-64 letters, digits, '_', '.' or '-'")
    if effect not in EFFECTS:
        raise UserError(f"effect {effect!r} is not one of {', '.join(EFFECTS)}")
    if schema.get("type", "object") != "object":
        raise UserError(f"tool {name!r}: the arguments schema must have type 'object', not {schema.get('type')!r}")
    builder = _Builder(name, schema)
    fields = builder.fields(schema, where=name)
    if "intent" in fields:
        raise UserError(f"tool {name!r}: a property named 'intent' would clash with the next step's discriminator")
    doc = description if description is not None else str(schema.get("description", ""))
    extra: Literal["forbid", "ignore"] = "forbid" if schema.get("additionalProperties") is False else "ignore"
    cls: type[Tool] = create_model(
        _class_name(name),
        __base__=Tool,
        __config__=None,
        __doc__=doc or None,
        intent=(Literal.__getitem__(name), name),  # type: ignore[arg-type]
        **fields,
    )
    cls.model_config.update({**_CONFIG, "extra": extra})
    cls.model_rebuild(force=True)
    if run is not None:
        function = run

        def run_tool(self: Tool, ctx: ToolContext | None = None) -> Any:
            data = self.model_dump(mode="json", by_alias=True)
            data.pop("intent", None)
            return function(data)

        cls.run = run_tool  # type: ignore[method-assign]
    cls.effect = effect
    cls.requires_approval = requires_approval
    return cls


def tools_from_definitions(definitions: Iterable[Schema], **options: Any) -> list[type[Tool]]:
    """Tools from function definitions as OpenAI (``{"type": "function", "function": {...}}`` or the
    legacy bare form, ``parameters``) or Anthropic (``input_schema``) write them; ``options`` as for
    :func:`tool_from_schema` (``effect``, ``requires_approval``), applied to each."""
    tools = []
    for definition in definitions:
        body = definition.get("function", definition) if definition.get("type") == "function" else definition
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise UserError(f"a function definition needs a 'name': {str(dict(definition))[:120]}")
        schema = body.get("parameters", body.get("input_schema", {"type": "object"}))
        tools.append(tool_from_schema(name, schema, description=body.get("description"), **options))
    return tools


class _Builder:
    """Turns one schema (and its ``$defs``) into pydantic field types; nested objects become models."""

    def __init__(self, name: str, root: Schema) -> None:
        self.name = name
        self.defs: Mapping[str, Any] = {**root.get("definitions", {}), **root.get("$defs", {})}
        self.resolving: list[str] = []
        self.models: dict[str, type[BaseModel]] = {}

    def fields(self, schema: Schema, *, where: str) -> dict[str, Any]:
        _check_keywords(schema, where)
        required = set(schema.get("required", ()))
        fields: dict[str, Any] = {}
        for wire, prop in schema.get("properties", {}).items():
            python = _python_name(wire, fields)
            annotation = self.type_of(prop, where=f"{where}.{wire}")
            options: dict[str, Any] = {}
            if python != wire:
                options["alias"] = wire
            if isinstance(prop, Mapping) and prop.get("description"):
                options["description"] = str(prop["description"])
            if wire in required:
                default: Any = ...
            else:
                default = prop.get("default") if isinstance(prop, Mapping) else None
                if default is None:
                    annotation = annotation | None
            fields[python] = (annotation, Field(default, **options))
        return fields

    def type_of(self, schema: Any, *, where: str) -> Any:
        if not isinstance(schema, Mapping):
            raise UserError(f"{where}: a schema must be an object, got {type(schema).__name__}")
        _check_keywords(schema, where)
        if "$ref" in schema:
            return self._ref(str(schema["$ref"]), where)
        if "const" in schema:
            return Literal.__getitem__(schema["const"])
        if "enum" in schema:
            return Literal.__getitem__(tuple(schema["enum"]))
        for union in ("anyOf", "oneOf"):
            if union in schema:
                options = [self.type_of(option, where=f"{where}.{union}") for option in schema[union]]
                return Union.__getitem__(tuple(options)) if len(options) > 1 else options[0]
        if "allOf" in schema:
            parts = schema["allOf"]
            if len(parts) != 1:
                raise UserError(f"{where}: 'allOf' with {len(parts)} parts cannot be enforced; merge them into one")
            return self.type_of(parts[0], where=where)
        kind = schema.get("type")
        if isinstance(kind, list):
            types = [self.type_of({**schema, "type": k}, where=where) for k in kind]
            return Union.__getitem__(tuple(types)) if len(types) > 1 else types[0]
        nullable = schema.get("nullable") is True
        base = self._typed(schema, kind, where)
        return base | None if nullable else base

    def _typed(self, schema: Schema, kind: Any, where: str) -> Any:
        if kind == "string":
            fmt = _FORMATS.get(str(schema.get("format", "")))
            if fmt is not None:
                return fmt
            lengths = _pick(schema, minLength="min_length", maxLength="max_length", pattern="pattern")
            return Annotated[str, Field(**lengths)]
        if kind in ("integer", "number"):
            limits = _pick(
                schema,
                minimum="ge",
                maximum="le",
                exclusiveMinimum="gt",
                exclusiveMaximum="lt",
                multipleOf="multiple_of",
            )
            number: type = int if kind == "integer" else float
            return Annotated[number, Field(**limits)]
        if kind == "boolean":
            return bool
        if kind == "null":
            return type(None)
        if kind == "array":
            return self._array(schema, where)
        if kind == "object" or "properties" in schema:
            return self._object(schema, where)
        if kind is None:
            return Any
        raise UserError(f"{where}: unknown JSON Schema type {kind!r}")

    def _array(self, schema: Schema, where: str) -> Any:
        if "prefixItems" in schema:
            items = tuple(self.type_of(item, where=f"{where}[{i}]") for i, item in enumerate(schema["prefixItems"]))
            return tuple.__class_getitem__(items)
        item = self.type_of(schema.get("items", {}), where=f"{where}[]")
        sized = Annotated[list[item], Field(**_pick(schema, minItems="min_length", maxItems="max_length"))]  # type: ignore[valid-type]
        if schema.get("uniqueItems"):
            return Annotated[sized, AfterValidator(_unique)]
        return sized

    def _object(self, schema: Schema, where: str) -> Any:
        if "properties" not in schema:
            extra = schema.get("additionalProperties")
            value = self.type_of(extra, where=f"{where}{{}}") if isinstance(extra, Mapping) else Any
            return dict[str, value]  # type: ignore[valid-type]
        fields = self.fields(schema, where=where)
        model_name = _class_name(str(schema.get("title") or where.split(".")[-1]))
        model: type[BaseModel] = create_model(
            model_name,
            __config__=ConfigDict(
                **_CONFIG, extra="forbid" if schema.get("additionalProperties") is False else "ignore"
            ),
            __doc__=schema.get("description"),
            **fields,
        )
        return model

    def _ref(self, ref: str, where: str) -> Any:
        match = re.fullmatch(r"#/(?:\$defs|definitions)/(.+)", ref)
        if match is None or match[1] not in self.defs:
            raise UserError(f"{where}: $ref {ref!r} does not name a definition of this schema ($defs)")
        name = match[1]
        if name in self.resolving:
            raise UserError(f"{where}: $ref {ref!r} is recursive; a tool's arguments must be a finite shape")
        if name not in self.models:
            self.resolving.append(name)
            try:
                self.models[name] = self.type_of({"title": name, **self.defs[name]}, where=f"$defs.{name}")
            finally:
                self.resolving.pop()
        return self.models[name]


def _unique(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if value in seen:
            raise ValueError(f"items must be unique (uniqueItems); {value!r} repeats")
        seen.append(value)
    return values


def _check_keywords(schema: Schema, where: str) -> None:
    for key in schema:
        if key not in _KNOWN and not key.startswith("x-"):
            raise UserError(
                f"{where}: JSON Schema keyword {key!r} cannot be enforced here; remove it or check it in run()"
            )


def _pick(schema: Schema, **names: str) -> dict[str, Any]:
    return {python: schema[key] for key, python in names.items() if key in schema}


def _python_name(wire: str, taken: Mapping[str, Any]) -> str:
    name = re.sub(r"\W", "_", wire).lstrip("_") or "field"
    if name[0].isdigit():
        name = f"f_{name}"
    if keyword.iskeyword(name) or name in dir(BaseModel) or name == "intent" and wire != "intent":
        name += "_"
    while name in taken:
        name += "_"
    return name


def _class_name(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part) or "Tool"
