"""The parse modules are core: they import nothing above it (tests/test_layers.py holds the rule)."""

from __future__ import annotations

import pytest

from test_layers import ABOVE_CORE, SRC, _runtime_imports

PARSE_MODULES = ["parsing", "_plan", "_reply", "_lenient_json", "_coerce", "_scalars", "_partial"]


@pytest.mark.parametrize("name", PARSE_MODULES)
def test_a_parse_module_imports_only_core(name: str) -> None:
    assert sorted(_runtime_imports(SRC / f"{name}.py") & ABOVE_CORE) == []


def test_the_parse_modules_import_only_each_other_and_errors() -> None:
    allowed = {*PARSE_MODULES, "errors"}
    for name in PARSE_MODULES:
        assert _runtime_imports(SRC / f"{name}.py") <= allowed, name
