"""uvicorn as the console runs it: limits on connections, a deadline for each request to arrive whole,
and a short keep-alive (README "Console security")."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import h11
import structlog
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from callflow.console_settings import ConsoleSettings

log = structlog.get_logger("callflow.console")

MAX_HEADER_BYTES = 16 * 1024  # request line and headers together; h11 answers 400 beyond it
_INCOMPLETE = (h11.IDLE, h11.SEND_BODY)  # the client still owes us (part of) a request


class _DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, plus: each request (its headers and body) must arrive within
    ``request_timeout_s`` of its first byte, or of the connection's opening; otherwise the connection is
    closed. uvicorn alone keeps a connection that never sends, or stops half-way, open for ever."""

    request_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state in _INCOMPLETE:
            self._arm()  # a new request began on a kept-alive connection (or this one goes on)
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state not in _INCOMPLETE:
            return
        if self.flow.read_paused:  # we stopped reading (the route is slow), not the client: wait more
            self._arm()
            return
        log.info("console.request_timeout", client=str(self.client), timeout_s=self.request_timeout_s)
        self.transport.close()


def protocol_class(request_timeout_s: float) -> type[H11Protocol]:
    return type("ConsoleH11Protocol", (_DeadlineProtocol,), {"request_timeout_s": request_timeout_s})


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the engine owns SIGINT/SIGTERM and stops us."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server_config(app: ASGIApp, settings: ConsoleSettings) -> uvicorn.Config:
    return uvicorn.Config(
        app, lifespan="off", log_config=None, access_log=False, proxy_headers=False, server_header=False,
        timeout_graceful_shutdown=3, http=protocol_class(settings.request_timeout_s),
        limit_concurrency=settings.max_connections, timeout_keep_alive=settings.keepalive_timeout_s,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES)
