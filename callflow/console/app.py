"""The console's ASGI application: API routers, error bodies that name the field, the two pages."""

from __future__ import annotations

import html
from importlib.resources import files
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callflow.console import (
    routes_agency,
    routes_auth,
    routes_floor,
    routes_stream,
    routes_supervision,
    routes_wallboard,
)
from callflow.console.accounts import Session
from callflow.console.context import ConsoleContext
from callflow.console.limits import BodyLimit, HostGuard
from callflow.console.providers import NotFound, ProviderUnavailable, Refused
from callflow.console.roles import WATCHERS
from callflow.console.security import csrf_guard, current_session, optional_session

STATIC_DIR = Path(str(files("callflow.console") / "static"))

_SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                                 b"form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """Adds the headers above to every response; API answers are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = str(scope.get("path", "")).startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(_SECURITY_HEADERS)
                if is_api and not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _field(loc: tuple[int | str, ...]) -> str:
    # ("body", "category") -> "category"; ("query", "limit") -> "limit"; ("path", "number") -> "number"
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or "body"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 -- registered for this type only
    fields = []
    for err in exc.errors():
        name = _field(tuple(err.get("loc", ())))
        msg = str(err.get("msg", "invalid"))
        # model-level checks put the field name first ("reason: ..."): keep it as the field
        if name == "body" and ": " in msg:
            head, _, rest = msg.removeprefix("Value error, ").partition(": ")
            if head.isidentifier():
                name, msg = head, rest
        fields.append({"field": name, "message": msg})
    text = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return JSONResponse({"error": "invalid_input", "message": f"invalid input: {text}", "fields": fields},
                        status_code=422)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProviderUnavailable)  # noqa: S101
    return JSONResponse({"error": "unavailable", "component": exc.component, "message": str(exc)},
                        status_code=503)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": "not_found", "message": str(exc) or "no such item"}, status_code=404)


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)  # noqa: S101
    return JSONResponse({"error": "refused", "message": str(exc),
                         "fields": [{"field": exc.field, "message": exc.message}]}, status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)  # noqa: S101
    return JSONResponse({"error": "refused" if exc.status_code < 500 else "error", "message": exc.detail},
                        status_code=exc.status_code, headers=exc.headers)


def forbidden_page(role: str, page: str, allowed: str, back: str, back_name: str) -> str:
    """The 403 page a logged-in user sees for a page their role may not open: what, why, and a way back."""
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not allowed — Siaga 112"
            "</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head><body class=\"forbidden\">"
            "<section id=\"forbidden\" class=\"panel\"><h2>403: not allowed</h2>"
            f"<p id=\"forbidden-msg\">You are logged in as {html.escape(role)}: {html.escape(page)} is for "
            f"{html.escape(allowed)} only. Ask a supervisor if you need it.</p>"
            f"<p><a id=\"forbidden-back\" href=\"{html.escape(back)}\">Back to {html.escape(back_name)}</a>"
            "</p></section></body></html>")


def create_app(ctx: ConsoleContext) -> FastAPI:
    app = FastAPI(
        title="siaga112 console", version="1",
        description="Operator console and wallboard API of the siaga112 engine. Log in with "
                    "POST /api/auth/login (session cookie); send the session's CSRF token in the "
                    "X-CSRF-Token header on every state-changing request.",
        dependencies=[Depends(csrf_guard)],
        docs_url=None, redoc_url=None, openapi_url=None)  # the schema is served to signed-in users below
    app.state.console = ctx
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ProviderUnavailable, _unavailable)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(HTTPException, _http_error)
    for module in (routes_auth, routes_floor, routes_supervision, routes_wallboard, routes_stream,
                   routes_agency):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console")

    @app.get("/console", include_in_schema=False)
    async def console_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "console.html", media_type="text/html")

    @app.get("/wallboard", include_in_schema=False, response_model=None)
    async def wallboard_page(request: Request) -> FileResponse | HTMLResponse:
        session = await optional_session(request)
        if session is not None and session.user.role not in WATCHERS:
            return HTMLResponse(forbidden_page(session.user.role.value, "the wallboard",
                                               "supervisors and admins", "/console", "the operator console"),
                                status_code=403)
        return FileResponse(STATIC_DIR / "wallboard.html", media_type="text/html")

    @app.get("/agency", include_in_schema=False)
    async def agency_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "agency.html", media_type="text/html")

    @app.get("/api/openapi.json", include_in_schema=False)
    async def openapi(session: Annotated[Session, Depends(current_session)]) -> JSONResponse:
        return JSONResponse(app.openapi())

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # outermost last: headers on every answer, then the Host check, then the body limit
    app.add_middleware(BodyLimit, default=ctx.web.max_body_bytes,
                       per_path={"/api/auth/login": ctx.web.login_max_body_bytes})
    app.add_middleware(HostGuard, names=ctx.host_names)
    app.add_middleware(SecurityHeaders)
    return app
