"""``/api/events``: the live stream (server-sent events) for logged-in pages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from callflow.console.accounts import Session
from callflow.console.hub import EventHub
from callflow.console.roles import ANY_ROLE
from callflow.console.security import context, require

router = APIRouter(prefix="/api", tags=["stream"])

AnyUser = Annotated[Session, Depends(require(ANY_ROLE))]


async def _sse(hub: EventHub, user: str, keepalive: float) -> AsyncIterator[bytes]:
    # subscribed only once the response body starts, so a client gone before that leaves nothing behind
    sub = hub.subscribe(user)
    try:
        yield b"retry: 2000\n: connected\n\n"
        async for message in hub.messages(sub, keepalive):
            if message is None:
                yield b": keepalive\n\n"
            else:
                data = json.dumps(message, separators=(",", ":"))
                yield f"event: {message['type']}\ndata: {data}\n\n".encode()
    finally:
        hub.unsubscribe(sub)


@router.get("/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "server-sent events; each `data:` is one JSON message with a "
                                            "`type` (queue.join, queue.leave, queue.abandon, agent.called, "
                                            "agent.connect, agent.complete, agent.noanswer, member.status, "
                                            "member.added, member.removed, member.pause, call.queue_entry, "
                                            "call.ivr, call.record (a finished call was stored), "
                                            "incident.changed, callback.changed, threshold.changed, "
                                            "listen.changed, link, gap)"}})
async def events(request: Request, session: AnyUser) -> StreamingResponse:
    """The engine's live events. A slow client loses the oldest messages and gets a ``gap`` message."""
    ctx = context(request)
    return StreamingResponse(_sse(ctx.hub, session.user.name, ctx.keepalive_s),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
