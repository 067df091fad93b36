"""A stored thread as an eval case, downloaded from the web UI (the thread page's "Download as eval case").

The same case ``twelvefactor threads export ID --as-case`` prints, behind the same sign-in as the thread page.
"""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from twelvefactor.errors import ThreadNotFound, UserError
from twelvefactor.evals.export import thread_to_case
from twelvefactor.server._state import runtime_of
from twelvefactor.server.session import require_signed_in

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_signed_in)])

_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9_.-]")


@router.get("/threads/{thread_id}/case.json")
async def thread_case(thread_id: str, request: Request) -> Response:
    """The thread as an eval case (input, recorded answers, expected status and calls), as a download."""
    store = runtime_of(request).store
    try:
        thread = await asyncio.to_thread(store.load, thread_id)
    except ThreadNotFound:
        return JSONResponse({"detail": f"there is no thread with id {thread_id!r}"}, status_code=404)
    try:
        case = thread_to_case(thread)
    except UserError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=422)
    # The id is the client's text: only safe characters reach the header.
    filename = f"case-{_UNSAFE_IN_FILENAME.sub('_', thread.id)[:100]}.json"
    return Response(
        case.model_dump_json(indent=2, exclude_defaults=True) + "\n",
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
