"""``/api/events``: the live stream (server-sent events) for logged-in pages."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from callflow.console.accounts import Session
from callflow.console.hub import EventHub
from callflow.console.roles import ANY_ROLE
from callflow.console.security import SESSION_COOKIE, context, require
from callflow.store import DatabaseError

log = structlog.get_logger("callflow.console")

router = APIRouter(prefix="/api", tags=["stream"])

AnyUser = Annotated[Session, Depends(require(ANY_ROLE))]


async def _sse(hub: EventHub, user: str, keepalive: float, check_every: float,
               still_valid: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
    # subscribed only once the response body starts, so a client gone before that leaves nothing behind
    sub = hub.subscribe(user)
    try:
        yield b"retry: 2000\n: connected\n\n"
        last_sent = last_check = time.monotonic()
        async for message in hub.messages(sub, min(keepalive, check_every)):
            now = time.monotonic()
            if now - last_check >= check_every:
                # the session lives in the store: `console user disable` (another process) or a logout
                # ends it there, and the stream with it
                last_check = now
                try:
                    valid = await still_valid()
                except DatabaseError as exc:  # a busy store must not cut every stream: the next check says
                    log.warning("console.session_check_failed", user=user, error=str(exc))
                    valid = True
                if not valid:
                    yield b'event: session.ended\ndata: {"type":"session.ended"}\n\n'
                    return
            if message is not None:
                data = json.dumps(message, separators=(",", ":"))
                yield f"event: {message['type']}\ndata: {data}\n\n".encode()
                last_sent = now
            elif now - last_sent >= keepalive:
                yield b": keepalive\n\n"
                last_sent = now
    finally:
        hub.unsubscribe(sub)


@router.get("/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "server-sent events; each `data:` is one JSON message with a "
                                            "`type` (queue.join, queue.leave, queue.abandon, agent.called, "
                                            "agent.connect, agent.complete, agent.noanswer, member.status, "
                                            "member.added, member.removed, member.pause, call.queue_entry, "
                                            "call.ivr, call.silent, call.key, "
                                            "call.record (a finished call was stored), "
                                            "incident.changed, callback.changed, threshold.changed, "
                                            "listen.changed, link, gap, session.ended: the session was "
                                            "ended (logout, account disabled): log in again)"}})
async def events(request: Request, session: AnyUser) -> StreamingResponse:
    """The engine's live events. A slow client loses the oldest messages and gets a ``gap`` message."""
    ctx = context(request)
    token = request.cookies.get(SESSION_COOKIE, "")

    async def still_valid() -> bool:
        return await ctx.accounts.session(token) is not None

    return StreamingResponse(_sse(ctx.hub, session.user.name, ctx.keepalive_s, ctx.web.session_check_s,
                                  still_valid),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
