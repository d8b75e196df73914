"""``/api/auth``: log in, log out, who am I, the CSRF token."""

from __future__ import annotations

import math
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status

from callflow.console.accounts import Session
from callflow.console.audit import AuditAction, AuditOutcome
from callflow.console.models import CsrfResponse, LoginRequest, LoginResponse, UserView
from callflow.console.security import SESSION_COOKIE, client_address, context, current_session
from callflow.console.throttle import Attempt

router = APIRouter(prefix="/api/auth", tags=["auth"])

CurrentSession = Annotated[Session, Depends(current_session)]


def _view(session: Session, request: Request) -> UserView:
    u = session.user
    zone = context(request).timezone
    return UserView(name=u.name, role=u.role, operator_id=u.operator_id, agency_id=u.agency_id,
                    centre_timezone=zone.key if isinstance(zone, ZoneInfo) else "UTC")


@router.post("/login", response_model=LoginResponse,
             responses={401: {"description": "wrong name or password"},
                        429: {"description": "too many failed attempts"}})
async def login(body: LoginRequest, request: Request, response: Response) -> LoginResponse:
    ctx = context(request)
    address = client_address(request)
    known = await ctx.accounts.find(body.name) is not None
    # reserved before the slow check (throttle.py): concurrent attempts cannot all pass the limit
    attempt = ctx.throttle.reserve(body.name.lower(), address, known=known)
    if not isinstance(attempt, Attempt):
        wait = math.ceil(attempt)
        await ctx.audit.record(body.name, AuditAction.LOGIN, AuditOutcome.THROTTLED, address=address)
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"too many failed logins: try again in {wait} s",
                            headers={"Retry-After": str(wait)})
    user, reason = await ctx.accounts.authenticate(body.name, body.password)  # an error: stays counted
    if user is None:
        ctx.throttle.failed(attempt)
        await ctx.audit.record(body.name, AuditAction.LOGIN, AuditOutcome.FAILED, address=address,
                               detail=reason)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong name or password (or account disabled)")
    ctx.throttle.succeeded(attempt)
    token, session = await ctx.accounts.open_session(user, address)
    await ctx.audit.record(user.name, AuditAction.LOGIN, AuditOutcome.OK, address=address,
                           detail=f"role={user.role.value}")
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(ctx.accounts.session_ttl.total_seconds()), path="/",
        httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return LoginResponse(user=_view(session, request), csrf_token=session.csrf_token,
                         expires_at=session.expires_at)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request, session: CurrentSession) -> Response:
    ctx = context(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    await ctx.accounts.close_session(token)
    await ctx.audit.record(session.user.name, AuditAction.LOGOUT, AuditOutcome.OK,
                           address=client_address(request))
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


@router.get("/me", response_model=UserView)
async def me(session: CurrentSession, request: Request) -> UserView:
    return _view(session, request)


@router.get("/csrf", response_model=CsrfResponse)
async def csrf(session: CurrentSession) -> CsrfResponse:
    return CsrfResponse(csrf_token=session.csrf_token)
