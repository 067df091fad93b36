"""A server's configuration file (TOML): channels, contact chains, routes, schedules, triggers, webhooks.

What a deployment says about people and triggers is data too long for command-line options. Secrets stay
out of the file: a string that is exactly ``"${NAME}"`` is replaced by the environment variable ``NAME``
(an unset one is an error), and nothing else is interpolated: no shell, no templates. The address,
database and worker options stay on the command line (and TWELVEFACTOR_* variables), so a value is never set
in two places that disagree.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twelvefactor.errors import UserError

__all__ = ["CLI_OWNED", "load_config"]

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

CLI_OWNED = frozenset(
    {"host", "port", "database", "api_tokens", "workers", "lease_s", "queue", "queue_worker", "public_url"}
)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings in the TOML file at ``path``, with ``${NAME}`` strings taken from the environment."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"config file {str(file)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config file {str(file)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {str(file)!r} is not valid TOML: {exc}") from None
    owned = sorted(CLI_OWNED & data.keys())
    if owned:
        raise UserError(
            f"config file {str(file)!r} sets {', '.join(owned)}: set those with command-line options or"
            " TWELVEFACTOR_* variables instead (e.g. --port, TWELVEFACTOR_PORT)"
        )
    expanded: dict[str, Any] = _expand(data, os.environ if environ is None else environ, str(file), "")
    return expanded


def _expand(value: Any, environ: Mapping[str, str], file: str, where: str) -> Any:
    if isinstance(value, dict):
        return {key: _expand(item, environ, file, f"{where}.{key}" if where else key) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, environ, file, f"{where}[{n}]") for n, item in enumerate(value)]
    if isinstance(value, str):
        match = _VARIABLE.fullmatch(value)
        if match is None:
            return value
        name = match.group(1)
        if name not in environ:
            raise UserError(f"config file {file!r}: {where} is ${{{name}}}, but the environment variable is not set")
        return environ[name]
    return value
