"""Compact, TypeScript-like rendering of the intent union for the prompt.

Raw JSON Schema spends most of its tokens on punctuation the model does not need ("properties",
"type", "title", "$defs"...). This renders the same information — intents, field names, types,
enums, optional fields, descriptions — as a short type declaration. ``schema_size_report`` compares it
with the JSON Schema of the same union.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter

Schema = dict[str, Any]


def render_intents(tools: Sequence[type[BaseModel]], *, name: str = "NextStep") -> str:
    """``type NextStep = | {...} | {...}`` with one line (plus a description comment) per intent."""
    lines = [f"type {name} ="]
    for cls in tools:
        schema = cls.model_json_schema()
        defs = schema.get("$defs", {})
        doc = _one_line(schema.get("description") or "")
        approval = getattr(cls, "requires_approval", False)
        comment = " ".join(part for part in (doc, "(needs human approval)" if approval else "") if part)
        if comment:
            lines.append(f"  // {comment}")
        lines.append(f"  | {_object(schema, defs)}")
    return "\n".join(lines)


def render_steps(tools: Sequence[type[BaseModel]]) -> str:
    """The next steps as the JSON a reply is, one per line under what it does (``{{ steps }}``).

    Built for small models, which copy what they see: every line is already the shape of a valid reply
    (``{"intent": "add", "a": <number>, "b": <number>}``), with no type header to echo back as a field.
    Values to fill in are ``<type>``; optional arguments say so and give their default.
    """
    lines: list[str] = []
    for cls in tools:
        schema = cls.model_json_schema()
        defs = schema.get("$defs", {})
        doc = _one_line(schema.get("description") or "")
        approval = " (a person approves it first)" if getattr(cls, "requires_approval", False) else ""
        lines.append(f"- {doc or 'Step.'}{approval}")
        lines.append(f"  {_json_shape(schema, defs)}")
    return "\n".join(lines)


def _json_shape(schema: Schema, defs: Schema) -> str:
    props: dict[str, Schema] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    parts = []
    for key, prop in props.items():
        if key == "intent":
            parts.append(f'"intent": {json.dumps(prop.get("const", prop.get("default")))}')
            continue
        notes = [_type(prop, defs)]
        if prop.get("description"):
            notes.append(_one_line(prop["description"]))
        if key not in required:
            default = prop.get("default")
            notes.append(
                "optional" + (f", default {json.dumps(default, ensure_ascii=False)}" if default is not None else "")
            )
        parts.append(f'"{key}": <{"; ".join(notes)}>')
    return "{" + ", ".join(parts) + "}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _object(schema: Schema, defs: Schema) -> str:
    props: dict[str, Schema] = schema.get("properties", {})
    if not props:
        return "object" if schema.get("additionalProperties") is not False else "{}"
    required = set(schema.get("required", ()))
    parts = []
    for key, prop in props.items():
        # The discriminator is written even when it has a default: the model must always send it.
        optional = key not in required and key != "intent"
        text = f"{key}{'?' if optional else ''}: {_type(prop, defs)}"
        notes = [_one_line(prop["description"])] if prop.get("description") else []
        # What an omitted field becomes, so that a model leaves it out instead of guessing (None is obvious).
        if optional and prop.get("default") is not None:
            notes.append(f"default {json.dumps(prop['default'], ensure_ascii=False)}")
        if notes:
            text += f" /* {'; '.join(notes)} */"
        parts.append(text)
    return "{ " + "; ".join(parts) + " }"


def _type(schema: Schema, defs: Schema) -> str:  # noqa: C901 - one branch per JSON Schema form
    if "$ref" in schema:
        return _type(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_type(member, defs) for member in schema[key])
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _type(schema["allOf"][0], defs)
    kind = schema.get("type")
    if kind == "array":
        item = _type(schema.get("items", {}), defs)
        return f"({item})[]" if " | " in item else f"{item}[]"
    if kind == "object":
        if "properties" in schema:
            return _object(schema, defs)
        extra = schema.get("additionalProperties")
        return f"Record<string, {_type(extra, defs)}>" if isinstance(extra, dict) else "object"
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if kind in ("string", "boolean", "null"):
        return str(kind)
    return "any"


def _number(schema: Schema, kind: str) -> str:
    bounds = [
        f"{label} {schema[key]}"
        for key, label in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))
        if key in schema
    ]
    base = "integer" if kind == "integer" else "number"
    return f"{base} ({', '.join(bounds)})" if bounds else base


def json_schema_text(tools: Sequence[type[BaseModel]]) -> str:
    """The JSON Schema of the same union, as it would be pasted into a prompt."""
    union: Any = tools[0] if len(tools) == 1 else _plain_union(tools)
    return json.dumps(TypeAdapter(union).json_schema())


def _plain_union(tools: Sequence[type[BaseModel]]) -> Any:
    from typing import Union

    return Union[tuple(tools)]  # noqa: UP007


def schema_size_report(tools: Sequence[type[BaseModel]]) -> dict[str, float]:
    """Characters of the compact rendering vs the JSON Schema, and their ratio."""
    compact = render_intents(tools)
    raw = json_schema_text(tools)
    return {"compact_chars": len(compact), "json_schema_chars": len(raw), "ratio": len(raw) / len(compact)}
