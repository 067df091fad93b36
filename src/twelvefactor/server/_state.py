"""Where a request finds its server's Runtime (kept apart from runtime.py, which imports the routers' modules)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

if TYPE_CHECKING:
    from twelvefactor.server.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    """The Runtime of the app serving ``request`` (set by ``create_app``)."""
    rt: Runtime = request.app.state.runtime
    return rt
