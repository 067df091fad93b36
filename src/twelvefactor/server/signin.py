"""Sign in to the web UI with an API token, and sign out (the session itself: server/session.py)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from twelvefactor.server.auth import token_matches
from twelvefactor.server.session import (
    SignInRequired,
    clear_session_cookie,
    has_session,
    make_session,
    set_session_cookie,
)
from twelvefactor.server.ui import FormRejected, read_form, render_page, same_origin, see_other

__all__ = ["router", "sign_in_required"]

router = APIRouter(include_in_schema=False)


def _local(request: Request, target: str | None) -> str:
    """``target`` if it is a path on this site, else the threads page (no open redirect to elsewhere)."""
    root = str(request.scope.get("root_path", ""))
    home = root + str(request.app.url_path_for("threads_page"))
    if not target or not target.startswith(root + "/") or target.startswith("//") or "\\" in target:
        return home
    return target


@router.get("/sign-in", response_model=None)
async def sign_in_page(request: Request, next: str | None = None) -> Response:
    if not request.app.state.runtime.settings.api_tokens or has_session(request):
        return see_other(_local(request, next))  # nothing to sign in to, or signed in already
    return render_page(request, "sign_in.html", next=_local(request, next), error=None)


@router.post("/sign-in", response_model=None)
async def sign_in(request: Request) -> Response:
    try:
        form = await read_form(request)  # also refuses posts from other sites (login CSRF)
    except FormRejected as exc:
        return render_page(request, "error.html", exc.status_code, title="Form refused", message=exc.message)
    target = _local(request, form.get("next"))
    token = form.get("token", "").strip()
    accepted: list[str] = request.app.state.runtime.settings.api_tokens
    if not accepted:
        return see_other(target)
    if not token_matches(token, accepted):
        error = "That token is not one of this server's API tokens. Paste the whole token, without 'Bearer'."
        return render_page(request, "sign_in.html", 401, next=target, error=error)
    response = see_other(target)
    set_session_cookie(response, request, make_session(request.app.state.runtime.settings, token))
    return response


@router.post("/sign-out", response_model=None)
async def sign_out(request: Request) -> Response:
    if not same_origin(request):
        message = "This form was posted from another site, so it was refused."
        return render_page(request, "error.html", 403, title="Form refused", message=message)
    response = see_other(str(request.scope.get("root_path", "")) + str(request.app.url_path_for("sign_in_page")))
    clear_session_cookie(response, request)
    return response


async def sign_in_required(request: Request, exc: Exception) -> Response:
    """Exception handler for :class:`SignInRequired`: pages go to the sign-in form; form posts get 401."""
    assert isinstance(exc, SignInRequired)
    sign_in_url = str(request.scope.get("root_path", "")) + str(request.app.url_path_for("sign_in_page"))
    if request.method in ("GET", "HEAD"):
        return RedirectResponse(f"{sign_in_url}?{urlencode({'next': exc.next_url})}", status_code=303)
    page: HTMLResponse = render_page(
        request, "error.html", 401, title="Sign in first", message="Your session ended: sign in again, then retry."
    )
    return page
