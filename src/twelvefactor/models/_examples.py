"""The smallest JSON value a JSON Schema accepts: what TestModel fills a tool's arguments with."""

from __future__ import annotations

import re
from typing import Any

_FORMATS = {
    "date": "2026-01-01",
    "date-time": "2026-01-01T00:00:00Z",
    "time": "00:00:00",
    "duration": "PT1S",
    "email": "someone@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
}
_ALPHABETS = ("a", "0", "A", "a0", "-", " ")


def example_for(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> Any:
    if depth > 20:
        return None  # a recursive schema: stop where an optional part can end it
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return example_for(defs.get(ref.removeprefix("#/$defs/"), {}), defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if options:
            chosen = next((o for o in options if o.get("type") != "null"), options[0])
            return example_for(chosen, defs, depth + 1)
    if schema.get("allOf"):
        return example_for(schema["allOf"][0], defs, depth + 1)
    return _typed(schema, defs, depth)


def _typed(schema: dict[str, Any], defs: dict[str, Any], depth: int) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties: dict[str, Any] = schema.get("properties", {})
        return {name: example_for(properties[name], defs, depth + 1) for name in schema.get("required", [])}
    if kind == "array":
        count = int(schema.get("minItems", 0))
        if "prefixItems" in schema:
            return [example_for(item, defs, depth + 1) for item in schema["prefixItems"]]
        item = example_for(schema.get("items", {}), defs, depth + 1)
        values = [item] * count
        if schema.get("uniqueItems") and isinstance(item, str):
            values = [f"{item}{i}" if i else item for i in range(count)]
        return values
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return int(_number(schema, integer=True))
    if kind == "number":
        return _number(schema, integer=False)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return "a"  # any JSON: a string is as small as it gets and always serialisable


def _string(schema: dict[str, Any]) -> str:
    low = int(schema.get("minLength", 1))
    high = int(schema.get("maxLength", low + 32))
    known = _FORMATS.get(str(schema.get("format", "")))
    if known is not None:
        return known
    pattern = schema.get("pattern")
    if not isinstance(pattern, str):
        return "a" * max(low, 1 if high >= 1 else 0)
    low = max(low, 0)
    for alphabet in _ALPHABETS:
        for length in range(low, min(high, low + 32) + 1):
            candidate = (alphabet * length)[:length]
            if re.search(pattern, candidate):
                return candidate
    try:  # richer patterns: hypothesis knows regular expressions, when it is installed (it is in tests)
        from hypothesis import strategies

        return str(strategies.from_regex(pattern, fullmatch=True).example())
    except Exception:  # noqa: BLE001 - no way to satisfy it here: the caller reports the validation error
        return "a" * max(low, 1)


def _number(schema: dict[str, Any], *, integer: bool) -> float:
    step = 1.0 if integer else 0.5
    low = schema.get("minimum")
    if schema.get("exclusiveMinimum") is not None:
        low = float(schema["exclusiveMinimum"]) + step
    high = schema.get("maximum")
    if schema.get("exclusiveMaximum") is not None:
        high = float(schema["exclusiveMaximum"]) - step
    value = 0.0
    if low is not None and value < float(low):
        value = float(low)
    if high is not None and value > float(high):
        value = float(high)
    multiple = schema.get("multipleOf")
    if multiple:
        value = (value // float(multiple) + (1 if value % float(multiple) else 0)) * float(multiple)
    return float(int(value)) if integer else value
