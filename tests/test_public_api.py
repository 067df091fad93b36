from __future__ import annotations

import subprocess
import sys

import twelvefactor


def test_public_surface_is_pinned_and_sorted() -> None:
    assert twelvefactor.__all__ == sorted(twelvefactor.__all__)
    for name in twelvefactor.__all__:
        assert getattr(twelvefactor, name) is not None, name


def test_importing_the_library_does_not_import_the_cli_or_template_engine() -> None:
    # Import time is a feature: the CLI (typer, rich) and Jinja2 load only when used.
    code = "import sys, twelvefactor; print(sorted(m for m in ('typer', 'rich', 'jinja2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
