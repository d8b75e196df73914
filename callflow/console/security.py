"""Request guards: the session behind the cookie, role checks, and CSRF on state-changing requests."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, status

from callflow.console.accounts import Session
from callflow.console.audit import AuditAction, AuditOutcome
from callflow.console.context import ConsoleContext
from callflow.console.roles import Role

SESSION_COOKIE = "siaga112_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def context(request: Request) -> ConsoleContext:
    ctx: ConsoleContext = request.app.state.console
    return ctx


def client_address(request: Request) -> str:
    """The client's address: the TCP peer, or, when the peer is one of the configured trusted proxies
    (``[console] trusted_proxies``), the nearest untrusted address its ``X-Forwarded-For`` names. A
    header from any other peer is ignored: anyone can write one."""
    peer = request.client.host if request.client else "unknown"
    trusted = context(request).trusted_proxies
    if not trusted or not _within(peer, trusted):
        return peer
    hops = [h.strip() for line in request.headers.getlist("x-forwarded-for") for h in line.split(",")]
    for hop in reversed(hops):  # the right end was appended by the proxy nearest to us
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a mangled chain: trust nothing beyond the proxy itself
        if not _within(str(address), trusted):
            return str(address)
    return peer


def _within(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


async def optional_session(request: Request) -> Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return await context(request).accounts.session(token)


async def current_session(request: Request) -> Session:
    session = await optional_session(request)
    if session is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "not logged in (or the session expired): log in at /api/auth/login")
    return session


async def csrf_guard(request: Request) -> None:
    """On every state-changing request of a logged-in session: the session's CSRF token must come back
    in the ``X-CSRF-Token`` header. (Login has no session yet; it only accepts a JSON body, which a
    cross-site form cannot send, and the cookie is SameSite=Strict.)"""
    if request.method in SAFE_METHODS:
        return
    session = await optional_session(request)
    if session is None:
        return  # the route's own session check answers 401 (or it is the login itself)
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"CSRF check failed: send the session's token (GET /api/auth/csrf) in the "
                            f"{CSRF_HEADER} header")


def require(roles: frozenset[Role], *,
            audited: AuditAction | None = None) -> Callable[[Request], Awaitable[Session]]:
    """A dependency giving the session when its role is one of ``roles``; 401/403 otherwise. With
    ``audited``, a refusal is written to the audit trail too (recordings, exports)."""
    allowed = ", ".join(sorted(r.value for r in roles))

    async def guard(request: Request) -> Session:
        session = await current_session(request)
        if session.user.role not in roles:
            if audited is not None:
                await context(request).audit.record(
                    session.user.name, audited, AuditOutcome.DENIED, target=request.url.path,
                    address=client_address(request), detail=f"role={session.user.role.value}")
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"role {session.user.role.value!r} may not do this (allowed: {allowed})")
        return session

    return guard
