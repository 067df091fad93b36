"""Resolve an agent reference from the command line: a file, a folder, or a module path."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from twelvefactor.agent import Agent
from twelvefactor.errors import UnknownAgentError

_FORMS = "PATH.py[:ATTR], FOLDER (holding agent.py), package.module[:ATTR], or an example name"


def load_agent(ref: str) -> Agent:
    """``examples/deploybot``, ``my_agents/bot.py:agent``, ``my_pkg.agents:bot`` or ``deploybot``."""
    target, _, attr = ref.partition(":")
    module = _load_module(target, ref)
    name = attr or "agent"
    value = getattr(module, name, None)
    if not isinstance(value, Agent):
        found = "nothing" if value is None else type(value).__name__
        raise UnknownAgentError(f"{ref!r}: {module.__name__}.{name} is {found}, not an Agent")
    return value


def _load_module(target: str, ref: str) -> ModuleType:
    path = Path(target)
    candidates = [path, path / "agent.py", Path("examples") / target / "agent.py"]
    for candidate in candidates:
        if candidate.is_file() and candidate.suffix == ".py":
            return _load_file(candidate)
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise UnknownAgentError(f"cannot load agent {ref!r}: {exc}; use {_FORMS}") from exc


def _load_file(path: Path) -> ModuleType:
    resolved = path.resolve()
    name = f"_twelvefactor_agent_{abs(hash(str(resolved)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise UnknownAgentError(f"cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        # A half-run module left behind would be returned by the next load, with a misleading error.
        del sys.modules[name]
        if isinstance(exc, Exception):
            raise UnknownAgentError(f"cannot load agent file {str(path)!r}: {type(exc).__name__}: {exc}") from exc
        raise
    return module
