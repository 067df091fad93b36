"""A compact, YAML-like rendering of JSON values for context blocks (readable, few tokens).

It is not a YAML emitter: it aims at what a model reads best. Strings that would read as another
type ("true", "3", "") are quoted; multi-line strings become indented blocks.
"""

from __future__ import annotations

import json
import re
from typing import Any

_LOOKS_TYPED = re.compile(r"^(?:true|false|null|~|-?\d[\d_.eE+-]*|\s.*|.*\s)$", re.IGNORECASE | re.DOTALL)


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if not text or _LOOKS_TYPED.match(text) or text[0] in "[{\"'-#&*!|>%@`":
        return json.dumps(text, ensure_ascii=False)
    return text


def render(value: Any, indent: str = "") -> str:
    """Render a JSON-ready value; dicts and lists over several lines, scalars inline."""
    if isinstance(value, dict):
        if not value:
            return indent + "{}"
        return "\n".join(_entry(f"{indent}{key}:", item, indent) for key, item in value.items())
    if isinstance(value, list | tuple):
        if not value:
            return indent + "[]"
        return "\n".join(_entry(f"{indent}-", item, indent) for item in value)
    return indent + _string_or_scalar(value, indent)


def _entry(head: str, value: Any, indent: str) -> str:
    if isinstance(value, dict | list | tuple) and value:
        return f"{head}\n{render(value, indent + '  ')}"
    if isinstance(value, dict):
        return f"{head} {{}}"
    if isinstance(value, list | tuple):
        return f"{head} []"
    return f"{head} {_string_or_scalar(value, indent)}"


def _string_or_scalar(value: Any, indent: str) -> str:
    if isinstance(value, str) and "\n" in value:
        inner = indent + "  "
        return "|\n" + "\n".join(inner + line if line else "" for line in value.split("\n"))
    return scalar(value)
