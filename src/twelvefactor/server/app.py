"""The ASGI app: REST API, live streams, and the worker that advances threads, in one process."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware

from twelvefactor.channels.base import Channel
from twelvefactor.errors import (
    ConflictError,
    SignInRequired,
    StoreBusyError,
    StoreNotWritable,
    ThreadNotFound,
    TwelveFactorError,
    UserError,
)
from twelvefactor.server import api, case_export, docs, email_in, links, openapi, signin, slack, triggers, ui, webhooks
from twelvefactor.server.headers import SecurityHeaders
from twelvefactor.server.health import check_writable
from twelvefactor.server.hosts import HostCheck
from twelvefactor.server.limits import BodyLimit
from twelvefactor.server.memory_api import router as memory_api_router
from twelvefactor.server.memory_ui import router as memory_ui_router
from twelvefactor.server.retention import Retention
from twelvefactor.server.runtime import Runtime
from twelvefactor.server.session import require_api_access, require_signed_in
from twelvefactor.server.settings import ServerSettings
from twelvefactor.server.usage_page import router as usage_router
from twelvefactor.store import open_store
from twelvefactor.store.base import ThreadStore
from twelvefactor.triggers.scheduler import Scheduler
from twelvefactor.workflows.runner import Runnable


def create_app(
    agents: Mapping[str, Runnable] | Iterable[Runnable],
    *,
    settings: ServerSettings | None = None,
    store: ThreadStore | None = None,
    channels: Mapping[str, Channel] | None = None,
) -> FastAPI:
    """The service for ``agents`` (agents and workflows: a list, or a name -> agent mapping) on ``store``
    (default: settings.database). A workflow's sub-agents are served with it. ``channels`` adds channels of
    your own (anything with the ``Channel`` shape) by name, beside those ``settings.channels`` configures."""
    settings = settings or ServerSettings()
    settings.check()
    by_name = dict(agents) if isinstance(agents, Mapping) else {agent.name: agent for agent in agents}
    runtime = Runtime.build(settings, by_name, store or _open_writable(settings.database), channels=channels)
    if store is not None:
        check_writable(store)
    triggers.check_served(settings, runtime.agents)
    # Every server runs the schedules, whichever queue: a run's thread id is fixed by its time, so N servers
    # (or a restart) start it once.
    scheduler = Scheduler(runtime.store, runtime.worker.submit, runtime.agents, settings.schedules)
    retention = Retention(settings, runtime.store, runtime.agents)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.notifier.bind(asyncio.get_running_loop())
        await runtime.webhooks.start()  # first, so that no status change of a recovered thread is missed
        await runtime.worker.start(recover=True)
        await runtime.contacts.start()
        await scheduler.start()  # after the worker: a caught-up run is submitted to a running worker
        if runtime.feed is not None:
            await runtime.feed.start()  # other processes' writes: after the listeners it feeds are running
        await retention.start()
        mail = _listen_for_mail(runtime)
        try:
            yield
        finally:
            if mail is not None:
                await asyncio.to_thread(mail.stop)
            # Graceful: steps in flight finish and are committed (or the thread is left resumable).
            runtime.stopping = True
            await retention.stop()
            if runtime.feed is not None:
                await runtime.feed.stop()
            await scheduler.stop()
            await runtime.worker.stop(timeout=runtime.settings.shutdown_grace_s)
            await runtime.contacts.stop()
            await runtime.webhooks.stop()  # after the worker: its last writes reach the outbox
            if runtime.memory is not None:
                runtime.memory.close()  # its own connection, reopened if the app starts again
            if store is None:
                runtime.store.close()

    app = FastAPI(
        title="twelvefactor",
        version="1",
        summary="Launch, pause and resume agents; humans answer by API or web UI.",
        lifespan=lifespan,
        docs_url=None,  # served by docs.router, behind the sign-in
        redoc_url=None,
        openapi_url=None,
        middleware=[  # outermost first: even a refused Host gets the security headers
            Middleware(SecurityHeaders),
            Middleware(HostCheck, settings=settings),
            Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
        ],
    )
    app.state.runtime = runtime
    authenticated = [Depends(require_api_access)]  # a bearer token (or, for reads, a UI session)
    app.include_router(api.router, dependencies=authenticated)
    app.include_router(memory_api_router, dependencies=authenticated)
    app.include_router(webhooks.router, dependencies=authenticated)
    app.include_router(webhooks.inbound_router)  # authenticated by its signature
    app.include_router(email_in.router)  # authenticated by its signature, like the resume webhook
    app.include_router(triggers.router)  # authenticated by each trigger's signature
    app.include_router(docs.openapi_router, dependencies=authenticated)
    app.include_router(docs.router, dependencies=[Depends(require_signed_in)])
    app.include_router(signin.router)
    app.include_router(links.router)  # authenticated by the signed token in the URL
    app.include_router(slack.router)  # authenticated by Slack's request signature
    app.include_router(case_export.router)  # the thread page's "Download as eval case", behind the same sign-in
    app.include_router(usage_router)  # the web UI's /usage page, behind the same sign-in
    app.include_router(ui.router)
    app.include_router(memory_ui_router)
    app.mount(ui.STATIC_PATH, ui.static_files(), name="static")
    app.mount(docs.DOCS_ASSETS_PATH, docs.docs_assets(), name="docs-assets")
    _install_error_handlers(app)
    openapi.install(app, tokens=bool(settings.api_tokens), agents=by_name)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        try:
            await asyncio.to_thread(check_writable, runtime.store)
        except StoreNotWritable as exc:
            return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app


def _listen_for_mail(runtime: Runtime) -> Any:
    """The SMTP listener ``smtp_listen`` asks for (started), or None."""
    if runtime.settings.smtp_listen is None:
        return None
    host, _, port = runtime.settings.smtp_listen.rpartition(":")
    try:
        from twelvefactor.server.email_in import start_smtp_server

        return start_smtp_server(runtime, host, int(port))
    except ImportError as exc:
        raise UserError("smtp_listen needs aiosmtpd: pip install 'twelvefactor[email]'") from exc


def _open_writable(database: str) -> ThreadStore:
    try:
        store = open_store(database)
    except sqlite3.Error as exc:  # e.g. a read-only directory: the WAL cannot be created
        raise StoreNotWritable(
            f"cannot open the database {database!r} for writing ({exc}): check the permissions of the file"
            " and its directory, and free disk space"
        ) from exc
    try:
        check_writable(store)
    except StoreNotWritable:
        store.close()
        raise
    return store


def _install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SignInRequired, signin.sign_in_required)
    app.add_exception_handler(RequestValidationError, openapi.validation_error)
    app.add_exception_handler(StarletteHTTPException, openapi.http_error)

    @app.exception_handler(TwelveFactorError)
    async def library_error(request: Request, exc: TwelveFactorError) -> JSONResponse:
        status = _status_of(exc)
        # A busy database is transient: say when to try again rather than fail the client.
        headers = {"Retry-After": "1"} if status == 503 else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    @app.exception_handler(sqlite3.OperationalError)
    async def database_error(request: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        # A write that failed for a reason of the database's (read-only, full, locked past the timeout):
        # say so, as /healthz does, rather than a bare 500.
        runtime: Runtime = request.app.state.runtime
        try:
            await asyncio.to_thread(check_writable, runtime.store)
        except StoreNotWritable as unwritable:
            return JSONResponse({"detail": str(unwritable)}, status_code=503)
        return JSONResponse({"detail": f"the database is unavailable ({exc}); retry shortly"}, status_code=503)


def _status_of(exc: TwelveFactorError) -> int:
    if isinstance(exc, StoreNotWritable):
        return 503
    if isinstance(exc, ThreadNotFound):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, UserError):
        return 422
    if isinstance(exc, StoreBusyError):
        return 503
    return 500
