"""One exception tree, in one module, drawn in its docstring and exported whole."""

from __future__ import annotations

import importlib
import pkgutil

import twelvefactor
import twelvefactor.errors as errors
from twelvefactor.errors import ConflictError, NotWaitingError, TwelveFactorError


def _all_library_errors() -> set[type[BaseException]]:
    for module in pkgutil.walk_packages(twelvefactor.__path__, "twelvefactor."):
        if module.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(module.name)
        except ImportError:  # an optional extra that is not installed (e.g. llama_cpp)
            continue
    found: set[type[BaseException]] = set()
    todo: list[type[BaseException]] = [TwelveFactorError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("twelvefactor"):
            found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_exception_lives_in_the_errors_module_is_drawn_and_exported() -> None:
    classes = _all_library_errors()
    assert len(classes) >= 15
    misplaced = sorted(f"{c.__module__}.{c.__qualname__}" for c in classes if c.__module__ != "twelvefactor.errors")
    assert misplaced == []
    doc = errors.__doc__ or ""
    assert sorted(c.__name__ for c in classes if c.__name__ not in doc) == []
    assert sorted(c.__name__ for c in classes if getattr(twelvefactor, c.__name__, None) is not c) == []


def test_not_waiting_is_a_conflict_built_through_its_parent() -> None:
    exc = NotWaitingError("t1", "request 'c9' is not the pending request of thread 't1'")
    assert isinstance(exc, ConflictError)
    assert exc.thread_id == "t1" and exc.expected_version is None and exc.actual_version is None
    assert str(exc) == "request 'c9' is not the pending request of thread 't1'"
    assert exc.args == ("request 'c9' is not the pending request of thread 't1'",)
