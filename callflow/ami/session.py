"""``AmiSession``: keeps one AMI connection alive and feeds one ordered queue.

Reconnect with exponential backoff and jitter; a :class:`~callflow.ami.client.LinkEvent` on the same
queue for every loss and every (re)connect. On every connect, live state (CoreShowChannels, QueueStatus)
is re-read before any later event is handed on, and travels on the ``up`` LinkEvent with the gap bounds.
State-changing actions in flight when the link drops are never re-sent (``OutcomeUnknown``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from datetime import datetime

import structlog

from callflow.ami.client import (
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    AmiConnection,
    AmiEndpoint,
    Clock,
    EventItem,
    LinkEvent,
    utc_now,
)
from callflow.ami.codec import AmiMessage
from callflow.ami.errors import (
    ActionFailed,
    ActionTimeout,
    ConnectionLost,
    LoginFailed,
    ProtocolError,
)
from callflow.ami.events import AmiEvent
from callflow.ami.lists import core_show_channels, queue_status

log = structlog.get_logger("callflow.ami")


def next_backoff(delay: float, maximum: float) -> float:
    """Exponential backoff with jitter: double, cap, then +-20 % so that many engines restarted together
    do not reconnect in lockstep."""
    return min(maximum, delay * 2) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security


class AmiSession:
    """Keeps one AMI connection alive and feeds one ordered queue of events and link changes.

    ``connection`` is the live connection or ``None`` while reconnecting. Run ``run()`` as a task.
    """

    def __init__(
        self,
        endpoint: AmiEndpoint,
        *,
        clock: Clock = utc_now,
        queue_size: int = 100_000,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        action_timeout: float = 10.0,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
        connect_timeout: float = 5.0,
    ) -> None:
        self.endpoint = endpoint
        self.events: asyncio.Queue[EventItem] = asyncio.Queue(queue_size)
        self._clock = clock
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._conn_options = {"action_timeout": action_timeout, "ping_interval": ping_interval,
                              "ping_timeout": ping_timeout, "connect_timeout": connect_timeout}
        self.connection: AmiConnection | None = None
        self.connected = asyncio.Event()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        delay = self._backoff_initial
        gap_started: datetime | None = None
        attempt = 0
        while not self._stop.is_set():
            opts = self._conn_options
            conn = AmiConnection(self.endpoint, self.events, clock=self._clock,
                                 action_timeout=opts["action_timeout"], ping_interval=opts["ping_interval"],
                                 ping_timeout=opts["ping_timeout"], connect_timeout=opts["connect_timeout"],
                                 hold_events=True)
            try:
                await conn.connect()
                up = await self._resync(conn, gap_started)
            except (ConnectionLost, LoginFailed, ActionTimeout, ActionFailed, ProtocolError) as exc:
                await conn.close(f"connect failed: {exc}")
                attempt += 1
                gap_started = gap_started or self._clock()
                log.warning("ami.connect_failed", where=self.endpoint.where(), error=str(exc),
                            attempt=attempt, retry_in_s=round(delay, 2))
                await self._sleep(delay)
                delay = next_backoff(delay, self._backoff_max)
                continue
            delay = self._backoff_initial
            attempt = 0
            log.info("ami.connected", where=self.endpoint.where(), banner=conn.banner,
                     reconnect=up.reconnect, channels=len(up.channels), queue_entries=len(up.queue_entries),
                     gap_started=gap_started.isoformat() if gap_started else None)
            self.connection = conn
            await self.events.put(up)
            await conn.release_events()
            gap_started = None
            self.connected.set()
            stop_wait: asyncio.Future[object] = asyncio.ensure_future(self._stop.wait())
            closed: asyncio.Future[object] = conn.closed  # type: ignore[assignment]
            try:
                await asyncio.wait({closed, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop_wait.cancel()
            self.connected.clear()
            self.connection = None
            reason = conn.closed.result() if conn.closed.done() else "stopping"
            await conn.close(reason)
            if self._stop.is_set():
                break
            # The gap starts when the link last delivered anything, not when its loss was noticed: a
            # silent (half-open) link is noticed only at the heartbeat's deadline, and calls that began and
            # ended in between are in Asterisk's records only (the call layer recovers from this bound).
            gap_started = conn.last_received or self._clock()
            log.warning("ami.link_lost", where=self.endpoint.where(), reason=reason,
                        silent_since=gap_started.isoformat())
            await self.events.put(LinkEvent("down", gap_started, reason=reason))
            await self._sleep(delay)

    async def _resync(self, conn: AmiConnection, gap_started: datetime | None) -> LinkEvent:
        """Re-read live state on the fresh connection (its events are held meanwhile)."""
        now = self._clock()
        channels = await core_show_channels(conn)
        queues = await queue_status(conn)
        return LinkEvent("up", now, gap_started=gap_started, reconnect=gap_started is not None,
                         channels=channels, queue_params=queues.params, queue_members=queues.members,
                         queue_entries=queues.entries, resynced_at=self._clock())

    async def _sleep(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()

    async def action(self, name: str, headers: Mapping[str, str | int] | None = None, *,
                     timeout: float | None = None,
                     variables: Mapping[str, str] | None = None) -> AmiMessage:
        conn = self.connection
        if conn is None:
            raise ConnectionLost(f"AMI link to {self.endpoint.host}:{self.endpoint.port} is down; "
                                 "the action was not sent")
        return await conn.action(name, headers, timeout=timeout, variables=variables)

    async def list_action(self, name: str, headers: Mapping[str, str | int] | None = None, *,
                          timeout: float | None = None) -> tuple[AmiMessage, list[AmiEvent]]:
        conn = self.connection
        if conn is None:
            raise ConnectionLost(f"AMI link to {self.endpoint.host}:{self.endpoint.port} is down; "
                                 "the action was not sent")
        return await conn.list_action(name, headers, timeout=timeout)
