"""Resolve an agent (or workflow) reference from the command line: a file, a folder, or a module path."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from twelvefactor.agent import Agent
from twelvefactor.errors import UnknownAgentError
from twelvefactor.workflows.runner import Runnable, Workflow

_FORMS = "PATH.py[:ATTR], FOLDER (holding agent.py), package.module[:ATTR], or an example name"
# The examples of a source checkout (an editable install), so `deploybot` resolves from any folder.
_CHECKOUT_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_agent(ref: str) -> Agent:
    """``examples/deploybot``, ``my_agents/bot.py:agent``, ``my_pkg.agents:bot`` or ``deploybot``."""
    value = load_target(ref)
    if isinstance(value, Workflow):
        raise UnknownAgentError(
            f"{ref!r} is workflow {value.name!r}, not an agent: run or serve it (twelvefactor run / serve);"
            f" its agents: {', '.join(value.agents) or 'none'}"
        )
    return value


def load_target(ref: str) -> Runnable:
    """An agent or a workflow, by the same references as ``load_agent`` (``examples/release``)."""
    target, _, attr = ref.partition(":")
    module, label = _load_module(target, ref)
    name = attr or "agent"
    value = getattr(module, name, None)
    if not isinstance(value, Agent | Workflow):
        agents = sorted(key for key, item in vars(module).items() if isinstance(item, Agent | Workflow))
        there = f"agents there: {', '.join(agents)}" if agents else "it defines no Agent"
        what = "defines no" if value is None else f"has a {type(value).__name__}, not an Agent, as"
        raise UnknownAgentError(f"{ref!r}: {label} {what} {name!r}; {there}")
    return value


def _load_module(target: str, ref: str) -> tuple[ModuleType, str]:
    """The module ``target`` names, and how to name it in a message (its file, or its dotted name)."""
    path = Path(target)
    for candidate in (
        path,
        path / "agent.py",
        Path("examples") / target / "agent.py",
        _CHECKOUT_EXAMPLES / target / "agent.py",
    ):
        if candidate.is_file() and candidate.suffix == ".py":
            return _load_file(candidate), str(candidate)
    if _looks_like_a_path(target):
        raise UnknownAgentError(_no_such_path(path, ref))
    return _import(target, ref), target


def _looks_like_a_path(target: str) -> bool:
    """A file name, anything with a slash, or a folder that is not a package is never a module name (import
    would misread it, or load an empty namespace package)."""
    path = Path(target)
    if target.isidentifier():
        return path.is_dir() and not (path / "__init__.py").is_file()
    return target.endswith(".py") or "/" in target or os.sep in target or target.startswith(".") or path.exists()


def _no_such_path(path: Path, ref: str) -> str:
    if path.is_dir():
        return f"cannot load agent {ref!r}: the folder {str(path.resolve())!r} holds no agent.py; use {_FORMS}"
    return f"cannot load agent {ref!r}: there is no file or folder {str(path)!r}; use {_FORMS}"


def _import(target: str, ref: str) -> ModuleType:
    # The console script does not put the current folder on sys.path the way `python -m` does; appended
    # (not prepended) so a file here never shadows an installed module.
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise UnknownAgentError(f"cannot load agent {ref!r}: {exc}; use {_FORMS}") from exc
    except Exception as exc:
        raise UnknownAgentError(f"cannot load agent {ref!r}: {type(exc).__name__}: {exc}") from exc


def _load_file(path: Path) -> ModuleType:
    return load_module_file(path)


def load_module_file(path: Path, *, what: str = "agent file") -> ModuleType:
    """The Python file at ``path`` as a module (loaded once per process); UnknownAgentError, naming ``what``
    it is, if it cannot be loaded or raises while it runs."""
    if not path.is_file():
        raise UnknownAgentError(f"there is no {what} {str(path)!r}")
    resolved = path.resolve()
    name = f"_twelvefactor_{what.split()[0]}_{abs(hash(str(resolved)))}"
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
            raise UnknownAgentError(f"cannot load {what} {str(path)!r}: {type(exc).__name__}: {exc}") from exc
        raise
    return module
