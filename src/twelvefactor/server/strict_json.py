"""JSON request bodies parsed strictly: what cannot be stored is refused at the door (422), not at the store (500).

Python's ``json.loads`` accepts an escaped lone surrogate (``"\\ud83d"``) and makes a ``str`` that
cannot be encoded as UTF-8, so it fails later, deep in the store, as a 500. pydantic-core's parser
(the one ``model_validate_json`` uses) rejects it, along with NaN and Infinity. Routers take
``route_class=StrictJSONRoute``; FastAPI turns the parse error into its usual ``json_invalid`` 422.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import pydantic_core
from fastapi import Request, Response
from fastapi.routing import APIRoute

__all__ = ["StrictJSONRequest", "StrictJSONRoute"]


class StrictJSONRequest(Request):
    """A Request whose ``json()`` is pydantic-core's parser; errors are ``json.JSONDecodeError`` as FastAPI expects."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = pydantic_core.from_json(body)
            except ValueError as exc:
                raise json.JSONDecodeError(str(exc), body.decode("utf-8", "replace"), 0) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """An APIRoute whose endpoints read JSON bodies with :class:`StrictJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
