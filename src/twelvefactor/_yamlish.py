"""A compact, YAML-like rendering of JSON values for context blocks (readable, few tokens).

It is not a YAML emitter: it aims at what a model reads best. Strings that would read as another
type ("true", "3", "") are quoted; multi-line strings become indented blocks. Nothing interpolated can
start a line of its own: keys that are not plain names are quoted, and a line break other than ``\n``
(``\r``, U+2028, ...: a reader may honour them) makes a value a quoted, escaped string.
"""

from __future__ import annotations

import json
import re
from typing import Any

_LOOKS_TYPED = re.compile(r"^(?:true|false|null|~|-?\d[\d_.eE+-]*|\s.*|.*\s)$", re.IGNORECASE | re.DOTALL)
_PLAIN_KEY = re.compile(r"\w(?:[\w .$/@+-]*[\w.$/@+-])?")
# The line boundaries of str.splitlines() other than "\n" (which becomes an indented block instead).
_OTHER_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# json.dumps escapes the C0 controls but not these; a quoted string must hold no line break at all.
_UNESCAPED_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def quoted(text: str) -> str:
    """``text`` as a one-line JSON string."""
    return json.dumps(text, ensure_ascii=False).translate(_UNESCAPED_BREAKS)


def key(value: Any) -> str:
    text = str(value)
    return text if _PLAIN_KEY.fullmatch(text) else quoted(text)


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
    if not text or _LOOKS_TYPED.match(text) or text[0] in "[{\"'-#&*!|>%@`" or _OTHER_BREAKS.search(text):
        return quoted(text)
    return text


def render(value: Any, indent: str = "") -> str:
    """Render a JSON-ready value; dicts and lists over several lines, scalars inline."""
    if isinstance(value, dict):
        if not value:
            return indent + "{}"
        return "\n".join(_entry(f"{indent}{key(name)}:", item, indent) for name, item in value.items())
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
    if isinstance(value, str) and "\n" in value and not _OTHER_BREAKS.search(value):
        inner = indent + "  "
        return "|\n" + "\n".join(inner + line if line else "" for line in value.split("\n"))
    return scalar(value)
